"""H3 grids for range maps: which cells, where their centres are, and their polygons.

A :class:`CellGrid` holds int64 H3 cells with their centres. :func:`cell_grid` builds the
grid of a whole resolution (0..5, about 2 million cells at 5) or of the cells whose centres
lie in a box or polygon (any resolution, up to :data:`MAX_CELLS` cells), optionally only the
cells that touch land. :func:`cell_polygons` turns cells into shapely polygons that are
valid in EPSG:4326: cells crossing the antimeridian are split at +-180 degrees into a
MultiPolygon, and the two cells that contain a pole reach up to it.

Cells are int64 arrays, as everywhere in the library (see :mod:`geoprior.geo`, the one module
that calls ``h3``); :func:`cell_strings` gives the usual hexadecimal strings.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import chain
from typing import NamedTuple

import numpy as np
import shapely

from ..errors import ConfigError, CoordinateError
from ..geo import (
    KM_PER_DEGREE,
    all_cells,
    cell_boundaries,
    cell_centres,
    cell_resolutions,
    cell_strings,
    cells_in_rings,
    cells_outline,
    check_res,
    edge_km,
    num_cells,
    pole_cells,
)
from ..validation import check_lat_lon
from .land import land_at

__all__ = [
    "dissolve_cells",
    "CellGrid",
    "MAX_CELLS",
    "MAX_GLOBAL_RES",
    "parse_bbox",
    "cell_grid",
    "region_grid",
    "cell_centres",
    "cell_polygons",
    "cell_strings",
    "land_touching",
]

#: The finest resolution of a global grid (2,016,842 cells).
MAX_GLOBAL_RES = 5
#: The most cells a box or polygon may hold (about a global resolution-5 grid).
MAX_CELLS = 2_100_000
#: Land test: a cell is land when its centre or one of six points at this fraction of the
#: mean edge length from its centre falls on land (catches coastal cells whose centre is at sea).
_LAND_PROBE = 0.75


class CellGrid(NamedTuple):
    """H3 cells (int64) and their centres in degrees."""

    cells: np.ndarray
    lat: np.ndarray
    lon: np.ndarray

    def __len__(self) -> int:
        return int(self.cells.size)

    def take(self, keep) -> CellGrid:
        return CellGrid(self.cells[keep], self.lat[keep], self.lon[keep])


def parse_bbox(bbox) -> tuple[float, float, float, float] | shapely.Geometry:
    """Check a region: ``(west, south, east, north)`` degrees, a ``"W,S,E,N"`` string or a
    shapely (Multi)Polygon in EPSG:4326. A box with ``west > east`` crosses the antimeridian.

    >>> parse_bbox("-80,35,-60,50")
    (-80.0, 35.0, -60.0, 50.0)
    """
    if isinstance(bbox, shapely.Geometry):
        if shapely.get_type_id(bbox) not in (3, 6) or bbox.is_empty:
            raise ConfigError(f"a region must be a non-empty (Multi)Polygon, got {bbox.geom_type}")
        w, s, e, n = bbox.bounds
        if w < -180 or e > 180 or s < -90 or n > 90:
            raise CoordinateError(
                f"region bounds {bbox.bounds} are outside [-180, 180] x [-90, 90] (EPSG:4326)"
            )
        return bbox
    parts = bbox.split(",") if isinstance(bbox, str) else bbox
    try:
        w, s, e, n = (float(v) for v in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"bbox must be west,south,east,north (4 numbers), got {bbox!r}") from None
    if not all(np.isfinite(v) for v in (w, s, e, n)):
        raise CoordinateError(f"bbox values must be finite, got {(w, s, e, n)}")
    if not (-180 <= w <= 180 and -180 <= e <= 180):
        raise CoordinateError(f"bbox longitudes must be in [-180, 180], got west={w}, east={e}")
    if not (-90 <= s < n <= 90):
        raise CoordinateError(f"bbox needs -90 <= south < north <= 90, got south={s}, north={n}")
    if w == e:
        raise CoordinateError(f"bbox west and east are both {w}: the box is empty")
    return (w, s, e, n)


@lru_cache(maxsize=2)
def _global(res: int) -> CellGrid:
    cells = all_cells(res)
    return CellGrid(cells, *cell_centres(cells))


def _box_fraction(w: float, s: float, e: float, n: float) -> float:
    """Fraction of the sphere's area inside a lat/lon box."""
    width = (e - w) % 360 or 360.0
    return width / 360.0 * (np.sin(np.radians(n)) - np.sin(np.radians(s))) / 2.0


