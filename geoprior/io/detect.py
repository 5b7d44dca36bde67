"""Which reader a source needs, decided from its structure and its column names.

* a zip holding ``meta.xml``: ``"dwca"``; a ``.json`` file: ``"inat-json"``;
* otherwise the columns decide (a DataFrame's, a Parquet schema's, or a text file's
  header line, compared without case or punctuation):

  - ``LATITUDE, LONGITUDE, SCIENTIFIC NAME, OBSERVATION DATE, SAMPLING EVENT IDENTIFIER``:
    ``"ebird"``;
  - ``decimalLatitude, decimalLongitude`` and ``species`` or ``scientificName``, or
    dismo's ``lat, lon, species`` with a GBIF column (``basisOfRecord``, ``gbifID``,
    ``earliestDateCollected``): ``"gbif"``;
  - ``latitude, longitude, scientific_name, observed_on``: ``"inat-csv"``;
  - anything else: ``"table"`` (columns named or guessed).
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence

import pandas as pd

from ..errors import FileEncodingError
from .table import check_path, norm, open_table, real_suffix

__all__ = ["FORMATS", "detect_format", "format_from_columns"]

FORMATS = ("auto", "inat-json", "inat-csv", "gbif", "dwca", "ebird", "table")

_EBIRD = {"latitude", "longitude", "scientificname", "observationdate", "samplingeventidentifier"}
_INAT_CSV = {"latitude", "longitude", "scientificname", "observedon"}
_DISMO_GBIF = {"basisofrecord", "gbifid", "earliestdatecollected", "latestdatecollected"}


def format_from_columns(columns: Sequence[str]) -> str:
    """The format a table with these column names is in.

    Example:
        >>> format_from_columns(["gbifID", "decimalLatitude", "decimalLongitude", "species"])
        'gbif'
        >>> format_from_columns(["lat", "lon", "name"])
        'table'
    """
    names = {norm(c) for c in columns}
    if _EBIRD <= names:
        return "ebird"
    if {"decimallatitude", "decimallongitude"} <= names and names & {"species", "scientificname"}:
        return "gbif"
    if {"lat", "lon", "species"} <= names and names & _DISMO_GBIF:
        return "gbif"
    if _INAT_CSV <= names:
        return "inat-csv"
    return "table"


def detect_format(source, *, encoding: str | None = None) -> str:
    """The format of a file or DataFrame (one of :data:`FORMATS` other than ``"auto"``).

    Raises:
        FileNotFoundError: ``source`` is a path that does not exist.
        FileEncodingError: the header line is not valid text in ``encoding``.

    Example:
        >>> import pandas as pd
        >>> detect_format(pd.DataFrame(columns=["latitude", "longitude", "observed_on",
        ...                                     "scientific_name", "user_login"]))
        'inat-csv'
    """
    if isinstance(source, pd.DataFrame):
        return format_from_columns([str(c) for c in source.columns])
    if isinstance(source, dict):
        return "inat-json"
    path = check_path(source)
    suffix = real_suffix(path)
    if suffix == ".zip" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            if "meta.xml" in zf.namelist():
                return "dwca"
    if suffix == ".json":
        return "inat-json"
    try:
        columns = open_table(path, encoding=encoding, chunksize=1).columns
    except FileEncodingError:
        # the header decides the format; a bad byte further on is the reader's to report
        columns = open_table(path, encoding="latin-1", chunksize=1).columns
    return format_from_columns(columns)
