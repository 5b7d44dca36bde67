"""The layout of an exported prior: what an ONNX export holds and how its header reads.

An export is one ``.onnx`` file. Its graph takes ``points`` (float32 ``(n, 3)``: latitude,
longitude, day of the year 1..366 or NaN for an undated row) and, for a prior trained with
covariates, ``covariates`` (float32 ``(n, c)``, raw values: the graph standardises them as
the prior does). It returns the prior's outputs (``observation``: rows sum to 1;
``presence``: one probability per species, faded beyond the training extent), then
``distance_km`` (km to the nearest training place, NaN when the prior keeps none) and
``outside`` (beyond ``far_km`` of every training place). The ONNX metadata entry
``"geoprior"`` holds a versioned JSON header (:func:`read_header`): the species list, the
outputs, ``far_km``, thresholds, the training extent, the prior's own header and the
geoprior version that wrote it.

A range table is one Parquet file of the cells in range of every species: columns
``month`` (uint8, 1..12; 0 the year-round map), ``h3_cell`` (uint64 H3 index), ``species``
(text) and ``score`` (presence quantised to a uint8 or uint16 ``q``, read back as ``q /
score_levels``, 255 or 65535), sorted by month, cell and
descending score, so pyarrow alone filters it by cell id. Its ``"geoprior"`` key-value
metadata is the header (:func:`read_table_header`): species, thresholds, resolution, months,
region and the score scale.
"""

from __future__ import annotations

import json
import math

from ..errors import PriorFileError
from ..persistence import format_version_problem

__all__ = [
    "DISTANCE",
    "FORMAT",
    "FORMAT_VERSION",
    "INPUT_COVARIATES",
    "INPUT_POINTS",
    "METADATA_KEY",
    "OUTSIDE",
    "POINT_COLUMNS",
    "SCORE_LEVELS",
    "TABLE_COLUMNS",
    "TABLE_FORMAT",
    "TABLE_FORMAT_VERSION",
    "WEIGHTS",
    "YEAR_ROUND",
    "read_header",
    "read_table_header",
    "thresholds_from_json",
    "thresholds_to_json",
]

FORMAT = "geoprior-onnx"
FORMAT_VERSION = 1
METADATA_KEY = "geoprior"
INPUT_POINTS = "points"
INPUT_COVARIATES = "covariates"
POINT_COLUMNS = ("lat", "lon", "day_of_year")
DISTANCE = "distance_km"
OUTSIDE = "outside"
#: How an export may store its network's weights (the graph computes in float32 always).
WEIGHTS = ("float32", "float16", "int8")

_REQUIRED = ("species", "outputs", "uses_date", "covariates", "far_km", "weights")


def read_header(text: str | None, where: str) -> dict:
    """The export header of the metadata entry ``text`` of the file ``where``; raises
    :class:`~geoprior.PriorFileError` saying what is wrong (no entry: not a geoprior
    export; a newer format: upgrade geoprior)."""
    if text is None:
        raise PriorFileError(
            f"{where} is an ONNX model but not a geoprior export (no {METADATA_KEY!r} "
            "metadata entry; write one with `geoprior export`)"
        )
    return _parse_header(text, where, FORMAT, f"{FORMAT} export", FORMAT_VERSION, _REQUIRED)


def _parse_header(text, where: str, fmt: str, what: str, max_version: int, required) -> dict:
    """The JSON header ``text`` of a ``fmt`` file at ``where``: parsed, of that format, no
    newer than ``max_version`` and holding the ``required`` keys, or a PriorFileError."""
    try:
        header = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise PriorFileError(f"{where}: its {METADATA_KEY!r} metadata is corrupt: {e}") from None
    if not isinstance(header, dict) or header.get("format") != fmt:
        raise PriorFileError(f'{where} is not a {what} (no "format": "{fmt}")')
    problem = format_version_problem(header, max_version)
    if problem:
        raise PriorFileError(f"{where} {problem}")
    missing = [k for k in required if k not in header]
    if missing:
        raise PriorFileError(f"{where}: its header lacks {missing} (the file is corrupt)")
    return header


def thresholds_to_json(values) -> list | None:
    """Per-species thresholds as JSON (NaN, a species without one, as ``null``)."""
    if values is None:
        return None
    return [None if math.isnan(float(v)) else float(v) for v in values]


def thresholds_from_json(values) -> list[float] | None:
    """:func:`thresholds_to_json` read back (``null`` as NaN)."""
    if values is None:
        return None
    return [math.nan if v is None else float(v) for v in values]


# ------------------------------------------------------------------ range tables
TABLE_FORMAT = "geoprior-range-table"
TABLE_FORMAT_VERSION = 1
#: Scores are presence probabilities stored as ``round(p * levels)`` in an unsigned integer
#: of ``bits`` bits (at least 1 in a table of in-range cells), read back as ``q / levels``:
#: ``SCORE_LEVELS[bits]``.
SCORE_LEVELS = {8: 255, 16: 65535}
#: ``month`` 0 in a range table: the year-round (undated) map.
YEAR_ROUND = 0
TABLE_COLUMNS = ("month", "h3_cell", "species", "score")


def read_table_header(text: bytes | str | None, where: str) -> dict:
    """The header of a range table's ``"geoprior"`` Parquet metadata (as
    :func:`read_header` for exports)."""
    if text is None:
        raise PriorFileError(
            f"{where} is a Parquet file but not a geoprior range table (no {METADATA_KEY!r} "
            "metadata; write one with `geoprior export --format range-table`)"
        )
    return _parse_header(
        text,
        where,
        TABLE_FORMAT,
        TABLE_FORMAT,
        TABLE_FORMAT_VERSION,
        ("species", "res", "months", "score_levels"),
    )