def _in_region(grid: CellGrid, region) -> np.ndarray:
    if isinstance(region, shapely.Geometry):
        return shapely.contains_xy(region, grid.lon, grid.lat)
    w, s, e, n = region
    inside_lat = (grid.lat >= s) & (grid.lat <= n)
    if w < e:
        return inside_lat & (grid.lon >= w) & (grid.lon <= e)
    return inside_lat & ((grid.lon >= w) | (grid.lon <= e))


def _strips(w: float, s: float, e: float, n: float) -> list[list[tuple[float, float]]]:
    """A box as ``(lat, lon)`` rings at most 60 degrees wide, edges densified to 1 degree (h3 joins
    vertices by great circles, which would bow a long parallel toward the pole)."""
    east = e if w < e else e + 360.0
    edges = np.linspace(w, east, int(np.ceil((east - w) / 60.0)) + 1)
    out = []
    for a, b in zip(edges[:-1], edges[1:]):
        lons = np.linspace(a, b, int(np.ceil(b - a)) + 1)
        lats = np.linspace(s, n, int(np.ceil(n - s)) + 1)
        ring = (
            [(s, x) for x in lons]
            + [(y, b) for y in lats[1:]]
            + [(n, x) for x in lons[::-1][1:]]
            + [(y, a) for y in lats[::-1][1:-1]]
        )
        out.append([(y, (x + 180.0) % 360.0 - 180.0) for y, x in ring])
    return out


def cell_grid(res: int = 4, *, bbox=None, land_only: bool = False) -> CellGrid:
    """The H3 cells at resolution ``res``: all of them, or those whose centre is in ``bbox``.

    Args:
        res: H3 resolution; without ``bbox`` at most :data:`MAX_GLOBAL_RES`.
        bbox: ``(west, south, east, north)`` degrees or a shapely (Multi)Polygon (see
            :func:`parse_bbox`); cells whose centre lies inside are kept.
        land_only: keep only cells that touch land (:func:`land_touching`).

    Returns:
        A :class:`CellGrid`, cells sorted.

    Raises:
        ConfigError: a global grid finer than resolution 5, or a region of more than
            :data:`MAX_CELLS` cells.

    >>> len(cell_grid(0))
    122
    """
    return region_grid(check_res(res), None if bbox is None else parse_bbox(bbox), land_only)


def region_grid(res: int, region, land_only: bool) -> CellGrid:
    """:func:`cell_grid` of a checked resolution and a region :func:`parse_bbox` returned
    (or ``None``: the whole globe); the cells' centres are not checked again."""
    if region is None:
        if res > MAX_GLOBAL_RES:
            raise ConfigError(
                f"a global grid at resolution {res} has {num_cells(res):,} cells; global "
                f"grids go up to resolution {MAX_GLOBAL_RES}: pass a bbox or polygon for finer ones"
            )
        grid = _global(res)
    else:
        box = region.bounds if isinstance(region, shapely.Geometry) else region
        expected = _box_fraction(*box) * num_cells(res)
        if expected > MAX_CELLS:
            raise ConfigError(
                f"the region holds about {expected:,.0f} cells at resolution {res}; the limit is "
                f"{MAX_CELLS:,}: use a smaller region or a coarser resolution"
            )
        if res <= MAX_GLOBAL_RES:
            grid = _global(res)
        else:
            cells = cells_in_rings(_strips(*box), res)
            grid = CellGrid(cells, *cell_centres(cells))
        grid = grid.take(_in_region(grid, region))
    if land_only:
        grid = grid.take(_land_touching(grid.lat, grid.lon, res))
    return grid


