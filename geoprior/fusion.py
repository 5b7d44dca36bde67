"""Fusing a classifier's logits with a where-and-when prior, and reranking its predictions.

The core, :func:`fuse`, is a pure function of arrays (jit-able, numpy or JAX input). Around
it: :func:`align_classes` lines a classifier's class list up with a prior's species,
:func:`rerank` queries a :class:`~geoprior.query.Prior` and reports top-k lists with flags,
and :func:`fit_fusion` picks the mode and its parameters on validation data. The modes:

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

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from .errors import (
    ClassMismatchError,
    ConfigError,
    CoordinateError,
    DateError,
    EmptyDataError,
    FormatError,
    MissingFileError,
    NonFiniteError,
    OutputExistsError,
    PriorFileError,
    SpeciesNameError,
    describe_bad,
    show,
    suggest,
    unknown_species,
)
from .names import normalize_name
from .prior import predict_columns
from .store import atomic_file, format_version_problem, header_problems
from .store import field as json_field
from .validation import (
    check_species_names,
    coordinate_array,
    coordinate_problems,
    parse_dates,
)

__all__ = [
    "EPS",
    "MODES",
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
]

MODES = ("product", "floor", "filter", "none")
EPS = 1e-12
DEFAULT_FLOOR = 0.005  # iNaturalist's floor
DEFAULT_THRESHOLD = 0.03  # BirdNET's species-list threshold
RANGE_FRACTION = 0.05  # default "outside range": prior < 5% of the most expected species'
_PROB_TOLERANCE = 1e-6  # float round-off allowed above 1 / below 0 in prior probabilities
_FORMAT = "geoprior-fusion"
_FORMAT_VERSION = 1


# ---------------------------------------------------------------------------- validation
def _is_traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def check_logits(logits, what: str = "logits"):
    """Check that ``logits`` is a numeric ``(S,)`` or ``(n, S)`` array of finite numbers.

    Returns the array (numpy input as a float numpy array, JAX arrays unchanged). Traced
    values (inside ``jax.jit``) only have their shape checked.

    Raises:
        FormatError: not numbers, or not 1-d / 2-d.
        NonFiniteError: NaN or infinite values, naming how many rows and the first one.
        EmptyDataError: no classes.

    Example:
        >>> check_logits([[1.0, 2.0]]).shape
        (1, 2)
    """
    if not isinstance(logits, jax.Array):
        logits = np.asarray(logits)
        if logits.dtype == object or not np.issubdtype(logits.dtype, np.number):
            raise FormatError(f"{what} must be numbers, got an array of dtype {logits.dtype}")
        if not np.issubdtype(logits.dtype, np.floating):
            logits = logits.astype(np.float64)
    if logits.ndim not in (1, 2):
        raise FormatError(f"{what} must have shape (S,) or (n, S), got shape {tuple(logits.shape)}")
    if logits.shape[-1] == 0:
        raise EmptyDataError(f"{what} have no classes (shape {tuple(logits.shape)})")
    if not _is_traced(logits):
        values = np.asarray(logits)
        bad_rows = ~np.isfinite(values).all(axis=-1).reshape(-1)
        if bad_rows.any():
            rows = values.reshape(-1, values.shape[-1])
            row = int(np.flatnonzero(bad_rows)[0])
            col = int(np.flatnonzero(~np.isfinite(rows[row]))[0])
            raise NonFiniteError(
                f"{int(bad_rows.sum())} of {bad_rows.size} rows of {what} contain NaN or infinite "
                f"values; first: row {row}, column {col} = {show(rows[row, col])}"
            )
    return logits


def _check_prior_probs(prior, shape: tuple[int, ...]):
    if not isinstance(prior, jax.Array):
        prior = np.asarray(prior)
        if prior.dtype == object or not np.issubdtype(prior.dtype, np.number):
            raise FormatError(f"prior_probs must be numbers, got an array of dtype {prior.dtype}")
    if tuple(prior.shape) != tuple(shape) and tuple(prior.shape) != tuple(shape[-1:]):
        raise ClassMismatchError(
            f"prior_probs has shape {tuple(prior.shape)} but logits have shape {tuple(shape)}; "
            f"expected {tuple(shape)} or ({shape[-1]},) (align columns with align_classes)"
        )
    if not _is_traced(prior):
        values = np.asarray(prior, dtype=np.float64).reshape(-1, shape[-1])
        nonfinite = ~np.isfinite(values)
        if nonfinite.any():
            rows = nonfinite.any(axis=1)
            row = int(np.flatnonzero(rows)[0])
            raise NonFiniteError(
                f"{int(rows.sum())} of {rows.size} rows of prior_probs contain NaN or infinite "
                f"values; first: row {row} = {show(values[row][nonfinite[row]][0])}"
            )
        outside = (values < -_PROB_TOLERANCE) | (values > 1 + _PROB_TOLERANCE)
        if outside.any():
            rows = outside.any(axis=1)
            row = int(np.flatnonzero(rows)[0])
            value = show(values[row][outside[row]][0])
            raise ConfigError(
                f"prior_probs must be probabilities in [0, 1]: {int(rows.sum())} of {rows.size} "
                f"rows have values outside; first: row {row} = {value} "
                "(are these logits? apply a sigmoid or softmax first)"
            )
    return prior


def _check_params(mode, weight, floor, threshold, temperature) -> tuple[float, float]:
    """Validate fusion parameters; return ``floor, threshold`` with defaults filled in."""
    if mode not in MODES:
        raise ConfigError(
            f"mode must be one of {', '.join(MODES)}, got {mode!r}." + suggest(str(mode), MODES)
        )
    floor = DEFAULT_FLOOR if floor is None else floor
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    checks = (
        ("weight", weight, lambda v: v >= 0, "a finite number >= 0"),
        ("temperature", temperature, lambda v: v > 0, "a finite number > 0"),
        ("floor", floor, lambda v: 0 < v <= 1, "in (0, 1]"),
        ("threshold", threshold, lambda v: 0 <= v <= 1, "in [0, 1]"),
    )
    for name, value, ok, expected in checks:
        if _is_traced(value):
            continue
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be {expected}, got {value!r}") from None
        if not (np.isfinite(v) and ok(v)):
            raise ConfigError(f"{name} must be {expected}, got {value!r}")
    return floor, threshold


# ---------------------------------------------------------------------------- the core
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
def _fuse_core(logits, prior, mode, weight, floor, threshold, temperature) -> FusionResult:
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
    logits = check_logits(logits)
    prior_probs = _check_prior_probs(prior_probs, tuple(logits.shape))
    floor, threshold = _check_params(mode, weight, floor, threshold, temperature)
    return _fuse_core(logits, prior_probs, mode, weight, floor, threshold, temperature)


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


# ---------------------------------------------------------------------------- alignment
def _normalise(name) -> str:
    """Matching key: the readers' spelling (:func:`~geoprior.names.normalize_name`: Unicode
    NFC, single spaces), case-folded, ``_`` as space, BirdNET labels cut at ``_``, integer
    ids as plain digits."""
    if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
        return str(int(name))
    text = normalize_name(str(name))
    head, sep, tail = text.partition("_")
    if sep and len(head.split()) >= 2 and tail.strip():  # "Genus species_Common Name"
        text = head
    key = " ".join(text.replace("_", " ").split()).casefold()
    return str(int(key)) if key.isdigit() else key


def _check_names(names: Sequence, what: str) -> tuple[str, ...]:
    if isinstance(names, str):
        raise ClassMismatchError(f"{what} must be a list of names, got the single string {names!r}")
    raw = list(names)
    if not raw:
        raise ClassMismatchError(f"{what}: expected at least one name, got an empty list")
    _, masks, messages = check_species_names(np.asarray(raw, dtype=object))
    if masks:
        raise SpeciesNameError(f"{what}: " + "; ".join(messages.values()))
    return tuple(str(int(n)) if isinstance(n, np.integer) else str(n) for n in raw)


@dataclass(frozen=True, eq=False)
class Alignment:
    """How a classifier's classes map onto a prior's species columns.

    Attributes:
        classes: the classifier's class names, in its order.
        species: the prior's species, in its column order.
        index: int array, for each class the prior column, or -1 when unmatched.
        missing: ``"raise"`` or ``"neutral"`` (what :func:`align_classes` was asked).

    Example:
        >>> a = align_classes(["turdus_migratorius", "Sialia sialis_Eastern Bluebird"],
        ...                   ["Sialia sialis", "Turdus migratorius"])
        >>> a.index.tolist()
        [1, 0]
    """

    classes: tuple[str, ...]
    species: tuple[str, ...]
    index: np.ndarray
    missing: str = "raise"

    @property
    def matched(self) -> tuple[str, ...]:
        """Classifier classes with a prior column."""
        return tuple(c for c, i in zip(self.classes, self.index, strict=True) if i >= 0)

    @property
    def unmatched(self) -> tuple[str, ...]:
        """Classifier classes the prior does not know."""
        return tuple(c for c, i in zip(self.classes, self.index, strict=True) if i < 0)

    def apply(self, prior_probs) -> np.ndarray:
        """Turn a prior's ``(n, S_prior)`` output into ``(n, S_classifier)`` columns.

        Unmatched classes get a neutral value: the geometric mean of the row's matched
        columns (each clipped at :data:`EPS`, as :func:`fuse` does). Fusion works in log
        space, so this gives an unmatched class the average log-prior of the classifier's
        known species: it moves exactly like an average species, neither favoured nor
        penalised, and the ranking among matched classes is untouched (each class's fused
        score depends only on its own prior).
        """
        p = np.asarray(prior_probs)
        if p.shape[-1:] != (len(self.species),) or p.ndim not in (1, 2):
            raise ClassMismatchError(
                f"prior output has shape {p.shape} but the alignment expects (n, "
                f"{len(self.species)}) columns, one per prior species"
            )
        matched = self.index >= 0
        out = p[..., np.where(matched, self.index, 0)]
        if not matched.all():
            with np.errstate(invalid="ignore"):
                logs = np.log(np.clip(p[..., self.index[matched]], EPS, 1.0))
            out = out.astype(np.result_type(out.dtype, np.float32), copy=True)
            out[..., ~matched] = np.exp(logs.mean(axis=-1, keepdims=True))
        return out


def align_classes(
    classifier_classes: Sequence,
    prior_species: Sequence,
    *,
    synonyms: Mapping[str, str] | None = None,
    missing: str = "raise",
) -> Alignment:
    """Match a classifier's class names to a prior's species.

    Matching ignores the Unicode form (NFC = NFD, as the readers spell names), case,
    surrounding and repeated whitespace and ``_`` versus space; a BirdNET-style
    ``"Genus species_Common Name"`` matches on the part before ``_``; a
    ``"Genus species subspecies"`` without its own column falls back to ``"Genus species"``;
    integer taxon ids match as ints or strings (``42`` = ``"42"``). ``synonyms`` maps
    classifier names to prior names and is tried first. Several classes may share one
    prior column (e.g. two subspecies).

    Args:
        classifier_classes: the classifier's class names (or ids), in logit order.
        prior_species: the prior's ``species``.
        synonyms: ``{classifier name: prior name}``.
        missing: ``"raise"`` (unmatched classes are an error) or ``"neutral"`` (they get a
            neutral prior, see :meth:`Alignment.apply`).

    Raises:
        ClassMismatchError: an empty class or species list; duplicated names after
            normalisation (counts and examples);
            unmatched classes with ``missing="raise"`` (how many, which, close matches);
            no class matched at all.
        UnknownSpeciesError: a synonym pointing to a species the prior does not have.

    Example:
        >>> a = align_classes(["Turdus migratorius", "Mystery bird"], ["Turdus migratorius"],
        ...                   missing="neutral")
        >>> a.unmatched
        ('Mystery bird',)
    """
    if missing not in ("raise", "neutral"):
        raise ConfigError(f"missing must be 'raise' or 'neutral', got {missing!r}")
    classes = _check_names(classifier_classes, "classifier classes")
    species = _check_names(prior_species, "prior species")
    keys = [_normalise(c) for c in classifier_classes]
    _raise_duplicates(classes, keys)
    columns: dict[str, list[int]] = {}
    for j, s in enumerate(prior_species):
        columns.setdefault(_normalise(s), []).append(j)
    syn = {_normalise(k): v for k, v in (synonyms or {}).items()}

    def lookup(key: str, name: str) -> int:
        cols = columns.get(key, [])
        if len(cols) > 1:
            shown = ", ".join(repr(species[j]) for j in cols[:5])
            raise ClassMismatchError(
                f"class {name!r} matches {len(cols)} prior species after normalisation: {shown}; "
                "pass synonyms={class: prior species} to choose one"
            )
        return cols[0] if cols else -1

    index = np.full(len(classes), -1, dtype=np.int64)
    for i, (name, key) in enumerate(zip(classes, keys, strict=True)):
        if key in syn:
            j = lookup(_normalise(syn[key]), name)
            if j < 0:
                raise unknown_species([syn[key]], species)
        else:
            j = lookup(key, name)
            words = key.split()
            if j < 0 and len(words) > 2:  # "Genus species subspecies" -> "Genus species"
                j = lookup(" ".join(words[:2]), name)
        index[i] = j
    alignment = Alignment(classes, species, index, missing)
    unmatched = alignment.unmatched
    if len(unmatched) == len(classes):
        raise ClassMismatchError(
            f"none of the {len(classes)} classifier classes matches any of the prior's "
            f"{len(species)} species (first class {classes[0]!r}, first species {species[0]!r})"
        )
    if unmatched and missing == "raise":
        shown = ", ".join(_with_hint(u, species) for u in unmatched[:5])
        raise ClassMismatchError(
            f"{len(unmatched)} of {len(classes)} classifier classes have no match among the "
            f"prior's {len(species)} species: {shown}{' ...' if len(unmatched) > 5 else ''}. "
            "Pass synonyms={classifier name: prior name}, or missing='neutral' to give them a "
            "neutral prior"
        )
    return alignment


def _with_hint(name: str, known: Sequence[str]) -> str:
    hint = suggest(name, known).strip()
    return f"{name!r} ({hint})" if hint else repr(name)


def _raise_duplicates(classes: tuple[str, ...], keys: list[str]) -> None:
    counts = Counter(keys)
    repeated = [k for k, c in counts.items() if c > 1]
    if not repeated:
        return
    examples = "; ".join(
        f"{counts[k]}x " + " / ".join(repr(c) for c, kk in zip(classes, keys, strict=True)
                                      if kk == k)
        for k in repeated[:3]
    )
    raise ClassMismatchError(
        f"{len(repeated)} classifier class name(s) repeat after normalising case, spaces and "
        f"underscores ({sum(counts[k] for k in repeated)} of {len(classes)} classes involved): "
        f"{examples}{' ...' if len(repeated) > 3 else ''}"
    )


# ---------------------------------------------------------------------------- rerank
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
        prior: any :class:`~geoprior.query.Prior`.
        lat, lon: degrees, one per row (or one for all rows); NaN = no location.
        date: ``None``, one date, or one per row (see :func:`~geoprior.query.prepare_query`).
        k: how many predictions to keep per row (at most ``S``).
        params: fitted :class:`FusionParams`; keyword ``fusion`` arguments override them.
        synonyms, missing: passed to :func:`align_classes`.
        batch_size: rows per ``prior.predict`` call.
        **fusion: ``mode``, ``weight``, ``floor``, ``threshold``, ``temperature`` (see
            :func:`fuse`).

    Example:
        >>> r = rerank(logits, classes, prior, lat, lon, "2021-06-14")  # doctest: +SKIP
        >>> r.to_frame()[r.changed]  # doctest: +SKIP
    """
    logits = np.atleast_2d(check_logits(np.asarray(logits)))
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
    _check_params(kw.get("mode", "product"), kw.get("weight", 1.0), kw.get("floor"),
                  kw.get("threshold"), kw.get("temperature", 1.0))
    alignment = align_classes(classes, prior.species, synonyms=synonyms, missing=missing)
    lat, lon, dates = _locations(lat, lon, date, n)
    located = ~(np.isnan(lat) | np.isnan(lon))

    n_species = len(alignment.species)
    aligned = np.full((n, S), np.nan)
    row_max = np.full(n, np.nan)
    rows = np.flatnonzero(located)
    for start in range(0, rows.size, batch_size):
        b = rows[start:start + batch_size]
        raw = np.asarray(prior.predict(lat[b], lon[b], None if dates is None else dates[b]))
        if raw.shape != (b.size, n_species):
            raise ClassMismatchError(
                f"prior.predict returned shape {raw.shape} for {b.size} locations; expected "
                f"({b.size}, {n_species}), one column per prior species"
            )
        _check_prior_probs(raw, raw.shape)
        aligned[b] = alignment.apply(raw)
        row_max[b] = raw.max(axis=1)

    result = fuse_with_flags(logits, np.where(located[:, None], aligned, 1.0), **kw)
    log_probs = np.asarray(result.log_probs)
    clf_log = np.asarray(fuse(logits, np.ones(S), mode="none",
                              temperature=kw.get("temperature", 1.0)))
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
        for start in range(0, ask.size, batch_size):
            b = ask[start:start + batch_size]
            when = None if dates is None else dates[b]
            score[b] = predict_columns(prior, lat[b], lon[b], when,
                                       cols[start:start + batch_size], output="presence")[:, 0]
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
        raise CoordinateError("; ".join(problems) + " (NaN marks a row without location)")
    if date is None:
        return lat, lon, None
    dates, masks, messages, _ = parse_dates(np.atleast_1d(np.asarray(date, dtype=object)))
    if masks:
        raise DateError("; ".join(messages[r] for r in masks))
    if dates.size not in (1, n):
        raise ClassMismatchError(f"got {n} rows of logits but {dates.size} dates (give one or {n})")
    return lat, lon, np.broadcast_to(dates, n)


