"""Load on ``geoprior serve``: requests/s, latency and errors under concurrent clients.

    python -m benchmarks.bench_serve [--quick] [--requests 20000] [--connections 32]
                                     [--steps 600] [--out benchmarks/results]

Trains a prior on the embedded NEON bird sample (``sample:neon_bird``, 531 species; a
short run of ``--steps`` steps: serving speed does not depend on how well it is trained),
saves it and exports it to ONNX, then for each backend — the saved prior (JAX) and the
export (onnxruntime, one thread per call) — starts ``geoprior serve`` in its own process on
127.0.0.1 and sends, from this process over ``--connections`` keep-alive connections
(httpx), a bounded number of requests of two kinds:

- ``single``: ``GET /v1/predict`` at one place and date (k = 10), ``--requests`` of them;
- ``batch256``: ``POST /v1/scores`` of 256 places and dates for 10 species (a
  classifier's candidates), ``--batch-requests`` of them.

Each run stops by itself after its requests or ``--max-seconds``, whichever comes first.
Reports requests/s, places/s, p50/p99 latency and errors (non-200 answers and failed
connections; they must be 0). Client and server share this machine's cores, so the
numbers are of the pair, as a single-machine deployment would see them.

Writes ``bench_serve.json`` and ``bench_serve.md`` to ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SPECIES_PER_BATCH = 10
BATCH_POINTS = 256


def sample_prior(steps: int, folder: Path):
    """A prior trained ``steps`` steps on the embedded bird sample, saved to ``folder``;
    returns ``(prior, seconds)``."""
    import geoprior

    t = time.perf_counter()
    obs = geoprior.load_sample("neon_bird")
    config = geoprior.TrainConfig(steps=steps, validation="none", checkpoint_every=steps)
    prior = geoprior.train_prior(obs, config, progress=False)
    seconds = time.perf_counter() - t
    prior.save(folder)
    return prior, seconds


def query_places(n: int, seed: int = 0):
    """Places near the sample's sites (the survey plots, jittered by ~20 km) and dates in
    the breeding season: the queries an app in that region would send."""
    from geoprior.io.samples import load_sample

    obs = load_sample("neon_bird")
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(obs), n)
    lat = np.clip(obs.lat[rows] + rng.normal(0, 0.2, n), -90, 90)
    lon = (obs.lon[rows] + rng.normal(0, 0.2, n) + 180) % 360 - 180
    dates = np.datetime64("2021-04-01") + rng.integers(0, 120, n)
    return lat, lon, dates.astype("datetime64[D]").astype(str)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``geoprior serve PATH`` in a child process on a free port of 127.0.0.1."""

    def __init__(self, path: Path, threads: int = 1):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "geoprior.cli", "serve", str(path), "--port",
               str(self.port), "--log-level", "warning"]
        if path.suffix == ".onnx":
            cmd += ["--threads", str(threads)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def __enter__(self):
        import httpx

        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"{self.url}/healthz", timeout=2).raise_for_status()
                return self
            except httpx.TransportError:
                if self.proc.poll() is not None:
                    raise RuntimeError(self.proc.stderr.read().decode()) from None
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not start in 120 s") from None
                time.sleep(0.2)

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def _load(url: str, requests: list, connections: int, max_seconds: float) -> dict:
    """Send ``requests`` (``(method, path, params_or_json)``) over ``connections``
    concurrent keep-alive connections; stop when all are sent or ``max_seconds`` pass."""
    import httpx

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    latencies, errors, kinds = [], 0, {}
    next_i = 0
    deadline = time.perf_counter() + max_seconds
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker():
            nonlocal next_i, errors
            while next_i < len(requests) and time.perf_counter() < deadline:
                method, path, payload = requests[next_i]
                next_i += 1
                t = time.perf_counter()
                try:
                    if method == "GET":
                        r = await client.get(path, params=payload)
                    else:
                        r = await client.post(path, json=payload)
                    ok = r.status_code == 200
                    if not ok:
                        kinds[str(r.status_code)] = kinds.get(str(r.status_code), 0) + 1
                except httpx.HTTPError as e:
                    ok = False
                    kinds[type(e).__name__] = kinds.get(type(e).__name__, 0) + 1
                latencies.append(time.perf_counter() - t)
                errors += not ok

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        wall = time.perf_counter() - t0
    lat_ms = np.asarray(latencies) * 1e3
    return {
        "requests": len(latencies),
        "planned": len(requests),
        "seconds": wall,
        "requests_per_s": len(latencies) / wall,
        "p50_ms": float(np.percentile(lat_ms, 50)),
        "p99_ms": float(np.percentile(lat_ms, 99)),
        "errors": int(errors),
        "error_kinds": kinds,
        "stopped_by_time": len(latencies) < len(requests),
    }