def land_touching(lat: np.ndarray, lon: np.ndarray, res: int) -> np.ndarray:
    """True for cells (given by their centres) that touch land, at resolution ``res``.

    A cell touches land when its centre, or one of six points 3/4 of the mean edge length
    away from it, is on land (:func:`geoprior.maps.land.is_land`, Natural Earth 1:50m at 0.1
    degree), so coastal cells whose centre is at sea are kept.

    >>> land_touching(np.array([40.0, 30.0]), np.array([-100.0, -40.0]), 4).tolist()
    [True, False]
    """
    lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
    check_lat_lon(lat, lon)
    return _land_touching(lat, lon, res)


def _land_touching(lat: np.ndarray, lon: np.ndarray, res: int) -> np.ndarray:
    """:func:`land_touching` of valid centres (a grid's own: not checked again)."""
    land = land_at(lat, lon)
    dist = _LAND_PROBE * edge_km(res) / KM_PER_DEGREE
    coslat = np.maximum(np.cos(np.radians(lat)), 1e-6)
    for angle in np.radians(np.arange(0, 360, 60)):
        plat = np.clip(lat + dist * np.cos(angle), -90.0, 90.0)
        plon = (lon + dist * np.sin(angle) / coslat + 180.0) % 360.0 - 180.0
        land |= land_at(plat, plon)
    return land


def cell_polygons(cells: np.ndarray) -> np.ndarray:
    """Shapely polygons (lon, lat; EPSG:4326) of int64 H3 cells, all ``is_valid``.

    Cells that cross the antimeridian become a MultiPolygon split at +-180 degrees; the
    cell holding a pole becomes one polygon that reaches the pole along the +-180 edges.

    >>> cell_polygons(cell_grid(0).cells)[0].is_valid
    True
    """
    cells = np.asarray(cells, np.int64)
    out = np.empty(cells.size, dtype=object)
    if cells.size == 0:
        return out
    boundaries = cell_boundaries(cells)
    sizes = np.fromiter(map(len, boundaries), np.int64, count=len(boundaries))
    flat = chain.from_iterable(chain.from_iterable(boundaries))
    coords = np.fromiter(flat, np.float64, count=2 * int(sizes.sum())).reshape(-1, 2)[:, ::-1]
    owner = np.repeat(np.arange(cells.size), sizes)
    high = np.full(cells.size, -np.inf)
    np.maximum.at(high, owner, coords[:, 0])
    low = np.full(cells.size, np.inf)
    np.minimum.at(low, owner, coords[:, 0])
    crossing = high - low > 180.0
    plain = ~crossing[owner]
    # a ring needs its first point repeated at the end
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    keep = np.flatnonzero(~crossing)
    closed = np.concatenate([coords[plain], coords[first[keep]]])
    index = np.searchsorted(keep, np.concatenate([owner[plain], keep]))
    order = np.argsort(index, kind="stable")
    out[keep] = shapely.polygons(shapely.linearrings(closed[order], indices=index[order]))
    poles = set()
    for res in cell_resolutions(cells[crossing]):
        poles.update(pole_cells(res))
    for i in np.flatnonzero(crossing):
        ring = np.asarray(boundaries[i])[:, ::-1]
        if int(cells[i]) in poles:
            out[i] = _polar_polygon(ring)
        else:
            out[i] = _split_antimeridian(ring)
    return out


