"""Rebuild the land outline drawn under range-map pictures, from Natural Earth 1:110m land.

    python benchmarks/make_land_outline.py [DATA_DIR]

Natural Earth is public domain (naturalearthdata.com); the TopoJSON comes from the
world-atlas npm package. Decodes DATA_DIR/naturalearth/land-110m.json (DATA_DIR defaults to
$GEOPRIOR_DATA, then ../shared/data) with ``topojson_land`` of make_land_mask.py, rounds the
coordinates to 0.01 degree and writes geoprior/data/land_110m.wkb (a MultiPolygon, WKB).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import shapely
from make_land_mask import topojson_land

OUT = Path(__file__).resolve().parent.parent / "geoprior" / "data" / "land_110m.wkb"


def main(argv: list[str]) -> None:
    data = Path(argv[0] if argv else os.environ.get("GEOPRIOR_DATA", "../shared/data"))
    src = data / "naturalearth" / "land-110m.json"
    if not src.exists():
        sys.exit(
            f"missing {src}: Natural Earth land via the world-atlas npm package (land-110m.json)"
        )
    land = shapely.make_valid(shapely.set_precision(topojson_land(src), 0.01))
    polygons = [g for g in getattr(land, "geoms", [land]) if g.geom_type == "Polygon"]
    OUT.write_bytes(shapely.to_wkb(shapely.MultiPolygon(polygons)))
    print(f"{len(polygons)} polygons, wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])