# ---------------------------------------------------------------------------- fitting
@dataclass(frozen=True)
class FusionParams:
    """Fusion parameters, usually fitted by :func:`fit_fusion`, with their validation scores.

    ``fuse(logits, prior, **params.as_kwargs())`` and ``rerank(..., params=params)`` use
    them. Save beside a prior with :meth:`save`; read back with :meth:`load`.

    Attributes:
        mode, weight, floor, threshold, temperature: as in :func:`fuse`.
        objective: what was optimised (``"top1"`` or ``"nll"``), or ``None`` if set by hand.
        top1, nll: validation top-1 accuracy and mean negative log-likelihood with these
            parameters (``nll`` is ``inf`` when a filter removed some true labels).
        classifier_top1, classifier_nll: the same for the classifier alone (T = 1).
        n_val: number of validation rows.

    Example:
        >>> p = FusionParams(mode="floor", floor=0.005)
        >>> FusionParams.from_json(p.to_json()) == p
        True
    """

    mode: str = "product"
    weight: float = 1.0
    floor: float | None = None
    threshold: float | None = None
    temperature: float = 1.0
    objective: str | None = None
    top1: float | None = None
    nll: float | None = None
    classifier_top1: float | None = None
    classifier_nll: float | None = None
    n_val: int | None = None

    def __post_init__(self):
        _check_params(self.mode, self.weight, self.floor, self.threshold, self.temperature)

    def as_kwargs(self) -> dict:
        """The keyword arguments of :func:`fuse`."""
        return {"mode": self.mode, "weight": self.weight, "floor": self.floor,
                "threshold": self.threshold, "temperature": self.temperature}

    def to_json(self) -> str:
        """JSON text (non-finite scores are written as ``null`` and read back as ``inf``)."""
        body = {k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                for k, v in asdict(self).items()}
        return json.dumps({"format": _FORMAT, "format_version": _FORMAT_VERSION, **body},
                          indent=2, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> FusionParams:
        """Parse :meth:`to_json` output; raises FormatError / ConfigError on bad content, and
        PriorFileError naming the field for a value of the wrong JSON type (``true`` for a
        number, checked with the saved-prior schema checks, :func:`geoprior.store.field`)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise FormatError(f"fusion parameters are not valid JSON: {e}") from None
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise FormatError(f'not a fusion parameter file (expected "format": "{_FORMAT}")')
        problem = format_version_problem(data, _FORMAT_VERSION)
        if problem:
            raise FormatError(f"the fusion parameter file {problem}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names - {"format", "format_version"})
        if unknown:
            raise FormatError(f"fusion parameters have unknown field(s) {unknown}")
        if "mode" not in data:
            raise FormatError("fusion parameters have no 'mode'")
        problems = header_problems(data, _PARAM_FIELDS)
        if problems:
            raise PriorFileError(f"fusion parameters are corrupt: {'; '.join(problems)}")
        values = {k: v for k, v in data.items() if k in names}
        for key in ("nll", "classifier_nll"):
            if key in values and values[key] is None and values.get("objective") is not None:
                values[key] = float("inf")
        return cls(**values)

    def save(self, path: str | os.PathLike, *, overwrite: bool = True) -> Path:
        """Write :meth:`to_json` to ``path`` atomically (temporary file, then rename)."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise OutputExistsError(
                f"{path} exists; pass overwrite=True (CLI: --overwrite) to replace it"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path, "w") as f:
            f.write(self.to_json() + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> FusionParams:
        """Read parameters written by :meth:`save`."""
        if not Path(path).is_file():
            raise MissingFileError(f"{path}: no such file (expected fusion parameters as JSON)")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"{path} is not a UTF-8 JSON file") from None
        try:
            return cls.from_json(text)
        except (FormatError, ConfigError, PriorFileError) as e:
            raise type(e)(f"{path}: {e}") from None


