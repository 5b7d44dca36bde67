"""Range maps on H3 cells from any prior, as GeoDataFrames.

:func:`range_map` evaluates a :class:`~geoprior.priors.protocol.Prior` at the centres of H3 cells
(:mod:`geoprior.maps.grid`), thresholds it per species (:mod:`geoprior.maps.thresholds`) and
returns a GeoDataFrame in EPSG:4326 with ``h3_cell, species, prob, in_range`` and the cell
polygons; :func:`monthly_range_maps` does it for each month. ``cells=`` keeps every cell,
the cells in range, or the cells within the prior's training extent. The frame's ``attrs``
say what it is (prior, species, threshold rule and values, date, cells kept, geoprior
version): the writers record them in every file. Files and pictures:
:mod:`geoprior.maps.writers` and :mod:`geoprior.maps.plot`.
"""

from __future__ import annotations

from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd

from .._version import __version__
from ..errors import (
    ClassMismatchError,
    ConfigError,
    DateError,
    EmptyDataError,
    SpeciesNameError,
)
from ..geo import cell_strings, check_res
from ..priors.protocol import predict_columns, scores_columns, uses_date
from ..query import species_indices
from ..validation import parse_dates
from .grid import CellGrid, cell_polygons, dissolve_cells, parse_bbox, region_grid
from .thresholds import RULES, compute_thresholds

__all__ = [
    "CELLS",
    "CRS",
    "range_map",
    "monthly_range_maps",
    "resolve_thresholds",
    "uses_dates",
]

CRS = "EPSG:4326"
#: Year of the date a month stands for (the 15th); the priors use only day of year / month.
MONTH_YEAR = 2021
#: Probabilities computed per predict call (cells x species).
CHUNK_VALUES = 1 << 22
#: Which cells a map keeps: every cell of the grid, the (cell, species) rows in range, or the
#: cells within the prior's training extent (:func:`within_extent`).
CELLS = ("all", "in-range", "extent")


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


def map_date(date, month) -> np.datetime64 | None:
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
    fitted ``by_month``, BirdNET's weekly model): its ``uses_date``, see
    :func:`~geoprior.priors.protocol.uses_date`."""
    return uses_date(prior)


def resolve_thresholds(
    prior, species: Sequence[str], threshold=None, observations=None
) -> np.ndarray:
    """Thresholds (float32, aligned with ``species``) a map uses.

    ``threshold`` is ``None`` (the prior's stored per-species ``thresholds``), a probability
    in [0, 1] for every species, one probability per species, or a rule ``"lpt"``/``"f1"``
    computed from ``observations`` with :func:`~geoprior.maps.thresholds.compute_thresholds`.
    """
    names = list(species)
    return thresholds_for(prior, names, species_indices(names, prior.species), threshold, observations)


def thresholds_for(
    prior, names: list[str], cols: np.ndarray, threshold, observations, progress: bool = False
) -> np.ndarray:
    """:func:`resolve_thresholds` of species already resolved to the prior's columns ``cols``
    (``progress``: a bar on stderr while a rule is computed)."""
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
        values = compute_thresholds(
            prior, observations, threshold, species=names, progress=progress
        )
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


def check_cells(cells: str) -> str:
    """``cells`` as one of :data:`CELLS`, or a ConfigError."""
    if cells not in CELLS:
        raise ConfigError(f"cells must be one of {CELLS}, got {cells!r}")
    return cells


def within_extent(prior, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """True where a place is within the prior's training extent: not ``prior.outside``
    (a :class:`~geoprior.GeoPrior`: within ``far_km`` of a training place). A prior that
    states no extent covers every place.

    >>> import geoprior
    >>> within_extent(geoprior.UniformPrior(["a"]), np.array([10.0]), np.array([20.0]))
    array([ True])
    """
    outside = getattr(prior, "outside", None)
    if outside is None:
        return np.ones(np.size(lat), bool)
    return ~np.asarray(outside(lat, lon), bool)


def keep_cells(prior, grid: CellGrid, cells: str) -> CellGrid:
    """The grid's cells that a map of ``cells="extent"`` keeps (all of them otherwise);
    EmptyDataError when none is within the extent."""
    if cells != "extent":
        return grid
    kept = grid.take(within_extent(prior, grid.lat, grid.lon))
    if len(kept) == 0:
        far = getattr(prior, "far_km", None)
        raise EmptyDataError(
            f"none of the {len(grid):,} cells of the map lies within the prior's training "
            f"extent ({far:.0f} km of a training place); pass cells='all' (CLI: --cells all)"
            if far
            else f"none of the {len(grid):,} cells of the map lies within the prior's extent"
        )
    return kept


def map_grid(res, region, land_only) -> CellGrid:
    """The cells of a map: ``region`` as :func:`~geoprior.maps.grid.parse_bbox` returned it
    (or ``None``); raises EmptyDataError when no cell is left."""
    grid = region_grid(check_res(res), region, land_only)
    if len(grid) == 0:
        where = "the region" if region is not None else "the grid"
        raise EmptyDataError(
            f"{where} has no {'land ' if land_only else ''}cells at resolution {res}"
            + ("; pass land_only=False to keep sea cells" if land_only else "")
        )
    return grid


def progress_bar(total: int, desc: str, enabled: bool, unit: str = "cell"):
    """A tqdm bar on stderr (does nothing unless ``enabled``)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True)


