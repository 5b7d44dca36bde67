"""Lining a classifier's class names up with a prior's species: :func:`align_classes`."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.fuse import EPS
from ..errors import ClassMismatchError, ConfigError, SpeciesNameError, suggest, unknown_species
from ..io.taxonomy import Taxonomy, name_key, read_taxonomy
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
        how: for each class, how it matched (``"name"``, ``"spelling"``, ``"synonyms"``,
            ``"taxonomy: common name"`` ...; see :func:`align_classes`), ``""`` unmatched.

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
    how: tuple[str, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        """One row per class: ``class``, the prior ``species`` it got (``None``) and ``how``.

        Example:
            >>> align_classes(["sialia_sialis"], ["Sialia sialis"]).to_frame()
                       class        species  how
            0  sialia_sialis  Sialia sialis  name
        """
        how = self.how or ("",) * len(self.classes)
        return pd.DataFrame({
            "class": list(self.classes),
            "species": [self.species[i] if i >= 0 else None for i in self.index],
            "how": list(how),
        })

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
    taxonomy=None,
    missing: str = "raise",
) -> Alignment:
    """Match a classifier's class names to a prior's species.

    Each class is tried in turn, the first that matches wins (:attr:`Alignment.how` says
    which):

    1. ``"synonyms"``: ``synonyms`` maps classifier names to prior names.
    2. ``"name"``: equal after ignoring the Unicode form (NFC = NFD, as the readers spell
       names), case, surrounding and repeated whitespace and ``_`` versus space; a
       BirdNET-style ``"Genus species_Common Name"`` matches on the part before ``_``;
       integer taxon ids match as ints or strings (``42`` = ``"42"``); an iNat2021 long
       name ``"04837_Animalia_Chordata_Aves_Passeriformes_Parulidae_Setophaga_virens"``
       matches as ``"Setophaga virens"`` (``"long name"``) and a numbered label
       ``"001.Black_footed_Albatross"`` without its number.
    3. ``"spelling"``: equal by :func:`~geoprior.io.taxonomy.name_key` (accents,
       apostrophes, hyphens and punctuation ignored too).
    4. ``"subspecies"``: a ``"Genus species subspecies"`` without its own column falls back
       to ``"Genus species"``.
    5. ``"taxonomy: ..."``: with ``taxonomy``, class and prior species are each resolved to
       their accepted taxon (by scientific name, code or id, older synonym or common
       name: see :mod:`geoprior.io.taxonomy`) and match when it is the same; a
       subspecies the prior has no column for matches its species
       (``"taxonomy: subspecies of"``).

    Several classes may share one prior column (e.g. two subspecies). A name that stands
    for more than one taxon (one common name, two species) or one taxon the prior has
    under two names is an error naming the candidates, never a guess: choose with
    ``synonyms``.

    Args:
        classifier_classes: the classifier's class names (or ids), in logit order.
        prior_species: the prior's ``species``.
        synonyms: ``{classifier name: prior name}``.
        taxonomy: a taxonomy table (path, DataFrame) or a
            :class:`~geoprior.io.taxonomy.Taxonomy` from
            :func:`~geoprior.io.taxonomy.read_taxonomy`; a path is read keeping only the
            rows these names need.
        missing: ``"raise"`` (unmatched classes are an error) or ``"neutral"`` (they get a
            neutral prior, see :meth:`Alignment.apply`).

    Raises:
        ClassMismatchError: an empty class or species list; duplicated names after
            normalisation (counts and examples); ambiguous names (the candidates);
            unmatched classes with ``missing="raise"`` (how many, which, close matches);
            no class matched at all (a few classes beside a few prior species).
        UnknownSpeciesError: a synonym pointing to a species the prior does not have.
        FormatError: a taxonomy file of no known format.

    Example:
        >>> a = align_classes(["Turdus migratorius", "Mystery bird"], ["Turdus migratorius"],
        ...                   missing="neutral")
        >>> a.unmatched
        ('Mystery bird',)
        >>> import pandas as pd
        >>> ebird = pd.DataFrame({"SPECIES_CODE": ["blujay", "btnwar"],
        ...                       "SCI_NAME": ["Cyanocitta cristata", "Setophaga virens"],
        ...                       "PRIMARY_COM_NAME": ["Blue Jay", "Black-throated Green Warbler"]})
        >>> a = align_classes(["Blue Jay", "btnwar"], ["Setophaga virens", "Cyanocitta cristata"],
        ...                   taxonomy=ebird)
        >>> a.index.tolist(), a.how
        ([1, 0], ('taxonomy: common name', 'taxonomy: code'))
    """
    if missing not in ("raise", "neutral"):
        raise ConfigError(f"missing must be 'raise' or 'neutral', got {missing!r}")
    classes = _check_names(classifier_classes, "classifier classes")
    species = _check_names(prior_species, "prior species")
    keys = [_normalise(c) for c in classifier_classes]
    _raise_duplicates(classes, keys)
    exact: dict[str, list[int]] = {}
    loose: dict[str, list[int]] = {}
    for j, s in enumerate(prior_species):
        for text in _spellings(s):
            exact.setdefault(_normalise(text), []).append(j)
            loose.setdefault(name_key(text), []).append(j)
    exact = {k: sorted(set(v)) for k, v in exact.items()}
    loose = {k: sorted(set(v)) for k, v in loose.items()}
    syn = {_normalise(k): v for k, v in (synonyms or {}).items()}
    tax = _taxonomy(taxonomy, classes, species, syn.values())
    by_concept: dict[str, list[int]] = {}
    if tax is not None:
        for j, s in enumerate(species):
            for text in _spellings(s):
                concept = tax.concept(text)
                if concept is not None:
                    by_concept.setdefault(concept, [])
                    if j not in by_concept[concept]:
                        by_concept[concept].append(j)
                    break

    ambiguous: list[str] = []

    def one(cols: list[int], name: str, what: str) -> int | None:
        """The column of a match; ``None`` (and a note) when several prior species match."""
        if len(cols) > 1:
            shown = ", ".join(repr(species[j]) for j in cols[:5])
            ambiguous.append(f"{name!r} ({what}) matches {len(cols)} prior species: {shown}")
            return None
        return cols[0]

    def by_name(name: str) -> tuple[int, str] | None:
        texts = _spellings(name)
        for text in texts:
            how = "name" if text == texts[0] or not _LONG.match(str(name)) else "long name"
            for table, key, what in ((exact, _normalise(text), how),
                                     (loose, name_key(text), "spelling")):
                if key in table:
                    j = one(table[key], name, what)
                    return None if j is None else (j, what)
        for text in texts:
            words = _normalise(text).split()
            if len(words) > 2:  # "Genus species subspecies" -> "Genus species"
                binomial = " ".join(words[:2])
                for table, key in ((exact, binomial), (loose, name_key(binomial))):
                    if key in table:
                        j = one(table[key], name, "subspecies")
                        return None if j is None else (j, "subspecies")
        return None

    def by_taxonomy(name: str) -> tuple[int, str] | None:
        texts = _spellings(name)
        texts += [" ".join(_normalise(t).split()[:2]) for t in texts if len(t.split()) > 2]
        for text in texts:
            concepts, kind = tax.resolve(text)
            if len(concepts) > 1:
                shown = "; ".join(tax.describe(c) for c in concepts[:5])
                ambiguous.append(
                    f"{name!r} is the {kind} of {len(concepts)} taxa in the taxonomy: {shown}"
                )
                return None
            if not concepts:
                continue
            concept = concepts[0]
            how = f"taxonomy: {kind}"
            if concept not in by_concept and tax.species_of(concept) in by_concept:
                concept, how = tax.species_of(concept), "taxonomy: subspecies of"
            if concept in by_concept:
                j = one(by_concept[concept], name, f"{how} {tax.describe(concept)}")
                return None if j is None else (j, how)
        return None

    index = np.full(len(classes), -1, dtype=np.int64)
    how = [""] * len(classes)
    for i, (name, key) in enumerate(zip(classes, keys, strict=True)):
        n_ambiguous = len(ambiguous)
        found = None
        if key in syn:
            target = syn[key]
            cols = exact.get(_normalise(target)) or loose.get(name_key(target))
            if not cols:
                raise unknown_species([target], species)
            j = one(cols, name, "synonyms")
            found = None if j is None else (j, "synonyms")
        else:
            found = by_name(name)
            if found is None and tax is not None and len(ambiguous) == n_ambiguous:
                found = by_taxonomy(name)
        if found is not None:
            index[i], how[i] = found
    if ambiguous:
        raise ClassMismatchError(
            f"{len(ambiguous)} classifier class(es) are ambiguous: "
            + "; ".join(ambiguous[:5]) + (" ..." if len(ambiguous) > 5 else "")
            + ". Choose with synonyms={classifier name: prior name}"
        )
    alignment = Alignment(classes, species, index, missing, tuple(how))
    unmatched = alignment.unmatched
    if len(unmatched) == len(classes):
        raise ClassMismatchError(
            f"none of the {len(classes)} classifier classes matches any of the prior's "
            f"{len(species)} species: classifier classes {_few(classes)} beside prior species "
            f"{_few(species)}. " + _advice(tax, classes, species)
        )
    if unmatched and missing == "raise":
        shown = ", ".join(_with_hint(u, species) for u in unmatched[:5])
        raise ClassMismatchError(
            f"{len(unmatched)} of {len(classes)} classifier classes have no match among the "
            f"prior's {len(species)} species: {shown}{' ...' if len(unmatched) > 5 else ''}. "
            + _advice(tax, unmatched, species)
            + "; or missing='neutral' to give them a neutral prior"
        )
    return alignment


#: an iNat2021 long name: an optional number, kingdom ... genus, then the epithet(s)
_KINGDOMS = "Animalia|Plantae|Fungi|Protozoa|Chromista|Bacteria|Archaea|Viruses"
_LONG = re.compile(rf"^(?:\d+_)?(?:{_KINGDOMS})(?:_[A-Z][A-Za-z-]*){{5}}((?:_[a-z][a-z-]*)+)$")
_NUMBERED = re.compile(r"^\d+[._ ]+(?=[^\W\d_])")  # "001.Black_footed_Albatross"


def _spellings(name) -> list[str]:
    """The texts a label may stand for: itself, then the ``Genus species`` of an iNat2021
    long name or the label without a leading class number."""
    text = str(name)
    out = [text]
    m = _LONG.match(text.strip())
    if m:
        parts = text.strip().split("_")
        genus = parts[-len(m.group(1).split("_")[1:]) - 1]
        out.append(" ".join([genus, *m.group(1).split("_")[1:]]))
    elif _NUMBERED.match(text.strip()):
        out.append(_NUMBERED.sub("", text.strip()))
    return out


def _few(names: Sequence[str], n: int = 4) -> str:
    more = f" and {len(names) - n} more" if len(names) > n else ""
    return ", ".join(repr(x) for x in names[:n]) + more


def _advice(tax, classes: Sequence[str], species: Sequence[str]) -> str:
    """What to pass: a taxonomy (or what the one given knows), or synonyms."""
    if tax is None:
        return (
            "Pass taxonomy=FILE (an eBird, GBIF or iNaturalist taxonomy table; CLI: "
            "--taxonomy) to match common names, codes and older synonyms, or "
            "synonyms={classifier name: prior name}"
        )
    known = sum(tax.concept(c) is not None for c in classes)
    prior_known = sum(tax.concept(s) is not None for s in species)
    return (
        f"The {tax.label} taxonomy ({tax.where}, {len(tax):,} taxa) knows {known} of these "
        f"{len(classes)} classes and {prior_known} of the prior's {len(species)} species; "
        "pass synonyms={classifier name: prior name}"
    )


def _taxonomy(taxonomy, classes, species, targets):
    """``taxonomy`` as a :class:`Taxonomy` (a path or DataFrame read for these names)."""
    if taxonomy is None or isinstance(taxonomy, Taxonomy):
        return taxonomy
    names = [t for n in (*classes, *species, *targets) for t in _spellings(n)]
    names += [" ".join(n.split()[:2]) for n in names if len(n.split()) > 2]
    return read_taxonomy(taxonomy, names=names)


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
