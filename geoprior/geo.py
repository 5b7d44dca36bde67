"""Geography every stage shares: the Earth's radius, unit-sphere points and H3 cells.

One copy of each: the radius (:data:`EARTH_RADIUS_KM`) and :data:`KM_PER_DEGREE`,
:func:`unit_xyz` and :func:`haversine_km` (numpy; the JAX encoder is
:func:`geoprior.encoding.xyz`), one H3 resolution check (:func:`check_res`) and the H3
cell helpers.

H3 cells are int64 arrays everywhere inside the library (H3 indexes fit in 63 bits; much
faster than strings for millions of cells); this is the one module that calls ``h3``
(its ``numpy_int`` API), and :func:`cell_strings` gives the usual hexadecimal strings at
the edges (files, data frames).
"""

from __future__ import annotations

from functools import lru_cache

import h3
import numpy as np
from h3.api import numpy_int as _h3

from .errors import ConfigError

__all__ = [
    "EARTH_RADIUS_KM",
    "KM_PER_DEGREE",
    "unit_xyz",
    "haversine_km",
    "check_res",
    "latlng_to_cells",
    "cell_parents",
    "cell_neighbours",
    "cell_centres",
    "cell_strings",
    "cell_boundaries",
    "cell_resolutions",
    "all_cells",
    "cells_in_rings",
    "num_cells",
    "edge_km",
    "pole_cells",
    "cells_outline",
    "cells_from_strings",
]

#: Mean Earth radius (IUGG), km.
EARTH_RADIUS_KM = 6371.0088
#: Great-circle km per degree of arc on that sphere.
KM_PER_DEGREE = np.pi * EARTH_RADIUS_KM / 180.0


# ---------------------------------------------------------------------------- the sphere
def unit_xyz(lat, lon) -> np.ndarray:
    """Unit-sphere points ``(n, 3)`` of degrees (numpy; :func:`~geoprior.encoding.xyz` is
    the JAX encoder).

    >>> unit_xyz([90.0], [0.0]).round(3).tolist()
    [[0.0, 0.0, 1.0]]
    """
    la, lo = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km (numpy, broadcasting).

    >>> round(float(haversine_km(0.0, 0.0, 0.0, 1.0)), 2)
    111.2
    """
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2) - np.radians(lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


# ---------------------------------------------------------------------------- H3 cells
def check_res(res, *, note: str = "") -> int:
    """The H3 resolution ``res`` as an int, or ConfigError unless it is an integer in 0..15.

    ``note`` is added to the message after the range (e.g. ``" (or None for automatic)"``).

    >>> check_res(4)
    4
    """
    if isinstance(res, bool) or not isinstance(res, (int, np.integer)) or not 0 <= res <= 15:
        raise ConfigError(f"H3 resolution must be an integer in 0..15{note}, got {res!r}")
    return int(res)


def latlng_to_cells(lat, lon, res: int) -> np.ndarray:
    """int64 H3 cell of each point at resolution ``res`` (degrees in; not validated).

    >>> cell_strings(latlng_to_cells([44.0], [-71.3], 5)).tolist()
    ['852a368bfffffff']
    """
    lat, lon = np.asarray(lat, np.float64).reshape(-1), np.asarray(lon, np.float64).reshape(-1)
    return np.fromiter(
        (_h3.latlng_to_cell(a, b, res) for a, b in zip(lat.tolist(), lon.tolist(), strict=True)),
        dtype=np.int64,
        count=lat.size,
    )


def cell_parents(cells: np.ndarray, res: int) -> np.ndarray:
    """int64 parent at resolution ``res`` of each int64 cell (each distinct cell looked up once)."""
    uniq, inverse = np.unique(cells, return_inverse=True)
    parents = np.fromiter(
        (_h3.cell_to_parent(c, res) for c in uniq.tolist()), dtype=np.int64, count=uniq.size
    )
    return parents[inverse]


def cell_neighbours(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cells around each cell (``grid_disk`` k=1 without the cell itself), flattened,
    with the index of the cell each belongs to (both int64)."""
    neighbours, owner = [], []
    for i, c in enumerate(cells.tolist()):
        ring = [n for n in _h3.grid_disk(c, 1).tolist() if n != c]
        neighbours.extend(ring)
        owner.extend([i] * len(ring))
    return np.asarray(neighbours, dtype=np.int64), np.asarray(owner, dtype=np.int64)


