"""Choosing the fusion mode and its parameters on validation data: :func:`fit_fusion`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ..core.fuse import grid_scores
from ..errors import ClassMismatchError, ConfigError, EmptyDataError, describe_bad
from .checks import check_logits, check_params, check_prior_probs, warn_if_probabilities
from .params import FusionParams

__all__ = ["fit_fusion"]


# coarse grids (ascending, so exact ties pick the most conservative value), refined later
_T_GRID = np.geomspace(0.25, 4.0, 5)
_WEIGHT_GRID = np.concatenate([[0.0], np.geomspace(1 / 32, 4.0, 8)])
_FLOOR_GRID = np.geomspace(1e-4, 0.1, 7)
_THRESHOLD_GRID = np.concatenate([[0.0], np.geomspace(1e-4, 0.3, 8)])
# free parameters of each mode, as columns of a (G, 4) grid [weight, floor, threshold, T]
_FREE = {"none": (3,), "product": (0, 3), "floor": (0, 1, 3), "filter": (2, 3)}
_COARSE = {0: _WEIGHT_GRID, 1: _FLOOR_GRID, 2: _THRESHOLD_GRID, 3: _T_GRID}
_FIXED = np.array([0.0, 1.0, 0.0, 1.0])  # unused parameters (ignored by the mode)
_UPPER = {0: np.inf, 1: 1.0, 2: 1.0, 3: np.inf}
_ROWS_PER_CHUNK = 1 << 20  # rows * classes per evaluation chunk


_SIGNIFICANCE = 3.0  # McNemar z a top-1 gain over the classifier must beat (see fit_fusion)


class _Scores(NamedTuple):
    top1: np.ndarray  # accuracy per grid row
    nll: np.ndarray  # mean negative log-likelihood per grid row
    gains: np.ndarray  # rows right after fusion that the classifier got wrong
    losses: np.ndarray  # rows the classifier got right that fusion gets wrong


def _evaluate(logits, labels, prior, mode: str, grid: np.ndarray) -> _Scores:
    """Scores for each row of ``grid``, computed in fixed-size row chunks."""
    n, S = logits.shape
    chunk = max(1, min(n, _ROWS_PER_CHUNK // S))
    pad = (-n) % chunk
    valid = np.concatenate([np.ones(n, bool), np.zeros(pad, bool)])
    logits, labels, prior = (np.concatenate([a, a[:1].repeat(pad, axis=0)]) if pad else a
                             for a in (logits, labels, prior))
    sums = np.zeros((4, len(grid)))
    g = jnp.asarray(grid, dtype=jnp.float32)
    for s in range(0, n + pad, chunk):
        parts = grid_scores(logits[s:s + chunk], labels[s:s + chunk], valid[s:s + chunk],
                             prior[s:s + chunk], g, mode)
        sums += np.asarray(parts, dtype=np.float64)
    correct, nll, losses, gains = sums
    return _Scores(correct / n, nll / n, gains, losses)


def _grid(mode: str, values: dict[int, np.ndarray]) -> np.ndarray:
    free = _FREE[mode]
    mesh = np.meshgrid(*(values[i] for i in free), indexing="ij")
    grid = np.tile(_FIXED, (mesh[0].size, 1))
    for i, m in zip(free, mesh, strict=True):
        grid[:, i] = m.ravel()
    return np.vectorize(lambda v: float(f"{v:.4g}"))(grid)  # 0.5, not 0.4999999999999999


def _refined(mode: str, best: np.ndarray) -> np.ndarray:
    """A finer grid around ``best``: 5 log-spaced values spanning one coarse step each way."""
    values = {}
    for i in _FREE[mode]:
        coarse = _COARSE[i]
        v = best[i]
        if v == 0:
            values[i] = np.linspace(0.0, coarse[coarse > 0][0], 5)
        else:
            step = coarse[-1] / coarse[-2]
            values[i] = np.unique(np.minimum(v * step ** np.linspace(-1, 1, 5), _UPPER[i]))
    return _grid(mode, values)


def _best(scores: _Scores, objective: str, guard: bool) -> int | None:
    """Index of the best grid row, or ``None`` when no row passes the significance guard."""
    eligible = np.ones(scores.top1.size, bool)
    if guard:
        net = scores.gains - scores.losses
        eligible = net > _SIGNIFICANCE * np.sqrt(scores.gains + scores.losses)
    if not eligible.any():
        return None
    top1 = np.where(eligible, scores.top1, -np.inf)
    keys = (scores.nll, -top1) if objective == "top1" else (-top1, scores.nll)
    return int(np.lexsort(keys)[0])  # lexsort: the last key sorts first; stable


def fit_fusion(
    logits,
    labels,
    prior_probs,
    *,
    modes: Sequence[str] = ("product", "floor", "filter"),
    objective: str = "top1",
) -> FusionParams:
    """Choose the fusion mode and fit its parameters on validation data.

    For each mode, a grid search over log-spaced values (weight 0 and 1/32..4, floor
    1e-4..0.1, threshold 0 and 1e-4..0.3, temperature 0.25..4) is refined around its best
    point; the classifier alone (mode ``"none"``, temperature fitted) is always a
    candidate, so the result never scores worse than the classifier on this data.

    ``objective="top1"`` maximises top-1 accuracy, breaking ties by NLL (so temperature is
    fitted too and the result is stable). Because hundreds of settings are compared, a
    fused setting must beat the classifier *significantly* to be chosen: with ``g`` rows it
    gets right that the classifier got wrong and ``l`` the other way round, it needs
    ``g - l > 3 * sqrt(g + l)`` (a McNemar test at about 3 sigma); a prior that is noise
    thus gives mode ``"none"`` instead of a lucky fit. ``"nll"`` minimises the mean
    negative log-likelihood (a proper score, no guard: weight 0 is on the grid). Exact ties
    go to the simplest candidate (``none`` first, then lower weights and thresholds). The
    grid is evaluated with :func:`jax.lax.map` in row chunks.

    Args:
        logits: ``(n, S)`` validation logits.
        labels: ``(n,)`` integer true-class indices.
        prior_probs: ``(n, S)`` prior aligned with the classes (see :meth:`Alignment.apply`).
        modes: the modes to try (among ``product``, ``floor``, ``filter``, ``none``).
        objective: ``"top1"`` or ``"nll"``.

    Returns:
        :class:`FusionParams` with validation scores, and those of the classifier alone.

    Example:
        >>> params = fit_fusion(val_logits, val_labels, val_prior)  # doctest: +SKIP
        >>> fused = fuse(test_logits, test_prior, **params.as_kwargs())  # doctest: +SKIP
    """
    if objective not in ("top1", "nll"):
        raise ConfigError(f"objective must be 'top1' or 'nll', got {objective!r}")
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    for m in modes:
        check_params(m, 1.0, None, None, 1.0)
    logits = np.atleast_2d(check_logits(np.asarray(logits)))
    warn_if_probabilities(logits)
    n, S = logits.shape
    if n == 0:
        raise EmptyDataError("fit_fusion needs at least one validation row, got 0")
    prior = np.broadcast_to(np.asarray(check_prior_probs(prior_probs, (n, S))), (n, S))
    labels = np.asarray(labels).reshape(-1)
    if labels.size != n:
        raise ClassMismatchError(f"got {n} rows of logits but {labels.size} labels")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ClassMismatchError(f"labels must be integer class indices, got dtype {labels.dtype}")
    bad = (labels < 0) | (labels >= S)
    if bad.any():
        raise ClassMismatchError(describe_bad("labels", labels, bad, f"outside [0, {S})"))
    logits32 = logits.astype(np.float32)
    prior32 = prior.astype(np.float32)
    labels32 = labels.astype(np.int32)

    def score(mode, grid):
        return _evaluate(logits32, labels32, prior32, mode, grid)

    clf = score("none", _FIXED[None, :])
    candidates = []  # (top1, nll, mode, grid row): the best of each mode
    for mode in ("none", *[m for m in modes if m != "none"]):
        guard = objective == "top1" and mode != "none"
        coarse = _grid(mode, _COARSE)
        i = _best(score(mode, coarse), objective, guard)
        if i is None:  # no setting of this mode beats the classifier significantly
            continue
        fine = _refined(mode, coarse[i])  # holds coarse[i], so some row stays eligible
        scores = score(mode, fine)
        j = _best(scores, objective, guard)
        candidates.append((scores.top1[j], scores.nll[j], mode, fine[j]))
    top1s, nlls = (np.array([c[k] for c in candidates]) for k in (0, 1))
    zeros = np.zeros(len(candidates))
    top1, nll, mode, row = candidates[_best(_Scores(top1s, nlls, zeros, zeros), objective, False)]
    return FusionParams(
        mode=mode,
        weight=float(row[0]) if mode in ("product", "floor") else 0.0,
        floor=float(row[1]) if mode == "floor" else None,
        threshold=float(row[2]) if mode == "filter" else None,
        temperature=float(row[3]),
        objective=objective,
        top1=float(top1),
        nll=float(nll),
        classifier_top1=float(clf.top1[0]),
        classifier_nll=float(clf.nll[0]),
        n_val=n,
    )
