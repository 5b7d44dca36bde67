"""A range table: every species' in-range H3 cells, one small Parquet file read by pyarrow
alone (the form iNaturalist ships its geomodel in).

:func:`write_range_table` evaluates any :class:`~geoprior.priors.protocol.Prior` (a
GeoPrior, an ONNX export loaded by :mod:`geoprior.runtime`, a baseline) on the cells of a
range map (:func:`~geoprior.maps.range_map.map_grid`: a resolution, a region, land only),
for the year round and/or chosen months, keeps each species' cells whose presence reaches
its threshold (:func:`~geoprior.maps.range_map.thresholds_for`: the prior's stored ones by
default), quantises the presence to a uint8 (or uint16) and writes the layout
:mod:`geoprior.runtime.format` describes. :class:`geoprior.runtime.RangeTable` reads it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..maps.grid import parse_bbox
from ..maps.range_map import CHUNK_VALUES, map_date, map_grid, thresholds_for
from ..outputs import check_output
from ..persistence import atomic_path, json_header
from ..priors.protocol import predict_columns, scores_columns, uses_date
from ..runtime.format import (
    METADATA_KEY,
    SCORE_LEVELS,
    TABLE_FORMAT,
    TABLE_FORMAT_VERSION,
    YEAR_ROUND,
    thresholds_to_json,
)

__all__ = ["write_range_table"]


def _months(months, prior) -> list[int]:
    """``months`` as a list of ints (0: year-round); default the year round, and every
    month too for a prior that uses dates."""
    if months is None:
        return [YEAR_ROUND] + (list(range(1, 13)) if uses_date(prior) else [])
    out = [months] if isinstance(months, int | np.integer) else list(months)
    if not out:
        raise ConfigError("months is empty: give 0 (year-round) and/or months 1..12")
    for m in out:
        if isinstance(m, bool) or not isinstance(m, int | np.integer) or not 0 <= m <= 12:
            raise ConfigError(f"months must be 0 (year-round) or 1..12, got {m!r}")
    if len(set(out)) != len(out):
        raise ConfigError(f"months repeat: {out}")
    return sorted(int(m) for m in out)


def write_range_table(
    prior,
    path: str | os.PathLike,
    *,
    res: int = 4,
    months: int | Sequence[int] | None = None,
    threshold=None,
    land_only: bool = True,
    bbox=None,
    observations=None,
    score_bits: int = 8,
    overwrite: bool = False,
    chunk_values: int = CHUNK_VALUES,
) -> dict:
    """Write the range table of every species of ``prior`` to the Parquet file ``path``.

    Args:
        prior: any prior with a presence output or probabilities (see
            :func:`~geoprior.maps.range_map`).
        res: H3 resolution of the cells (global grids up to 5; finer needs ``bbox``).
        months: 0 (the year-round, undated map) and/or months 1..12 (their 15th); default
            the year round, plus the twelve months for a prior that uses dates.
        threshold, observations: as :func:`~geoprior.range_map` (default: the prior's
            stored per-species thresholds).
        land_only, bbox: the cells, as :func:`~geoprior.range_map`.
        score_bits: 8 (a uint8 score, steps of 1/255: species close in a cell can tie) or
            16 (uint16, steps of 1/65535; a larger file).
        chunk_values: probabilities computed per call (cells x species).

    Returns:
        ``{"path", "rows", "cells", "species", "months"}``.

    Example:
        >>> write_range_table(prior, "birds_range.parquet", res=4, bbox="-130,20,-60,55")  # doctest: +SKIP
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = check_output(path, overwrite)
    if Path(path).suffix.lower() != ".parquet":
        raise ConfigError(f"a range table is a .parquet file, got {path}")
    if score_bits not in SCORE_LEVELS:
        raise ConfigError(f"score_bits must be one of {sorted(SCORE_LEVELS)}, got {score_bits!r}")
    levels = SCORE_LEVELS[score_bits]
    dtype = np.uint8 if score_bits == 8 else np.uint16
    names = list(prior.species)
    s = len(names)
    month_list = _months(months, prior)
    thresholds = thresholds_for(prior, names, np.arange(s), threshold, observations)
    region = None if bbox is None else parse_bbox(bbox)
    grid = map_grid(res, region, land_only)
    step = max(1, int(chunk_values) // s)
    scores = scores_columns(prior)
    parts: dict[str, list[np.ndarray]] = {"month": [], "cell": [], "species": [], "score": []}
    for m in month_list:
        when = None if m == YEAR_ROUND else map_date(None, m)
        for a in range(0, len(grid), step):
            part = grid.take(slice(a, a + step))
            probs = predict_columns(
                prior, part.lat, part.lon, when, np.arange(s), output="presence", scores=scores
            )
            cell, sp = np.nonzero(probs >= thresholds[None, :])
            q = np.clip(np.rint(probs[cell, sp].astype(np.float64) * levels), 1, levels)
            parts["month"].append(np.full(cell.size, m, np.uint8))
            parts["cell"].append(part.cells[cell].astype(np.uint64))
            parts["species"].append(sp.astype(np.int32))
            parts["score"].append(q.astype(dtype))
    month, cell, sp, score = (np.concatenate(parts[k]) for k in ("month", "cell", "species", "score"))
    order = np.lexsort((-score.astype(np.int32), cell, month))  # month, cell, best first
    header = json_header(
        TABLE_FORMAT,
        TABLE_FORMAT_VERSION,
        {
            "species": names,
            "thresholds": thresholds_to_json(thresholds),
            "res": int(res),
            "months": month_list,
            "score_levels": levels,
            "score": "presence",
            "land_only": bool(land_only),
            "bbox": list(region) if isinstance(region, tuple) else None,
            "cells": len(grid),
            "prior": {"kind": type(prior).__name__, "n_species": s},
        },
    )
    table = pa.table(
        {
            "month": pa.array(month[order]),
            "h3_cell": pa.array(cell[order]),
            "species": pa.DictionaryArray.from_arrays(
                pa.array(sp[order]), pa.array(names, pa.string())
            ),
            "score": pa.array(score[order]),
        }
    ).replace_schema_metadata({METADATA_KEY: json.dumps(header)})
    with atomic_path(path) as tmp:
        # row groups of 64k rows: a reader filtering on h3_cell skips the others by statistics
        pq.write_table(table, tmp, compression="zstd", row_group_size=1 << 16)
    return {
        "path": str(path),
        "rows": table.num_rows,
        "cells": len(grid),
        "species": s,
        "months": month_list,
    }
