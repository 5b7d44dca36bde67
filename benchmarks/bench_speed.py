"""Training, scoring, map and fusion throughput of the learned prior, each as a fraction of
this machine's own peak, measured in one run.

    python -m benchmarks.bench_speed [--quick] [--out docs]

Measures, in one process (the all-species map in a child process, so its peak memory is
its own):

- the machine's references: the peak float32 matmul throughput (jitted 2048x2048
  products), measured at the start and again beside every row (just before and just
  after it), the best of all of them what every FLOP rate is divided by, and the memory
  bandwidth of a copy (``np.copyto`` of the bytes fusion moves), which fusion is divided
  by;
- training throughput of ``train_prior`` at batch 2048 for 1,000 and 10,000 species,
  full assume-negative loss and the sampled one (SSDL): the steady-state time of a step
  as ``train_prior`` records it (compilation excluded);
- scoring of 100,000 places: ``predict`` (default output; the same into a reused
  ``out=``, which skips the fresh pages of a new result; then presence), ``top_k``
  (k = 10) and ``select`` (each species' own threshold), including the copy to the host;
- every species' range map on every resolution-4 land cell, streamed to GeoParquet end to
  end (scoring, thresholds, encoding, writing), with the child process's peak memory;
- the ceilings: the matrix products alone of dense predict and of the an_full step, at
  the same shapes on random inputs (:func:`products_alone`);
- fusion of 10,000 rows x 10,000 classes (``geoprior.fuse``) in GB/s.

FLOPs are counted from the network's dense layers: ``2 * rows * in * out`` forward for the
trunk and the species head, twice that backward (the gradients of the weights and of the
layer's input), except the input layer, whose backward is its weights' gradient alone (the
features are data: nothing differentiates them, and XLA computes no gradient for them),
times the ensemble's members (:func:`train_flops`; a test checks it against XLA's own count
of a compiled step). Scoring rows count the trunk and the one head a call uses. The same script runs unchanged on a
GPU (the references are then the GPU's). Writes ``speed.json`` and ``speed.md`` to
``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from geoprior import ModelConfig, Observations, TrainConfig, fuse, load_prior, train_prior
from geoprior.core.model import GeoNet
from geoprior.priors.scoring import rows_per_call
from geoprior.train import resolve_config

#: What bounds each kind of row, for the table.
BOUNDS = {
    "train": "matrix products of the input layer, trunk and head, forward and backward "
    "(on this CPU the backward's transposed products run slower than the forward's)",
    "predict": "the trunk and head products at cache-sized blocks (skinnier than the square "
    "product of the peak, so slower on their own), then the activation (one exponential a "
    "value), the copy out and the output's fresh pages",
    "top_k": "as predict, plus a grouped top-k on the device; only k columns leave the call",
    "select": "as predict, plus thresholds and a ranked list on the device",
    "all-species map": "scoring as predict, then the rows in range encoded and written "
    "(zstd) on a second thread",
    "products alone": "XLA's matrix products at the shapes of the row above, nothing else: "
    "the ceiling of its rate on this machine",
    "fuse": "memory: read logits and prior, write the fused log-probabilities",
}


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


def copy_bandwidth(nbytes: int) -> float:
    """Bytes read plus bytes written per second by ``np.copyto`` of ``nbytes`` (best of 3,
    into memory already touched)."""
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    dst[:] = 0
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        np.copyto(dst, src)
        best = max(best, 2 * src.nbytes / (time.perf_counter() - t))
    return best


def peak_beside(f) -> tuple[object, float]:
    """``(f(), peak)``: ``peak`` the better of :func:`peak_matmul_flops` measured just before
    and just after ``f`` runs. On a shared machine the peak drifts (on this 2-core VM it
    moved by 20% between runs and within one): each row's is reported, and every rate is
    divided by the best of all of them."""
    before = peak_matmul_flops(repeats=10)
    out = f()
    return out, max(before, peak_matmul_flops(repeats=10))


def best_time(f, repeats: int = 3) -> float:
    """Best wall time of ``f()`` over ``repeats`` runs after one warm-up (compilation)."""
    f()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t)
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


def train_flops(rows: int, in_dim: int, model: ModelConfig, head_cols: int) -> float:
    """FLOPs of one training pass (forward and backward) of ``rows`` rows through one
    network: three times the forward products, less the gradient of the input layer's
    input, which is data and never computed."""
    return 3 * dense_flops(rows, in_dim, model, head_cols) - 2.0 * rows * in_dim * model.width


def scoring_flops(prior, rows: int) -> float:
    """Forward FLOPs of one output of ``prior`` (trunk and one head) at ``rows`` places."""
    model = ModelConfig(**prior.header["config"]["model"])
    return dense_flops(rows, prior._in_dim(), model, prior.n_species) * prior.members


def time_training(obs: Observations, config: TrainConfig, steps: int) -> float:
    """Steady-state seconds per training step (``train_prior`` times its steps after the
    first one, which includes compilation)."""
    prior = train_prior(obs, config.with_updates({"steps": steps, "min_steps": 1}), progress=False)
    return float(prior.header["training"]["seconds_per_step"])


def training_rows(obs, n_species: int, steps: int) -> list[dict]:
    rows, batch = [], 2048
    for loss in ("an_full", "an_ssdl"):
        config = TrainConfig(loss=loss, batch_size=batch, use_date=True)
        res = resolve_config(config, obs)
        in_dim = res.encoder.dim() + 3
        sec, peak = peak_beside(lambda config=config: time_training(obs, config, steps))
        cols = n_species if loss == "an_full" else 2
        bg_cols = n_species if loss == "an_full" else 1
        # the observations' pass and the background's, for every member
        flops = config.members * (
            train_flops(batch, in_dim, config.model, cols)
            + train_flops(batch, in_dim, config.model, bg_cols)
        )
        inp = config.members * 2 * (2 * 2.0 * batch * in_dim * config.model.width)
        detail = (
            f"{loss}, batch {batch}; the input layer ({in_dim:,} features) is "
            f"{inp / flops:.0%} of the FLOPs"
        )
        rows.append(
            flop_row(
                "train", n_species, detail, sec,
                f"{batch / sec:,.0f} obs/s", flops, peak,
            )
        )
        print(rows[-1], flush=True)
        if loss == "an_full":
            detail = f"the {loss} step's products: batch {batch}, random inputs"
            rows.append(
                products_row("train", n_species, detail, config.model, in_dim, config.members, batch, steps)
            )
    return rows


def products_alone(
    model: ModelConfig, in_dim: int, species: int, members: int, rows: int, calls: int,
    train: bool,
) -> float:
    """Best seconds of ``calls`` calls of the bare network products at the shapes a task
    runs, on random inputs: what XLA's products alone reach, the ceiling of that task's
    rate. Scoring (``train=False``): each member's trunk and head on a ``rows``-row block,
    nothing else (no features, activation or copy). Training: one step of the members'
    forward and backward on an observation and a background batch of ``rows`` rows, a
    softplus of every logit for the loss and a plain gradient step (no features, sampling,
    dropout or optimiser state)."""
    net = GeoNet(species, ModelConfig(model.width, model.depth, 0.0, model.head_rank))
    keys = jax.random.split(jax.random.key(0), members + 2)
    x = jax.random.uniform(keys[-1], (rows, in_dim))
    params = [net.init(k, x[:1])["params"] for k in keys[:members]]

    def forward(p, x):
        return net.apply({"params": p}, x)

    if train:
        xb = jax.random.uniform(keys[-2], (rows, in_dim))

        def loss(ps):
            return sum(
                jnp.sum(jax.nn.softplus(forward(p, x))) + jnp.sum(jax.nn.softplus(-forward(p, xb)))
                for p in ps
            )

        step = jax.jit(
            lambda ps: jax.tree.map(lambda a, g: a - 1e-6 * g, ps, jax.grad(loss)(ps)),
            donate_argnums=0,
        )
        state = {"p": params}

        def run():
            for _ in range(calls):
                state["p"] = step(state["p"])
            jax.block_until_ready(state["p"])
    else:
        score = jax.jit(lambda ps, x: tuple(forward(p, x) for p in ps))

        def run():
            out = None
            for _ in range(calls):
                out = score(params, x)
            jax.block_until_ready(out)

    return best_time(run)


def products_row(
    task: str, species: int, detail: str, model: ModelConfig, in_dim: int, members: int,
    rows: int, calls: int,
) -> dict:
    train = task == "train"
    sec, peak = peak_beside(
        lambda: products_alone(model, in_dim, species, members, rows, calls, train)
    )
    if train:
        flops = calls * members * 2 * train_flops(rows, in_dim, model, species)
        throughput = f"{calls * rows / sec:,.0f} obs/s"
    else:
        flops = calls * members * dense_flops(rows, in_dim, model, species)
        throughput = f"{calls * rows * species / sec:.3g} places x species/s"
    row = flop_row("products alone", species, detail, sec, throughput, flops, peak)
    print(row, flush=True)
    return row


def flop_row(
    task: str, species: int, detail: str, sec: float, throughput: str, flops: float, peak: float
) -> dict:
    """A table row of a FLOP-counted task (its ``fraction`` is set in :func:`main`, against
    the run's best peak)."""
    return {
        "task": task,
        "species": species,
        "detail": detail,
        "seconds": sec,
        "throughput": throughput,
        "gflops_per_second": flops / sec / 1e9,
        "peak_gflops": peak / 1e9,
    }


def scoring_rows(prior, n_points: int) -> list[dict]:
    rng = np.random.default_rng(1)
    lat, lon = rng.uniform(-60, 70, n_points), rng.uniform(-180, 180, n_points)
    date = "2021-06-01"
    s = prior.n_species
    sample = prior.predict(lat[:2000], lon[:2000], date, output="presence")
    thresholds = np.quantile(sample, 0.99, axis=0).astype(np.float32)  # ~1% of places each
    reused = {}

    def into_reused():
        # the same call writing into one array kept from the last: no fresh pages to zero
        if "out" not in reused:
            reused["out"] = np.empty((n_points, s), np.float32)
        return prior.predict(lat, lon, date, out=reused["out"])

    tasks = [
        ("predict", f"{prior.outputs[0]} (default)", lambda: prior.predict(lat, lon, date)),
        ("predict", f"{prior.outputs[0]}, into a reused `out=`", into_reused),
        ("predict", "presence", lambda: prior.predict(lat, lon, date, output="presence")),
        ("top_k", "k = 10", lambda: prior.top_k(lat, lon, date, k=10)),
        (
            "select",
            "presence >= each species' threshold",
            lambda: prior.select(lat, lon, date, thresholds=thresholds, output="presence"),
        ),
    ]
    rows = []
    flops = scoring_flops(prior, n_points)
    for task, detail, f in tasks:
        sec, peak = peak_beside(lambda f=f: best_time(f))
        rows.append(
            flop_row(
                task, s, f"{n_points:,} places, {detail}", sec,
                f"{n_points * s / sec:.3g} places x species/s", flops, peak,
            )
        )
        print(rows[-1], flush=True)
        reused.clear()
    model = ModelConfig(**prior.header["config"]["model"])
    block = rows_per_call(s, prior.members, prior._in_dim())
    calls = -(-n_points // block)
    detail = f"predict's network: {calls:,} blocks of {block} rows, random inputs"
    rows.append(products_row("predict", s, detail, model, prior._in_dim(), prior.members, block, calls))
    return rows


def map_row(prior, res: int) -> dict:
    """Every species' map on every land cell at ``res``, in a child process (its own peak
    memory), thresholds at each species' 98th percentile over the cells."""
    from geoprior.maps.grid import cell_grid

    grid = cell_grid(res, land_only=True)
    sample = prior.predict(grid.lat[::7], grid.lon[::7], output="presence")
    prior.thresholds = np.quantile(sample, 0.98, axis=0).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        prior.save(Path(tmp) / "p.prior")
        out, peak = peak_beside(
            lambda: subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_speed", "--map-child", tmp, str(res)],
                check=True,
                capture_output=True,
                text=True,
            )
        )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    flops = scoring_flops(prior, got["cells"])
    sec = got["seconds"]
    detail = (
        f"{got['cells']:,} res-{res} land cells, {got['rows']:,} rows in range, "
        f"GeoParquet {got['bytes'] / 1e6:.0f} MB; peak memory {got['peak_rss'] / 1e9:.2f} GB "
        f"({(got['peak_rss'] - got['start_rss']) / 1e6:.0f} MB above the process "
        f"before the map; the dense float32 map is "
        f"{got['cells'] * prior.n_species * 4 / 1e9:.1f} GB)"
    )
    throughput = f"{got['cells'] * prior.n_species / sec:.3g} cells x species/s"
    row = flop_row("all-species map", prior.n_species, detail, sec, throughput, flops, peak)
    row.update(peak_rss_bytes=got["peak_rss"], start_rss_bytes=got["start_rss"])
    print(row, flush=True)
    return row


def map_child(folder: str, res: int) -> None:
    """The child side of :func:`map_row`: load, warm up (compile), stream the map, report."""
    from geoprior.maps import write_all_species

    prior = load_prior(Path(folder) / "p.prior")
    write_all_species(prior, Path(folder) / "warm.parquet", res=1)  # compile the block shape
    start_rss = peak_rss()
    path = Path(folder) / "all.parquet"
    t = time.perf_counter()
    summary = write_all_species(prior, path, res=res)
    sec = time.perf_counter() - t
    peak = peak_rss()
    print(
        json.dumps(
            {
                "cells": summary["cells"],
                "rows": summary["rows"],
                "bytes": path.stat().st_size,
                "seconds": sec,
                "peak_rss": peak,
                "start_rss": start_rss,
            }
        )
    )


def peak_rss() -> int:
    """This process's peak resident memory in bytes: Linux's ``VmHWM`` (its own, where
    ``ru_maxrss`` carries the parent's over a fork), else ``ru_maxrss``."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def fusion_row(n: int, s: int, bandwidth: float) -> dict:
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(n, s)).astype(np.float32)
    prior = rng.random((n, s), dtype=np.float32)
    sec = best_time(lambda: np.asarray(fuse(logits, prior)))
    moved = 3 * logits.nbytes  # read logits and prior, write the result
    row = {
        "task": "fuse",
        "species": s,
        "detail": f"{n:,} rows, product mode, numpy in and out",
        "seconds": sec,
        "throughput": f"{moved / sec / 1e9:.2f} GB/s",
        "gb_per_second": moved / sec / 1e9,
        "fraction": moved / sec / bandwidth,
    }
    print(row, flush=True)
    return row


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, species and places")
    parser.add_argument("--out", default="docs", help="folder for speed.json and speed.md")
    parser.add_argument("--map-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.map_child:
        map_child(args.map_child[0], int(args.map_child[1]))
        return {}
    peak = peak_matmul_flops()
    species_counts = (1000,) if args.quick else (1000, 10000)
    steps = 6 if args.quick else 16
    n_points = 20_000 if args.quick else 100_000
    fusion_shape = (2_000, 10_000) if args.quick else (10_000, 10_000)
    bandwidth = copy_bandwidth(fusion_shape[0] * fusion_shape[1] * 4)
    rows = []
    for n_species in species_counts:
        obs = synthetic(n_species, 50_000)
        prior = train_prior(obs, TrainConfig(steps=2, min_steps=1), progress=False)
        rows += scoring_rows(prior, n_points)
        if n_species == species_counts[-1]:
            rows.append(map_row(prior, 3 if args.quick else 4))
        rows += training_rows(obs, n_species, steps)
    rows.append(fusion_row(*fusion_shape, bandwidth))
    # every FLOP rate against the best peak seen in the run: a noisy low measurement
    # beside a row never flatters it, and each row's own is kept to show the drift
    best = max([peak] + [r["peak_gflops"] * 1e9 for r in rows if "peak_gflops" in r])
    for r in rows:
        if "gflops_per_second" in r:
            r["fraction"] = r["gflops_per_second"] * 1e9 / best
    result = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "jax_backend": jax.default_backend(),
            "devices": [str(d) for d in jax.devices()],
            "peak_matmul_gflops": best / 1e9,
            "first_peak_matmul_gflops": peak / 1e9,
            "copy_gb_per_second": bandwidth / 1e9,
        },
        "config": {"quick": args.quick, "model": ModelConfig().__dict__},
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
        "Generated by `python -m benchmarks.bench_speed`; every number is from the machine "
        "below, measured in one run. FLOP rates are fractions of the peak float32 matmul "
        "throughput: the best of its measurements in the run, at the start and just before "
        "and after every row (each row's own is in the table: on a shared machine they "
        "drift, and the best of them never flatters a row); fusion is a fraction of the "
        "bandwidth of a copy of the same bytes. FLOPs are counted from the network's dense "
        "layers (trunk "
        "and species head; forward, and backward for training; times the ensemble's "
        "members). Scoring includes the copy of the result to the host.",
        "",
        f"- backend: {m['jax_backend']}, devices: {', '.join(m['devices'])}",
        f"- platform: {m['platform']}",
        f"- peak float32 matmul, the best measured in the run: {m['peak_matmul_gflops']:.1f} "
        f"GFLOP/s (at its start: {m.get('first_peak_matmul_gflops', m['peak_matmul_gflops']):.1f})",
        f"- copy bandwidth (read + write): {m['copy_gb_per_second']:.1f} GB/s",
        "",
        "| task | species | what | seconds | throughput | GFLOP/s | peak beside it | of peak "
        "| what bounds it |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        rate = "-" if "gflops_per_second" not in r else f"{r['gflops_per_second']:.1f}"
        beside = "-" if "peak_gflops" not in r else f"{r['peak_gflops']:.1f}"
        lines.append(
            f"| {r['task']} | {r['species']:,} | {r['detail']} | {r['seconds']:.3f} | "
            f"{r['throughput']} | {rate} | {beside} | {100 * r['fraction']:.0f}% | "
            f"{BOUNDS[r['task']]} |"
        )
    lines += ["", "## Against the targets", ""]
    for task, species, detail, target in TARGETS:
        for r in result["rows"]:
            if r["task"] != task or r["species"] != species or detail not in r["detail"]:
                continue
            verdict = "met" if r["fraction"] >= target else "not met"
            lines.append(
                f"- {task} ({species:,} species, {r['detail'].split(';')[0]}): "
                f"{100 * r['fraction']:.0f}% of peak against a target of {100 * target:.0f}%: "
                f"**{verdict}**."
            )
    lines += ["", HOW.strip(), ""]
    return "\n".join(lines) + "\n"


#: The targets: (task, species, a phrase of its detail, fraction of peak); a quick run
#: has only the 1,000-species rows.
TARGETS = (
    ("predict", 10_000, "(default)", 0.70),
    ("top_k", 10_000, "k = 10", 0.70),
    ("all-species map", 10_000, "land cells", 0.50),
    ("train", 1_000, "an_full", 0.65),
)

HOW = """
## How scoring and training run, and what bounds them

- **Blocks sized to the machine** (`geoprior.priors.scoring.rows_per_call`). On a CPU a
  call takes the rows whose logits, one `rows x species` array per member, fill the
  last-level cache, each array under glibc's 32 MiB `mmap` threshold (past it every call
  maps fresh pages and faults them in). At 10,000 species that is 256 rows; the head's
  product ran at 434 GFLOP/s there and at 218 with the old 8,192-row blocks. An
  accelerator gets large blocks.
