"""Priors: the contract every one follows (:mod:`~geoprior.priors.protocol`), the learned
:class:`GeoPrior` (:mod:`~geoprior.priors.geoprior`), the baselines it has to beat and
adapters of external range models.

- :mod:`~geoprior.priors.baselines`: :class:`UniformPrior`, :class:`FrequencyPrior`,
  :class:`CountGridPrior`, :class:`NearestNeighborPrior`.
- :mod:`~geoprior.priors.adapters`: :class:`BirdNETPrior`.

:class:`GeoPrior` (the one prior here that needs JAX) is imported on first use, so the
contract and the baselines load without JAX (an exported prior's runtime uses them).
"""

from .adapters import BirdNETPrior
from .baselines import (
    CountGridPrior,
    FrequencyPrior,
    NearestNeighborPrior,
    UniformPrior,
    auto_resolution,
)
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


def __getattr__(name: str):
    if name == "GeoPrior":
        from .geoprior import GeoPrior

        return GeoPrior
    raise AttributeError(f"module 'geoprior.priors' has no attribute {name!r}")