_NUMBER = json_field(float, optional=True)
_MAYBE_NUMBER = json_field(float, type(None), optional=True)
# the JSON type of each field of a parameter file (bool is never a number)
_PARAM_FIELDS = {
    "mode": json_field(str),
    "weight": _NUMBER,
    "floor": _MAYBE_NUMBER,
    "threshold": _MAYBE_NUMBER,
    "temperature": _NUMBER,
    "objective": json_field(str, type(None), optional=True),
    "top1": _MAYBE_NUMBER,
    "nll": _MAYBE_NUMBER,
    "classifier_top1": _MAYBE_NUMBER,
    "classifier_nll": _MAYBE_NUMBER,
    "n_val": json_field(int, type(None), optional=True),
}

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


@partial(jax.jit, static_argnames="mode")
def _grid_scores(logits, labels, valid, prior, grid, mode):
    """Correct top-1 count, summed NLL and losses over valid rows, for each grid row."""
    clf_right = jnp.argmax(logits, axis=-1) == labels

    def one(p):
        lp = _fuse_core(logits, prior, mode, p[0], p[1], p[2], p[3]).log_probs
        right = jnp.argmax(lp, axis=-1) == labels
        true_lp = jnp.take_along_axis(lp, labels[:, None], axis=-1)[:, 0]
        return (jnp.sum(valid & right), jnp.sum(jnp.where(valid, -true_lp, 0.0)),
                jnp.sum(valid & clf_right & ~right), jnp.sum(valid & ~clf_right & right))

    return jax.lax.map(one, grid, batch_size=8)


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
        parts = _grid_scores(logits[s:s + chunk], labels[s:s + chunk], valid[s:s + chunk],
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
        _check_params(m, 1.0, None, None, 1.0)
    logits = np.atleast_2d(check_logits(np.asarray(logits)))
    n, S = logits.shape
    if n == 0:
        raise EmptyDataError("fit_fusion needs at least one validation row, got 0")
    prior = np.broadcast_to(np.asarray(_check_prior_probs(prior_probs, (n, S))), (n, S))
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
