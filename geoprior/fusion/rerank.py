"""Reranking a classifier's predictions with a prior queried at each row's place and date."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..core.fuse import DEFAULT_FLOOR, DEFAULT_THRESHOLD, fuse_core
from ..errors import ClassMismatchError, ConfigError, CoordinateError, DateError
from ..priors.protocol import predict_columns, predict_known, scores_columns
from ..validation import coordinate_array, coordinate_problems, parse_dates
from .align import align_classes
from .checks import (
    check_logits,
    check_params,
    check_prior_probs,
    swap_hint,
    warn_if_probabilities,
    warn_if_swapped,
)
from .params import FusionParams

__all__ = ["RANGE_FRACTION", "RerankResult", "rerank"]

RANGE_FRACTION = 0.05  # default "outside range": prior < 5% of the most expected species'


@dataclass(frozen=True, eq=False)
class RerankResult:
    """Top-k predictions after fusion, the classifier's own, and per-row flags.

    Attributes:
        classes: classifier class names (columns of ``log_probs`` and ``prior``).
        top_index, top_scores: ``(n, k)`` fused top-k class indices and probabilities.
        classifier_index, classifier_scores: ``(n, k)`` top-k of the classifier alone
            (probabilities of ``softmax(logits / temperature)``).
        log_probs: ``(n, S)`` fused log-probabilities.
        prior: ``(n, S)`` prior aligned with ``classes``; NaN rows where there is no location.
        no_location: the row's lat or lon is NaN: the classifier is used alone.
        outside_range: the classifier's top-1 has a prior below its threshold there.
        filtered_all: mode ``"filter"`` removed every class, so the classifier is used alone.
        fusion: the fusion parameters used.
    """

    classes: tuple[str, ...]
    top_index: np.ndarray
    top_scores: np.ndarray
    classifier_index: np.ndarray
    classifier_scores: np.ndarray
    log_probs: np.ndarray
    prior: np.ndarray
    no_location: np.ndarray
    outside_range: np.ndarray
    filtered_all: np.ndarray
    fusion: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.no_location)

    @property
    def top_species(self) -> np.ndarray:
        """``(n, k)`` fused top-k class names."""
        return np.asarray(self.classes, dtype=object)[self.top_index]

    @property
    def classifier_species(self) -> np.ndarray:
        """``(n, k)`` classifier-only top-k class names."""
        return np.asarray(self.classes, dtype=object)[self.classifier_index]

    @property
    def changed(self) -> np.ndarray:
        """Rows whose top-1 differs from the classifier's."""
        return self.top_index[:, 0] != self.classifier_index[:, 0]

    def to_frame(self) -> pd.DataFrame:
        """One row per input row: fused top-k names and scores, the classifier's top-1, the
        prior of both top-1s, ``changed`` and the flags."""
        rows = np.arange(len(self))
        cols: dict[str, np.ndarray] = {}
        names = self.top_species
        for j in range(self.top_index.shape[1]):
            cols[f"species_{j + 1}"] = names[:, j]
            cols[f"score_{j + 1}"] = self.top_scores[:, j]
        cols["classifier_species"] = self.classifier_species[:, 0]
        cols["classifier_score"] = self.classifier_scores[:, 0]
        cols["prior_species_1"] = self.prior[rows, self.top_index[:, 0]]
        cols["prior_classifier_species"] = self.prior[rows, self.classifier_index[:, 0]]
        cols["changed"] = self.changed
        cols["no_location"] = self.no_location
        cols["outside_range"] = self.outside_range
        cols["filtered_all"] = self.filtered_all
        return pd.DataFrame(cols)