def cell_centres(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes and longitudes (float64 degrees) of the centres of int64 H3 cells."""
    ll = np.array([_h3.cell_to_latlng(c) for c in np.asarray(cells).tolist()], dtype=np.float64)
    ll = ll.reshape(-1, 2)
    return ll[:, 0], ll[:, 1]


def cell_strings(cells: np.ndarray) -> np.ndarray:
    """Hexadecimal H3 strings (object array) of int64 cells."""
    return np.array([f"{int(c):x}" for c in np.asarray(cells, np.uint64).tolist()], dtype=object)


def cell_boundaries(cells: np.ndarray) -> list[tuple[tuple[float, float], ...]]:
    """Each cell's boundary as ``((lat, lon), ...)`` degrees, not closed."""
    return [_h3.cell_to_boundary(c) for c in np.asarray(cells).tolist()]


def cell_resolutions(cells: np.ndarray) -> set[int]:
    """The distinct resolutions of int64 cells."""
    return {int(_h3.get_resolution(c)) for c in np.asarray(cells).tolist()}


def all_cells(res: int) -> np.ndarray:
    """Every cell at resolution ``res``, int64, sorted."""
    cells = np.concatenate([_h3.cell_to_children(c, res) for c in _h3.get_res0_cells()])
    return np.sort(cells.astype(np.int64))


def cells_in_rings(rings, res: int) -> np.ndarray:
    """int64 cells (sorted, distinct) that overlap any of the polygons ``rings``, each a
    list of ``(lat, lon)`` vertices joined by great circles."""
    found = [
        _h3.h3shape_to_cells_experimental(h3.LatLngPoly(ring), res, contain="overlap")
        for ring in rings
    ]
    return np.unique(np.concatenate(found).astype(np.int64))


def num_cells(res: int) -> int:
    """How many cells resolution ``res`` has."""
    return int(_h3.get_num_cells(res))


def edge_km(res: int) -> float:
    """Mean hexagon edge length (km) at resolution ``res``."""
    return float(_h3.average_hexagon_edge_length(res, "km"))


@lru_cache(maxsize=16)
def pole_cells(res: int) -> tuple[int, int]:
    """The cells holding the north and the south pole at resolution ``res``."""
    return int(_h3.latlng_to_cell(90.0, 0.0, res)), int(_h3.latlng_to_cell(-90.0, 0.0, res))


def cells_outline(cells: np.ndarray) -> list[list[np.ndarray]]:
    """The outline of a set of int64 cells (``h3.cells_to_h3shape``: exact, cells joined
    along their shared edges): one ``[shell, *holes]`` list per connected part, each ring
    a closed ``(n, 2)`` array of ``(lon, lat)`` degrees, shells counter-clockwise and holes
    clockwise, longitudes as h3 gives them (a ring crossing the antimeridian jumps)."""
    cells = np.asarray(cells, np.int64)
    if cells.size == 0:
        return []
    shape = _h3.cells_to_h3shape(cells.astype(np.uint64), tight=True).__geo_interface__
    polygons = shape["coordinates"] if shape["type"] == "MultiPolygon" else [shape["coordinates"]]
    return [[np.asarray(ring, np.float64) for ring in polygon] for polygon in polygons]


def cells_from_strings(strings) -> np.ndarray:
    """int64 cells of hexadecimal H3 strings (the inverse of :func:`cell_strings`)."""
    return np.fromiter((int(s, 16) for s in strings), np.int64)
