"""Lining a classifier's class names up with a prior's species: :func:`align_classes`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..core.fuse import EPS
from ..errors import ClassMismatchError, ConfigError, SpeciesNameError, suggest, unknown_species
from ..names import normalize_name
from ..validation import check_species_names

__all__ = ["Alignment", "align_classes"]


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
