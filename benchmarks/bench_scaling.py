"""Scaling: data larger than memory, many species, one device versus two.

    python -m benchmarks.bench_scaling [--rows 10000000] [--species 10000] [--out docs]

Steps, each in a fresh child process so its peak memory (``VmHWM``) is its own:

1. write ``--rows`` synthetic observations of ``--species`` species as a Parquet folder
   (10 files, generated chunk by chunk);
2. ``convert_to_columns`` it once into a shuffled memory-mapped :class:`ColumnStore`
   (time, peak memory, size on disk);
3. ``train_prior`` from the store for ``--steps`` steps with the full and the sampled
   assume-negative loss, on 1 device and on every device there is (on a CPU machine, two
   devices are made with ``--xla_force_host_platform_device_count=2``; on a GPU machine,
   the GPUs it has), data-parallel and with the species head split over the devices
   (``model_parallel``): steady-state step time, observations per second, peak memory;
4. the same for ``--big-species`` (50,000) species with the low-rank head, then scoring
   10,000 places for all of them with ``GeoPrior.predict``.

Writes ``scaling.json`` and ``scaling.md`` to ``--out``. Throughput ratios between device
counts are measured on the same machine in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

CHUNK = 1_000_000


def write_parquet(folder: Path, rows: int, species: int, seed: int = 0, files: int = 10) -> None:
    """Synthetic observations: each species around its own centre (3 degrees), dated."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    centres = np.stack([rng.uniform(-50, 60, species), rng.uniform(-170, 170, species)], 1)
    names = np.array([f"Genus species{i:06d}" for i in range(species)], dtype=object)
    per_file = -(-rows // files)
    for f in range(files):
        n_file = min(per_file, rows - f * per_file)
        writer = None
        for start in range(0, n_file, CHUNK):
            n = min(CHUNK, n_file - start)
            sp = rng.integers(0, species, n)
            lat = np.clip(centres[sp, 0] + rng.normal(0, 3, n), -89, 89)
            lon = (centres[sp, 1] + rng.normal(0, 3, n) + 180) % 360 - 180
            date = np.datetime64("2020-01-01") + rng.integers(0, 365, n)
            table = pa.table(
                {
                    "decimalLatitude": lat,
                    "decimalLongitude": lon,
                    "species": names[sp],
                    "eventDate": date.astype("datetime64[ms]"),
                }
            )
            if writer is None:
                writer = pq.ParquetWriter(folder / f"part-{f:03d}.parquet", table.schema)
            writer.write_table(table)
        writer.close()


def _peak_rss_mb() -> float:
    """This process's peak resident memory (``VmHWM``; ``ru_maxrss`` would include the
    parent's peak, which Linux carries across ``exec``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child_convert(source: str, store: str) -> dict:
    from geoprior import convert_to_columns

    t = time.perf_counter()
    s = convert_to_columns(source, store, overwrite=True)
    seconds = time.perf_counter() - t
    size = sum(p.stat().st_size for p in Path(store).iterdir() if p.is_file())
    return {
        "rows": len(s),
        "species": s.n_species,
        "seconds": seconds,
        "rows_per_s": len(s) / seconds,
        "peak_rss_mb": _peak_rss_mb(),
        "store_mb": size / 2**20,
    }


def child_train(
    store: str, steps: int, updates: dict, predict_points: int = 0, thresholds: bool = False
) -> dict:
    """One training run from ``store``; the steps are timed without the LPT thresholds
    that ``train_prior`` fits after them, which ``thresholds`` times on their own (at 10,000
    species they score 500 presences of each, millions of places through the trunk)."""
    import jax

    from geoprior import ColumnStore, TrainConfig, train_prior
    from geoprior.train import fit_thresholds
    from geoprior.train.loop import THRESHOLD_ROWS

    data = ColumnStore.open(store)
    config = TrainConfig(batch_size=2048, steps=steps, checkpoint_every=10**9).with_updates(
        updates
    )
    t = time.perf_counter()
    prior = train_prior(data, config, progress=False, thresholds=False)
    out = {
        "devices": jax.device_count(),
        "platform": jax.devices()[0].platform,
        "config": updates,
        "species": data.n_species,
        "seconds_per_step": prior.header["training"]["seconds_per_step"],
        "obs_per_s": 2048 / prior.header["training"]["seconds_per_step"],
        "total_s": time.perf_counter() - t,
        "final_loss": float(np.mean(prior.loss_curve[-5:])),
        # what actually ran, from the saved header (the defaults change between releases)
        "loss": prior.header["config"]["loss"],
        "members": prior.members,
        "model": prior.header["config"]["model"],
        "peak_rss_mb": _peak_rss_mb(),
    }
    if thresholds:
        t = time.perf_counter()
        fit_thresholds(prior, data, seed=0)
        out["thresholds"] = {
            "seconds": time.perf_counter() - t,
            "presences": int(np.minimum(data.species_counts, THRESHOLD_ROWS).sum()),
        }
    if predict_points:
        rng = np.random.default_rng(1)
        lat, lon = rng.uniform(-60, 70, predict_points), rng.uniform(-180, 180, predict_points)
        prior.predict(lat[:100], lon[:100], "2020-06-01")  # compile
        t = time.perf_counter()
        probs = prior.predict(lat, lon, "2020-06-01")
        seconds = time.perf_counter() - t
        out["predict"] = {
            "points": predict_points,
            "seconds": seconds,
            "cells_x_species_per_s": probs.size / seconds,
            "output_mb": probs.nbytes / 2**20,
        }
        out["peak_rss_mb"] = _peak_rss_mb()
    return out


def _spawn(args: list[str], devices: int | None = None) -> dict:
    env = dict(os.environ)
    if devices is not None:
        env["XLA_FLAGS"] = (
            env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={devices}"
        )
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_scaling", "--child", *args],
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode:
        raise RuntimeError(f"child {args} failed:\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _accelerators() -> tuple[str, int]:
    """The platform and device count a child sees without forcing host devices."""
    code = "import jax; print(jax.devices()[0].platform, jax.device_count())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    platform_name, count = out.stdout.split()
    return platform_name, int(count)


def run(args) -> dict:
    work = Path(args.work)
    plat, n_acc = _accelerators()
    # on CPU, "devices" are host platform devices sharing the machine's cores
    counts = [1, 2] if plat == "cpu" else sorted({1, n_acc})
    forced = plat == "cpu"
    results: dict = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "backend": plat,
            "accelerators": n_acc,
        },
        "config": vars(args),
        "runs": [],
    }
    for rows, species, tag in (
        (args.rows, args.species, "main"),
        (args.big_rows, args.big_species, "big"),
    ):
        source, store = work / f"parquet-{tag}", work / f"store-{tag}"
        if not (source / "part-000.parquet").exists():
            print(f"writing {rows:,} rows of {species:,} species to {source}", file=sys.stderr)
            write_parquet(source, rows, species)
        print(f"converting {source}", file=sys.stderr)
        results[f"convert_{tag}"] = _spawn(["convert", str(source), str(store)])
        print(json.dumps(results[f"convert_{tag}"]), file=sys.stderr)
        if tag == "main":
            plans = [({}, n) for n in counts] + [({"loss": "an_ssdl"}, n) for n in counts]
            plans += [({"model_parallel": n}, n) for n in counts if n > 1]
        else:
            low_rank = {"model.head_rank": 64}
            plans = [({**low_rank, "loss": "an_ssdl"}, 1), ({**low_rank}, 1)]
        for i, (updates, n) in enumerate(plans):
            predict = args.predict_points if tag == "big" and updates.get("loss") else 0
            fit = int(tag == "main" and i == 0)  # the thresholds once, after the first run
            child = ["train", str(store), str(args.steps), json.dumps(updates), str(predict), str(fit)]
            r = _spawn(child, n if forced else None)
            r["data"] = tag
            print(json.dumps(r), file=sys.stderr)
            results["runs"].append(r)
    return results


def _models(runs: list[dict]) -> str:
    """The networks the runs trained, as ``width W, depth D`` (each distinct one once)."""
    shapes = sorted({(r["model"]["width"], r["model"]["depth"]) for r in runs if "model" in r})
    return "; ".join(f"width {w}, depth {d}" for w, d in shapes) or "the default network"


def markdown(results: dict) -> str:
    m, c = results["machine"], results["config"]
    lines = [
        "## Measured",
        "",
        "Generated by `python -m benchmarks.bench_scaling`; every number below was measured "
        "on the machine described here, each step in its own process (peak memory is that "
        "process's `VmHWM`).",
        "",
        f"- machine: {m['platform']}, {m['cpus']} CPU cores, backend `{m['backend']}` "
        f"({m['accelerators']} device(s) without forcing)",
        f"- data: {c['rows']:,} synthetic observations of {c['species']:,} species (10 "
        f"Parquet files), and {c['big_rows']:,} of {c['big_species']:,} species",
        f"- training: batch 2,048, {c['steps']} steps per run, {_models(results['runs'])}, "
        "the defaults otherwise (the default loss where the table's loss is not set); "
        "step time is the steady state (compilation excluded)",
        "",
        "### Conversion to memory-mapped columns",
        "",
        "| data | rows | species | seconds | rows/s | peak memory | on disk |",
        "|---|---|---|---|---|---|---|",
    ]
    for tag in ("main", "big"):
        r = results[f"convert_{tag}"]
        lines.append(
            f"| {tag} | {r['rows']:,} | {r['species']:,} | {r['seconds']:.0f} | "
            f"{r['rows_per_s']:,.0f} | {r['peak_rss_mb']:,.0f} MB | {r['store_mb']:,.0f} MB |"
        )
    lines += [
        "",
        "### Training from the store",
        "",
        "| species | devices | loss | members | head | s/step | obs/s | vs 1 device | final loss "
        "| peak memory |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    base = {}
    for r in results["runs"]:
        cfg = r["config"]
        loss = r.get("loss", cfg.get("loss", "?"))
        head = (
            f"split over {cfg['model_parallel']}"
            if cfg.get("model_parallel", 1) > 1
            else (f"rank {cfg['model.head_rank']}" if "model.head_rank" in cfg else "replicated")
        )
        key = (r["species"], loss, cfg.get("model.head_rank"))
        if r["devices"] == 1:
            base[key] = r["obs_per_s"]
        ratio = r["obs_per_s"] / base[key] if key in base else float("nan")
        lines.append(
            f"| {r['species']:,} | {r['devices']} | {loss} | {r.get('members', '?')} | {head} | "
            f"{r['seconds_per_step']:.3f} | {r['obs_per_s']:,.0f} | {ratio:.2f}x | "
            f"{r['final_loss']:.4f} | {r['peak_rss_mb']:,.0f} MB |"
        )
    for r in results["runs"]:
        if "thresholds" in r:
            th = r["thresholds"]
            lines += [
                "",
                f"After its steps, `train_prior` fits each species' LPT threshold on up to "
                f"500 of its presences: at {r['species']:,} species that scored "
                f"{th['presences']:,} presences through the network in {th['seconds']:.0f} s "
                f"({th['presences'] / th['seconds']:,.0f} a second), timed apart from the "
                "steps above (a run of thousands of steps makes it a small share).",
            ]
    preds = [r for r in results["runs"] if "predict" in r]
    if preds:
        lines += [
            "",
            "### Scoring many species",
            "",
            "| species | places | seconds | places x species / s | output | peak memory |",
            "|---|---|---|---|---|---|",
        ]
        for r in preds:
            p = r["predict"]
            lines.append(
                f"| {r['species']:,} | {p['points']:,} | {p['seconds']:.2f} | "
                f"{p['cells_x_species_per_s']:.2e} | {p['output_mb']:,.0f} MB | "
                f"{r['peak_rss_mb']:,.0f} MB |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "--child":
        kind, *rest = argv[1:]
        if kind == "convert":
            out = child_convert(*rest)
        else:
            store, steps, updates, predict, fit = rest
            out = child_train(store, int(steps), json.loads(updates), int(predict), fit == "1")
        print(json.dumps(out))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--species", type=int, default=10_000)
    ap.add_argument("--big-rows", type=int, default=1_000_000)
    ap.add_argument("--big-species", type=int, default=50_000)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--predict-points", type=int, default=10_000)
    ap.add_argument("--work", default="build/scaling")
    ap.add_argument("--out", default="docs")
    args = ap.parse_args(argv)
    results = run(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scaling.json").write_text(json.dumps(results, indent=2))
    write_section(out / "scaling.md", markdown(results))
    print(markdown(results))


START, END = "<!-- bench_scaling:start -->", "<!-- bench_scaling:end -->"


def write_section(path: Path, text: str) -> None:
    """Replace the measured section of ``path`` (between the markers), keeping the prose."""
    body = f"{START}\n{text}{END}\n"
    old = path.read_text() if path.exists() else ""
    if START in old and END in old:
        head, rest = old.split(START, 1)
        body = head + body + rest.split(END, 1)[1].lstrip("\n")
    else:
        body = old + ("\n" if old else "") + body
    path.write_text(body)


if __name__ == "__main__":
    main()
