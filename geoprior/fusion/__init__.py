"""Fusing a classifier's logits with a where-and-when prior, and reranking its predictions.

The core, :func:`fuse`, is a pure function of arrays (jit-able, numpy or JAX input). Around
it: :func:`align_classes` lines a classifier's class list up with a prior's species,
:func:`rerank` queries a :class:`~geoprior.priors.protocol.Prior` and reports top-k lists with flags,
:func:`fit_fusion` picks the mode and its parameters on validation data, and
:func:`species_list` lists the species to expect at a place (BirdNET's location filter).
The modes:

* ``"product"``: ``p(y | image)^(1/T) * p(y | place)^weight``, renormalised (Mac Aodha et
  al., ICCV 2019). Bayes-optimal when the classifier is calibrated and the prior is
  ``p(y | place)`` up to the training label prior.
* ``"floor"``: the prior clipped below at ``floor`` first (iNaturalist uses 0.005), so a rare
  vagrant is demoted but never erased.
* ``"filter"``: species whose prior is under ``threshold`` are removed (BirdNET uses 0.03);
  the others keep the classifier's scores. A row where everything is removed falls back to
  the classifier and is flagged.
* ``"none"``: the classifier alone (``temperature`` still applies).

Prior probabilities are clipped to ``[EPS, 1]`` (``EPS = 1e-12``) before the log, so a
prior of exactly 0 gives a large finite penalty (``weight * log(1e-12) ≈ -27.6 * weight``)
instead of ``-inf`` or NaN. See ``docs/fusion.md``.
"""

from ..core.fuse import EPS, MODES, FusionResult
from .align import Alignment, align_classes
from .checks import check_logits
from .fit import fit_fusion
from .fuse import fuse, fuse_with_flags
from .params import FusionParams
from .rerank import RANGE_FRACTION, RerankResult, rerank
from .species_list import species_list, week_dates

__all__ = [
    "EPS",
    "MODES",
    "RANGE_FRACTION",
    "Alignment",
    "FusionParams",
    "FusionResult",
    "RerankResult",
    "align_classes",
    "check_logits",
    "fit_fusion",
    "fuse",
    "fuse_with_flags",
    "rerank",
    "species_list",
    "week_dates",
]
