"""Range maps on H3 cells from any prior: GeoDataFrames, files and pictures.

:func:`range_map` evaluates a :class:`~geoprior.query.Prior` at the centres of H3 cells
(:mod:`geoprior.grid`), thresholds it per species (:mod:`geoprior.thresholds`) and returns a
GeoDataFrame in EPSG:4326 with ``h3_cell, species, prob, in_range`` and the cell polygons;
:func:`monthly_range_maps` does it for each month. :func:`write_range_map` writes one as
GeoJSON, GeoPackage, GeoParquet, CSV or PNG (:mod:`geoprior.plot`);
:func:`write_all_species` streams every species of a prior to one GeoParquet file, a chunk of
cells at a time, never holding ``cells x species`` in memory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .errors import (
    ClassMismatchError,
    ConfigError,
    DateError,
    EmptyDataError,
    SpeciesNameError,
)
from .grid import CellGrid, cell_grid, cell_polygons, cell_strings, merge_cells, parse_bbox
from .outputs import check_output
from .prior import predict_columns, scores_columns
from .query import species_indices
from .store import atomic_path
from .thresholds import RULES, compute_thresholds
from .validation import parse_dates

__all__ = [
    "range_map",
    "monthly_range_maps",
    "write_range_map",
    "write_all_species",
    "resolve_thresholds",
    "uses_dates",
    "FORMATS",
]

CRS = "EPSG:4326"
#: Output formats by file extension.
FORMATS = {
    ".geojson": "GeoJSON",
    ".gpkg": "GeoPackage",
    ".parquet": "GeoParquet",
    ".csv": "CSV",
    ".png": "PNG",
}
#: Year of the date a month stands for (the 15th); the priors use only day of year / month.
MONTH_YEAR = 2021
#: Probabilities computed per predict call (cells x species).
_CHUNK_VALUES = 1 << 22


# ---------------------------------------------------------------------------- inputs
def _species_list(species) -> list[str]:
    names = [species] if isinstance(species, str) else list(species)
    if not names:
        raise EmptyDataError("range_map needs at least one species name, got none")
    bad = [n for n in names if not isinstance(n, str) or not n.strip()]
    if bad:
        raise SpeciesNameError(
            f"{len(bad)} of {len(names)} species names are empty or not text; first: {bad[0]!r}"
        )
    if len(set(names)) != len(names):
        dupe = next(n for n in names if names.count(n) > 1)
        raise ClassMismatchError(f"species {dupe!r} is asked for more than once")
    return names


def _map_date(date, month) -> np.datetime64 | None:
    """The one date a map is drawn for: ``date``, the 15th of ``month``, or None."""
    if date is not None and month is not None:
        raise ConfigError(f"give date or month, not both (got date={date!r}, month={month!r})")
    if month is not None:
        if isinstance(month, bool) or not isinstance(month, (int, np.integer)):
            raise ConfigError(f"month must be an integer 1..12, got {month!r}")
        if not 1 <= month <= 12:
            raise ConfigError(f"month must be in 1..12, got {month}")
        return np.datetime64(f"{MONTH_YEAR}-{int(month):02d}-15", "D")
    if date is None:
        return None
    dates, masks, messages, _ = parse_dates(np.atleast_1d(np.asarray(date, dtype=object)))
    if masks:
        raise DateError("; ".join(messages.values()))
    if dates.size != 1 or np.isnat(dates[0]):
        raise DateError(f"a range map takes one date, got {date!r}")
    return dates[0]


def uses_dates(prior) -> bool:
    """Whether a prior's answer depends on the date (a dated GeoPrior, a CountGridPrior
    fitted ``by_month``, BirdNET's weekly model)."""
    for name in ("uses_date", "by_month"):
        if hasattr(prior, name):
            return bool(getattr(prior, name))
    return type(prior).__name__ == "BirdNETPrior"


