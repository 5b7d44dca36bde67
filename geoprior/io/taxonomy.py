"""Reading a taxonomy table: the names each species goes by, for lining class lists up.

A classifier may call a species by its common name (``Blue Jay``), an eBird code
(``blujay``), a taxon id, or an older scientific name (``Dendroica virens`` for
``Setophaga virens``). :func:`read_taxonomy` reads a table the user already has and
returns a :class:`Taxonomy` that resolves any of those names to one taxon *concept* (the
accepted taxon), so :func:`geoprior.fusion.align_classes` can match a classifier's labels
to a prior's species whatever each side calls them.

Formats, detected from the column names (case and punctuation ignored):

* ``"ebird"``: the eBird / Clements taxonomy CSV (``SCI_NAME``, ``PRIMARY_COM_NAME``,
  optional ``SPECIES_CODE``, ``CATEGORY``, ``REPORT_AS``, ``TAXON_CONCEPT_ID``), or the
  Clements checklist (``scientific name``, ``English name``, optional ``species_code``).
  A subspecies group (``issf``), form or intergrade is reported as its ``REPORT_AS``
  species.
* ``"gbif"``: a Darwin Core taxon table: the GBIF backbone's ``Taxon.tsv``, a checklist, a
  GBIF species-list download or species-search export (``taxonID`` / ``taxonKey`` /
  ``key``, and ``canonicalName`` or ``scientificName``; optional ``taxonomicStatus``,
  ``acceptedNameUsageID`` / ``acceptedTaxonKey``, ``taxonRank``, ``speciesKey``,
  ``parentNameUsageID``, ``vernacularName``). A folder or zip holding ``Taxon.tsv`` (the
  backbone download) and ``VernacularName.tsv`` reads both; so does the iNaturalist
  Darwin Core export (``taxa.csv`` and ``VernacularNames-english.csv``). A synonym
  resolves to its accepted taxon. Without ``canonicalName``, authorship is cut from
  ``scientificName`` (``Setophaga virens (Gmelin, 1789)`` -> ``Setophaga virens``).
* ``"inat"``: an iNaturalist taxa table (``id`` / ``taxon_id`` and ``name``; optional
  ``rank``, ``ancestry`` / ``parent_id``, ``preferred_common_name`` / ``common_name`` /
  ``english_common_name``, ``active`` / ``is_active`` and
  ``current_synonymous_taxon_ids``): an inactive taxon resolves to its one current
  synonym.

Names are compared by :func:`name_key`: Unicode compatibility form without accents or
apostrophes, case folded, and every run of characters that are not letters or digits (spaces, ``_``,
``-``, ``'``, ``.``) as one space, so ``black_throated_green_warbler`` is
``Black-throated Green Warbler``.

Large tables (the GBIF backbone has millions of rows) are read in chunks: with ``names=``
only the rows that can resolve those names are kept (and the accepted taxa and species
they point to, found in further passes), so memory holds a few rows per name.
"""

from __future__ import annotations

import os
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, EmptyDataError, FormatError, MissingFileError, suggest
from .table import (
    Table,
    check_encoding,
    csv_table,
    frame_table,
    norm,
    open_table,
    zip_member,
)

__all__ = ["TAXONOMY_FORMATS", "Taxonomy", "name_key", "read_taxonomy"]

TAXONOMY_FORMATS = ("auto", "ebird", "gbif", "inat")

#: How a name resolved, best first: a name is looked up in the first kind that has it.
KINDS = ("scientific name", "code", "synonym", "common name")
_SCIENTIFIC, _CODE, _SYNONYM, _COMMON = range(4)

#: Ranks below the species: a taxon of one of them is reported as its species when the
#: prior has no column of its own for it.
_INFRA_RANKS = {
    "subspecies", "variety", "form", "forma", "infraspecificname", "infrasubspecificname",
    "subvariety", "subform", "race", "morph", "cultivar", "strain", "issf", "intergrade",
    "domestic", "group", "grouppolytypic", "groupmonotypic",
}  # fmt: skip
_GBIF_ACCEPTED = {"accepted", "doubtful"}
_MAX_PASSES = 4  # passes over a table to find the taxa that kept rows point to
_CHUNK = 500_000

# ------------------------------------------------------------------------------ keys
_ACCENTS = "[\u0300-\u036f]"
_APOSTROPHES = "['\u2019\u02bc`]"
_SEPARATORS = r"[^\w/]+"


