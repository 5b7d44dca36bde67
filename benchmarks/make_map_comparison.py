"""One species' range map from three priors side by side: geoprior, nearest neighbour, BirdNET.

    python -m benchmarks.make_map_comparison [--out docs/img/range-map-compare-setophaga-virens.png]
                                             [--prior neon_bird.prior] [--results DIR]

Trains the default GeoPrior on the embedded NEON bird sample, as the README's
``geoprior train sample:neon_bird`` does (``TrainConfig()``, no tuning; ``--prior`` loads one
already trained that way instead), fits a :class:`~geoprior.NearestNeighborPrior` (automatic
bandwidth) on the same observations and loads :class:`~geoprior.BirdNETPrior` (the
``birdnet`` extra, offline). Each prior maps Setophaga virens (Black-throated Green Warbler)
on 15 June at H3 resolution 4 over the same region of the eastern and central US and Canada,
with :func:`geoprior.maps.range_map` and :func:`geoprior.maps.plot.plot_range_map`. Each panel is
coloured on its own score; the in-range outline follows each prior's threshold: geoprior's
stored LPT (what ``geoprior range-map`` uses by default), the same LPT rule for the
nearest-neighbour prior (it stores none) and BirdNET's own 0.03. Black dots: the NEON places
where the species was recorded; grey rings: the other NEON bird places.

Prints, per prior, the threshold; how many of the region's land cells it calls in range, and
how many of those lie beyond the GeoPrior's extent (``far_km`` from every NEON place); its
highest score and the share of land at half of that or more; and its score at five named
places (:data:`CHECK_POINTS`). Writes them to DIR/map_comparison.{json,md} (default
benchmarks/results).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import h3
import matplotlib
import numpy as np

from geoprior import BirdNETPrior, NearestNeighborPrior, TrainConfig, load_prior, train_prior
from geoprior.geo import haversine_km
from geoprior.io.samples import load_sample
from geoprior.maps import MONTH_YEAR, range_map
from geoprior.maps.plot import plot_range_map, project_points
from geoprior.persistence import atomic_path
from geoprior.priors.protocol import predict_columns

from .common import table, write_json, write_text

SPECIES = "Setophaga virens"
COMMON_NAME = "Black-throated Green Warbler"
MONTH = 6
RES = 4
#: west, south, east, north: the eastern and central US and southern Canada.
REGION = (-106.0, 24.0, -52.0, 56.0)
#: ``name: (lat, lon)``; which side of the June range each lies on is in the name.
CHECK_POINTS = {
    "White Mountains, NH (breeding; NEON site)": (44.06, -71.31),
    "Great Smoky Mountains, TN (breeding; NEON site)": (35.69, -83.52),
    "Adirondacks, NY (breeding; between NEON sites)": (44.0, -74.3),
    "central Illinois (not breeding; between NEON sites)": (40.1, -88.9),
    "Edwards Plateau, TX (not in June)": (30.3, -99.0),
}
DEFAULT_OUT = Path("docs/img/range-map-compare-setophaga-virens.png")
RESULTS = Path(__file__).resolve().parent / "results"
FIGSIZE = (17.0, 5.0)
DPI = 110


def priors(obs, saved: Path | None) -> list[tuple[str, str, object, object]]:
    """``(name, score, prior, threshold)`` of each panel, left to right."""
    geo = load_prior(saved) if saved else train_prior(obs, TrainConfig(), progress=False)
    return [
        ("geoprior (default)", "presence output", geo, None),
        ("nearest neighbour", "p(species | place)", NearestNeighborPrior.fit(obs), "lpt"),
        ("BirdNET range model", "occurrence score", BirdNETPrior(), None),
    ]


def places(obs) -> tuple[np.ndarray, np.ndarray]:
    """``(lat, lon)`` of the places with the species and of the other places, one row each."""
    every = np.unique(np.stack([obs.lat, obs.lon], axis=1), axis=0)
    here = obs.species_index == obs.species.index(SPECIES)
    seen = np.unique(np.stack([obs.lat[here], obs.lon[here]], axis=1), axis=0)
    others = every[~(every[:, None, :] == seen[None, :, :]).all(-1).any(1)]
    return seen, others


def write_png(fig, path: Path) -> None:
    """The figure as a 256-colour PNG, written atomically (a third of the full-colour size)."""
    from PIL import Image

    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    image = Image.fromarray(rgb).quantize(256, dither=Image.Dither.NONE)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", optimize=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--prior", type=Path, help="a prior saved by `geoprior train sample:neon_bird`"
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    obs = load_sample("neon_bird")
    seen, others = places(obs)
    names = list(CHECK_POINTS)
    lat, lon = np.array(list(CHECK_POINTS.values())).T
    date = f"{MONTH_YEAR}-{MONTH:02d}-15"

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    panels = priors(obs, args.prior)
    geo = panels[0][2]
    fig, axes = plt.subplots(1, 3, figsize=FIGSIZE, dpi=DPI, layout="constrained")
    results = []
    for ax, (name, score, prior, rule) in zip(axes, panels):
        frame = range_map(
            prior, SPECIES, res=RES, month=MONTH, bbox=REGION, threshold=rule, observations=obs
        )
        plot_range_map(frame, ax=ax, title=name, colorbar_label=f"{name}: {score}")
        ax.scatter(
            *project_points(ax, others[:, 0], others[:, 1]),
            s=7, facecolors="none", edgecolors="0.45", lw=0.5, zorder=7,
        )
        ax.scatter(*project_points(ax, seen[:, 0], seen[:, 1]), s=5, c="black", lw=0, zorder=7)
        col = np.array([prior.species.index(SPECIES)])
        at = predict_columns(prior, lat, lon, date, col, output="presence")[:, 0]
        inside = frame["in_range"].to_numpy(bool)
        centres = np.array([h3.cell_to_latlng(c) for c in frame["h3_cell"]])
        far = geo.outside(centres[:, 0], centres[:, 1])
        results.append(
            {
                "prior": name,
                "score": score,
                "threshold": float(frame.attrs["thresholds"][SPECIES]),
                "land_cells": len(frame),
                "cells_in_range": int(inside.sum()),
                "share_in_range": float(inside.mean()),
                "share_of_range_beyond_extent": float(far[inside].mean()) if inside.any() else None,
                "max_score": float(frame["prob"].max()),
                "share_above_half_max": float((frame["prob"] >= frame["prob"].max() / 2).mean()),
                "at": dict(zip(names, at.tolist())),
            }
        )
    dots = dict(ls="", marker="o", color="black")
    fig.legend(
        handles=[
            Line2D([], [], ms=3, label=f"NEON places with {SPECIES}", **dots),
            Line2D([], [], ms=4, mfc="none", mec="0.45", label="other NEON bird places", **dots),
        ],
        loc="outside lower center",
        ncol=2,
        fontsize=9,
        frameon=False,
    )
    fig.suptitle(
        f"{SPECIES} ({COMMON_NAME}), 15 June, H3 resolution {RES}: each panel on its own scale",
        fontsize=12,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_png(fig, args.out)
    plt.close(fig)

    every = np.concatenate([seen, others])
    km = haversine_km(lat[:, None], lon[:, None], every[None, :, 0], every[None, :, 1]).min(1)
    headers = ["prior", "threshold", "cells in range", "share of land in range"]
    headers += [f"share of range > {geo.far_km:.0f} km (beyond geoprior's extent)", "max"]
    headers += ["share of land ≥ max/2"]
    headers += names
    rows = [
        [
            r["prior"],
            r["threshold"],
            r["cells_in_range"],
            r["share_in_range"],
            r["share_of_range_beyond_extent"],
            r["max_score"],
            r["share_above_half_max"],
            *r["at"].values(),
        ]
        for r in results
    ]
    rows.append(["km to the nearest NEON place", *[None] * 6, *np.rint(km).astype(int)])
    text = (
        f"{SPECIES} on {date}, H3 resolution {RES}, {results[0]['land_cells']} land cells in "
        f"{REGION} (west, south, east, north); scores at the named places:\n\n"
        + table(headers, rows)
    )
    config = {
        "species": SPECIES,
        "date": date,
        "res": RES,
        "region": REGION,
        "check_points": CHECK_POINTS,
        "check_points_km_to_nearest_neon_place": dict(zip(names, km.tolist())),
        "far_km": geo.far_km,
        "nearest_neighbour_bandwidth_km": panels[1][2].bandwidth_km,
        "geoprior": "TrainConfig() defaults" if args.prior is None else str(args.prior),
    }
    write_json(args.results / "map_comparison.json", {"config": config, "results": results})
    write_text(args.results / "map_comparison.md", text + "\n")
    print(text)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KB)", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
