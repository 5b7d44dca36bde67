"""Writing range maps to files: :func:`write_range_map` (GeoJSON, GeoPackage, GeoParquet, CSV,
PNG or an interactive HTML map) and :func:`write_all_species`, which streams every species of
a prior to one GeoParquet file, a chunk of cells at a time, never holding ``cells x species``
in memory.

Every file says what it holds (:func:`map_metadata`: the prior, species, threshold rule and
values, date or month, cells kept, geoprior version): a GeoJSON foreign member ``geoprior``,
GeoPackage layer metadata, GeoParquet file metadata (read back as the frame's ``attrs`` by
``geopandas.read_parquet``), PNG text chunks, a JSON block in the HTML page. GeoJSON follows
RFC 7946 (lon/lat, no ``crs`` member, right-hand-rule rings) with coordinates rounded to
:func:`coordinate_digits` decimals; GeoJSON and CSV can also go to a stream (the CLI's
``-o -``).
"""

from __future__ import annotations

import io
import json
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .._version import __version__
from ..errors import ConfigError
from ..geo import KM_PER_DEGREE, cell_centres, cell_strings, cells_from_strings, edge_km
from ..outputs import check_output
from ..persistence import atomic_path
from ..priors.protocol import predict_columns, scores_columns
from .grid import cell_polygons, parse_bbox
from .range_map import (
    CHUNK_VALUES,
    CRS,
    cell_inputs,
    check_cells,
    covariate_inputs,
    keep_cells,
    map_attrs,
    map_date,
    map_grid,
    thresholds_for,
)

__all__ = [
    "FORMATS",
    "LAYER",
    "STREAM_FORMATS",
    "coordinate_digits",
    "geojson_dict",
    "map_metadata",
    "output_format",
    "write_range_map",
    "write_all_species",
]

#: Output formats by file extension.
FORMATS = {
    ".geojson": "GeoJSON",
    ".gpkg": "GeoPackage",
    ".parquet": "GeoParquet",
    ".csv": "CSV",
    ".png": "PNG",
    ".html": "HTML",
}
#: The formats that can be written to a stream (text).
STREAM_FORMATS = (".geojson", ".csv")
#: The layer name of GeoJSON and GeoPackage files.
LAYER = "range_map"
#: Rounding a GeoJSON vertex moves it by at most this fraction of the cell edge.
_ROUNDING_OF_EDGE = 1e-3


def output_format(path, format: str | None = None) -> str:
    """The format (an extension of :data:`FORMATS`, e.g. ``".gpkg"``) of an output:
    ``format`` (``"gpkg"`` or ``".gpkg"``) when given, else the path's extension.

    >>> output_format("virens.GPKG"), output_format("-", "csv")
    ('.gpkg', '.csv')
    """
    if format is not None:
        suffix = "." + str(format).lower().lstrip(".")
        if suffix not in FORMATS:
            raise ConfigError(
                f"unknown map format {format!r}: expected one of "
                f"{', '.join(s[1:] for s in FORMATS)}"
            )
        return suffix
    suffix = Path(os.fspath(path)).suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(
            f"cannot tell the format of {os.fspath(path)}: expected one of {', '.join(FORMATS)}"
        )
    return suffix


def coordinate_digits(res: int) -> int:
    """Decimal places of GeoJSON coordinates for cells of H3 resolution ``res``.

    Rounding to ``d`` places moves a vertex by at most half of ``10**-d`` degrees in each
    of lon and lat, ``KM_PER_DEGREE * sqrt(2) / 2 * 10**-d`` km (less away from the
    equator, where a degree of longitude is shorter): ``d`` is the fewest places that keep
    this under 1/1000 of the resolution's mean edge, invisible on any map of those cells
    and small enough that no cell changes shape. For resolution 4 (22.6 km edges) that is
    4 places, a vertex moving 7.9 m at most.

    >>> [coordinate_digits(r) for r in (0, 2, 4, 6, 9, 15)]
    [2, 3, 4, 5, 6, 9]
    """
    limit_km = _ROUNDING_OF_EDGE * edge_km(int(res))
    return max(0, int(np.ceil(np.log10(np.sqrt(0.5) * KM_PER_DEGREE / limit_km))))


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def map_metadata(frame) -> dict:
    """What a map file records: the frame's ``attrs`` (see
    :func:`~geoprior.maps.range_map`) made JSON-compatible, with the species drawn and the
    geoprior version always present.

    >>> import geoprior
    >>> frame = geoprior.range_map(geoprior.UniformPrior(["a"]), "a", res=0, threshold=0.5)
    >>> meta = map_metadata(frame)
    >>> meta["species"], meta["threshold_rule"], meta["thresholds"], meta["cells"]
    (['a'], 'given', {'a': 0.5}, 'all')
    """
    species = None
    if "species" not in frame.attrs and "species" in frame.columns:
        species = list(dict.fromkeys(frame["species"]))
    return _metadata(frame.attrs, species)