def name_key(name) -> str:
    """The matching key of a name: compatibility form (NFKD) without accents or apostrophes,
    case folded, ``_`` and every run of other characters that are not letters, digits or ``/`` as one
    space, ``/`` as a word of its own.

    Example:
        >>> name_key("Black-throated  Green_Warbler")
        'black throated green warbler'
        >>> name_key("Bewick\u2019s Wren"), name_key("Anser an\u00e9r")
        ('bewicks wren', 'anser aner')
        >>> name_key("Common/Somali Ostrich")
        'common / somali ostrich'
    """
    text = unicodedata.normalize("NFKD", str(name))
    text = re.sub(_APOSTROPHES, "", re.sub(_ACCENTS, "", text)).casefold().replace("_", " ").replace("/", " / ")
    return " ".join(re.sub(_SEPARATORS, " ", text).split())


def name_keys(values: pd.Series) -> pd.Series:
    """:func:`name_key` of every text of ``values`` at once (missing stays missing)."""
    s = values.astype("string").str.normalize("NFKD").str.replace(_ACCENTS, "", regex=True)
    s = s.str.replace(_APOSTROPHES, "", regex=True)
    s = s.str.casefold().str.replace("_", " ", regex=False).str.replace("/", " / ", regex=False)
    s = s.str.replace(_SEPARATORS, " ", regex=True).str.replace(r"\s+", " ", regex=True)
    return s.str.strip()


# A scientific name without its authorship: the genus, then words in lower case (epithets,
# rank markers, the hybrid sign), stopping at the first capitalised word, parenthesis, year
# or particle of an author's name ("de", "van", "d'Orbigny").
_PARTICLES = r"(?:de|da|di|du|del|della|der|den|van|von|le|la|d'\S*|ex)(?:\s|$)"
_CANONICAL = re.compile(rf"^\s*([A-Z×][^\s(,]*(?:\s+(?!{_PARTICLES})(?:[a-z×][^\s(,]*))*)")
_MARKERS = re.compile(
    r"\s(?:subsp|ssp|var|subvar|f|forma|fo|morph|cv|nothosubsp|nothovar)\.(?=\s)"
)


def canonical_name(name: str) -> str:
    """A scientific name without authorship or rank markers.

    Example:
        >>> canonical_name("Setophaga virens (Gmelin, 1789)")
        'Setophaga virens'
        >>> canonical_name("Salix alba var. vitellina (L.) Stokes")
        'Salix alba vitellina'
        >>> canonical_name("Quercus robur de Candolle")
        'Quercus robur'
    """
    m = _CANONICAL.match(str(name))
    text = m.group(1) if m else str(name).strip()
    return " ".join(_MARKERS.sub(" ", f" {text} ").split())


def _canonical_names(values: pd.Series) -> pd.Series:
    found = values.astype("string").str.extract(_CANONICAL, expand=False)
    found = found.fillna(values.astype("string").str.strip())
    return (" " + found + " ").str.replace(_MARKERS, " ", regex=True).str.split().str.join(" ")


# ------------------------------------------------------------------------------ layouts
@dataclass(frozen=True)
class _Layout:
    """Which column of a taxonomy table holds what."""

    source: str  # "ebird", "gbif" or "inat"
    id: str | None
    scientific: str
    canonical: bool = False  # the scientific column is already without authorship
    authorship: str | None = None
    codes: tuple[str, ...] = ()
    commons: tuple[str, ...] = ()
    accepted: str | None = None  # id of the accepted taxon (a synonym's)
    status: str | None = None  # GBIF taxonomicStatus
    active: str | None = None  # iNaturalist active / is_active
    rank: str | None = None
    parent: str | None = None  # id of the species an infraspecific taxon belongs to (eBird:
    # REPORT_AS, the species code an issf or form is reported as: set only for those)
    ancestry: str | None = None

    def columns(self) -> list[str]:
        names = [self.id, self.scientific, self.authorship, *self.codes, *self.commons,
                 self.accepted, self.status, self.active, self.rank, self.parent, self.ancestry]
        return list(dict.fromkeys(n for n in names if n is not None))


