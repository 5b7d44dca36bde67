"""Shared helpers of the benchmark suite: the data folder, training with the defaults,
timing, tables, JSON and plots.

Every benchmark module has ``run(data: Path, quick: bool, img: Path[, cache]) -> Section``
(``cache`` lets the fusion benchmark reuse the priors trained by the others); the suite
(``python -m benchmarks``) puts the sections together into ``benchmarks.md`` and
``benchmarks.json``.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geoprior import BirdNETPrior, TrainConfig, align_classes, train_prior
from geoprior.errors import GeopriorError
from geoprior.persistence import atomic_file

#: Where each data source lives under the data folder, and where to get it.
SOURCES = {
    "disdat": (
        "disdat",
        "the NCEAS presence-only/presence-absence benchmark of Elith et al. 2020 (R package "
        "'disdat' on CRAN: write each region's train_po, train_bg, test_env* and test_pa* "
        "tables as CSV into disdat/{AWT,CAN,NSW,NZ}/)",
    ),
    "neon": (
        "neon",
        "NEON organismal surveys via the neonDivData R package (CC0): bird.csv.gz, "
        "beetle.csv.gz, mosquito.csv.gz in neon/",
    ),
    "birdclef2022": (
        "birdclef2022",
        "the Kaggle BirdCLEF 2022 competition's train_metadata.csv, plus the eBird/Clements "
        "taxonomy v2021 (eBird_Taxonomy_v2021.csv from ebird.org) in birdclef2022/",
    ),
}

#: ``--quick``: training steps of every learned prior (the full suite uses the defaults).
QUICK_STEPS = 100
#: ``--quick``: at most this many training rows per prior (a random subsample).
QUICK_ROWS = 6000


def data_dir(arg: str | None) -> Path:
    """The data folder: ``arg``, else ``$GEOPRIOR_DATA``, else ``../shared/data``."""
    return Path(arg or os.environ.get("GEOPRIOR_DATA") or "../shared/data")


def missing(data: Path, source: str, files: Sequence[str]) -> str | None:
    """A message naming the missing files of ``source`` and where to get them, or None."""
    folder, where = SOURCES[source]
    absent = [f for f in files if not (data / folder / f).exists()]
    if not absent:
        return None
    shown = ", ".join(str(Path(folder) / f) for f in absent[:4])
    more = f" and {len(absent) - 4} more" if len(absent) > 4 else ""
    return f"missing {shown}{more} under {data}: get {where}"


@dataclass
class Section:
    """What one benchmark hands to the suite."""

    key: str
    title: str
    markdown: str = ""
    results: dict = field(default_factory=dict)
    summary: list[dict | str] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str | None = None


class Timer:
    """Wall-clock seconds of named steps, in the order they ran (each logged to stderr)."""

    def __init__(self):
        self.steps: dict[str, float] = {}

    def __call__(self, name: str):
        timer = self

        class _Step:
            def __enter__(self):
                self.t0 = time.perf_counter()

            def __exit__(self, *exc):
                seconds = time.perf_counter() - self.t0
                timer.steps[name] = timer.steps.get(name, 0.0) + seconds
                print(f"  {name}: {seconds:.0f} s", file=sys.stderr, flush=True)

        return _Step()

    def total(self) -> float:
        return float(sum(self.steps.values()))


def train_config(quick: bool, **overrides) -> TrainConfig:
    """The default :class:`TrainConfig` (plus ``use_date`` where a method says so);
    ``quick`` caps the steps at :data:`QUICK_STEPS`."""
    if quick:
        overrides.update(max_steps=QUICK_STEPS, min_steps=QUICK_STEPS)
    return TrainConfig(**overrides)


def train(obs, quick: bool, *, background=None, **overrides):
    """Train a prior with the default settings (see :func:`train_config`)."""
    return train_prior(obs, train_config(quick, **overrides), background=background, progress=False)


def subsample(obs, quick: bool, seed: int = 0):
    """``quick``: at most :data:`QUICK_ROWS` random rows; otherwise ``obs`` unchanged."""
    if not quick or len(obs) <= QUICK_ROWS:
        return obs
    rows = np.sort(np.random.default_rng(seed).choice(len(obs), QUICK_ROWS, replace=False))
    return obs[rows]


def birdnet_aligned(species: tuple[str, ...]):
    """BirdNET's prior and its alignment to ``species``, or (None, None, reason)."""
    try:
        prior = BirdNETPrior()
    except GeopriorError as e:
        return None, None, f"BirdNET not available: {e}"
    alignment = align_classes(species, prior.species, missing="neutral")
    return prior, alignment, None


def fmt(value, digits: int = 3) -> str:
    """A table cell: numbers rounded, ``NaN``/``None`` as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence],
    best: Sequence[int] = (),
    higher_is_better: bool = True,
) -> str:
    """A markdown table; in each row the best number among the columns ``best`` is bold."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        vals = [r[c] for c in best if _number(r[c])]
        top = (max(vals) if higher_is_better else min(vals)) if vals else None
        cells = [
            f"**{fmt(v)}**" if c in best and _number(v) and v == top else fmt(v)
            for c, v in enumerate(r)
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _number(v) -> bool:
    return isinstance(v, (float, int, np.floating)) and not math.isnan(v)


def write_text(path: Path, text: str) -> None:
    """Write atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path, "w") as f:
        f.write(text)


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(_plain(obj), indent=1, allow_nan=False) + "\n")


def _plain(obj):
    """JSON-able copy: numpy scalars and arrays as Python values, NaN as None."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def bar_plot(
    path: Path,
    groups: Sequence[str],
    series: dict[str, Sequence[float]],
    *,
    ylabel: str,
    title: str,
) -> str:
    """Grouped bar chart (one bar per method in each group); returns the markdown image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(series)
    width = 0.8 / max(n, 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(groups) * max(1, n) * 0.35 + 3), 3.6))
    x = np.arange(len(groups))
    for i, (name, values) in enumerate(series.items()):
        vals = np.array([np.nan if v is None else v for v in values], dtype=float)
        ax.bar(x + (i - (n - 1) / 2) * width, vals, width, label=name)
    ax.set_xticks(x, groups)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=min(n, 4), loc="lower center", bbox_to_anchor=(0.5, 1.08))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"![{title}](img/{path.name})"


def compare(
    what: str, ours: dict[str, float], others: dict[str, float], higher_is_better: bool = True
) -> dict:
    """The best geoprior variant against the best other method (a tie: equal at the three
    decimals shown)."""
    sign = 1 if higher_is_better else -1
    best_ours = max(ours, key=lambda k: sign * ours[k])
    best_other = max(others, key=lambda k: sign * others[k])
    a, b = float(ours[best_ours]), float(others[best_other])
    diff = sign * (a - b)
    verdict = "ties" if abs(a - b) < 5e-4 else "wins" if diff > 0 else "loses"
    return {
        "what": what,
        "geoprior": best_ours,
        "geoprior_value": a,
        "alternative": best_other,
        "alternative_value": b,
        "verdict": verdict,
    }


def sentence(item: dict | str) -> str:
    """A summary line from :func:`compare`'s result (strings pass through)."""
    if isinstance(item, str):
        return item
    a, b = item["geoprior_value"], item["alternative_value"]
    return (
        f"{item['what']}: {item['geoprior']} {a:.3f} vs the best alternative, "
        f"{item['alternative']}, {b:.3f} — geoprior **{item['verdict']}** ({a - b:+.3f})."
    )