def dissolve_cells(cells: np.ndarray) -> shapely.MultiPolygon:
    """The union of int64 H3 cells as one valid MultiPolygon in EPSG:4326.

    The outline is h3's own (``h3.cells_to_h3shape``: cells joined along their shared
    edges, so no slivers where cells meet across an icosahedron edge, in milliseconds),
    drawn on the plane as :func:`cell_polygons` draws single cells: parts crossing the
    antimeridian are split at +-180 degrees. A region whose outline goes right round a
    pole (a polar cap, a band round the globe, most of the Earth) has no such planar
    outline: it is the union of its cells' polygons instead, each grown by 1e-7 degrees
    (1 cm) before and shrunk after, which closes the hairline gaps that cells meeting
    across an icosahedron edge leave in lon/lat. Its area is the sum of the cells'
    polygon areas (to 1e-9 from h3's outline, 1e-6 from the union).

    >>> dissolve_cells(cell_grid(0).cells).area  # every cell: the whole lon/lat rectangle
    64800.0
    """
    outline = cells_outline(cells)
    rings = [[_continuous(ring) for ring in part] for part in outline]
    if any(abs(r[-1, 0] - r[0, 0]) > 180.0 for part in rings for r in part):
        grown = shapely.buffer(cell_polygons(cells), _GAP, join_style="mitre")
        merged = shapely.make_valid(
            shapely.buffer(shapely.union_all(grown), -_GAP, join_style="mitre")
        )
    else:
        shapes = []
        for shell, *holes in rings:
            shape = _on_world(shapely.Polygon(shell))
            if holes:
                shape = shapely.difference(
                    shape, shapely.union_all([_on_world(shapely.Polygon(h)) for h in holes])
                )
            shapes.append(shape)
        merged = shapely.union_all(shapes)  # the pieces of one part meet only along +-180
    return shapely.MultiPolygon(
        [g for g in getattr(merged, "geoms", [merged]) if g.geom_type == "Polygon"]
    )


#: Growth (degrees) that closes the hairline gaps of a union of cell polygons.
_GAP = 1e-7
_WORLD = shapely.box(-180.0, -90.0, 180.0, 90.0)


def _continuous(ring: np.ndarray) -> np.ndarray:
    """A ring's ``(lon, lat)`` with longitudes made continuous (each edge the short way
    round, as :func:`cell_polygons` draws a cell): a ring round a pole ends 360 degrees
    from where it starts."""
    lon = ring[:, 0].copy()
    lon[1:] -= 360.0 * np.cumsum(np.round(np.diff(lon) / 360.0))
    return np.column_stack([lon, ring[:, 1]])


def _on_world(shape: shapely.Polygon) -> shapely.Geometry:
    """A polygon of continuous longitudes (any range) cut into [-180, 180] x [-90, 90]."""
    pieces = [
        shapely.intersection(shapely.transform(shape, lambda xy, d=shift: xy + [d, 0.0]), _WORLD)
        for shift in (-360.0, 0.0, 360.0)
    ]
    return shapely.union_all(pieces)


def _split_antimeridian(ring: np.ndarray) -> shapely.Geometry:
    shifted = ring.copy()
    shifted[shifted[:, 0] < 0, 0] += 360.0
    poly = shapely.Polygon(shifted)
    west = shapely.intersection(poly, shapely.box(180.0, -90.0, 360.0, 90.0))
    east = shapely.intersection(poly, shapely.box(0.0, -90.0, 180.0, 90.0))
    west = shapely.transform(west, lambda xy: xy - [360.0, 0.0])
    parts = [g for g in (west, east) if not g.is_empty]
    return shapely.MultiPolygon([p for g in parts for p in getattr(g, "geoms", [g])])


def _polar_polygon(ring: np.ndarray) -> shapely.Polygon:
    """The cell around a pole: its vertices by longitude, closed along +-180 and the pole."""
    ring = ring[np.argsort(ring[:, 0])]
    (lon0, lat0), (lon1, lat1) = ring[-1], ring[0]
    gap = lon1 + 360.0 - lon0
    cut = lat0 + (lat1 - lat0) * (180.0 - lon0) / gap if gap > 0 else lat0
    pole = 90.0 if ring[:, 1].mean() > 0 else -90.0
    coords = [(-180.0, cut), *map(tuple, ring), (180.0, cut), (180.0, pole), (-180.0, pole)]
    return shapely.Polygon(coords)
