"""Readers of observation files: one module per source format, plus auto-detection.

:func:`read_observations` is the entry point; it detects the format (see
:mod:`geoprior.io.detect`) and calls the reader of that format. Row numbers in messages
are 0-based data rows (row 0 is the first record after the header).

Beside the observation readers: :mod:`geoprior.io.logits` reads a classifier's saved
logits, class names and points (for reranking) and :mod:`geoprior.io.samples` the
embedded NEON samples. They are not imported here: the observation readers do not
depend on the fusion code that logits.py checks with.
"""

from __future__ import annotations

import inspect

from ..errors import ConfigError, FormatError, suggest
from ..observations import Observations
from ..validation import check_on_invalid
from .detect import FORMATS, detect_format, format_from_columns
from .ebird import ebird_plan, read_ebird
from .gbif import gbif_plan, read_dwca, read_gbif
from .inat import inat_csv_plan, read_inat_csv, read_inat_json
from .table import ObservationChunks, ReadPlan, check_chunksize, read_table, table_plan

__all__ = [
    "FORMATS",
    "PLANS",
    "ObservationChunks",
    "ReadPlan",
    "detect_format",
    "ebird_plan",
    "format_from_columns",
    "gbif_plan",
    "inat_csv_plan",
    "read_dwca",
    "read_ebird",
    "read_gbif",
    "read_inat_csv",
    "read_inat_json",
    "read_observations",
    "read_table",
    "table_plan",
]

READERS = {
    "inat-json": read_inat_json,
    "inat-csv": read_inat_csv,
    "gbif": read_gbif,
    "dwca": read_dwca,
    "ebird": read_ebird,
    "table": read_table,
}
# The formats whose readers stream: each one's ReadPlan, made with the reader's arguments
# less on_invalid and lon_360 (what anything else reading them chunk by chunk calls).
PLANS = {
    "table": table_plan,
    "inat-csv": inat_csv_plan,
    "gbif": gbif_plan,
    "ebird": ebird_plan,
}
_COLUMN_KEYWORDS = ("lat", "lon", "species", "date", "site", "covariates")


def read_observations(
    source,
    format: str = "auto",
    on_invalid: str = "raise",
    *,
    lon_360: bool = False,
    chunksize: int = 1_000_000,
    encoding: str | None = None,
    **column_mapping,
) -> Observations:
    """Read presence records from a file or DataFrame into validated :class:`Observations`.

    Args:
        source: a path (CSV, TSV, Parquet, iNaturalist JSON, eBird EBD, GBIF download or
            Darwin Core Archive zip), a pandas DataFrame or a GeoDataFrame of points.
        format: ``"auto"`` (detect), ``"inat-json"``, ``"inat-csv"``, ``"gbif"``,
            ``"dwca"``, ``"ebird"`` or ``"table"``.
        on_invalid: ``"raise"``: the first problem raises (CoordinateError, DateError,
            SpeciesNameError ...) naming the file, how many rows, the first row and value.
            ``"drop"``: bad rows are dropped, counted per reason in ``.report`` and
            summarised in a UserWarning.
        lon_360: longitudes are in [0, 360] (shifted to [-180, 180]).
        chunksize: rows per chunk when reading text and Parquet files.
        encoding: the text encoding (default UTF-8; a DwC-A's meta.xml gives its own).
        **column_mapping: ``lat=, lon=, species=, date=, site=`` column names and
            ``covariates=[...]``; plus ``locations=`` (iNat 2017/2018 JSON),
            ``categories=`` (eBird, default ``("species",)``) and ``merge_case=True``
            (every format: merge species whose names differ only by case into the
            commonest spelling; by default they are kept apart, named in ``.report.notes``
            and in a UserWarning).

    Species names are read as one spelling (:func:`geoprior.names.normalize_name`:
    Unicode NFC, whitespace trimmed and collapsed).

    Raises:
        FormatError: an unknown format, columns that cannot be found, or a truncated or
            corrupt file (gzip, zip, JSON nested too deeply, a meta.xml encoding Python
            does not know); under ``on_invalid="raise"`` also rows with more fields than
            the header, copies of a column that disagree, iNaturalist annotations of a
            missing image and repeated image ids (counted reasons under ``"drop"``).
        FileNotFoundError: ``source`` is a missing path.

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"lat": [44.0, 35.1], "lon": [-71.3, -111.6],
        ...                    "species": ["Setophaga virens", "Junco hyemalis"]})
        >>> read_observations(df)
        Observations(2 rows, 2 species, 0 dated)
    """
    if format not in FORMATS:
        raise FormatError(
            f"unknown format {format!r}; valid formats: {', '.join(FORMATS)}."
            + suggest(str(format), FORMATS)
        )
    check_on_invalid(on_invalid)
    check_chunksize(chunksize)
    if format == "auto":
        format = detect_format(source, encoding=encoding)
    reader = READERS[format]
    accepted = [
        p.name for p in inspect.signature(reader).parameters.values() if p.kind == p.KEYWORD_ONLY
    ]
    if any(p.kind == p.VAR_KEYWORD for p in inspect.signature(reader).parameters.values()):
        accepted += _COLUMN_KEYWORDS
    for key in column_mapping:
        if key not in accepted:
            options = [
                k for k in accepted if k not in ("on_invalid", "lon_360", "chunksize", "encoding")
            ]
            raise ConfigError(
                f"format {format!r} takes no keyword {key!r}; it takes "
                f"{', '.join(options)}." + suggest(key, options)
            )
    kwargs = dict(on_invalid=on_invalid, lon_360=lon_360, encoding=encoding)
    if "chunksize" in accepted:
        kwargs["chunksize"] = chunksize
    return reader(source, **kwargs, **column_mapping)
