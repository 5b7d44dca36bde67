"""GBIF occurrence downloads: the "simple" tab-separated format, Darwin Core Archives and
dismo-style CSVs.

* simple: columns ``decimalLatitude, decimalLongitude, eventDate, species,
  scientificName, recordedBy, ...`` (unquoted, tab-separated; a one-file zip is fine).
* Darwin Core Archive: a zip whose ``meta.xml`` names the occurrence file, its delimiter,
  quote, encoding, header lines and the Darwin Core term of each column.
* dismo (R) ``gbif()`` CSVs: ``species, lat, lon`` plus ``earliestDateCollected``.

The species is the ``species`` column; where it is empty, ``scientificName`` is used.
The site id is ``recordedBy`` (the collector or observer) when present.
"""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..errors import FormatError
from ..observations import Observations
from .table import (
    ReadPlan,
    Table,
    check_chunksize,
    check_encoding,
    check_path,
    csv_table,
    find_column,
    guess_columns,
    observations_from_table,
    open_table,
    reading_compressed,
    zip_member,
)

__all__ = ["gbif_plan", "read_dwca", "read_gbif"]

_DWC = "http://rs.tdwg.org/dwc/terms/"
_OCCURRENCE = _DWC + "Occurrence"
_FALLBACK = "scientificName"


def gbif_defaults(columns: Sequence[str]) -> dict[str, str | None]:
    """The GBIF columns of a header (simple download or dismo CSV), found without case."""
    if find_column(columns, "decimalLatitude") is not None:
        return {
            "lat": find_column(columns, "decimalLatitude"),
            "lon": find_column(columns, "decimalLongitude"),
            "species": find_column(columns, "species", _FALLBACK),
            "date": find_column(columns, "eventDate"),
            "site": find_column(columns, "recordedBy"),
        }
    return {  # dismo::gbif() layout
        "lat": find_column(columns, "lat"),
        "lon": find_column(columns, "lon"),
        "species": find_column(columns, "species", _FALLBACK),
        "date": find_column(columns, "earliestDateCollected", "eventDate"),
        "site": find_column(columns, "recordedBy"),
    }


def gbif_plan(
    source, *, encoding: str | None = None, chunksize: int = 1_000_000, **column_mapping
) -> ReadPlan:
    """How :func:`read_gbif` reads a simple download or a dismo-style CSV (not a Darwin Core
    Archive; the arguments are :func:`read_gbif`'s): the GBIF columns, unless
    ``column_mapping`` names others, with empty species filled from ``scientificName``.

    Example:
        >>> df = pd.DataFrame({"decimalLatitude": [44.0], "decimalLongitude": [-71.3],
        ...                    "species": ["Setophaga virens"],
        ...                    "scientificName": ["Setophaga virens (Gmelin, 1789)"],
        ...                    "eventDate": ["2021-06-14"]})
        >>> gbif_plan(df).extra  # or a path: "0012345-240101000000000.csv"
        ('scientificName',)
    """
    table = open_table(source, encoding=encoding, chunksize=chunksize, quoting=None)
    return _gbif_table_plan(table, column_mapping)


def _gbif_table_plan(table: Table, mapping: dict) -> ReadPlan:
    defaults = {k: v for k, v in gbif_defaults(table.columns).items() if v is not None}
    cols = guess_columns(table.columns, table.where, defaults=defaults, **mapping)
    fallback = find_column(table.columns, _FALLBACK)
    if fallback is None or fallback == cols.species or mapping.get("species"):
        return ReadPlan(table=table, cols=cols)

    def fill_species(chunk: pd.DataFrame) -> pd.DataFrame:
        species = chunk[cols.species]
        empty = species.isna() | species.astype("string").str.strip().eq("").fillna(True)
        return chunk.assign(**{cols.species: species.where(~empty, chunk[fallback])})

    return ReadPlan(table=table, cols=cols, prepare=fill_species, extra=(fallback,))


def read_gbif(
    source,
    *,
    on_invalid: str = "raise",
    lon_360: bool = False,
    chunksize: int = 1_000_000,
    encoding: str | None = None,
    merge_case: bool = False,
    **column_mapping,
) -> Observations:
    """Read a GBIF simple download (TSV), a dismo-style GBIF CSV or a Darwin Core Archive.

    Args:
        source: a path (``.csv``, ``.tsv``, ``.txt``, a zip) or a DataFrame.
        merge_case: merge species whose names differ only by case (see
            :func:`geoprior.io.read_table`).
        column_mapping: ``lat=, lon=, species=, date=, site=, covariates=`` override the
            GBIF columns.

    Example:
        >>> obs = read_gbif("0012345-240101000000000.csv")  # doctest: +SKIP
    """
    if not isinstance(source, pd.DataFrame) and _is_dwca(check_path(source)):
        return read_dwca(
            source,
            on_invalid=on_invalid,
            lon_360=lon_360,
            chunksize=chunksize,
            encoding=encoding,
            merge_case=merge_case,
            **column_mapping,
        )
    plan = gbif_plan(source, encoding=encoding, chunksize=chunksize, **column_mapping)
    return observations_from_table(
        plan, on_invalid=on_invalid, lon_360=lon_360, merge_case=merge_case
    )