def _metadata(attrs: dict, species=None) -> dict:
    meta = _jsonable(dict(attrs))
    if species is not None:
        meta["species"] = species
    meta.setdefault("geoprior_version", __version__)
    return meta


def describe(meta: dict) -> str:
    """One line saying what a map is (a GeoPackage layer's description, a PNG's)."""
    species = ", ".join(meta.get("species") or []) or "range map"
    when = meta.get("date") or (
        f"months {meta['months'][0]}-{meta['months'][-1]}" if meta.get("months") else "year-round"
    )
    score = "presence probability" if meta.get("output") == "presence" else "prior probability"
    cells = {"in-range": "cells in range", "extent": "cells within the prior's extent"}.get(
        meta.get("cells"), "all cells"
    )
    rule = meta.get("threshold_rule")
    rule = {"stored": "stored in the prior", "given": "given"}.get(rule, rule)
    return (
        f"{species}: {score} on H3 resolution-{meta.get('res')} cells ({cells}), {when}; "
        f"in range at or above the threshold ({rule}); geoprior {meta.get('geoprior_version')}"
    )


def _is_stream(target) -> bool:
    return hasattr(target, "write") and not isinstance(target, (str, os.PathLike))


def write_range_map(
    frame: gpd.GeoDataFrame,
    path,
    *,
    format: str | None = None,
    overwrite: bool = False,
    **plot_options,
) -> Path | None:
    """Write a range map; the format follows the extension (or ``format``).

    ``.geojson`` (RFC 7946 GeoJSON, coordinates rounded to :func:`coordinate_digits`
    places), ``.gpkg`` (GeoPackage, layer ``range_map``), ``.parquet`` (GeoParquet),
    ``.csv`` (the cells with their centres' ``lat, lon``, no polygons; not for dissolved
    maps), ``.png`` (a picture, see :func:`geoprior.maps.plot.plot_range_map`) or
    ``.html`` (an interactive map, see :func:`geoprior.maps.html.save_html`);
    ``plot_options`` go to the picture or the page. Each file records
    :func:`map_metadata`. Files are written to a temporary name and renamed, so a failed
    write leaves nothing. ``path`` may also be a binary stream (e.g.
    ``sys.stdout.buffer``) for GeoJSON (the default there) and CSV.

    Returns:
        The path written (``None`` for a stream).

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False.
        PathError: ``path`` is a folder, or its folder does not exist or is not writable.
        ConfigError: an unknown format, a binary format to a stream, options that do not
            apply.

    >>> import geoprior
    >>> write_range_map(geoprior.range_map(prior, "Setophaga virens"), "virens.gpkg")  # doctest: +SKIP
    """
    stream = _is_stream(path)
    suffix = output_format(path, format if format is not None or not stream else "geojson")
    if stream:
        if suffix not in STREAM_FORMATS:
            raise ConfigError(
                f"{FORMATS[suffix]} is a binary format: write it to a file (streams take "
                f"{' or '.join(FORMATS[s] for s in STREAM_FORMATS)})"
            )
    else:
        path = check_output(path, overwrite)
    if suffix == ".csv" and "h3_cell" not in frame.columns:
        raise ConfigError("CSV holds cells: write a dissolved map as .geojson, .gpkg or .parquet")
    if suffix not in (".png", ".html") and plot_options:
        raise ConfigError(f"options {sorted(plot_options)} apply only to .png and .html outputs")
    meta = map_metadata(frame)
    if stream:
        path.write(_text(frame, suffix, meta))
        return None
    with atomic_path(path) as tmp:
        if suffix == ".png":
            from .plot import save_png

            save_png(frame, tmp, metadata=_png_text(meta), **plot_options)
        elif suffix == ".html":
            from .html import save_html

            save_html(frame, tmp, metadata=meta, **plot_options)
        elif suffix in STREAM_FORMATS:
            tmp.write_bytes(_text(frame, suffix, meta))
        elif suffix == ".parquet":
            out = frame.copy(deep=False)
            out.attrs = meta  # geopandas stores attrs in the file; read_parquet gives them back
            out.to_parquet(tmp, index=False, compression="zstd")
        else:
            _write_gpkg(frame, tmp, meta)
    return path