def plans(n_single: int, n_batch: int, species: list[str], seed: int = 0) -> dict:
    lat, lon, dates = query_places(max(n_single, BATCH_POINTS * 4), seed)
    single = [("GET", "/v1/predict", {"lat": float(lat[i]), "lon": float(lon[i]),
                                      "date": dates[i], "k": 10})
              for i in range(n_single)]
    rng = np.random.default_rng(seed + 1)
    batch = []
    for _ in range(n_batch):
        rows = rng.integers(0, lat.size, BATCH_POINTS)
        chosen = rng.choice(len(species), SPECIES_PER_BATCH, replace=False)
        batch.append(("POST", "/v1/scores", {
            "points": [{"lat": float(lat[i]), "lon": float(lon[i]), "date": dates[i]} for i in rows],
            "species": [species[j] for j in chosen],
        }))
    return {"single": single, "batch256": batch}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="A small run (seconds, not minutes).")
    p.add_argument("--requests", type=int, default=None, help="single-point requests per run")
    p.add_argument("--batch-requests", type=int, default=None, help="256-point requests per run")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--steps", type=int, default=None, help="training steps of the prior")
    p.add_argument("--max-seconds", type=float, default=300.0, help="cap on each run")
    p.add_argument("--warmup", type=int, default=None, help="requests of each kind first")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = p.parse_args(argv)
    n_single = args.requests or (500 if args.quick else 20_000)
    n_batch = args.batch_requests or (50 if args.quick else 2_000)
    steps = args.steps or (100 if args.quick else 600)
    warmup = args.warmup if args.warmup is not None else (20 if args.quick else 200)
    connections = min(args.connections, 8) if args.quick else args.connections

    from geoprior.export import export_onnx

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "bird.prior"
        prior, train_s = sample_prior(steps, folder)
        onnx_path = export_onnx(prior, Path(tmp) / "bird.onnx")
        print(f"trained {steps} steps in {train_s:.0f} s; exported", file=sys.stderr)
        load = plans(n_single, n_batch, list(prior.species))
        warm = plans(warmup, max(1, warmup // 10), list(prior.species), seed=7)
        for backend, path in (("jax", folder), ("onnx", onnx_path)):
            with Server(path) as server:
                for kind in ("single", "batch256"):
                    asyncio.run(_load(server.url, warm[kind], connections, args.max_seconds))
                    row = asyncio.run(_load(server.url, load[kind], connections, args.max_seconds))
                    row["places_per_s"] = row["requests_per_s"] * (
                        1 if kind == "single" else BATCH_POINTS)
                    results[f"{backend}/{kind}"] = row
                    print(f"{backend} {kind}: {row['requests_per_s']:.0f} req/s, p50 "
                          f"{row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, "
                          f"{row['errors']} errors", file=sys.stderr)
    config = {
        "quick": args.quick, "connections": connections, "single_requests": n_single,
        "batch_requests": n_batch, "batch_points": BATCH_POINTS,
        "species_per_batch": SPECIES_PER_BATCH, "warmup": warmup, "train_steps": steps,
        "train_seconds": train_s, "species": prior.n_species, "max_seconds": args.max_seconds,
        "load_average_1min_at_end": os.getloadavg()[0],
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "machine": platform.machine(),
    }
    write(args.out, config, results)
    return results


def write(out: Path, config: dict, results: dict) -> None:
    name = "bench_serve_quick" if config["quick"] else "bench_serve"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps({"config": config, "results": results},
                                                 indent=2) + "\n")
    base = {kind: results[f"jax/{kind}"]["requests_per_s"] for kind in ("single", "batch256")}
    lines = [
        f"`geoprior serve` under load: {config['connections']} connections from one client "
        f"process on the same {config['cpus']}-core machine (1-minute load average "
        f"{config.get('load_average_1min_at_end', float('nan')):.1f} at the end: other work "
        f"shared it); a prior of {config['species']} "
        f"species trained {config['train_steps']} steps on the embedded NEON bird sample. "
        f"single: GET /v1/predict (k = 10), {config['single_requests']:,} requests; "
        f"batch256: POST /v1/scores of {config['batch_points']} places x "
        f"{config['species_per_batch']} species, {config['batch_requests']:,} requests.",
        "",
        "| backend | request | requests | requests/s | places/s | p50 ms | p99 ms | errors | "
        "req/s vs JAX |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, r in results.items():
        backend, kind = key.split("/")
        lines.append(
            f"| {backend} | {kind} | {r['requests']:,} | {r['requests_per_s']:.0f} | "
            f"{r['places_per_s']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} | "
            f"{r['requests_per_s'] / base[kind]:.2f} |"
        )
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