_EXPECTED = {
    "ebird": "SCI_NAME and PRIMARY_COM_NAME (eBird; SPECIES_CODE, CATEGORY, REPORT_AS "
    "optional), or 'scientific name' and 'English name' (Clements)",
    "gbif": "taxonID (or taxonKey, key) and canonicalName or scientificName (Darwin Core / "
    "GBIF; taxonomicStatus, acceptedNameUsageID, taxonRank, vernacularName optional)",
    "inat": "id (or taxon_id) and name (iNaturalist; rank, preferred_common_name, active, "
    "current_synonymous_taxon_ids optional)",
}


def _find(columns: Sequence[str], *candidates: str) -> str | None:
    lookup: dict[str, str] = {}
    for c in columns:
        lookup.setdefault(norm(c), c)
    return next((lookup[norm(c)] for c in candidates if norm(c) in lookup), None)


def _layout(columns: Sequence[str], fmt: str, where: str) -> _Layout:
    """The layout of a table in format ``fmt`` (``"auto"``: detected from its columns)."""
    names = {norm(c) for c in columns}
    detected = (
        "ebird" if {"sciname", "primarycomname"} <= names or {"scientificname", "englishname"}
        <= names
        else "gbif" if names & {"taxonid", "taxonkey", "key"}
        and names & {"scientificname", "canonicalname"}
        else "inat" if names & {"id", "taxonid"} and "name" in names
        else None
    )
    shown = ", ".join(repr(c) for c in list(columns)[:30]) + (" ..." if len(columns) > 30 else "")
    if fmt == "auto":
        fmt = detected
        if fmt is None:
            expected = "; ".join(f"{k}: {v}" for k, v in _EXPECTED.items())
            raise FormatError(
                f"{where}: not a taxonomy table; columns found: {shown}. Expected the columns "
                f"of one of {expected}"
            )
    f = lambda *c: _find(columns, *c)  # noqa: E731
    if fmt == "ebird":
        sci = f("SCI_NAME", "scientific name")
        common = f("PRIMARY_COM_NAME", "English name")
        if sci is None or common is None:
            raise FormatError(
                f"{where}: an eBird taxonomy needs {_EXPECTED['ebird']}; columns found: {shown}"
            )
        code = f("SPECIES_CODE")
        return _Layout(
            "ebird", id=code, scientific=sci, canonical=True,
            codes=tuple(c for c in (code, f("TAXON_CONCEPT_ID")) if c),
            commons=(common,), rank=f("CATEGORY"), parent=f("REPORT_AS"),
        )  # fmt: skip
    if fmt == "gbif":
        ident = f("taxonID", "taxonKey", "key", "id")
        canonical = f("canonicalName")
        sci = canonical or f("scientificName")
        if ident is None or sci is None:
            raise FormatError(
                f"{where}: a GBIF taxonomy needs {_EXPECTED['gbif']}; columns found: {shown}"
            )
        rank = f("taxonRank", "rank")
        return _Layout(
            "gbif", id=ident, scientific=sci, canonical=canonical is not None,
            authorship=None if canonical else f("scientificNameAuthorship"),
            commons=tuple(c for c in (f("vernacularName"),) if c),
            accepted=f("acceptedNameUsageID", "acceptedTaxonKey", "acceptedKey",
                       "acceptedUsageKey"),
            status=f("taxonomicStatus", "status"), rank=rank,
            parent=f("speciesKey", "parentNameUsageID", "parentKey") if rank else None,
        )  # fmt: skip
    ident, sci = f("id", "taxon_id"), f("name")
    if ident is None or sci is None:
        raise FormatError(
                f"{where}: an iNaturalist taxonomy needs {_EXPECTED['inat']}; columns found: {shown}"
            )
    rank = f("rank")
    return _Layout(
        "inat", id=ident, scientific=sci,
        commons=tuple(c for c in (f("preferred_common_name", "common_name",
                                    "english_common_name", "vernacularName"),) if c),
        accepted=f("current_synonymous_taxon_ids"), active=f("active", "is_active"),
        rank=rank, parent=f("parent_id") if rank else None,
        ancestry=f("ancestry") if rank else None,
    )  # fmt: skip