def _text(frame, suffix: str, meta: dict) -> bytes:
    if suffix == ".csv":
        return _csv(frame, meta).to_csv(index=False).encode()
    return _geojson(frame, meta)


def _csv(frame, meta: dict) -> pd.DataFrame:
    """The cells as a table, with each cell's centre after its H3 index."""
    table = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    lat, lon = cell_centres(cells_from_strings(table["h3_cell"]))
    digits = coordinate_digits(meta.get("res") or 15)
    at = table.columns.get_loc("h3_cell") + 1
    table.insert(at, "lon", np.round(lon, digits))
    table.insert(at, "lat", np.round(lat, digits))
    return table


def _geojson(frame, meta: dict) -> bytes:
    """RFC 7946 GeoJSON by GDAL: lon/lat, no ``crs``, rings by the right-hand rule,
    the metadata as the foreign member ``geoprior``. Vertices are snapped to the rounding
    grid first (shapely keeps every polygon valid there: a sliver of an antimeridian cell
    narrower than the grid is dropped, never written as a broken ring)."""
    import pyogrio

    digits = coordinate_digits(meta.get("res") or 15)
    out = frame.copy(deep=False)
    out[out.geometry.name] = shapely.set_precision(out.geometry.to_numpy(), 10.0**-digits)
    buffer = io.BytesIO()
    pyogrio.write_dataframe(
        out,
        buffer,
        driver="GeoJSON",
        layer=LAYER,
        RFC7946="YES",
        COORDINATE_PRECISION=digits,
        SIGNIFICANT_FIGURES=9,  # float32 probabilities round-trip
        FOREIGN_MEMBERS_COLLECTION=json.dumps({"geoprior": meta}),
    )
    return buffer.getvalue()


def geojson_dict(frame, meta: dict | None = None) -> dict:
    """The RFC 7946 GeoJSON of a map (as :func:`write_range_map` writes it) as a dict."""
    return json.loads(_geojson(frame, map_metadata(frame) if meta is None else meta))


