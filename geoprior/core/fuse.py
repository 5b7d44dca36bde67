"""The fusion maths: a classifier's logits and a prior's probabilities into log-probabilities.

Pure, jitted functions of validated arrays (``mode`` static); validation of user input
happens at the public edge, :func:`geoprior.fusion.fuse`. The modes are described in
:mod:`geoprior.fusion`. Prior probabilities are clipped to ``[EPS, 1]`` before the log.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "DEFAULT_FLOOR",
    "DEFAULT_THRESHOLD",
    "EPS",
    "MODES",
    "FusionResult",
    "fuse_core",
    "grid_scores",
]

MODES = ("product", "floor", "filter", "none")
EPS = 1e-12
DEFAULT_FLOOR = 0.005  # iNaturalist's floor
DEFAULT_THRESHOLD = 0.03  # BirdNET's species-list threshold


class FusionResult(NamedTuple):
    """What :func:`fuse_with_flags` returns (a JAX pytree, so it passes through ``jit``).

    Attributes:
        log_probs: fused log-probabilities, the shape of the logits.
        filtered_all: bool per row: mode ``"filter"`` removed every species, so the row is
            the classifier alone (always ``False`` in other modes).
    """

    log_probs: jax.Array
    filtered_all: jax.Array


@partial(jax.jit, static_argnames="mode")
def fuse_core(logits, prior, mode, weight, floor, threshold, temperature) -> FusionResult:
    log_clf = jax.nn.log_softmax(logits / temperature, axis=-1)
    prior = jnp.broadcast_to(prior, log_clf.shape).astype(log_clf.dtype)
    none_filtered = jnp.zeros(log_clf.shape[:-1], dtype=bool)
    if mode == "none":
        return FusionResult(log_clf, none_filtered)
    if mode == "filter":
        keep = prior >= threshold
        kept_any = jnp.any(keep, axis=-1, keepdims=True)
        masked = jnp.where(keep | ~kept_any, log_clf, -jnp.inf)
        return FusionResult(jax.nn.log_softmax(masked, axis=-1), ~kept_any[..., 0])
    if mode == "floor":
        prior = jnp.maximum(prior, floor)
    log_prior = jnp.log(jnp.clip(prior, EPS, 1.0))
    return FusionResult(jax.nn.log_softmax(log_clf + weight * log_prior, axis=-1), none_filtered)


@partial(jax.jit, static_argnames="mode")
def grid_scores(logits, labels, valid, prior, grid, mode):
    """Correct top-1 count, summed NLL and losses over valid rows, for each grid row."""
    clf_right = jnp.argmax(logits, axis=-1) == labels

    def one(p):
        lp = fuse_core(logits, prior, mode, p[0], p[1], p[2], p[3]).log_probs
        right = jnp.argmax(lp, axis=-1) == labels
        true_lp = jnp.take_along_axis(lp, labels[:, None], axis=-1)[:, 0]
        return (jnp.sum(valid & right), jnp.sum(jnp.where(valid, -true_lp, 0.0)),
                jnp.sum(valid & clf_right & ~right), jnp.sum(valid & ~clf_right & right))

    return jax.lax.map(one, grid, batch_size=8)
