"""The embedded land mask: Natural Earth 1:50m land rasterised at 0.1 degree (public domain).

Used to draw background places on land and to drop ocean cells from range maps.
Rebuilt by ``benchmarks/make_land_mask.py``.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np

from ..validation import check_lat_lon

__all__ = ["is_land", "land_at", "land_cells"]


@lru_cache(maxsize=1)
def _mask() -> tuple[np.ndarray, float]:
    with resources.as_file(resources.files("geoprior") / "data" / "land_mask.npz") as path:
        with np.load(path, allow_pickle=False) as z:
            shape = tuple(int(v) for v in z["shape"])
            mask = np.unpackbits(z["bits"])[: shape[0] * shape[1]].reshape(shape).astype(bool)
            return mask, float(z["res"])


def _rows_cols(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mask, res = _mask()
    r = np.clip(((90.0 - lat) / res).astype(int), 0, mask.shape[0] - 1)
    c = np.clip(((lon + 180.0) / res).astype(int), 0, mask.shape[1] - 1)
    return r, c


def is_land(lat, lon) -> np.ndarray:
    """True where the 0.1-degree cell containing ``(lat, lon)`` is mostly land.

    >>> is_land([40.0, 30.0], [-100.0, -40.0]).tolist()
    [True, False]
    """
    lat, lon = check_lat_lon(lat, lon)
    return land_at(lat, lon)


def land_at(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """:func:`is_land` of float arrays already known to be valid degrees (not checked again:
    for points the library made itself, such as cell centres)."""
    mask, _ = _mask()
    r, c = _rows_cols(lat, lon)
    return mask[r, c]


def land_cells(
    west: float = -180.0, south: float = -90.0, east: float = 180.0, north: float = 90.0
):
    """Land cells inside a box: ``(south_edges, west_edges, res, weights)``.

    ``weights`` are proportional to cell area (cos latitude) and sum to 1; a box with
    ``west > east`` crosses the antimeridian. Returns empty arrays when the box has no land.
    """
    mask, res = _mask()
    rows, cols = np.nonzero(mask)
    south_edge = 90.0 - res * (rows + 1)
    west_edge = -180.0 + res * cols
    centre_lat, centre_lon = south_edge + res / 2, west_edge + res / 2
    inside_lat = (centre_lat >= south) & (centre_lat <= north)
    if west <= east:
        inside_lon = (centre_lon >= west) & (centre_lon <= east)
    else:
        inside_lon = (centre_lon >= west) | (centre_lon <= east)
    keep = inside_lat & inside_lon
    w = np.cos(np.radians(centre_lat[keep]))
    total = w.sum()
    return south_edge[keep], west_edge[keep], res, (w / total if total > 0 else w)
