"""Rebuild geoprior's embedded land mask from Natural Earth 1:50m land (public domain).

    python benchmarks/make_land_mask.py [DATA_DIR]

Decodes the world-atlas TopoJSON in DATA_DIR/naturalearth/land-50m.json (DATA_DIR defaults
to $GEOPRIOR_DATA, then ../shared/data) and rasterises it at 0.1 degree: a cell is land
when its centre is inside a land polygon. Writes geoprior/data/land_mask.npz (bit-packed).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import shapely
import shapely.affinity

RES = 0.1
OUT = Path(__file__).resolve().parent.parent / "geoprior" / "data" / "land_mask.npz"


def _unwrap(ring: np.ndarray) -> np.ndarray:
    """Make longitudes continuous along a ring (no jumps of more than 180 degrees)."""
    lon = ring[:, 0].copy()
    jumps = np.diff(lon)
    lon[1:] -= 360.0 * np.cumsum(np.round(jumps / 360.0))
    return np.column_stack([lon, ring[:, 1]])


def _planar(ring: np.ndarray) -> np.ndarray:
    """A spherical ring as a planar one: unwrapped across the antimeridian; a ring around a
    pole (its longitude drifts by 360 degrees) is closed along that pole."""
    ring = _unwrap(ring)
    drift = ring[-1, 0] - ring[0, 0]
    if abs(drift) > 180:
        pole = -90.0 if ring[:, 1].mean() < 0 else 90.0
        ring = np.vstack([ring, [[ring[-1, 0], pole], [ring[0, 0], pole]], ring[:1]])
    return ring


def topojson_land(path: Path) -> shapely.Geometry:
    """Natural Earth land from a world-atlas TopoJSON as one valid MultiPolygon in
    [-180, 180] x [-90, 90]: rings that cross the antimeridian are unwrapped, cut at +-180
    and shifted back; Antarctica's ring is closed along the south pole."""
    topo = json.loads(path.read_text())
    scale, translate = topo["transform"]["scale"], topo["transform"]["translate"]
    arcs = []
    for arc in topo["arcs"]:
        q = np.cumsum(np.asarray(arc, dtype=float), axis=0)
        arcs.append(q * scale + translate)

    def ring(indices):
        parts = [arcs[i] if i >= 0 else arcs[~i][::-1] for i in indices]
        return np.concatenate([parts[0]] + [p[1:] for p in parts[1:]])

    pieces = []
    for geom in topo["objects"]["land"]["geometries"]:
        rings = geom["arcs"] if geom["type"] == "MultiPolygon" else [geom["arcs"]]
        for poly in rings:
            shell = shapely.Polygon(_planar(ring(poly[0])))
            holes = [shapely.Polygon(_planar(ring(h))) for h in poly[1:]]
            shape = shapely.make_valid(shell)
            for hole in holes:
                shape = shape.difference(shapely.make_valid(hole))
            for shift in (-360.0, 0.0, 360.0):
                moved = shapely.affinity.translate(shape, xoff=shift)
                piece = moved.intersection(shapely.box(-180, -90, 180, 90))
                if not piece.is_empty:
                    pieces.append(piece)
    land = shapely.union_all(pieces)
    return land if land.geom_type == "MultiPolygon" else shapely.MultiPolygon(
        [g for g in getattr(land, "geoms", [land]) if g.geom_type == "Polygon"]
    )


def main(argv: list[str]) -> None:
    data = Path(argv[0] if argv else os.environ.get("GEOPRIOR_DATA", "../shared/data"))
    src = data / "naturalearth" / "land-50m.json"
    if not src.exists():
        sys.exit(
            f"missing {src}: Natural Earth land via the world-atlas npm package (land-50m.json)"
        )
    land = topojson_land(src)
    shapely.prepare(land)
    lats = 90 - RES * (np.arange(round(180 / RES)) + 0.5)
    lons = -180 + RES * (np.arange(round(360 / RES)) + 0.5)
    mask = np.zeros((lats.size, lons.size), bool)
    for i, lat in enumerate(lats):
        mask[i] = shapely.contains_xy(land, lons, np.full(lons.size, lat))
    np.savez_compressed(OUT, bits=np.packbits(mask), shape=np.array(mask.shape), res=np.array(RES))
    print(f"land fraction of cells {mask.mean():.3f}, wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])
