"""Prior-only accuracy at held-out recordings: BirdCLEF 2022 (Xeno-canto metadata).

The prior alone predicts the species of each held-out recording from its place (the
recordings have no dates); we report top-1/5/10 accuracy over the 152 species
(:func:`geoprior.evaluate.top_k_accuracy`, ties counted as their expected value). Splits:
**random** (a fifth of the recordings) and **spatial blocks** (a fifth of the occupied
H3 resolution-3 cells, so no test place has training data in its own cell).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from geoprior import (
    CountGridPrior,
    FrequencyPrior,
    NearestNeighborPrior,
    Observations,
)
from geoprior.evaluate import top_k_accuracy

from .common import (
    Section,
    Timer,
    bar_plot,
    birdnet_aligned,
    compare,
    missing,
    subsample,
    table,
    train,
)

SPLITS = ("random", "spatial blocks")
TEST_FRACTION = 0.2
BLOCK_RES = 3
KS = (1, 5, 10)
GEO, GRID, KNN, FREQ, BIRDNET = (
    "geoprior",
    "count grid",
    "nearest neighbour",
    "frequency",
    "BirdNET (year-round)",
)


def load(data: Path) -> Observations:
    """Recordings as Observations over the 152 species (named by their scientific name);
    rows without coordinates are dropped and counted in ``.report``."""
    df = pd.read_csv(data / "birdclef2022" / "train_metadata.csv")
    named = df[df["scientific_name"] != "-"]
    sci = named.groupby("primary_label")["scientific_name"].agg(lambda s: s.value_counts().index[0])
    return Observations.from_arrays(
        pd.to_numeric(df["latitude"], errors="coerce"),
        pd.to_numeric(df["longitude"], errors="coerce"),
        df["primary_label"].map(sci).fillna(df["primary_label"]).to_numpy(),
        on_invalid="drop",
        where="BirdCLEF 2022 train_metadata",
    )


def split(obs: Observations, how: str) -> tuple[Observations, Observations]:
    if how == "random":
        return obs.split_random(TEST_FRACTION, seed=0)
    return obs.split_spatial_blocks(TEST_FRACTION, res=BLOCK_RES, seed=0)


def priors(train_obs: Observations, quick: bool, timer: Timer, tag: str) -> dict:
    """Every prior of the comparison, fitted on ``train_obs``."""
    out = {}
    with timer(f"{tag}: {GEO} train"):
        out[GEO] = train(subsample(train_obs, quick), quick)
    with timer(f"{tag}: baselines"):
        out[GRID] = CountGridPrior.fit(train_obs)
        out[KNN] = NearestNeighborPrior.fit(train_obs)
        out[FREQ] = FrequencyPrior.fit(train_obs)
    return out


def run(data: Path, quick: bool, img: Path, cache: dict | None = None) -> Section:
    section = Section("birdclef", "Prior-only accuracy at held-out recordings (BirdCLEF 2022)")
    note = missing(data, "birdclef2022", ["train_metadata.csv"])
    if note:
        section.skipped = note
        return section
    timer = Timer()
    with timer("load"):
        obs = load(data)
    bn, alignment, bn_note = birdnet_aligned(obs.species)
    splits = SPLITS[:1] if quick else SPLITS
    cases = []
    for how in splits:
        train_obs, test_obs = split(obs, how)
        fitted = priors(train_obs, quick, timer, how)
        if cache is not None:
            cache[("birdclef", how)] = (train_obs, test_obs, fitted)
        scores = {m: p.predict(test_obs.lat, test_obs.lon) for m, p in fitted.items()}
        if bn is not None:
            with timer(f"{how}: BirdNET"):
                scores[BIRDNET] = alignment.apply(bn.predict(test_obs.lat, test_obs.lon))
        labels = test_obs.species_index
        res = {m: {f"top{k}": top_k_accuracy(s, labels, k) for k in KS} for m, s in scores.items()}
        cases.append(
            {
                "split": how,
                "n_train": len(train_obs),
                "n_test": len(test_obs),
                "n_train_geoprior": min(len(train_obs), len(subsample(train_obs, quick))),
                "test_species": int(np.unique(labels).size),
                "geoprior_steps": fitted[GEO].header["resolved"]["steps"],
                "methods": res,
            }
        )
    birdnet = {"note": bn_note}
    if bn is not None:
        unmatched = set(alignment.unmatched)
        birdnet = {
            "species_unknown_to_birdnet": sorted(unmatched),
            "note": "species BirdNET does not know get a neutral prior (geometric mean "
            "of the row's known species); undated queries use BirdNET week -1",
        }
    section.results = {
        "cases": cases,
        "birdnet": birdnet,
        "dropped_rows": obs.report.summary(),
        "timing_s": timer.steps,
    }
    section.seconds = timer.total()

    order = [GEO, GRID, KNN, FREQ, BIRDNET]
    rows = []
    for c in cases:
        for m in [m for m in order if m in c["methods"]]:
            rows.append([c["split"], m, *[c["methods"][m][f"top{k}"] for k in KS]])
    md = [
        f"The prior alone ranks the {obs.n_species} species at each held-out recording "
        f"({len(obs)} recordings with coordinates; {obs.report.summary() or 'none dropped'}).",
        "\n" + table(["split", "method", *[f"top-{k}" for k in KS]], rows),
        "\n"
        + table(
            ["split", "train", "test", "species in test", "geoprior steps"],
            [
                [c["split"], c["n_train"], c["n_test"], c["test_species"], c["geoprior_steps"]]
                for c in cases
            ],
        ),
    ]
    if bn is None:
        md.append(f"\nBirdNET: {bn_note}.")
    else:
        shown = ", ".join(birdnet["species_unknown_to_birdnet"][:8])
        md.append(
            f"\nBirdNET knows {obs.n_species - len(unmatched)} of the {obs.n_species} "
            f"species; unknown to it ({len(unmatched)}): {shown or 'none'}; "
            f"{birdnet['note']}."
        )
    methods = [m for m in order if m in cases[0]["methods"]]
    md.append(
        "\n"
        + bar_plot(
            img / "bench_birdclef_top5.png",
            [c["split"] for c in cases],
            {m: [c["methods"][m]["top5"] for c in cases] for m in methods},
            ylabel="top-5 accuracy",
            title="BirdCLEF 2022: prior-only top-5",
        )
    )
    section.markdown = "\n".join(md)
    for c in cases:
        for k in (1, 10):
            ms = c["methods"]
            section.summary.append(
                compare(
                    f"BirdCLEF {c['split']} top-{k}",
                    {GEO: ms[GEO][f"top{k}"]},
                    {m: ms[m][f"top{k}"] for m in ms if m != GEO},
                )
            )
    return section