# ------------------------------------------------------------------------------ taxonomy
@dataclass(frozen=True, eq=False)
class Taxonomy:
    """Names resolved to taxon concepts (the accepted taxon of a name).

    Build one with :func:`read_taxonomy`. A concept is the id of an accepted taxon (a
    species code in eBird, a taxon key in GBIF, a taxon id in iNaturalist).

    Attributes:
        source: ``"ebird"``, ``"gbif"`` or ``"inat"``.
        where: the file (or folder, zip member) it was read from.
        n_rows: the taxon rows kept (all rows, unless read with ``names=``).

    Example:
        >>> frame = pd.DataFrame({"SPECIES_CODE": ["blujay"], "SCI_NAME": ["Cyanocitta cristata"],
        ...                       "PRIMARY_COM_NAME": ["Blue Jay"]})
        >>> tax = read_taxonomy(frame)
        >>> tax.resolve("blue_jay"), tax.scientific_name("blujay")
        ((('blujay',), 'common name'), 'Cyanocitta cristata')
    """

    source: str
    where: str
    n_rows: int
    _index: dict  # name key -> {kind: set of concepts}
    _names: dict  # concept -> (scientific name, common name or None, code or None)
    _parents: dict  # concept -> species concept (infraspecific taxa only)

    def __len__(self) -> int:
        return self.n_rows

    def __repr__(self) -> str:
        return f"Taxonomy({self.source}, {self.n_rows:,} taxa, from {self.where})"

    @property
    def label(self) -> str:
        """``eBird``, ``GBIF`` or ``iNaturalist``, for messages."""
        return {"ebird": "eBird", "gbif": "GBIF", "inat": "iNaturalist"}[self.source]

    def resolve(self, name) -> tuple[tuple[str, ...], str]:
        """The concepts ``name`` stands for and how it was found (one of :data:`KINDS`):
        the first kind with a match, e.g. a scientific name before a common name. More
        than one concept means the name is ambiguous; ``((), "")`` means unknown."""
        found = self._index.get(name_key(name))
        if not found:
            return (), ""
        kind = min(found)
        return tuple(sorted(found[kind])), KINDS[kind]

    def concept(self, name) -> str | None:
        """The one concept ``name`` stands for, or ``None`` (unknown or ambiguous)."""
        concepts, _ = self.resolve(name)
        return concepts[0] if len(concepts) == 1 else None

    def species_of(self, concept: str) -> str | None:
        """The species an infraspecific concept (subspecies, eBird ``issf``, form) belongs
        to; ``None`` for a species or a taxon the table does not place."""
        return self._parents.get(concept)

    def scientific_name(self, concept: str) -> str | None:
        """The accepted scientific name of ``concept`` (``None`` if not read)."""
        entry = self._names.get(concept)
        return entry[0] if entry else None

    def common_name(self, name) -> str | None:
        """The common name of what ``name`` (a concept, or any name the table knows)
        stands for; ``None`` when unknown, ambiguous or without one."""
        entry = self._names.get(name) or self._names.get(self.concept(name) or "")
        return entry[1] if entry else None

    def describe(self, concept: str) -> str:
        """``Scientific name (Common name)`` of a concept, for messages."""
        sci, common = self.scientific_name(concept), self.common_name(concept)
        text = sci or f"taxon {concept}"
        return f"{text} ({common})" if common else text


def read_taxonomy(
    source,
    *,
    format: str = "auto",
    names: Iterable | None = None,
    encoding: str | None = None,
) -> Taxonomy:
    """Read a taxonomy table (eBird / Clements, GBIF / Darwin Core or iNaturalist).

    Args:
        source: a CSV / TSV (optionally compressed) or Parquet file, a DataFrame, or a
            folder / zip holding a Darwin Core ``Taxon.tsv`` (or iNaturalist's
            ``taxa.csv``) with an optional ``VernacularName.tsv``
            (``VernacularNames-english.csv``).
        format: ``"auto"`` (from the columns), ``"ebird"``, ``"gbif"`` or ``"inat"``.
        names: if given, keep only what resolves these names (faster and smaller for a
            large table such as the GBIF backbone).
        encoding: text encoding of the files (default UTF-8, a byte-order mark skipped).

    Returns:
        A :class:`Taxonomy`.

    Raises:
        FormatError: columns of no known format (the message lists the columns each
            format needs), a zip or folder without a taxon table.
        EmptyDataError: no rows.
        MissingFileError: no such file.
        ConfigError: an unknown ``format`` or ``encoding``.

    Example:
        >>> tax = read_taxonomy("eBird_Taxonomy_v2023.csv")  # doctest: +SKIP
        >>> tax.concept("Black-throated Green Warbler")  # doctest: +SKIP
        'btnwar'
    """
    if format not in TAXONOMY_FORMATS:
        raise ConfigError(
            f"format must be one of {', '.join(TAXONOMY_FORMATS)}, got {format!r}."
            + suggest(str(format), TAXONOMY_FORMATS)
        )
    if encoding is not None:
        check_encoding(encoding, str(source))
    taxa, vernacular = _open(source, encoding)
    layout = _layout(taxa.columns, format, taxa.where)
    wanted = None if names is None else {name_key(n) for n in names} - {""}
    return _Builder(taxa, vernacular, layout, wanted).build()


