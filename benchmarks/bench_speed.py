"""Training and scoring throughput of the learned prior, as a fraction of this machine's peak.

    python -m benchmarks.bench_speed [--quick] [--out docs]

Measures, in one process:

- the peak float32 matmul throughput of this machine (jitted 2048x2048 products), the
  reference every other number is divided by;
- training throughput (observations/second) of ``train_prior`` at batch 2048 for 1,000 and
  10,000 species, with the full assume-negative loss and the sampled one (SSDL): the
  steady-state time of a step, as ``train_prior`` records it (compilation excluded);
- scoring throughput (locations x species per second) of ``GeoPrior.predict``.

FLOPs are counted analytically from the network shape (dense layers: 2 * rows * in * out
forward, twice that backward; times the ensemble's members). Writes ``speed.json`` and ``speed.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from geoprior import ModelConfig, Observations, TrainConfig, train_prior
from geoprior.train import resolve_config


def peak_matmul_flops(n: int = 2048, repeats: int = 20) -> float:
    """Best observed float32 matmul FLOP/s over a few timed batches."""
    a = jnp.asarray(np.random.default_rng(0).normal(size=(n, n)), jnp.float32)
    f = jax.jit(lambda x, y: x @ y)
    f(a, a).block_until_ready()
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(repeats):
            out = f(a, a)
        out.block_until_ready()
        best = max(best, 2 * n**3 * repeats / (time.perf_counter() - t))
    return best


def synthetic(n_species: int, n_rows: int, seed: int = 0) -> Observations:
    rng = np.random.default_rng(seed)
    centres = np.stack([rng.uniform(-50, 60, n_species), rng.uniform(-170, 170, n_species)], 1)
    sp = rng.integers(0, n_species, n_rows)
    lat = np.clip(centres[sp, 0] + rng.normal(0, 3, n_rows), -89, 89)
    lon = (centres[sp, 1] + rng.normal(0, 3, n_rows) + 180) % 360 - 180
    dates = np.datetime64("2020-01-01") + rng.integers(0, 365, n_rows)
    names = [f"sp{i:05d}" for i in range(n_species)]
    return Observations.from_arrays(lat, lon, sp, date=dates, vocabulary=names)


def dense_flops(rows: int, in_dim: int, model: ModelConfig, head_cols: int) -> float:
    """Forward FLOPs of the network for ``rows`` rows and ``head_cols`` species columns."""
    w = model.width
    body = in_dim * w + model.depth * 2 * w * w
    return 2.0 * rows * (body + w * head_cols)


def time_training(obs: Observations, config: TrainConfig, steps: int) -> float:
    """Steady-state seconds per training step (``train_prior`` times its steps after the
    first one, which includes compilation)."""
    prior = train_prior(obs, config.with_updates({"steps": steps, "min_steps": 1}), progress=False)
    return float(prior.header["training"]["seconds_per_step"])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and species")
    parser.add_argument("--out", default="docs", help="folder for speed.json and speed.md")
    args = parser.parse_args(argv)
    peak = peak_matmul_flops()
    species_counts = (1000,) if args.quick else (1000, 10000)
    steps = 6 if args.quick else 16
    batch = 2048
    rows = []
    for n_species in species_counts:
        obs = synthetic(n_species, 50_000)
        for loss in ("an_full", "an_ssdl"):
            config = TrainConfig(loss=loss, batch_size=batch, use_date=True)
            res = resolve_config(config, obs)
            in_dim = res.encoder.dim() + 3
            sec = time_training(obs, config, steps)
            cols = n_species if loss == "an_full" else 2
            bg_cols = n_species if loss == "an_full" else 1
            fwd = dense_flops(batch, in_dim, config.model, cols) + dense_flops(
                batch, in_dim, config.model, bg_cols
            )
            flops = 3 * fwd * config.members  # forward + backward, for every member
            rows.append(
                {
                    "task": "train",
                    "species": n_species,
                    "loss": loss,
                    "batch": batch,
                    "seconds_per_step": sec,
                    "obs_per_second": batch / sec,
                    "gflops_per_second": flops / sec / 1e9,
                    "fraction_of_peak": flops / sec / peak,
                }
            )
            print(rows[-1], flush=True)
        prior = train_prior(obs, TrainConfig(steps=2, min_steps=1), progress=False)
        n_points = 20_000 if args.quick else 100_000
        rng = np.random.default_rng(1)
        lat, lon = rng.uniform(-60, 70, n_points), rng.uniform(-180, 180, n_points)
        prior.predict(lat, lon, "2021-06-01")  # compile every batch shape of this query
        t = time.perf_counter()
        prior.predict(lat, lon, "2021-06-01")
        sec = time.perf_counter() - t
        in_dim = prior.encoder.dim() + 3
        flops = dense_flops(n_points, in_dim, ModelConfig(), n_species) * prior.members
        rows.append(
            {
                "task": "score",
                "species": n_species,
                "loss": "-",
                "batch": 8192,
                "seconds_per_step": sec,
                "cells_x_species_per_second": n_points * n_species / sec,
                "gflops_per_second": flops / sec / 1e9,
                "fraction_of_peak": flops / sec / peak,
            }
        )
        print(rows[-1], flush=True)
    result = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "jax_backend": jax.default_backend(),
            "devices": [str(d) for d in jax.devices()],
            "peak_matmul_gflops": peak / 1e9,
        },
        "config": {"quick": args.quick, "batch": batch, "model": ModelConfig().__dict__},
        "rows": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.json").write_text(json.dumps(result, indent=2))
    (out / "speed.md").write_text(render(result))
    return result


def render(result: dict) -> str:
    m = result["machine"]
    lines = [
        "# Speed",
        "",
        "Generated by `python -m benchmarks.bench_speed`; numbers are from the machine below, "
        "measured in one process. Fractions are of the peak float32 matmul throughput measured "
        "in the same run. FLOPs are counted from the network's dense layers (forward + backward).",
        "",
        f"- backend: {m['jax_backend']}, devices: {', '.join(m['devices'])}",
        f"- platform: {m['platform']}",
        f"- peak float32 matmul: {m['peak_matmul_gflops']:.1f} GFLOP/s",
        "",
        "| task | species | loss | batch | s/step | throughput | GFLOP/s | of peak |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        if r["task"] == "train":
            thr = f"{r['obs_per_second']:,.0f} obs/s"
        else:
            thr = f"{r['cells_x_species_per_second']:,.3g} loc x species/s"
        lines.append(
            f"| {r['task']} | {r['species']:,} | {r['loss']} | {r['batch']} | "
            f"{r['seconds_per_step']:.3f} | {thr} | {r['gflops_per_second']:.1f} | "
            f"{100 * r['fraction_of_peak']:.0f}% |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