def rerank(
    logits,
    classes: Sequence,
    prior,
    lat,
    lon,
    date=None,
    *,
    k: int = 5,
    params: FusionParams | None = None,
    synonyms: Mapping[str, str] | None = None,
    taxonomy=None,
    missing: str = "raise",
    batch_size: int = 4096,
    **fusion,
) -> RerankResult:
    """Rerank a classifier's predictions with a prior queried at each row's place and date.

    Rows whose ``lat`` or ``lon`` is NaN have no location: the classifier is used alone and
    ``no_location`` is set (present but invalid coordinates still raise). The prior is
    queried only for rows with a location, ``batch_size`` rows at a time.

    ``outside_range`` flags rows whose classifier top-1 has a prior below its threshold:
    ``prior.thresholds`` (one per prior species) when the prior has them, else the
    ``threshold`` fusion parameter when given, else :data:`RANGE_FRACTION` (5%) of the
    prior of the most expected species at that place and date (a scale-free default that
    suits presence probabilities and normalised frequencies alike). Unmatched classes
    (``missing="neutral"``) are never flagged.

    Args:
        logits: ``(n, S)`` (or ``(S,)``) classifier logits.
        classes: the ``S`` class names, in logit order.
        prior: any :class:`~geoprior.priors.protocol.Prior`.
        lat, lon: degrees, one per row (or one for all rows); NaN = no location.
        date: ``None``, one date, or one per row (see :func:`~geoprior.query.prepare_query`).
        k: how many predictions to keep per row (at most ``S``).
        params: fitted :class:`FusionParams`; keyword ``fusion`` arguments override them.
        synonyms, taxonomy, missing: passed to :func:`align_classes` (``taxonomy``: a
            taxonomy table, to match common names, codes and older synonyms).
        batch_size: rows per ``prior.predict`` call.
        **fusion: ``mode``, ``weight``, ``floor``, ``threshold``, ``temperature`` (see
            :func:`fuse`).

    Warns ``ProbabilitiesAsLogitsWarning`` when the logits look like probabilities and
    ``SwappedCoordinatesWarning`` when most rows make sense only with latitude and
    longitude exchanged (see :mod:`geoprior.fusion.checks`).

    Example:
        >>> import geoprior
        >>> obs = geoprior.Observations.from_arrays(
        ...     [44.0, 44.1, 30.0], [-71.3, -71.2, -90.0],
        ...     ["Setophaga virens", "Setophaga virens", "Zenaida macroura"])
        >>> prior = geoprior.FrequencyPrior.fit(obs)
        >>> classes = ["Setophaga virens", "Zenaida macroura"]
        >>> r = rerank([[1.9, 2.0]], classes, prior, [44.06], [-71.31], "2021-06-14", k=2)
        >>> classes[r.classifier_index[0, 0]], classes[r.top_index[0, 0]]  # a near tie overturned
        ('Zenaida macroura', 'Setophaga virens')
        >>> r.changed.tolist()
        [True]
    """
    logits = np.atleast_2d(check_logits(np.asarray(logits)))
    warn_if_probabilities(logits)
    n, S = logits.shape
    classes = list(classes)
    if len(classes) != S:
        raise ClassMismatchError(f"logits have {S} columns but {len(classes)} class names")
    if not (isinstance(k, (int, np.integer)) and k >= 1):
        raise ConfigError(f"k must be an integer >= 1, got {k!r}")
    if not (isinstance(batch_size, (int, np.integer)) and batch_size >= 1):
        raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    unknown = sorted(set(fusion) - {"mode", "weight", "floor", "threshold", "temperature"})
    if unknown:
        raise ConfigError(f"unknown fusion argument(s) {unknown}; expected mode, weight, floor, "
                          "threshold, temperature")
    kw = {**(params.as_kwargs() if params is not None else {}), **fusion}
    mode = kw.get("mode", "product")
    weight, temperature = kw.get("weight", 1.0), kw.get("temperature", 1.0)
    floor, threshold = check_params(mode, weight, kw.get("floor"), kw.get("threshold"), temperature)
    alignment = align_classes(
        classes, prior.species, synonyms=synonyms, taxonomy=taxonomy, missing=missing
    )
    lat, lon, dates = _locations(lat, lon, date, n)
    located = ~(np.isnan(lat) | np.isnan(lon))
    warn_if_swapped(lat, lon, prior)

    n_species = len(alignment.species)
    aligned = np.full((n, S), np.nan)
    row_max = np.full(n, np.nan)
    rows = np.flatnonzero(located)
    for start in range(0, rows.size, batch_size):
        b = rows[start:start + batch_size]
        # rows _locations validated: a prior that answers prepared queries does not re-check
        raw = np.asarray(predict_known(prior, lat[b], lon[b], None if dates is None else dates[b]))
        if raw.shape != (b.size, n_species):
            raise ClassMismatchError(
                f"prior.predict returned shape {raw.shape} for {b.size} locations; expected "
                f"({b.size}, {n_species}), one column per prior species"
            )
        check_prior_probs(raw, raw.shape)
        aligned[b] = alignment.apply(raw)
        row_max[b] = raw.max(axis=1)

    # logits, parameters and each batch of prior values are checked above: the core directly
    prior_probs = np.where(located[:, None], aligned, 1.0)
    result = fuse_core(logits, prior_probs, mode, weight, floor, threshold, temperature)
    log_probs = np.asarray(result.log_probs)
    clf = fuse_core(logits, np.ones(S), "none", 1.0, DEFAULT_FLOOR, DEFAULT_THRESHOLD, temperature)
    clf_log = np.asarray(clf.log_probs)
    k = min(int(k), S)
    top = np.argsort(-log_probs, axis=1, kind="stable")[:, :k]
    clf_top = np.argsort(-clf_log, axis=1, kind="stable")[:, :k]

    top1 = clf_top[:, 0]
    matched = alignment.index[top1] >= 0
    if getattr(prior, "thresholds", None) is not None:
        per_species = np.asarray(prior.thresholds, dtype=np.float64).reshape(-1)
        if per_species.size != n_species:
            raise ClassMismatchError(
                f"prior.thresholds has {per_species.size} values; the prior has {n_species} species"
            )
        limit = per_species[np.maximum(alignment.index[top1], 0)]
    elif kw.get("threshold") is not None:
        limit = np.full(n, float(kw["threshold"]))
    else:
        limit = RANGE_FRACTION * row_max
    score = aligned[np.arange(n), top1]
    if getattr(prior, "thresholds", None) is not None:
        # per-species thresholds are cut-offs of the presence output (a prior with one
        # output has them on that output): score the top-1 species' presence
        ask = np.flatnonzero(located & matched)
        cols = alignment.index[top1[ask]][:, None]
        score = np.full(n, np.nan)
        scores = scores_columns(prior)
        for start in range(0, ask.size, batch_size):
            b = ask[start:start + batch_size]
            when = None if dates is None else dates[b]
            score[b] = predict_columns(prior, lat[b], lon[b], when,
                                       cols[start:start + batch_size], output="presence",
                                       scores=scores)[:, 0]
    with np.errstate(invalid="ignore"):
        outside = located & matched & (score < limit)
    return RerankResult(
        classes=tuple(str(c) for c in alignment.classes),
        top_index=top,
        top_scores=np.exp(np.take_along_axis(log_probs, top, axis=1)),
        classifier_index=clf_top,
        classifier_scores=np.exp(np.take_along_axis(clf_log, clf_top, axis=1)),
        log_probs=log_probs,
        prior=aligned,
        no_location=~located,
        outside_range=outside,
        filtered_all=np.asarray(result.filtered_all).reshape(n),
        fusion=kw,
    )


def _locations(lat, lon, date, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Broadcast ``lat, lon, date`` to ``n`` rows; raise on invalid (not missing) values."""
    lat, lon = coordinate_array(lat, "latitudes"), coordinate_array(lon, "longitudes")
    for what, a in (("latitudes", lat), ("longitudes", lon)):
        if a.size not in (1, n):
            raise CoordinateError(f"got {n} rows of logits but {a.size} {what} (give one or {n})")
    lat, lon = np.broadcast_to(lat, n), np.broadcast_to(lon, n)
    lat, lon, masks, messages = coordinate_problems(lat, lon)
    problems = [m for r, m in messages.items() if not r.startswith("missing")]
    if problems:
        raise CoordinateError(
            "; ".join(problems) + " (NaN marks a row without location)" + swap_hint(lat, lon)
        )
    if date is None:
        return lat, lon, None
    dates, masks, messages, _ = parse_dates(np.atleast_1d(np.asarray(date, dtype=object)))
    if masks:
        raise DateError("; ".join(messages[r] for r in masks))
    if dates.size not in (1, n):
        raise ClassMismatchError(f"got {n} rows of logits but {dates.size} dates (give one or {n})")
    return lat, lon, np.broadcast_to(dates, n)
