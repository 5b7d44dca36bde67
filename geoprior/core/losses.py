"""Presence-only losses (pure JAX).

Presence-only data say where a species *was* seen, never where it was absent. The losses
below turn that into a learning signal in different ways (Cole et al. 2023, "SINR"):

- ``an_full`` — *assume negative, full*: at an observed place every other species is
  treated as absent, and at random background places every species is; the observed
  species' term is up-weighted by ``pos_weight`` to offset the many negatives.
  Output: per-species presence probabilities ``sigmoid(logit)`` (good for range maps).
- ``an_ssdl`` — the same with one sampled negative species per row (and the observed
  species at a background place): cost independent of the number of species.
- ``maxent`` — the multinomial maximum-entropy model: ``softmax`` over species at the
  observed place, i.e. p(species | place, an observation was made). Rows sum to 1; this is
  the distribution a classifier's output is multiplied by in Bayes' rule.
- ``joint`` (the default) — both, on two heads of one network: ``an_full`` on the presence
  head (maps, thresholds) plus ``maxent`` on the observation head (ranking, species lists,
  fusion); see :func:`joint`.

All functions take logits and return a scalar mean loss.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["LOSSES", "an_full", "an_ssdl", "joint", "maxent"]

LOSSES = ("joint", "an_full", "an_ssdl", "maxent")


def _real_columns(logits, n_species):
    """Mask of the first ``n_species`` columns (the rest pad a head split over devices)."""
    s = logits.shape[1]
    if n_species is None or n_species == s:
        return None, s
    return jnp.arange(s) < n_species, n_species


def an_full(logits_obs, logits_bg, labels, pos_weight, n_species=None):
    """Assume-negative full loss.

    Args:
        logits_obs: ``(B, S)`` logits at observed places.
        logits_bg: ``(B', S)`` logits at background places.
        labels: ``(B,)`` int species observed.
        pos_weight: weight of the observed species' positive term.
        n_species: only the first ``n_species`` columns count (default: all ``S``).
    """
    neg_obs = -jax.nn.log_sigmoid(-logits_obs)  # -log(1 - p)
    neg_bg = -jax.nn.log_sigmoid(-logits_bg)
    real, s = _real_columns(logits_obs, n_species)
    if real is not None:
        neg_obs, neg_bg = jnp.where(real, neg_obs, 0.0), jnp.where(real, neg_bg, 0.0)
    pos = -jax.nn.log_sigmoid(jnp.take_along_axis(logits_obs, labels[:, None], 1))[:, 0]
    neg_at_label = jnp.take_along_axis(neg_obs, labels[:, None], 1)[:, 0]
    per_obs = (neg_obs.sum(1) - neg_at_label + pos_weight * pos) / s
    per_bg = neg_bg.sum(1) / s
    return per_obs.mean() + per_bg.mean()


def an_ssdl(pos_logit, neg_logit, bg_logit, pos_weight):
    """Assume-negative loss with one sampled negative species ("SSDL").

    Args:
        pos_logit: ``(B,)`` logit of the observed species at its place.
        neg_logit: ``(B,)`` logit of a random other species at that place.
        bg_logit: ``(B,)`` logit of the observed species at a background place.
        pos_weight: weight of the positive term.
    """
    return jnp.mean(
        -pos_weight * jax.nn.log_sigmoid(pos_logit)
        - jax.nn.log_sigmoid(-neg_logit)
        - jax.nn.log_sigmoid(-bg_logit)
    )


def maxent(logits_obs, labels, n_species=None):
    """Multinomial maximum-entropy (softmax cross-entropy) loss over species (the first
    ``n_species`` columns; default all)."""
    real, _ = _real_columns(logits_obs, n_species)
    if real is not None:
        logits_obs = jnp.where(real, logits_obs, -jnp.inf)
    logp = jax.nn.log_softmax(logits_obs, axis=-1)
    return -jnp.take_along_axis(logp, labels[:, None], 1).mean()


def joint(logits_obs, logits_bg, obs_logits, labels, pos_weight, n_species=None):
    """Presence and observation heads trained together: :func:`an_full` on the presence
    logits (``logits_obs`` at observed places, ``logits_bg`` at background places) plus
    :func:`maxent` on the observation head's logits ``obs_logits`` at the observed places.
    Both terms are per-row means, so neither needs a weight."""
    return an_full(logits_obs, logits_bg, labels, pos_weight, n_species) + maxent(
        obs_logits, labels, n_species
    )
