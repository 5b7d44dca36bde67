"""Metrics for priors and fused classifiers: pure numpy functions of score arrays.

Three families, each a function of a score array and the truth, no model needed:

* **classification** — :func:`top_k_accuracy` of ``(n, S)`` scores against true class
  indices, and :func:`error_reduction`, the relative drop of an error rate;
* **ranking one species against sites** (range accuracy on presence-absence surveys) —
  :func:`roc_auc` and :func:`average_precision` of a score per site against 0/1 labels,
  and :func:`per_species_auc_ap` for every column of an ``(n_sites, S)`` table;
* **ranking species at one survey event** (which species will be detected here, today) —
  :func:`event_average_precision` and :func:`recall_at_k`, one value per row.

Ties are never broken by position: top-k accuracy and recall@k are the *expected* values
when tied scores are ordered at random, ROC AUC counts a tied positive-negative pair as
1/2, and average precision steps over distinct thresholds (as in scikit-learn), so a
constant score gets the base rate. Scores may be ``-inf`` (a species a fusion filter removed) and rank last; bad
input (shapes, NaN scores, labels that are not 0/1) raises :class:`~geoprior.errors.ClassMismatchError` or
:class:`~geoprior.errors.NonFiniteError`; a metric that is undefined for the data (AUC
of a column without both presences and absences) raises
:class:`~geoprior.errors.EmptyDataError` for one column and is ``NaN`` in the per-column
and per-row tables, whose callers count those.
"""

from __future__ import annotations

import numpy as np

from .errors import ClassMismatchError, ConfigError, EmptyDataError, NonFiniteError, describe_bad

__all__ = [
    "average_precision",
    "error_reduction",
    "event_average_precision",
    "per_species_auc_ap",
    "recall_at_k",
    "roc_auc",
    "top_k_accuracy",
]


# ---------------------------------------------------------------------------- validation
def _scores(scores, ndim: int, what: str = "scores") -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != ndim:
        shape = "(n,)" if ndim == 1 else "(n, S)"
        raise ClassMismatchError(f"{what} must have shape {shape}, got {s.shape}")
    bad = np.isnan(s)
    if bad.any():
        raise NonFiniteError(describe_bad(what, s.ravel(), bad.ravel(), "are NaN"))
    return s


def _binary(labels, shape: tuple[int, ...], what: str = "labels") -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != shape:
        raise ClassMismatchError(f"{what} have shape {y.shape} but the scores have {shape}")
    if y.dtype == bool:
        return y
    flat = y.ravel()
    bad = ~np.isin(flat, (0, 1))
    if bad.any():
        raise ClassMismatchError(describe_bad(what, flat, bad, "are not 0/1"))
    return y.astype(bool)


def _check_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k must be an integer >= 1, got {k!r}")
    return int(k)


def _hit_probability(n_above: np.ndarray, n_tied: np.ndarray, k: int) -> np.ndarray:
    """Chance that an item with ``n_above`` strictly higher scores and ``n_tied`` equal
    scores (itself included) lands in the top ``k`` when ties are ordered at random."""
    return np.clip((k - n_above) / n_tied, 0.0, 1.0)


# ---------------------------------------------------------------------------- classification
def top_k_accuracy(scores, labels, k: int = 1) -> float:
    """Fraction of rows whose true class is among the ``k`` highest scores.

    Ties count as the expected value under a random order of the tied classes, so a
    constant score over ``S`` classes gives ``k / S``.

    Args:
        scores: ``(n, S)`` scores (logits, probabilities, log-probabilities: only the order
            within a row matters).
        labels: ``(n,)`` integer true-class indices in ``[0, S)``.
        k: how many top classes count as a hit.

    Example:
        >>> top_k_accuracy([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]], [2, 0], k=1)
        0.5
        >>> top_k_accuracy([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]], [2, 0], k=2)
        1.0
    """
    s = _scores(scores, 2)
    k = _check_k(k)
    y = np.asarray(labels).reshape(-1)
    n, n_classes = s.shape
    if y.size != n:
        raise ClassMismatchError(f"got {n} rows of scores but {y.size} labels")
    if n == 0:
        raise EmptyDataError("top_k_accuracy needs at least one row, got 0")
    if not np.issubdtype(y.dtype, np.integer):
        raise ClassMismatchError(f"labels must be integer class indices, got dtype {y.dtype}")
    bad = (y < 0) | (y >= n_classes)
    if bad.any():
        raise ClassMismatchError(describe_bad("labels", y, bad, f"outside [0, {n_classes})"))
    true = s[np.arange(n), y][:, None]
    n_above = (s > true).sum(axis=1)
    n_tied = (s == true).sum(axis=1)
    return float(_hit_probability(n_above, n_tied, k).mean())


def error_reduction(base_error: float, new_error: float) -> float:
    """Relative error reduction ``(base - new) / base``: 0.25 means a quarter fewer errors;
    negative when ``new_error`` is worse.

    Example:
        >>> error_reduction(0.40, 0.30)
        0.25
    """
    base, new = float(base_error), float(new_error)
    for name, v in (("base_error", base), ("new_error", new)):
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"{name} must be an error rate in [0, 1], got {v!r}")
    if base == 0.0:
        raise ConfigError("base_error is 0: there is no error to reduce")
    return round((base - new) / base, 12)


# ---------------------------------------------------------------------------- one species, many sites
def roc_auc(labels, scores) -> float:
    """Area under the ROC curve: the chance that a random presence site scores higher
    than a random absence site (a tied pair counts 1/2). Computed from mid-ranks
    (Mann-Whitney U) in ``O(n log n)``.

    Raises:
        EmptyDataError: when the labels are all presences or all absences.

    Example:
        >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        0.75
    """
    s = _scores(scores, 1)
    y = _binary(labels, s.shape)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise EmptyDataError(
            f"ROC AUC needs presences and absences, got {n_pos} presences and {n_neg} absences"
        )
    return float(_auc_sorted(*_sorted(y, s), n_pos, n_neg))


