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

RES = 0.1
OUT = Path(__file__).resolve().parent.parent / "geoprior" / "data" / "land_mask.npz"


def topojson_land(path: Path) -> shapely.Geometry:
    topo = json.loads(path.read_text())
    scale, translate = topo["transform"]["scale"], topo["transform"]["translate"]
    arcs = []
    for arc in topo["arcs"]:
        q = np.cumsum(np.asarray(arc, dtype=float), axis=0)
        arcs.append(q * scale + translate)

    def ring(indices):
        parts = [arcs[i] if i >= 0 else arcs[~i][::-1] for i in indices]
        return np.concatenate([parts[0]] + [p[1:] for p in parts[1:]])

    polys = []
    for geom in topo["objects"]["land"]["geometries"]:
        rings = geom["arcs"] if geom["type"] == "MultiPolygon" else [geom["arcs"]]
        for poly in rings:
            polys.append(shapely.Polygon(ring(poly[0]), [ring(h) for h in poly[1:]]))
    return shapely.make_valid(shapely.MultiPolygon(polys))


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
