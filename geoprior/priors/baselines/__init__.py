"""Baseline priors: the simple things a learned prior has to beat.

Every baseline follows the :class:`~geoprior.priors.protocol.Prior` protocol (``.species`` and
``.predict(lat, lon, date=None) -> (n, S)`` float32 probabilities) and answers
"which species is observed here?": each row is a distribution over the species and sums
to 1. Queries are validated with :func:`~geoprior.query.prepare_query` and processed in
chunks, so millions of points need only the memory of the ``(n, S)`` answer itself.

- :class:`UniformPrior` — ``1/S`` everywhere, no information.
- :class:`FrequencyPrior` — global species frequencies with additive smoothing.
- :class:`CountGridPrior` — counts per H3 cell (optionally per month), shrunk toward the
  cell's neighbours, its coarser parents and the global frequency (hierarchical Dirichlet).
- :class:`NearestNeighborPrior` — a Gaussian kernel on great-circle distance with a
  cross-validated bandwidth, shrunk toward the global frequency.

All save to a folder with ``.save(path)`` and load with :func:`geoprior.persistence.load_prior`;
a reloaded prior predicts bit-identical values. See ``docs/baselines.md``.
"""

from .count_grid import CountGridPrior, auto_resolution
from .frequency import FrequencyPrior
from .nearest import NearestNeighborPrior
from .uniform import UniformPrior

__all__ = [
    "UniformPrior",
    "FrequencyPrior",
    "CountGridPrior",
    "NearestNeighborPrior",
    "auto_resolution",
]
