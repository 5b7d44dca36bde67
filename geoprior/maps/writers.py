"""Writing range maps to files: :func:`write_range_map` (GeoJSON, GeoPackage, GeoParquet, CSV
or PNG) and :func:`write_all_species`, which streams every species of a prior to one
GeoParquet file, a chunk of cells at a time, never holding ``cells x species`` in memory.
"""

from __future__ import annotations

import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ..errors import ConfigError
from ..geo import cell_strings
from ..outputs import check_output
from ..persistence import atomic_path
from ..priors.protocol import predict_columns, scores_columns
from .grid import cell_polygons, parse_bbox
from .range_map import CHUNK_VALUES, CRS, map_date, map_grid, thresholds_for

__all__ = ["FORMATS", "write_range_map", "write_all_species"]

#: Output formats by file extension.
FORMATS = {
    ".geojson": "GeoJSON",
    ".gpkg": "GeoPackage",
    ".parquet": "GeoParquet",
    ".csv": "CSV",
    ".png": "PNG",
}


def _check_path(path, overwrite: bool, allowed=FORMATS) -> Path:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise ConfigError(f"cannot tell the format of {path}: expected one of {', '.join(allowed)}")
    return check_output(path, overwrite)


def write_range_map(
    frame: gpd.GeoDataFrame, path: str | os.PathLike, *, overwrite: bool = False, **plot_options
) -> Path:
    """Write a range map; the format follows the extension.

    ``.geojson`` (GeoJSON), ``.gpkg`` (GeoPackage, layer ``range_map``), ``.parquet``
    (GeoParquet), ``.csv`` (the cells without polygons; not for dissolved maps) or ``.png``
    (a picture, see :func:`geoprior.maps.plot.plot_range_map`; ``plot_options`` go there).
    Files are written to a temporary name and renamed, so a failed write leaves nothing.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
        PathError: ``path`` is a folder, or its folder does not exist or is not writable.
        ConfigError: an unknown extension.

    >>> import geoprior
    >>> write_range_map(geoprior.range_map(prior, "Setophaga virens"), "virens.gpkg")  # doctest: +SKIP
    """
    path = _check_path(path, overwrite)
    suffix = path.suffix.lower()
    if suffix == ".csv" and "h3_cell" not in frame.columns:
        raise ConfigError("CSV holds cells: write a dissolved map as .geojson, .gpkg or .parquet")
    if suffix != ".png" and plot_options:
        raise ConfigError(f"plot options {sorted(plot_options)} apply only to .png outputs")
    with atomic_path(path) as tmp:
        if suffix == ".png":
            from .plot import save_png

            save_png(frame, tmp, **plot_options)
        elif suffix == ".csv":
            pd.DataFrame(frame.drop(columns=frame.geometry.name)).to_csv(tmp, index=False)
        elif suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            driver = "GPKG" if suffix == ".gpkg" else "GeoJSON"
            layer = {"layer": "range_map"} if suffix == ".gpkg" else {}
            frame.to_file(tmp, driver=driver, **layer)
    return path


def _geo_metadata() -> bytes:
    import json

    import pyproj

    meta = {
        "version": "1.0.0",
        "primary_column": "geometry",
        "columns": {
            "geometry": {
                "encoding": "WKB",
                "geometry_types": ["Polygon", "MultiPolygon"],
                "crs": pyproj.CRS.from_user_input(CRS).to_json_dict(),
            }
        },
    }
    return json.dumps(meta).encode()


def write_all_species(
    prior,
    path: str | os.PathLike,
    *,
    res: int = 4,
    date=None,
    month: int | None = None,
    threshold=None,
    land_only: bool = True,
    bbox=None,
    observations=None,
    in_range_only: bool = True,
    overwrite: bool = False,
    progress: bool = False,
    chunk_values: int = CHUNK_VALUES,
) -> dict:
    """Stream the range maps of every species of ``prior`` into one GeoParquet file.

    Cells are predicted ``chunk_values // n_species`` at a time (at least one cell) and
    each chunk becomes one row group, so memory is one chunk of about
    ``max(chunk_values, n_species)`` probabilities and a few bytes per row written from it,
    never ``cells x species``. Rows have the columns of :func:`range_map` (``h3_cell, species,
    prob, in_range, geometry``), species by species within a chunk; with ``in_range_only``
    (the default) only cells in range are written.

    Returns:
        ``{"cells", "species", "rows", "path"}``.

    >>> write_all_species(prior, "all.parquet", progress=True)  # doctest: +SKIP
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    path = _check_path(path, overwrite, allowed={".parquet": "GeoParquet"})
    names = list(prior.species)
    when = map_date(date, month)
    thresholds = thresholds_for(prior, names, np.arange(len(names)), threshold, observations)
    region = None if bbox is None else parse_bbox(bbox)
    grid = map_grid(res, region, land_only)
    s = len(names)
    step = max(1, int(chunk_values) // s)
    species_arr = pa.array(names, pa.string())
    # text and polygons as dictionaries of a chunk's used cells and species: 4 bytes a row in
    # memory (Parquet dictionary-encodes them anyway); without the Arrow schema in the file
    # readers see plain strings and WKB
    schema = pa.schema(
        [
            ("h3_cell", pa.dictionary(pa.int32(), pa.string())),
            ("species", pa.dictionary(pa.int32(), pa.string())),
            ("prob", pa.float32()),
            ("in_range", pa.bool_()),
            ("geometry", pa.dictionary(pa.int32(), pa.binary())),
        ]
    )
    rows = 0
    scores = scores_columns(prior)
    with atomic_path(path) as tmp:
        with pq.ParquetWriter(tmp, schema, compression="zstd", store_schema=False) as writer:
            chunks = range(0, len(grid), step)
            for a in tqdm(chunks, disable=not progress, unit="chunk", desc="range maps"):
                part = grid.take(slice(a, a + step))
                probs = predict_columns(
                    prior, part.lat, part.lon, when, np.arange(s), output="presence", scores=scores
                )
                in_range = probs >= thresholds[None, :]
                if in_range_only:  # species by species, cells in order
                    sp, cell = np.nonzero(in_range.T)
                else:
                    sp = np.repeat(np.arange(s), len(part))
                    cell = np.tile(np.arange(len(part)), s)
                if sp.size == 0:
                    continue
                used_cells, cell_idx = np.unique(cell, return_inverse=True)
                used_species, sp_idx = np.unique(sp, return_inverse=True)
                cell_idx = pa.array(cell_idx.astype(np.int32))
                table = pa.table(
                    {
                        "h3_cell": pa.DictionaryArray.from_arrays(
                            cell_idx, pa.array(cell_strings(part.cells[used_cells]), pa.string())
                        ),
                        "species": pa.DictionaryArray.from_arrays(
                            sp_idx.astype(np.int32), species_arr.take(pa.array(used_species))
                        ),
                        "prob": pa.array(probs[cell, sp]),
                        "in_range": pa.array(in_range[cell, sp]),
                        "geometry": pa.DictionaryArray.from_arrays(
                            cell_idx,
                            pa.array(
                                shapely.to_wkb(cell_polygons(part.cells[used_cells])), pa.binary()
                            ),
                        ),
                    },
                    schema=schema,
                )
                writer.write_table(table, row_group_size=table.num_rows)
                rows += table.num_rows
            writer.add_key_value_metadata({"geo": _geo_metadata()})
    return {"cells": len(grid), "species": s, "rows": rows, "path": str(path)}