def _open(source, encoding: str | None) -> tuple[Table, Table | None]:
    """The taxon table and the vernacular-name table (``None`` without one)."""
    if isinstance(source, pd.DataFrame):
        return frame_table(source, "DataFrame"), None
    path = Path(os.fspath(source)).expanduser()
    if not path.exists():
        raise MissingFileError(2, "No such file", str(path))
    if path.is_dir():
        files = {p.name.lower(): p for p in path.iterdir() if p.is_file()}
        taxon, common = _archive_members(list(files), str(path))
        return (
            open_table(files[taxon], encoding=encoding, chunksize=_CHUNK, quoting=None),
            None if common is None
            else open_table(files[common], encoding=encoding, chunksize=_CHUNK, quoting=None),
        )
    if path.suffix.lower() == ".zip" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            members = {n.rsplit("/", 1)[-1].lower(): n for n in zf.namelist()
                       if not n.endswith("/")}
        if len(members) > 1:
            taxon, common = _archive_members(list(members), str(path))

            def member(name: str) -> Table:
                return csv_table(
                    f"{path}!{members[name]}", lambda: zip_member(path, members[name]),
                    encoding=encoding or "utf-8-sig", chunksize=_CHUNK, quoting=None,
                    suffix=Path(name).suffix,
                )  # fmt: skip

            return member(taxon), None if common is None else member(common)
    return open_table(path, encoding=encoding, chunksize=_CHUNK, quoting=None), None


_TAXON_FILES = ("taxon.tsv", "taxon.txt", "taxon.csv", "taxa.csv", "taxa.tsv", "taxa.txt")
_COMMON_FILES = ("vernacularname.tsv", "vernacularname.txt", "vernacularnames-english.csv",
                 "vernacularnames.csv", "vernacular.tsv", "vernacular.csv")


def _archive_members(files: Sequence[str], where: str) -> tuple[str, str | None]:
    taxon = next((f for f in _TAXON_FILES if f in files), None)
    if taxon is None:
        shown = ", ".join(sorted(files)[:15])
        raise FormatError(
            f"{where}: no taxon table in it (expected one of {', '.join(_TAXON_FILES)}, as in "
            f"the GBIF backbone or iNaturalist's Darwin Core export); found {shown}"
        )
    return taxon, next((f for f in _COMMON_FILES if f in files), None)


def _text(series: pd.Series) -> pd.Series:
    """Values as stripped text; missing and empty cells as ``<NA>``; whole floats (ids read
    from Parquet with gaps) without ``.0``."""
    if pd.api.types.is_float_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.isfinite(values)
        if np.all(values[finite] == np.round(values[finite])):
            series = pd.Series(pd.array(np.where(finite, values, 0).astype(np.int64),
                                        dtype="Int64")).where(finite)
    s = series.astype("string").str.strip()
    return s.mask(s.eq("") | s.str.lower().isin(["nan", "none", "null", "na", "[]"]))


def _is_false(series: pd.Series) -> pd.Series:
    return _text(series).str.lower().isin(["false", "f", "0", "no", "inactive"]).fillna(False)


