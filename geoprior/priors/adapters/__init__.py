"""Adapters that make external species-range models follow the :class:`~geoprior.priors.protocol.Prior`
protocol, so they fuse, rank and map like any geoprior prior."""

from .birdnet import BirdNETPrior

__all__ = ["BirdNETPrior"]