- **Members unrolled, on weights split once.** Each member's trunk and head is a plain
  2-D product (batched over a member axis XLA's CPU backend ran them several times
  slower), on that member's own weights (`scoring.split_members`): sliced from the stacked
  member axis inside the call, every weight was copied on every call, 2 ms of a 15 ms
  block. On two cores the two members' products run side by side.
- **Three calls, each on what the last left on the device**: the network, the activation
  (the members' mean: sigmoids, or softmaxes shifted by their row maximum, one exponential
  a value), then any reduction. Fused, XLA ran each pair slower (the softmax folded into
  the products: 13.0 against 12.1 ms a block; a top-k with the activation 13.9 against
  13.0; a top-k with the network 1.6x slower). The activation and reductions are compiled
  with 512-bit vectors on AVX-512 (`scoring.elementwise_options`): sigmoids 1.7x faster,
  the same values bit for bit.
- **Reductions on the device.** `top_k` runs a grouped top-k, exact (ties included): the
  `k` largest values lie in the `k` groups with the largest maxima. `select` and
  `iter_above` compare every species with its threshold on the device; on a CPU the mask
  is read in place (the device's memory is the host's) with one `np.flatnonzero`, on an
  accelerator only the chosen values are gathered.
- **The output.** A large result is written into memory mapped with huge pages and
  populated in one system call. The kernel still zeroes every fresh page: for the 4 GB
  result of 100,000 places x 10,000 species that measured 0.2 s of system time where huge
  pages were free and up to 1.7 s where memory was fragmented (4 KB pages), on this VM.
