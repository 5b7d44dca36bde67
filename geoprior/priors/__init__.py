"""Priors other than the learned GeoPrior: the baselines it has to beat and adapters of
external range models. Every one follows the :class:`~geoprior.query.Prior` protocol.

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

__all__ = [
    "BirdNETPrior",
    "CountGridPrior",
    "FrequencyPrior",
    "NearestNeighborPrior",
    "UniformPrior",
    "auto_resolution",
]