def _predict_cells(
    prior, grid: CellGrid, cols: np.ndarray, when, covariates=None, bar=None
) -> np.ndarray:
    """``(cells, len(cols))`` float32 probabilities, predicted a chunk of cells at a time
    (a prior that scores chosen columns computes only ``cols``); ``covariates`` are the
    cells' own, ``(cells, c)``, for a prior that takes them; ``bar`` (a tqdm bar) advances
    by the cells of each chunk."""
    out = np.empty((len(grid), cols.size), np.float32)
    scores = scores_columns(prior)
    width = cols.size if scores else len(prior.species)
    step = max(1, CHUNK_VALUES // max(1, width))
    for a in range(0, len(grid), step):
        sl = slice(a, a + step)
        cov = None if covariates is None else covariates[sl]
        out[sl] = predict_columns(
            prior, grid.lat[sl], grid.lon[sl], when, cols, covariates=cov, output="presence",
            scores=scores,
        )
        if bar is not None:
            bar.update(out[sl].shape[0])
    return out


# ---------------------------------------------------------------------------- maps
def covariate_inputs(prior, covariates, observations):
    """The rasters a covariate prior is mapped with (``None`` for other priors) and the
    presences for a threshold rule with their covariates sampled from them."""
    from ..io.rasters import attach_covariates, covariates_for

    rasters = covariates_for(prior, covariates)
    if rasters is not None and observations is not None and not observations.covariate_names:
        observations = attach_covariates(
            observations, rasters, names=prior.covariate_names, what="presences"
        )
    return rasters, observations


def cell_inputs(rasters, grid: CellGrid, strict: bool):
    """The cells where every raster has a value, their covariates, and what was left out
    (see :func:`geoprior.io.rasters.cell_covariates`)."""
    from ..io.rasters import cell_covariates

    keep, values, about = cell_covariates(rasters, grid.lat, grid.lon, strict=strict)
    return (grid if keep is None else grid.take(keep)), values, about


def _frame(grid, names, probs, thresholds, dissolve, attrs, in_range_only, polygons=None):
    """The map's GeoDataFrame: one row per cell and species (only those in range with
    ``in_range_only``), species by species, cells sorted; or one dissolved row per species.
    ``polygons`` are the grid's cell polygons when the caller has them already."""
    n, k = probs.shape
    in_range = probs >= thresholds[None, :]
    if dissolve:
        frame = gpd.GeoDataFrame(
            {
                "species": names,
                "threshold": thresholds.astype(np.float64),
                "n_cells": in_range.sum(axis=0).astype(np.int64),
            },
            geometry=[dissolve_cells(grid.cells[in_range[:, j]]) for j in range(k)],
            crs=CRS,
        )
    else:
        if in_range_only:
            sp, cell = np.nonzero(in_range.T)
        else:
            sp, cell = np.repeat(np.arange(k), n), np.tile(np.arange(n), k)
        used, inverse = np.unique(cell, return_inverse=True)
        shapes = polygons[used] if polygons is not None else cell_polygons(grid.cells[used])
        frame = gpd.GeoDataFrame(
            {
                "h3_cell": cell_strings(grid.cells[used])[inverse],
                "species": np.asarray(names, dtype=object)[sp],
                "prob": probs[cell, sp],
                "in_range": in_range[cell, sp],
            },
            geometry=shapes[inverse],
            crs=CRS,
        )
    top = _shortest(probs.max(axis=0)) if n else [None] * k
    frame.attrs.update(
        attrs, thresholds=dict(zip(names, _shortest(thresholds))), max_prob=dict(zip(names, top))
    )
    return frame


def _shortest(values: np.ndarray) -> list[float]:
    """float32 values as the shortest decimals that read back as the same float32 (0.05,
    not 0.05000000074505806)."""
    return [float(str(v)) for v in np.asarray(values, np.float32)]


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
    covariates=None,
    cells: str = "all",
    progress: bool = False,
) -> gpd.GeoDataFrame:
    """A range map of one or more species on H3 cells.

    Args:
        prior: any :class:`~geoprior.priors.protocol.Prior` (a GeoPrior, a baseline, BirdNET, ...).
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
        covariates: for a prior trained with covariates, the rasters to sample at the
            cell centres (paths or a :class:`~geoprior.io.rasters.RasterCovariates`);
            ``None``: the rasters the prior records. The map keeps the cells where every
            raster has a value (``attrs["covariates"]`` counts the others); with
            ``bbox``, cells outside the rasters raise
            :class:`~geoprior.errors.CoverageError`.
        cells: which rows to keep: ``"all"`` (every cell of the grid, for each species),
            ``"in-range"`` (only the rows in range: the smallest file) or ``"extent"`` (the
            cells within the prior's training extent, see :func:`within_extent`; only
            those are predicted). A dissolved map is of the cells in range.
        progress: show progress bars on stderr (tqdm) while thresholds are computed
            (``"lpt"``/``"f1"``) and the cells scored.

    Returns:
        A GeoDataFrame in EPSG:4326 with columns ``h3_cell, species, prob, in_range,
        geometry`` (species by species, cells sorted); ``in_range`` is
        ``prob >= threshold``. ``attrs`` (JSON-compatible; the writers record them in
        every file) holds ``res``, ``date``, ``month``, ``bbox``, ``land_only``,
        ``cells``, ``thresholds`` (per species), ``threshold_rule`` (``"stored"``,
        ``"lpt"``, ``"f1"`` or ``"given"``), ``species``, ``common_names`` (those the
        prior knows), ``prior`` (its class), ``output`` (``"presence"`` when the prior
        has that output), ``far_km`` (its extent, when it states one) and
        ``geoprior_version``.

    Example:
        >>> import geoprior
        >>> prior = geoprior.UniformPrior(["Setophaga virens", "Zenaida macroura"])
        >>> frame = range_map(prior, "Setophaga virens", res=2, month=6, threshold=0.4,
        ...                   bbox=(-75, 40, -70, 45))
        >>> frame[["h3_cell", "species", "prob", "in_range"]]
                   h3_cell           species  prob  in_range
        0  822a17fffffffff  Setophaga virens   0.5      True
        1  822a37fffffffff  Setophaga virens   0.5      True
        2  822b8ffffffffff  Setophaga virens   0.5      True
        >>> frame[frame.in_range].to_file("virens_june.gpkg")  # doctest: +SKIP
    """
    names = _species_list(species)
    when = map_date(date, month)
    check_cells(cells)
    cols = species_indices(names, prior.species)
    rasters, observations = covariate_inputs(prior, covariates, observations)
    thresholds = thresholds_for(prior, names, cols, threshold, observations, progress)
    region = None if bbox is None else parse_bbox(bbox)
    grid = keep_cells(prior, map_grid(res, region, land_only), cells)
    grid, cell_cov, about = cell_inputs(rasters, grid, strict=region is not None)
    with progress_bar(len(grid), "range map", progress) as bar:
        probs = _predict_cells(prior, grid, cols, when, cell_cov, bar)
    kept = "in-range" if dissolve and cells == "all" else cells  # dissolved: its range
    attrs = map_attrs(prior, names, cols, threshold, res, when, month, region, land_only, kept)
    if about is not None:
        attrs["covariates"] = about
    return _frame(grid, names, probs, thresholds, dissolve, attrs, cells == "in-range")


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
    covariates=None,
    cells: str = "all",
    progress: bool = False,
) -> gpd.GeoDataFrame:
    """:func:`range_map` for each month (the 15th), stacked with a ``month`` column.

    The grid, polygons and thresholds are computed once; the thresholds are the same for
    every month. For priors that ignore dates every month is the same map. ``progress``
    shows bars on stderr: the thresholds (a rule), then the cells scored month by month.

    >>> import geoprior
    >>> prior = geoprior.UniformPrior(["Setophaga virens", "Zenaida macroura"])
    >>> frames = monthly_range_maps(prior, "Setophaga virens", res=2, threshold=0.4,
    ...                             bbox=(-75, 40, -70, 45))
    >>> frames.month.unique()
    array([ 1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12])
    """
    names = _species_list(species)
    months = [int(m) for m in months]
    for m in months:
        map_date(None, m)
    if not months:
        raise ConfigError("months is empty")
    check_cells(cells)
    cols = species_indices(names, prior.species)
    rasters, observations = covariate_inputs(prior, covariates, observations)
    thresholds = thresholds_for(prior, names, cols, threshold, observations, progress)
    region = None if bbox is None else parse_bbox(bbox)
    grid = keep_cells(prior, map_grid(res, region, land_only), cells)
    grid, cell_cov, about = cell_inputs(rasters, grid, strict=region is not None)
    # every month draws the same cells, except in range only (few, month by month)
    polygons = None if dissolve or cells == "in-range" else cell_polygons(grid.cells)
    with progress_bar(len(months) * len(grid), "monthly maps", progress) as bar:
        frames = []
        for m in months:
            when = map_date(None, m)
            bar.set_postfix_str(f"month {m}", refresh=False)
            probs = _predict_cells(prior, grid, cols, when, cell_cov, bar)
            kept = "in-range" if dissolve and cells == "all" else cells
            attrs = map_attrs(prior, names, cols, threshold, res, when, m, region, land_only, kept)
            if about is not None:
                attrs["covariates"] = about
            frame = _frame(
                grid, names, probs, thresholds, dissolve, attrs, cells == "in-range", polygons
            )
            frame.insert(0, "month", np.int64(m))
            frames.append(frame)
    out = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=CRS)
    top = {n: max(f.attrs["max_prob"][n] for f in frames) for n in names}
    out.attrs.update(frames[0].attrs, date=None, month=None, months=months, max_prob=top)
    return out


def map_attrs(prior, names, cols, threshold, res, when, month, region, land_only, cells) -> dict:
    """What a map is, JSON-compatible: the writers record it in every file."""
    if threshold is None:
        rule = "stored"
    elif isinstance(threshold, str):
        rule = threshold.lower()
    else:
        rule = "given"
    known = getattr(prior, "common_names", None)
    common = {}
    if known is not None:
        common = {n: str(known[c]) for n, c in zip(names, cols.tolist()) if known[c]}
    far = getattr(prior, "far_km", None)
    return {
        "prior": type(prior).__name__,
        "species": list(names),
        "common_names": common,
        "output": "presence" if "presence" in getattr(prior, "outputs", ()) else None,
        "threshold_rule": rule,
        "res": int(res),
        "date": None if when is None else str(when),
        "month": None if month is None else int(month),
        "bbox": list(region) if isinstance(region, tuple) else None,
        "land_only": bool(land_only),
        "cells": cells,
        "far_km": None if far is None else float(far),
        "geoprior_version": __version__,
    }