class _Builder:
    """Reads the tables (in as many passes as kept rows need) and builds the index."""

    def __init__(self, taxa: Table, vernacular: Table | None, layout: _Layout, wanted):
        self.taxa, self.vernacular, self.layout, self.wanted = taxa, vernacular, layout, wanted
        self.rows: dict[str, dict] = {}  # id -> row (scientific, commons, codes, accepted ...)
        # id -> names from the vernacular table: (not English, row in the file, name)
        self.commons: dict[str, list[tuple[bool, int, str]]] = {}
        self.n_rows = 0

    # -------------------------------------------------------------- reading
    def _chunks(self, table: Table, columns: list[str]):
        for chunk in table.chunks(columns, set(columns)):
            yield chunk[columns].reset_index(drop=True)

    def _taxon_rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A chunk of the taxon table in a uniform shape."""
        L, n = self.layout, len(frame)
        text = {c: _text(frame[c]) for c in frame.columns}
        sci = text[L.scientific]
        if not L.canonical:
            if L.authorship is not None:
                auth = text[L.authorship].fillna("")
                cut = [s[: len(s) - len(a)] if a and isinstance(s, str) and s.endswith(a) else s
                       for s, a in zip(sci.tolist(), auth.tolist(), strict=True)]
                sci = pd.Series(cut, dtype="string")
            sci = _canonical_names(sci).mask(sci.isna())
        ident = text[L.id] if L.id else sci
        out = pd.DataFrame({"id": ident, "scientific": sci})
        out["accepted"] = text[L.accepted] if L.accepted else pd.Series([pd.NA] * n, dtype="string")
        if L.source == "inat" and L.accepted:  # "[123]" or "123, 456": one current synonym
            ids = out["accepted"].str.replace(r"[\[\]\s]", "", regex=True).str.split(",")
            out["accepted"] = ids.map(lambda v: v[0] if isinstance(v, list) and len(v) == 1
                                      and v[0] else pd.NA).astype("string")
        synonym = pd.Series(np.zeros(n, bool))
        if L.status is not None:
            status = text[L.status].str.lower().str.replace(r"[^a-z]", "", regex=True)
            synonym = (~status.isin(_GBIF_ACCEPTED) & status.notna()).to_numpy()
            synonym = pd.Series(synonym)
        elif L.active is not None:
            synonym = _is_false(frame[L.active])
        same = out["accepted"].eq(out["id"]).fillna(False)
        out.loc[same, "accepted"] = pd.NA
        out["synonym"] = synonym.to_numpy() | out["accepted"].notna().to_numpy()
        out.loc[~out["synonym"], "accepted"] = pd.NA
        infra = pd.Series(np.zeros(n, bool))
        if L.rank is not None:
            rank = text[L.rank].str.lower().str.replace(r"[^a-z]", "", regex=True)
            infra = rank.isin(_INFRA_RANKS).fillna(False)
        parent = pd.Series([pd.NA] * n, dtype="string")
        if L.parent is not None:
            parent = text[L.parent]
        elif L.ancestry is not None:
            parent = text[L.ancestry].str.rsplit("/", n=1).str[-1]
        out["parent"] = parent.where(infra.to_numpy() if L.source != "ebird" else parent.notna())
        out["parent"] = out["parent"].mask(out["parent"].eq(out["id"]))
        for i, c in enumerate(L.codes):
            out[f"code{i}"] = text[c]
        for i, c in enumerate(L.commons):
            out[f"common{i}"] = text[c]
        return out[out["id"].notna() & out["scientific"].notna()]

    def _name_columns(self, rows: pd.DataFrame) -> list[str]:
        return ["id", "scientific"] + [c for c in rows.columns if c.startswith(("code", "common"))]

    def _scan_taxa(self, ids: set[str] | None, first: bool) -> None:
        """One pass over the taxon table: keep rows whose names are wanted (first pass) or
        whose id is in ``ids``."""
        for chunk in self._chunks(self.taxa, self.layout.columns()):
            rows = self._taxon_rows(chunk)
            if first:
                self.n_rows += len(rows)
            if self.wanted is not None:
                keep = np.zeros(len(rows), bool)
                if first:
                    for c in self._name_columns(rows):
                        keep |= name_keys(rows[c]).isin(self.wanted).fillna(False).to_numpy()
                if ids:
                    keep |= rows["id"].isin(ids).fillna(False).to_numpy()
                rows = rows[keep]
            for rec in rows.to_dict("records"):
                self.rows.setdefault(rec["id"], rec)

    def _scan_vernacular(self, ids: set[str] | None) -> set[str]:
        """One pass over the vernacular table: names of the kept taxa, and (first pass, when
        ``ids`` is None) every row whose name is wanted; returns the ids those point to."""
        table = self.vernacular
        ident = _find(table.columns, "taxonID", "id", "coreid", "taxon_id")
        name = _find(table.columns, "vernacularName", "name")
        if ident is None or name is None:
            raise FormatError(
                f"{table.where}: a vernacular-name table needs taxonID (or id) and "
                f"vernacularName columns; found {', '.join(table.columns)}"
            )
        lang = _find(table.columns, "language", "lang")
        columns = [c for c in (ident, name, lang) if c]
        found: set[str] = set()
        offset = 0
        for chunk in self._chunks(table, columns):
            tid, text = _text(chunk[ident]), _text(chunk[name])
            keep = tid.notna() & text.notna()
            if self.wanted is not None:
                mine = tid.isin(list(self.rows) if ids is None else list(ids))
                if ids is None:
                    mine |= name_keys(text).isin(self.wanted)
                keep &= mine.fillna(False)
            english = (_text(chunk[lang]).str.lower().isin(["en", "eng", "english"])
                       if lang else pd.Series(np.ones(len(chunk), bool)))
            keep = keep.to_numpy()
            rows = offset + np.flatnonzero(keep)
            offset += len(chunk)
            for t, v, en, row in zip(tid.to_numpy(dtype=object)[keep],
                                     text.to_numpy(dtype=object)[keep],
                                     english.fillna(False).to_numpy(dtype=bool)[keep], rows,
                                     strict=True):
                names = self.commons.setdefault(t, [])
                if all(v != n for _, _, n in names):
                    names.append((not en, int(row), v))
                found.add(t)
        return found

    def _missing(self, extra: Iterable[str] = ()) -> set[str]:
        """Ids that kept rows point to but that are not read yet."""
        pointed = {r[k] for r in self.rows.values() for k in ("accepted", "parent")
                   if isinstance(r[k], str)}
        return (pointed | set(extra)) - set(self.rows)

    def build(self) -> Taxonomy:
        self._scan_taxa(None, first=True)
        if self.n_rows == 0:
            raise EmptyDataError(f"{self.taxa.where}: no taxa (no rows with a scientific name)")
        extra: set[str] = set()
        if self.vernacular is not None:
            extra = self._scan_vernacular(None)
        if self.wanted is not None:
            for _ in range(_MAX_PASSES):
                missing = self._missing(extra)
                if not missing:
                    break
                before = set(self.rows)
                self._scan_taxa(missing, first=False)
                new = set(self.rows) - before
                if self.vernacular is not None and new:
                    self._scan_vernacular(new)
                extra = set()
                if not new:
                    break
        return self._index()

    # -------------------------------------------------------------- index
    def _concept(self, ident: str) -> str:
        """The accepted taxon at the end of ``ident``'s synonym chain (a cycle stops it)."""
        seen = {ident}
        while True:
            row = self.rows.get(ident)
            nxt = row["accepted"] if row is not None else None
            if not isinstance(nxt, str) or nxt in seen:
                return ident
            seen.add(nxt)
            ident = nxt

    def _index(self) -> Taxonomy:
        index: dict[str, dict[int, set[str]]] = {}

        def add(name, kind: int, concept: str) -> None:
            if isinstance(name, str):
                key = name_key(name)
                if key:
                    index.setdefault(key, {}).setdefault(kind, set()).add(concept)

        names: dict[str, tuple] = {}
        parents: dict[str, str] = {}
        for ident, row in self.rows.items():
            concept = self._concept(ident)
            synonym = concept != ident or bool(row["synonym"])
            add(row["scientific"], _SYNONYM if synonym else _SCIENTIFIC, concept)
            add(ident, _CODE, concept)
            codes = [row[c] for c in row if c.startswith("code") and isinstance(row[c], str)]
            for code in codes:
                add(code, _CODE, concept)
            commons = [row[c] for c in row if c.startswith("common") and isinstance(row[c], str)]
            # the vernacular table's names, English first (the display name is the first)
            commons += [n for _, _, n in sorted(self.commons.get(ident, []))]
            for common in commons:
                add(common, _COMMON, concept)
            if concept == ident:
                names[ident] = (row["scientific"], commons[0] if commons else None,
                                codes[0] if codes else None)
            if isinstance(row["parent"], str) and concept == ident:
                parents[ident] = self._concept(row["parent"])
        for ident, commons in self.commons.items():  # names of taxa not in the taxon table
            if ident not in self.rows:
                for _, _, common in commons:
                    add(common, _COMMON, ident)
        return Taxonomy(
            source=self.layout.source,
            where=self.taxa.where,
            n_rows=self.n_rows,
            _index=index,
            _names=names,
            _parents=parents,
        )
