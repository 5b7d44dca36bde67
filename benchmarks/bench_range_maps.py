"""Speed and memory of range maps: every resolution-4 land cell for many species; and the
size of the files ``geoprior range-map`` writes.

    python benchmarks/bench_range_maps.py [--species 1000 10000] [--res 4] [--out DIR]
    python benchmarks/bench_range_maps.py --sizes [--prior neon_bird.prior] [--out DIR]

For each species count, builds two priors on the same synthetic presences — a GeoPrior
(default network, a few training steps: its speed does not depend on its weights) and a
CountGridPrior (res 3) — and streams the range maps of *all* species on every land cell to
GeoParquet with :func:`geoprior.maps.write_all_species` (in-range cells only, each
species' threshold set so that about 0.1% of cells are in range). Reports
``cells x species / s``, each method's speed as a ratio to the GeoPrior's in the same
process, and peak memory: the tracemalloc peak of Python/numpy allocations during the run
(JAX's XLA buffers are not traced) and the process's peak RSS after it (monotonic over the
whole process), beside the size a dense ``cells x species`` float32 array would need.

Writes DIR/bench_range_maps.json and DIR/bench_range_maps.md (default: benchmarks/results).

``--sizes`` maps two species of the NEON bird sample (Setophaga virens and Junco hyemalis,
15 June, resolution 4) with the default GeoPrior (``--prior`` loads one trained by
``geoprior train sample:neon_bird``; without it one is trained, ``TrainConfig()``) and writes
each format (GeoJSON, GeoPackage, GeoParquet, CSV) for each ``cells`` choice (in-range, the
default; extent; all), plus twelve monthly maps of one species to GeoParquet, with
:func:`geoprior.maps.write_range_map`; reports bytes and rows of each file
(DIR/range_map_sizes.{json,md}).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from geoprior import CountGridPrior, Observations, TrainConfig, load_prior, train_prior
from geoprior.maps import monthly_range_maps, range_map, write_all_species, write_range_map
from geoprior.maps.grid import cell_grid
from geoprior.priors.protocol import predict_columns

IN_RANGE_SHARE = 0.001


def synthetic_observations(n_species: int, per_species: int = 3, seed: int = 0) -> Observations:
    rng = np.random.default_rng(seed)
    n = n_species * per_species
    names = np.array([f"Species {i:05d}" for i in range(n_species)], dtype=object)
    return Observations.from_arrays(
        rng.uniform(-55, 70, n), rng.uniform(-180, 180, n), names[np.arange(n) % n_species]
    )


def thresholds_for_share(prior, grid, share: float, seed: int = 0) -> np.ndarray:
    """Per-species thresholds leaving about ``share`` of cells in range (from a sample)."""
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(grid), size=min(len(grid), 4000), replace=False)
    probs = predict_columns(
        prior, grid.lat[pick], grid.lon[pick], None, np.arange(len(prior.species)), output="presence"
    )
    return np.quantile(probs, 1.0 - share, axis=0).astype(np.float32)


def run_one(prior, res: int, thresholds: np.ndarray, workdir: Path) -> dict:
    tracemalloc.start()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    summary = write_all_species(
        prior, workdir / "all.parquet", res=res, threshold=thresholds, overwrite=True
    )
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    values = summary["cells"] * summary["species"]
    return {
        "seconds": seconds,
        "cells": summary["cells"],
        "species": summary["species"],
        "rows_written": summary["rows"],
        "file_mb": (workdir / "all.parquet").stat().st_size / 2**20,
        "cells_x_species_per_s": values / seconds,
        "tracemalloc_peak_mb": peak / 2**20,
        "max_rss_mb_after": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "dense_array_mb": values * 4 / 2**20,
    }


SIZE_SPECIES = ("Setophaga virens", "Junco hyemalis")
SIZE_FORMATS = (".geojson", ".gpkg", ".parquet", ".csv")


def file_sizes(prior, out: Path, res: int = 4, month: int = 6) -> None:
    """Bytes and rows of each format and ``cells`` choice (see the module docstring)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for cells in ("in-range", "extent", "all"):
            frame = range_map(prior, list(SIZE_SPECIES), res=res, month=month, cells=cells)
            for suffix in SIZE_FORMATS:
                path = write_range_map(frame, Path(tmp) / f"two_{cells}{suffix}")
                rows.append(
                    {
                        "map": f"{len(SIZE_SPECIES)} species, month {month}",
                        "cells": cells,
                        "format": suffix,
                        "rows": len(frame),
                        "in_range": int(frame["in_range"].sum()),
                        "bytes": path.stat().st_size,
                    }
                )
                print(rows[-1], file=sys.stderr)
        for cells in ("in-range", "all"):
            frame = monthly_range_maps(prior, SIZE_SPECIES[0], res=res, cells=cells)
            path = write_range_map(frame, Path(tmp) / f"monthly_{cells}.parquet")
            rows.append(
                {
                    "map": f"{SIZE_SPECIES[0]}, 12 months",
                    "cells": cells,
                    "format": ".parquet",
                    "rows": len(frame),
                    "in_range": int(frame["in_range"].sum()),
                    "bytes": path.stat().st_size,
                }
            )
            print(rows[-1], file=sys.stderr)
    config = {"species": SIZE_SPECIES, "res": res, "month": month, "prior": repr(prior)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "range_map_sizes.json").write_text(
        json.dumps({"config": config, "results": rows}, indent=2)
    )
    lines = [
        f"Files written by `geoprior range-map` at resolution {res} ({prior!r}).",
        "",
        "| map | cells | format | rows | in range | size (MB) |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['map']} | {r['cells']} | {r['format']} | {r['rows']:,} | {r['in_range']:,} | "
            f"{r['bytes'] / 1e6:.2f} |"
        )
    (out / "range_map_sizes.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--species", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--res", type=int, default=4)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--sizes", action="store_true", help="file sizes of range-map outputs")
    parser.add_argument("--prior", type=Path, default=None, help="--sizes: a NEON bird prior")
    args = parser.parse_args(argv)
    if args.sizes:
        if args.prior is not None:
            prior = load_prior(args.prior)
        else:
            from geoprior.io.samples import load_sample

            prior = train_prior(load_sample("neon_bird"), TrainConfig(), progress=False)
        file_sizes(prior, args.out, res=args.res)
        return
    grid = cell_grid(args.res, land_only=True)
    config = {
        "res": args.res,
        "land_cells": len(grid),
        "species": args.species,
        "in_range_share": IN_RANGE_SHARE,
        "train_steps": args.train_steps,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
    }
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for n_species in args.species:
            obs = synthetic_observations(n_species)
            geo = train_prior(
                obs,
                TrainConfig(steps=args.train_steps, checkpoint_every=args.train_steps),
                progress=False,
            )
            priors = {"GeoPrior": geo, "CountGridPrior": CountGridPrior.fit(obs, res=3)}
            rows = {}
            for name, prior in priors.items():
                thresholds = thresholds_for_share(prior, grid, IN_RANGE_SHARE)
                rows[name] = run_one(prior, args.res, thresholds, Path(tmp))
                print(f"{n_species} species, {name}: {rows[name]}", file=sys.stderr)
            base = rows["GeoPrior"]["seconds"]
            for name, row in rows.items():
                results.append(
                    {
                        "prior": name,
                        "n_species": n_species,
                        "speed_vs_geoprior": base / row["seconds"],
                        **row,
                    }
                )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_range_maps.json").write_text(
        json.dumps({"config": config, "results": results}, indent=2)
    )
    lines = [
        f"Range maps of all species on {len(grid):,} resolution-{args.res} land cells, "
        f"streamed to GeoParquet (in-range cells only, ~{IN_RANGE_SHARE:.1%} of cells).",
        "",
        "| prior | species | cells x species / s | speed vs GeoPrior | rows written | "
        "tracemalloc peak (MB) | dense cells x species (MB) | max RSS after (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['prior']} | {r['n_species']:,} | {r['cells_x_species_per_s']:.3g} | "
            f"{r['speed_vs_geoprior']:.2f} | {r['rows_written']:,} | "
            f"{r['tracemalloc_peak_mb']:.0f} | {r['dense_array_mb']:.0f} | "
            f"{r['max_rss_mb_after']:.0f} |"
        )
    (args.out / "bench_range_maps.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
