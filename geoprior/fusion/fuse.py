"""The public fusion functions: :func:`fuse` and :func:`fuse_with_flags`.

Each validates its input once (:mod:`geoprior.fusion.checks`) and calls the pure core,
:func:`geoprior.core.fuse.fuse_core`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..core.fuse import FusionResult, fuse_core
from .checks import (
    check_logits,
    check_params,
    check_prior_probs,
    is_traced,
    value_summary,
    values_pass,
    warn_if_probabilities,
)

__all__ = ["fuse", "fuse_with_flags"]


def fuse_with_flags(
    logits,
    prior_probs,
    *,
    mode: str = "product",
    weight: float = 1.0,
    floor: float | None = None,
    threshold: float | None = None,
    temperature: float = 1.0,
) -> FusionResult:
    """Like :func:`fuse`, also returning which rows mode ``"filter"`` emptied.

    Example:
        >>> r = fuse_with_flags([[2.0, 1.0]], [[0.001, 0.002]], mode="filter", threshold=0.03)
        >>> bool(r.filtered_all[0])  # nothing passes the threshold: classifier alone
        True
    """
    logits = check_logits(logits, values=False)
    prior_probs = check_prior_probs(prior_probs, tuple(logits.shape), values=False)
    if not (is_traced(logits) or is_traced(prior_probs)):
        # the values are checked on the device in one pass; only input that fails (or
        # could be probabilities) is read again on the host, for the message
        given = logits, prior_probs
        logits, prior_probs = jnp.asarray(logits), jnp.asarray(prior_probs)
        ok, quiet = values_pass(value_summary(logits, prior_probs))
        if not ok:
            check_logits(given[0])
        if not quiet:
            warn_if_probabilities(given[0])
        if not ok:
            check_prior_probs(given[1], tuple(logits.shape))
    floor, threshold = check_params(mode, weight, floor, threshold, temperature)
    return fuse_core(logits, prior_probs, mode, weight, floor, threshold, temperature)


def fuse(
    logits,
    prior_probs,
    *,
    mode: str = "product",
    weight: float = 1.0,
    floor: float | None = None,
    threshold: float | None = None,
    temperature: float = 1.0,
) -> jax.Array:
    """Fuse classifier logits with prior probabilities into log-probabilities.

    ``log_softmax(logits / temperature) + weight * log(prior)``, renormalised (mode
    ``"product"``); ``"floor"`` first raises the prior to at least ``floor``; ``"filter"``
    removes (``-inf``) species whose prior is under ``threshold`` and keeps the classifier's
    scores for the others (``weight`` is ignored; a row with nothing left is the classifier
    alone, see :func:`fuse_with_flags`); ``"none"`` is the classifier alone. Parameters a
    mode does not use are ignored. Pure and jit-able (``mode`` static): validation of values
    is skipped for traced inputs.

    Args:
        logits: ``(n, S)`` or ``(S,)`` classifier logits (numpy or JAX).
        prior_probs: probabilities in [0, 1], shape of ``logits`` or ``(S,)`` for every row,
            columns aligned with the logits (see :func:`align_classes`).
        mode: ``"product"``, ``"floor"``, ``"filter"`` or ``"none"``.
        weight: exponent of the prior (0 = classifier alone).
        floor: lower clip of the prior in mode ``"floor"`` (default 0.005).
        threshold: prior below which mode ``"filter"`` removes a species (default 0.03).
        temperature: divides the logits (> 1 softens an over-confident classifier).

    Returns:
        A JAX array of log-probabilities, the shape of ``logits``; each row's logsumexp is 0.

    Warns:
        ProbabilitiesAsLogitsWarning: ``logits`` look like probabilities (see
            :func:`~geoprior.fusion.checks.warn_if_probabilities`).

    Raises:
        NonFiniteError: NaN/inf logits or prior, naming how many rows and the first.
        ClassMismatchError: shapes that do not line up (both shapes shown).
        ConfigError: prior values outside [0, 1], or an invalid parameter.

    Example:
        >>> import numpy as np
        >>> out = fuse(np.array([[2.0, 1.9]]), np.array([[0.01, 0.9]]))
        >>> int(np.argmax(out[0]))  # the prior overturns a near tie
        1
    """
    return fuse_with_flags(
        logits, prior_probs, mode=mode, weight=weight, floor=floor, threshold=threshold,
        temperature=temperature,
    ).log_probs