def _write_gpkg(frame, tmp: Path, meta: dict) -> None:
    layer_metadata = {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
    extra = {"geometry_type": "MultiPolygon"} if len(frame) == 0 else {}
    frame.to_file(
        tmp,
        driver="GPKG",
        layer=LAYER,
        engine="pyogrio",
        layer_metadata=layer_metadata,
        DESCRIPTION=describe(meta),
        **extra,
    )


def _png_text(meta: dict) -> dict:
    species = ", ".join(meta.get("species") or [])
    return {
        "Title": f"{species} range map" if species else "range map",
        "Description": describe(meta),
        "Software": f"geoprior {meta.get('geoprior_version')}",
        "Comment": json.dumps(meta),
    }


def _geo_metadata(types: set[str], bounds) -> bytes:
    """The GeoParquet ``geo`` metadata of a file of these geometry types and total bounds,
    as geopandas writes it (from an example frame of those types and bounds)."""
    import pyarrow.parquet as pq

    examples = []
    if bounds is not None:
        box = shapely.box(*bounds)
        examples = [box if t == "Polygon" else shapely.MultiPolygon([box]) for t in sorted(types)]
    buffer = io.BytesIO()
    gpd.GeoDataFrame(geometry=examples, crs=CRS).to_parquet(buffer)
    buffer.seek(0)
    return pq.read_schema(buffer).metadata[b"geo"]


def _map_chunks(prior, grid, when, thresholds, cells: str, step: int, covariates=None):
    """Yield every species' map ``(part, cell, species, prob, in_range)`` a chunk of cells
    at a time, rows species by species (cells in order within each): only the rows in
    range for ``cells="in-range"``, else every (cell, species) row. ``covariates``: the
    cells' own ``(cells, c)``, for a prior that takes them.

    A prior that compares thresholds on the device (``iter_above``: a GeoPrior) hands over
    only the rows in range, a block of its own size at a time; any other is predicted
    ``step`` cells at a time and compared here."""
    s = len(prior.species)
    if cells == "in-range" and callable(getattr(prior, "iter_above", None)):
        # the prior's blocks gathered into chunks of at least ``step`` cells
        held: list = []

        def chunk():
            first, last = held[0][0], held[-1][0] + held[-1][1]
            cell = np.concatenate([start - first + r for start, _, r, _, _ in held])
            sp = np.concatenate([c for _, _, _, c, _ in held])
            prob = np.concatenate([v for *_, v in held])
            held.clear()
            # species by species, cells in order (a stable sort of 16-bit keys is a radix sort)
            order = np.argsort(sp.astype(np.uint16) if s <= 1 << 16 else sp, kind="stable")
            part = grid.take(slice(first, last))
            return part, cell[order], sp[order], prob[order], np.ones(order.size, bool)

        for block in prior.iter_above(
            grid.lat, grid.lon, when, thresholds=thresholds, covariates=covariates,
            output="presence",
        ):
            held.append(block)
            if held[-1][0] + held[-1][1] - held[0][0] >= step:
                yield chunk()
        if held:
            yield chunk()
        return
    scores = scores_columns(prior)
    cols = np.arange(s)
    for a in range(0, len(grid), step):
        part = grid.take(slice(a, a + step))
        cov = None if covariates is None else covariates[a : a + step]
        probs = predict_columns(
            prior, part.lat, part.lon, when, cols, covariates=cov, output="presence",
            scores=scores,
        )
        in_range = probs >= thresholds[None, :]
        if cells == "in-range":  # species by species, cells in order
            sp, cell = np.nonzero(in_range.T)
        else:
            sp = np.repeat(np.arange(s), len(part))
            cell = np.tile(np.arange(len(part)), s)
        yield part, cell, sp, probs[cell, sp], in_range[cell, sp]


def _codes(values: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` of integers in ``[0, size)``, by marking
    instead of sorting (linear; the codes as int32).

    >>> _codes(np.array([5, 2, 5]), 8)
    (array([2, 5]), array([1, 0, 1], dtype=int32))
    """
    present = np.zeros(size, bool)
    present[values] = True
    code = np.cumsum(present, dtype=np.int32) - 1
    return np.flatnonzero(present), code[values]


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
    cells: str = "in-range",
    overwrite: bool = False,
    progress: bool = False,
    chunk_values: int = CHUNK_VALUES,
    metadata: dict | None = None,
    covariates=None,
) -> dict:
    """Stream the range maps of every species of ``prior`` into one GeoParquet file.

    Cells are predicted ``chunk_values // n_species`` at a time (at least one cell) and
    each chunk becomes one row group, so memory is one chunk of about
    ``max(chunk_values, n_species)`` probabilities and a few bytes per row written from it,
    never ``cells x species``. A GeoPrior's in-range map compares the thresholds on the
    device, a block of its own size at a time, and hands over only the rows in range.
    Chunks are scored on the calling thread and encoded (polygons, Arrow, zstd) and written
    on another, with at most two waiting, so scoring and writing overlap. Rows have the columns of :func:`range_map` (``h3_cell, species,
    prob, in_range, geometry``), species by species within a chunk; ``cells`` as in
    :func:`range_map` (default ``"in-range"``: only the rows in range). The file's
    metadata is :func:`map_metadata` of the map (``geopandas.read_parquet(path).attrs``),
    with ``metadata`` added, and GeoParquet's ``geo`` as geopandas writes it.

    A prior trained with covariates is mapped as by :func:`range_map`: ``covariates`` the
    rasters to sample at the cell centres (default: those recorded in the prior), only
    the cells where every raster has a value kept (``attrs["covariates"]`` counts the
    others), and presences for a threshold rule sampled from the same rasters.

    Returns:
        ``{"cells", "species", "rows", "path"}``, and ``"covariates"`` (the cells left out,
        as ``attrs["covariates"]``) for a covariate prior.

    >>> write_all_species(prior, "all.parquet", progress=True)  # doctest: +SKIP
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    if Path(os.fspath(path)).suffix.lower() != ".parquet":
        raise ConfigError(f"write_all_species writes GeoParquet (.parquet), got {path}")
    path = check_output(path, overwrite)
    check_cells(cells)
    names = list(prior.species)
    when = map_date(date, month)
    cols = np.arange(len(names))
    rasters, observations = covariate_inputs(prior, covariates, observations)
    thresholds = thresholds_for(prior, names, cols, threshold, observations, progress)
    region = None if bbox is None else parse_bbox(bbox)
    grid = keep_cells(prior, map_grid(res, region, land_only), cells)
    grid, cell_cov, about = cell_inputs(rasters, grid, strict=region is not None)
    attrs = map_attrs(prior, names, cols, threshold, res, when, month, region, land_only, cells)
    if about is not None:
        attrs["covariates"] = about
    attrs["thresholds"] = dict(zip(names, [float(str(v)) for v in thresholds]))
    attrs.update(metadata or {})
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
    state = {"rows": 0, "types": set(), "bounds": None}

    def encode_and_write(writer, part, cell, sp, prob, in_range):
        """One chunk's rows as a row group (run on the writer thread)."""
        used_cells, cell_idx = _codes(cell, len(part))
        used_species, sp_idx = _codes(sp, s)
        polygons = cell_polygons(part.cells[used_cells])
        state["types"].update(shapely.get_type_id(polygons).tolist())
        box = shapely.total_bounds(polygons)
        bounds = state["bounds"]
        if bounds is not None:
            box = np.r_[np.minimum(bounds[:2], box[:2]), np.maximum(bounds[2:], box[2:])]
        state["bounds"] = box
        cell_idx = pa.array(cell_idx)
        table = pa.table(
            {
                "h3_cell": pa.DictionaryArray.from_arrays(
                    cell_idx, pa.array(cell_strings(part.cells[used_cells]), pa.string())
                ),
                "species": pa.DictionaryArray.from_arrays(
                    sp_idx, species_arr.take(pa.array(used_species))
                ),
                "prob": pa.array(prob),
                "in_range": pa.array(in_range),
                "geometry": pa.DictionaryArray.from_arrays(
                    cell_idx, pa.array(shapely.to_wkb(polygons), pa.binary())
                ),
            },
            schema=schema,
        )
        writer.write_table(table, row_group_size=table.num_rows)
        state["rows"] += table.num_rows

    chunks = _map_chunks(prior, grid, when, thresholds, cells, step, cell_cov)
    with atomic_path(path) as tmp:
        # probabilities are nearly all distinct: a dictionary for them was tried, dropped and
        # doubled the write (1.8 s against 0.8 for 17 M rows, measured); split into byte
        # streams they compress (67 MB against 108 for the same file). Statistics (row-group
        # pruning on a reader's filter) where a filter is likely, not on the polygons and
        # cell names, whose dictionaries cost 0.3 s each.
        with pq.ParquetWriter(
            tmp, schema, compression="zstd", store_schema=False,
            use_dictionary=["h3_cell", "species", "geometry"],
            use_byte_stream_split=["prob"],
            write_statistics=["species", "prob", "in_range"],
        ) as writer:
            # scoring on this thread, encoding and writing on another (shapely, Arrow and
            # zstd release the GIL), at most two chunks waiting: bounded memory
            with ThreadPoolExecutor(1) as pool, tqdm(
                total=len(grid), disable=not progress, unit="cell", desc="range maps"
            ) as bar:
                waiting: deque = deque()
                for part, cell, sp, prob, in_range in chunks:
                    if sp.size:
                        waiting.append(
                            pool.submit(encode_and_write, writer, part, cell, sp, prob, in_range)
                        )
                    bar.update(len(part))
                    while len(waiting) > 2:
                        waiting.popleft().result()
                while waiting:
                    waiting.popleft().result()
            names_of = {3: "Polygon", 6: "MultiPolygon"}
            writer.add_key_value_metadata(
                {
                    "geo": _geo_metadata({names_of[t] for t in state["types"]}, state["bounds"]),
                    "PANDAS_ATTRS": json.dumps(_metadata(attrs)),
                }
            )
    summary = {"cells": len(grid), "species": s, "rows": state["rows"], "path": str(path)}
    if about is not None:
        summary["covariates"] = about
    return summary