- **The all-species map** reads each block's mask, gathers the rows in range into chunks
  and encodes and writes them (polygons, Arrow, Parquet with zstd) on a second thread.
  Probabilities are written as byte streams without a dictionary (a dictionary of nearly
  distinct floats doubled the write), statistics only where a reader filters (species,
  probability).
- **What is left.** The products themselves: at these shapes (256 rows, a 256-wide trunk,
  a 3,400-feature input layer) XLA's CPU matrix products reach about 80-85% of the square
  2,048 x 2,048 product's rate on their own, so the network alone is about 80% of peak;
  the activation (for the observation output three passes a member: maximum, exponentials
  and sum, and the mean), the copy out and the output's fresh pages take the rest, and on
  two cores every host-side step (the copy, the map's extraction and encoding) takes its
  time from the products.
- **The ceilings.** Each "products alone" row runs the matrix products of the row above
  it at the same shapes, on random inputs, and nothing else: for scoring each member's
  trunk and head on the same blocks (no features, activation or copy), for training the
  members' forward and backward on an observation and a background batch with a softplus
  loss and a plain gradient step (no features, background sampling, dropout or Adam).
  Its rate is what XLA's products reach on this machine at those shapes, so the task
  above cannot pass it; where it is under a target, the target is out of reach here.
- **Training's FLOPs** (`train_flops`): the input layer's backward is its weights'
  gradient alone, since nothing differentiates the features (a test checks the count
  against XLA's own for a compiled step). At 1,000 species that layer, 3,100 anchor
  features wide, is half of a step's FLOPs; the backward's transposed products (the
  gradients of the weights and of the head's input) ran at 60-90% of the forward's rate
  in separate measurements. The step's own work beside the products is the anchor
  features (one exponential a place and anchor, for the batch and its background), the
  background sampling, dropout, the loss and the Adam update.
- **Several steps a call** (`lax.scan`) was not adopted: a compiled call costs about
  0.2 ms to dispatch against a training step of 200 ms on this CPU.
"""


if __name__ == "__main__":
    main()