def resolve_thresholds(
    prior, species: Sequence[str], threshold=None, observations=None
) -> np.ndarray:
    """Thresholds (float32, aligned with ``species``) a map uses.

    ``threshold`` is ``None`` (the prior's stored per-species ``thresholds``), a probability
    in [0, 1] for every species, one probability per species, or a rule ``"lpt"``/``"f1"``
    computed from ``observations`` with :func:`~geoprior.thresholds.compute_thresholds`.
    """
    names = list(species)
    cols = species_indices(names, prior.species)
    if threshold is None:
        stored = getattr(prior, "thresholds", None)
        if stored is None:
            raise ConfigError(
                f"{type(prior).__name__} has no stored thresholds: pass threshold=<probability> "
                "or 'lpt'/'f1' with observations (see geoprior.compute_thresholds)"
            )
        values = np.asarray(stored, np.float32)
        if values.shape != (len(prior.species),):
            raise ClassMismatchError(
                f"the prior stores {values.size} thresholds for {len(prior.species)} species"
            )
        values = values[cols]
    elif isinstance(threshold, str):
        if threshold.lower() not in RULES:
            raise ConfigError(
                f"threshold must be a probability or one of {RULES}, got {threshold!r}"
            )
        if observations is None:
            raise ConfigError(f"threshold={threshold!r} needs the presence observations")
        values = compute_thresholds(prior, observations, threshold, species=names)
    else:
        values = np.asarray(threshold, np.float32)
        if values.ndim == 0:
            values = np.full(len(names), values, np.float32)
        if values.shape != (len(names),):
            raise ClassMismatchError(
                f"got {values.size} thresholds for {len(names)} species (give one or one each)"
            )
        bad = ~((values >= 0) & (values <= 1))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ConfigError(
                f"{int(bad.sum())} of {values.size} thresholds outside [0, 1]; first: "
                f"{names[i]!r} = {float(values[i])}"
            )
    missing = np.isnan(values)
    if missing.any():
        shown = [names[i] for i in np.flatnonzero(missing)[:5]]
        raise ConfigError(
            f"{int(missing.sum())} of {len(names)} species have no threshold (no presences): "
            f"{shown}; pass a probability as threshold"
        )
    return values


def _grid(res, bbox, land_only) -> CellGrid:
    grid = cell_grid(res, bbox=bbox, land_only=land_only)
    if len(grid) == 0:
        where = "the region" if bbox is not None else "the grid"
        raise EmptyDataError(
            f"{where} has no {'land ' if land_only else ''}cells at resolution {res}"
            + ("; pass land_only=False to keep sea cells" if land_only else "")
        )
    return grid