def average_precision(labels, scores) -> float:
    """Average precision: ``sum_t (R_t - R_(t-1)) * P_t`` over the distinct score
    thresholds ``t`` from high to low (the step-wise area under the precision-recall
    curve, as in scikit-learn). 1 for a perfect ranking; a constant score gives the
    fraction of presences.

    Raises:
        EmptyDataError: when there is no presence.

    Example:
        >>> round(average_precision([0, 1, 1, 0], [0.1, 0.9, 0.3, 0.5]), 4)  # P=1 then 2/3
        0.8333
    """
    s = _scores(scores, 1)
    y = _binary(labels, s.shape)
    if not y.any():
        raise EmptyDataError(f"average precision needs at least one presence among {y.size}")
    return float(_ap_sorted(*_sorted(y, s)))


def per_species_auc_ap(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """ROC AUC and average precision of every column of a sites x species table.

    Args:
        labels: ``(n_sites, S)`` 0/1 presence-absence.
        scores: ``(n_sites, S)`` predicted suitability (any monotone score).

    Returns:
        ``(auc, ap)``, two ``(S,)`` float arrays; ``NaN`` where the column has no presence
        (both) or no absence (AUC).

    Example:
        >>> auc, ap = per_species_auc_ap([[1, 0], [0, 1], [0, 1]], [[0.9, 0.2], [0.1, 0.5], [0.2, 0.1]])
        >>> auc.tolist(), ap.tolist()
        ([1.0, 0.5], [1.0, 0.8333333333333333])
    """
    s = _scores(scores, 2)
    y = _binary(labels, s.shape)
    n_species = s.shape[1]
    auc = np.full(n_species, np.nan)
    ap = np.full(n_species, np.nan)
    n_pos = y.sum(axis=0)
    n_neg = y.shape[0] - n_pos
    for j in range(n_species):
        if n_pos[j] == 0:
            continue
        ys, ss = _sorted(y[:, j], s[:, j])
        ap[j] = _ap_sorted(ys, ss)
        if n_neg[j] > 0:
            auc[j] = _auc_sorted(ys, ss, int(n_pos[j]), int(n_neg[j]))
    return auc, ap


# ---------------------------------------------------------------------------- many species, one event
def event_average_precision(scores, present) -> np.ndarray:
    """Average precision of each row's detected species among all species, ranked by score.

    One row is a survey event (a place and day); ``present`` marks the species detected
    there. This is how well a prior ranks what was found above what was not.

    Args:
        scores: ``(n, S)`` prior scores.
        present: ``(n, S)`` bool / 0-1, species detected at the event.

    Returns:
        ``(n,)`` floats; ``NaN`` for a row without any detected species.

    Example:
        >>> event_average_precision([[0.9, 0.5, 0.1], [0.2, 0.3, 0.4]],
        ...                         [[1, 0, 1], [0, 0, 1]]).round(4).tolist()
        [0.8333, 1.0]
    """
    s = _scores(scores, 2)
    y = _binary(present, s.shape, "present")
    out = np.full(s.shape[0], np.nan)
    for i in np.flatnonzero(y.any(axis=1)):
        out[i] = _ap_sorted(*_sorted(y[i], s[i]))
    return out


def recall_at_k(scores, present, k: int = 10) -> np.ndarray:
    """Fraction of each row's detected species among its ``k`` highest-scoring species
    (expected value when tied scores are ordered at random).

    Returns:
        ``(n,)`` floats; ``NaN`` for a row without any detected species.

    Example:
        >>> recall_at_k([[0.9, 0.5, 0.1], [0.2, 0.3, 0.4]], [[1, 0, 1], [0, 0, 1]], k=1).tolist()
        [0.5, 1.0]
    """
    s = _scores(scores, 2)
    y = _binary(present, s.shape, "present")
    k = _check_k(k)
    out = np.full(s.shape[0], np.nan)
    rows = np.flatnonzero(y.any(axis=1))
    if rows.size == 0:
        return out
    order = np.sort(s[rows], axis=1)  # ascending, per row
    for r, i in enumerate(rows):
        pos = s[i][y[i]]
        n_above = order.shape[1] - np.searchsorted(order[r], pos, side="right")
        n_tied = np.searchsorted(order[r], pos, side="right") - np.searchsorted(
            order[r], pos, side="left"
        )
        out[i] = _hit_probability(n_above, n_tied, k).mean()
    return out


# ---------------------------------------------------------------------------- shared core
def _sorted(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-s, kind="stable")
    return y[order], s[order]


def _ap_sorted(y: np.ndarray, s: np.ndarray) -> float:
    """AP of labels ``y`` sorted by descending score ``s``, one step per distinct score."""
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]  # end of each tie group
    tp = np.cumsum(y)[last]
    precision = tp / (last + 1)
    recall_gain = np.diff(np.r_[0, tp]) / tp[-1]
    return float(np.sum(recall_gain * precision))


def _auc_sorted(y: np.ndarray, s: np.ndarray, n_pos: int, n_neg: int) -> float:
    """Mann-Whitney AUC from scores sorted descending, with mid-ranks for ties."""
    asc = s[::-1]
    y_asc = y[::-1]
    first = np.searchsorted(asc, asc, side="left")
    last = np.searchsorted(asc, asc, side="right")
    ranks = (first + last + 1) / 2.0  # 1-based mid-ranks
    u = ranks[y_asc].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))
