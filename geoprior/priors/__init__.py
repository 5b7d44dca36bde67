"""Priors: the contract every one follows (:mod:`~geoprior.priors.protocol`), the learned
:class:`GeoPrior` (:mod:`~geoprior.priors.geoprior`), the baselines it has to beat and
adapters of external range models.

- :mod:`~geoprior.priors.baselines`: :class:`UniformPrior`, :class:`FrequencyPrior`,
  :class:`CountGridPrior`, :class:`NearestNeighborPrior`.
- :mod:`~geoprior.priors.adapters`: :class:`BirdNETPrior`.
"""

from .adapters import BirdNETPrior
from .baselines import (
    CountGridPrior,
    FrequencyPrior,
    NearestNeighborPrior,
    UniformPrior,
    auto_resolution,
)
from .geoprior import GeoPrior
from .protocol import Prior, top_k

__all__ = [
    "BirdNETPrior",
    "CountGridPrior",
    "FrequencyPrior",
    "GeoPrior",
    "NearestNeighborPrior",
    "Prior",
    "UniformPrior",
    "auto_resolution",
    "top_k",
]