def _predict_cells(prior, grid: CellGrid, cols: np.ndarray, when) -> np.ndarray:
    """``(cells, len(cols))`` float32 probabilities, predicted a chunk of cells at a time
    (a prior that scores chosen columns computes only ``cols``)."""
    out = np.empty((len(grid), cols.size), np.float32)
    width = cols.size if scores_columns(prior) else len(prior.species)
    step = max(1, _CHUNK_VALUES // max(1, width))
    for a in range(0, len(grid), step):
        sl = slice(a, a + step)
        out[sl] = predict_columns(prior, grid.lat[sl], grid.lon[sl], when, cols, output="presence")
    return out


# ---------------------------------------------------------------------------- maps
def _frame(grid, polygons, names, probs, thresholds, dissolve, attrs) -> gpd.GeoDataFrame:
    n, k = probs.shape
    in_range = probs >= thresholds[None, :]
    if dissolve:
        geoms = [_multipolygon(merge_cells(polygons[in_range[:, j]])) for j in range(k)]
        frame = gpd.GeoDataFrame(
            {
                "species": names,
                "threshold": thresholds.astype(np.float64),
                "n_cells": in_range.sum(axis=0).astype(np.int64),
            },
            geometry=geoms,
            crs=CRS,
        )
    else:
        frame = gpd.GeoDataFrame(
            {
                "h3_cell": np.tile(cell_strings(grid.cells), k),
                "species": np.repeat(np.asarray(names, dtype=object), n),
                "prob": probs.T.ravel(),
                "in_range": in_range.T.ravel(),
            },
            geometry=np.tile(polygons, k),
            crs=CRS,
        )
    frame.attrs.update(attrs, thresholds=dict(zip(names, thresholds.tolist())))
    return frame


def _multipolygon(geom) -> shapely.MultiPolygon:
    if geom.is_empty:
        return shapely.MultiPolygon()
    if geom.geom_type == "Polygon":
        return shapely.MultiPolygon([geom])
    return shapely.MultiPolygon([g for g in geom.geoms if g.geom_type == "Polygon"])


def range_map(
    prior,
    species: str | Sequence[str],
    *,
    res: int = 4,
    date=None,
    month: int | None = None,
    threshold=None,
    land_only: bool = True,
    bbox=None,
    dissolve: bool = False,
    observations=None,
) -> gpd.GeoDataFrame:
    """A range map of one or more species on H3 cells.

    Args:
        prior: any :class:`~geoprior.query.Prior` (a GeoPrior, a baseline, BirdNET, ...).
        species: a name or names; unknown names raise
            :class:`~geoprior.UnknownSpeciesError` with close matches.
        res: H3 resolution; global grids go up to 5, finer ones need ``bbox``.
        date: the date to map (one); ``None`` maps the year-round prior.
        month: 1..12, the 15th of that month (instead of ``date``).
        threshold: ``None`` (the prior's stored per-species thresholds), a probability, one
            per species, or ``"lpt"``/``"f1"`` computed from ``observations``.
        land_only: drop cells that do not touch land (terrestrial species).
        bbox: ``(west, south, east, north)``, ``"W,S,E,N"`` or a shapely (Multi)Polygon:
            only cells whose centre lies inside.
        dissolve: one MultiPolygon per species of its cells in range (columns ``species,
            threshold, n_cells, geometry``) instead of one row per cell and species.
        observations: presences for ``threshold="lpt"``/``"f1"``.

    Returns:
        A GeoDataFrame in EPSG:4326 with columns ``h3_cell, species, prob, in_range,
        geometry`` (species by species, cells sorted); ``in_range`` is
        ``prob >= threshold``. ``attrs`` holds ``res``, ``date``, ``month``, ``bbox`` and
        ``thresholds``.

    Example:
        >>> frame = range_map(prior, "Setophaga virens", month=6)  # doctest: +SKIP
        >>> frame[frame.in_range].to_file("virens_june.gpkg")  # doctest: +SKIP
    """
    names = _species_list(species)
    when = _map_date(date, month)
    thresholds = resolve_thresholds(prior, names, threshold, observations)
    cols = species_indices(names, prior.species)
    region = None if bbox is None else parse_bbox(bbox)
    grid = _grid(res, region, land_only)
    probs = _predict_cells(prior, grid, cols, when)
    attrs = _attrs(res, when, month, region, land_only)
    return _frame(grid, cell_polygons(grid.cells), names, probs, thresholds, dissolve, attrs)


def monthly_range_maps(
    prior,
    species: str | Sequence[str],
    *,
    months: Sequence[int] = tuple(range(1, 13)),
    res: int = 4,
    threshold=None,
    land_only: bool = True,
    bbox=None,
    dissolve: bool = False,
    observations=None,
) -> gpd.GeoDataFrame:
    """:func:`range_map` for each month (the 15th), stacked with a ``month`` column.

    The grid, polygons and thresholds are computed once; the thresholds are the same for
    every month. For priors that ignore dates every month is the same map.

    >>> monthly_range_maps(prior, "Setophaga virens").month.unique()  # doctest: +SKIP
    array([ 1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12])
    """
    names = _species_list(species)
    months = [int(m) for m in months]
    for m in months:
        _map_date(None, m)
    if not months:
        raise ConfigError("months is empty")
    thresholds = resolve_thresholds(prior, names, threshold, observations)
    cols = species_indices(names, prior.species)
    region = None if bbox is None else parse_bbox(bbox)
    grid = _grid(res, region, land_only)
    polygons = cell_polygons(grid.cells)
    frames = []
    for m in months:
        when = _map_date(None, m)
        probs = _predict_cells(prior, grid, cols, when)
        attrs = _attrs(res, when, m, region, land_only)
        frame = _frame(grid, polygons, names, probs, thresholds, dissolve, attrs)
        frame.insert(0, "month", np.int64(m))
        frames.append(frame)
    out = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=CRS)
    out.attrs.update(frames[0].attrs, date=None, month=None, months=months)
    return out


def _attrs(res, when, month, region, land_only) -> dict:
    return {
        "res": int(res),
        "date": None if when is None else str(when),
        "month": None if month is None else int(month),
        "bbox": region if isinstance(region, tuple) else None,
        "land_only": bool(land_only),
    }


# ---------------------------------------------------------------------------- files
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
    (a picture, see :func:`geoprior.plot.plot_range_map`; ``plot_options`` go there).
    Files are written to a temporary name and renamed, so a failed write leaves nothing.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
        PathError: ``path`` is a folder, or its folder does not exist or is not writable.
        ConfigError: an unknown extension.

    >>> write_range_map(range_map(prior, "Setophaga virens"), "virens.gpkg")  # doctest: +SKIP
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
    chunk_values: int = _CHUNK_VALUES,
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
    when = _map_date(date, month)
    thresholds = resolve_thresholds(prior, names, threshold, observations)
    region = None if bbox is None else parse_bbox(bbox)
    grid = _grid(res, region, land_only)
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
    with atomic_path(path) as tmp:
        with pq.ParquetWriter(tmp, schema, compression="zstd", store_schema=False) as writer:
            chunks = range(0, len(grid), step)
            for a in tqdm(chunks, disable=not progress, unit="chunk", desc="range maps"):
                part = grid.take(slice(a, a + step))
                probs = predict_columns(
                    prior, part.lat, part.lon, when, np.arange(s), output="presence"
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
