"""Speed of sampling covariate rasters: geoprior.io.rasters against rasterio's own sample.

    python benchmarks/bench_rasters.py [--points 1000000] [--out DIR]

Writes two synthetic global rasters into a temporary folder — a 5-arc-minute EPSG:4326
layer (4320 x 2160 pixels, read whole) and a tiled Equal Earth (EPSG:8857) layer of
8192 x 4096 pixels (33.5 M pixels: read by windows) — and samples ``--points`` random
places uniform over the sphere with :class:`~geoprior.io.rasters.RasterCovariates`
(nearest and bilinear), and a share of them with rasterio's ``DatasetReader.sample``
(nearest, one point at a time, after reprojecting with pyproj: what a hand-written loop
does). Reports seconds per million points and each method's speed as a ratio to
rasterio's sample in the same process; also how fast background places are drawn where
a raster with half its pixels nodata has values (:meth:`RasterCovariates.random_places`).

Writes DIR/bench_rasters.json and DIR/bench_rasters.md (default: benchmarks/results).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from pyproj import Transformer

from geoprior.io.rasters import open_rasters

RASTERIO_POINTS = 20_000  # rasterio's per-point sample is timed on this many


def write_layers(folder: Path) -> dict[str, Path]:
    """The two benchmark rasters: smooth fields with a nodata 'sea'."""
    paths = {}
    w, h = 4320, 2160
    lat = 90 - (np.arange(h) + 0.5) * 180 / h
    lon = -180 + (np.arange(w) + 0.5) * 360 / w
    field = (30 * np.cos(np.radians(lat))[:, None] + 5 * np.sin(np.radians(3 * lon))[None, :])
    field = np.where(np.sin(np.radians(2 * lon))[None, :] * np.cos(np.radians(lat))[:, None] > 0.3, -9999, field)
    paths["geographic"] = folder / "geo.tif"
    with rasterio.open(
        paths["geographic"], "w", driver="GTiff", width=w, height=h, count=1, dtype="float32",
        crs="EPSG:4326", transform=Affine(360 / w, 0, -180, 0, -180 / h, 90), nodata=-9999,
        tiled=True, blockxsize=256, blockysize=256,
    ) as ds:  # fmt: skip
        ds.write(field.astype(np.float32)[None])
    w, h = 8192, 4096
    x0, y0 = 17_243_959.06, 8_392_927.6  # Equal Earth's extent, metres
    px, py = 2 * x0 / w, 2 * y0 / h
    paths["projected"] = folder / "equal_earth.tif"
    with rasterio.open(
        paths["projected"], "w", driver="GTiff", width=w, height=h, count=1, dtype="float32",
        crs="EPSG:8857", transform=Affine(px, 0, -x0, 0, -py, y0), nodata=-9999,
        tiled=True, blockxsize=256, blockysize=256, compress="deflate",
    ) as ds:  # fmt: skip
        for top in range(0, h, 1024):
            rows = np.arange(top, min(h, top + 1024))[:, None]
            cols = np.arange(w)[None, :]
            block = (np.sin(rows / 300.0) + np.cos(cols / 500.0)).astype(np.float32)
            ds.write(block[None], window=rasterio.windows.Window(0, top, w, rows.size))
    return paths


def uniform_places(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return np.degrees(np.arcsin(rng.uniform(-1, 1, n))), rng.uniform(-180, 180, n)


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t, out


def rasterio_sample(path: Path, lat, lon) -> np.ndarray:
    with rasterio.open(path) as ds:
        to = Transformer.from_crs("EPSG:4326", ds.crs.to_wkt(), always_xy=True)
        x, y = to.transform(lon, lat)
        return np.array([v[0] for v in ds.sample(zip(x, y), masked=False)], np.float32)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    lat, lon = uniform_places(args.points)
    per_million = 1e6 / args.points
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_layers(Path(tmp))
        for kind, path in paths.items():
            sub = slice(0, RASTERIO_POINTS)
            t_ref, ref = timed(rasterio_sample, path, lat[sub], lon[sub])
            ref_per_million = t_ref * 1e6 / RASTERIO_POINTS
            for method in ("nearest", "bilinear"):
                rasters = open_rasters([path], method=method)
                rasters.lookup(lat[:10], lon[:10])  # pyproj's transformer built once, as in use
                t, found = timed(rasters.lookup, lat, lon)
                row = {
                    "raster": kind,
                    "method": method,
                    "pixels": rasters.layers[0].width * rasters.layers[0].height,
                    "s_per_million": round(t * per_million, 3),
                    "rasterio_sample_s_per_million": round(ref_per_million, 3),
                    "speedup_vs_rasterio_sample": round(ref_per_million / (t * per_million), 1),
                    "valid_share": round(float(found.valid.mean()), 4),
                }
                if method == "nearest":  # the same pixels as rasterio's sample
                    mine = found.values[sub, 0]
                    ok = found.valid[sub]
                    row["agrees_with_rasterio"] = bool(np.array_equal(mine[ok], ref[ok]))
                results.append(row)
        rasters = open_rasters([paths["geographic"]])
        t, (plat, *_rest) = timed(rasters.random_places, args.points // 4, seed=0)
        drawn = _rest[-1]
        background = {
            "places": int(plat.size),
            "drawn": int(drawn),
            "s_per_million_places": round(t * 1e6 / max(plat.size, 1), 3),
        }
    config = {
        "points": args.points,
        "rasterio_points": RASTERIO_POINTS,
        "python": sys.version.split()[0],
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
        "machine": platform.machine(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_rasters.json").write_text(
        json.dumps({"config": config, "results": results, "background": background}, indent=2)
    )
    lines = [
        f"# Sampling covariate rasters ({args.points:,} random places)",
        "",
        "| raster | pixels | method | s / million places | rasterio sample s / million | speed-up | valid share | same values as rasterio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['raster']} | {r['pixels']:,} | {r['method']} | {r['s_per_million']} | "
            f"{r['rasterio_sample_s_per_million']} | {r['speedup_vs_rasterio_sample']}x | "
            f"{r['valid_share']} | {r.get('agrees_with_rasterio', '')} |"
        )
    lines += [
        "",
        f"Background places where the geographic raster has data: {background['places']:,} "
        f"kept of {background['drawn']:,} drawn, {background['s_per_million_places']} s per "
        "million kept.",
    ]
    (args.out / "bench_rasters.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