def _is_dwca(path: Path) -> bool:
    if path.suffix.lower() != ".zip" or not zipfile.is_zipfile(path):
        return False
    with reading_compressed(path), zipfile.ZipFile(path) as zf:
        return "meta.xml" in zf.namelist()


def read_dwca(
    source,
    *,
    on_invalid: str = "raise",
    lon_360: bool = False,
    chunksize: int = 1_000_000,
    encoding: str | None = None,
    merge_case: bool = False,
    **column_mapping,
) -> Observations:
    """Read the occurrences of a Darwin Core Archive (a zip with ``meta.xml``).

    ``meta.xml`` says which file holds the occurrences (the core, or an extension whose
    ``rowType`` is ``dwc:Occurrence``), its delimiter, quote character, encoding (``encoding=``
    overrides it) and header lines, and the Darwin Core term of each column; columns are
    named by the term's last part (``decimalLatitude``). Rows are numbered from 0 after the
    header lines. ``merge_case`` is :func:`read_gbif`'s.

    Example:
        >>> obs = read_dwca("dwca-occurrences.zip")  # doctest: +SKIP
    """
    check_chunksize(chunksize)
    path = check_path(source)
    if not zipfile.is_zipfile(path):
        raise FormatError(f"{path}: a Darwin Core Archive is a zip file; this is not one")
    with reading_compressed(path), zipfile.ZipFile(path) as zf:
        members = set(zf.namelist())
        if "meta.xml" not in members:
            raise FormatError(f"{path}: no meta.xml in the zip, so it is not a Darwin Core Archive")
        try:
            root = ET.fromstring(zf.read("meta.xml"))
        except ET.ParseError as e:
            raise FormatError(f"{path}: meta.xml is not valid XML: {e}") from None
    spec = _occurrence_spec(root, str(path))
    if encoding is None:
        check_encoding(spec["encoding"], f"{path}!meta.xml", "its encoding", FormatError)
    else:
        check_encoding(encoding, str(path))
    if spec["location"] not in members:
        raise FormatError(
            f"{path}: meta.xml names {spec['location']!r} but the zip holds "
            f"{', '.join(sorted(members))}"
        )
    where = f"{path}!{spec['location']}"

    table = csv_table(
        where,
        lambda: zip_member(path, spec["location"]),
        encoding=encoding or spec["encoding"],
        chunksize=chunksize,
        sep=spec["sep"],
        quoting=csv.QUOTE_MINIMAL if spec["quote"] else csv.QUOTE_NONE,
        quotechar=spec["quote"] or '"',
        header_lines=spec["header_lines"],
        names=spec["names"],
    )
    plan = _gbif_table_plan(table, column_mapping)
    return observations_from_table(
        plan, on_invalid=on_invalid, lon_360=lon_360, merge_case=merge_case
    )


def _unescape(value: str) -> str:
    """meta.xml writes delimiters escaped: ``\\t``, ``\\n``, ``\\r\\n``."""
    return value.replace("\\t", "\t").replace("\\n", "\n").replace("\\r", "\r")


def _occurrence_spec(root: ET.Element, where: str) -> dict:
    """Location, delimiter, quote, encoding, header lines and column names of the occurrence
    file described by a meta.xml."""
    files = [el for el in root.iter() if _local(el.tag) in ("core", "extension")]
    occurrence = [el for el in files if el.get("rowType", "") == _OCCURRENCE]
    if not occurrence:
        types = ", ".join(el.get("rowType", "?") for el in files) or "none"
        raise FormatError(
            f"{where}: meta.xml describes no occurrence file (rowType {_OCCURRENCE}); "
            f"row types found: {types}"
        )
    el = occurrence[0]
    location = next((loc.text for loc in el.iter() if _local(loc.tag) == "location"), None)
    if not location:
        raise FormatError(f"{where}: meta.xml gives no <location> for the occurrence file")
    fields = {}
    for field in el:
        if _local(field.tag) not in ("field", "id", "coreid") or field.get("index") is None:
            continue
        term = field.get("term")
        name = _local_term(term) if term else ("id" if _local(field.tag) != "field" else None)
        if name is None:
            continue
        try:
            index = int(field.get("index"))
        except ValueError:
            raise FormatError(f"{where}: meta.xml field index {field.get('index')!r}") from None
        fields.setdefault(index, name)
    if not fields:
        raise FormatError(f"{where}: meta.xml lists no columns for {location}")
    names: list[str | None] = [None] * (max(fields) + 1)
    for index, name in fields.items():
        names[index] = name
    try:
        header_lines = int(el.get("ignoreHeaderLines", "0"))
    except ValueError:
        raise FormatError(
            f"{where}: meta.xml ignoreHeaderLines={el.get('ignoreHeaderLines')!r} is not a number"
        ) from None
    return {
        "location": location.strip(),
        "sep": _unescape(el.get("fieldsTerminatedBy", ",")),
        "quote": _unescape(el.get("fieldsEnclosedBy", '"')),
        "encoding": el.get("encoding", "UTF-8"),
        "header_lines": header_lines,
        "names": names,
    }


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _local_term(term: str) -> str:
    return term.rstrip("/").rsplit("/", 1)[-1].rsplit("#", 1)[-1]
