"""Date-aware priors: NEON surveys, ranking the species of held-out survey events.

Records are species-level detections, one per (plot, day, species). A survey event is a
plot on a day; the species detected there are its positives and every other species of the
training vocabulary a real absence for that event. For each held-out event every method
ranks all species; we report the mean over events of the average precision of the detected
species and of recall@10 (:mod:`geoprior.evaluate`).

Splits: **year** holds out the last year (2021) and trains on the earlier ones (new
season, same places); **sites** holds out a random fifth of the NEON sites (new places).
Birds are point counts in the breeding season; mosquitoes and beetles are trapped through
the season, so their species mix changes with the day of the year: they show what the date
input buys.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from geoprior import CountGridPrior, FrequencyPrior, Observations
from geoprior.evaluate import event_average_precision, recall_at_k

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

TAXA = ("bird", "mosquito", "beetle")
#: (taxon, split, train a no-date geoprior too). The suite's time goes to training
#: geoprior, so a separate no-date model is trained where the date question is asked (the
#: year split of the season-long traps); everywhere the date model is also queried undated
#: (for the breeding-season bird counts that is the no-date comparison).
PLAN = (
    ("mosquito", "year", True),
    ("beetle", "year", True),
    ("bird", "year", False),
    ("bird", "sites", False),
)
QUICK_PLAN = (("mosquito", "year", True),)
QUICK_EVENTS = 400
SITE_FRACTION = 0.2
K = 10
#: Months with fewer held-out events are left out of the by-month plot (in the JSON).
MIN_EVENTS_PER_MONTH = 20
GEO_DATE, GEO_NODATE = "geoprior (date)", "geoprior (no date)"
GEO_UNDATED = "geoprior (date model, undated query)"
GRID_MONTH, GRID, FREQ, BIRDNET = "count grid (month)", "count grid", "frequency", "BirdNET"


def load(data: Path, taxon: str) -> pd.DataFrame:
    """Species-level records, one row per (plot, day, species), with site, plot, date,
    year, species, latitude, longitude."""
    df = pd.read_csv(data / "neon" / f"{taxon}.csv.gz")
    df = df[df["taxon_rank"] == "species"]
    plot = df["plotID"] if "plotID" in df else df["location_id"].str.split(".").str[0]
    out = pd.DataFrame(
        {
            "site": df["siteID"].astype(str),
            "plot": plot.astype(str),
            "date": df["observation_datetime"].astype(str).str[:10],
            "species": df["taxon_name"].astype(str),
            "latitude": df["latitude"],
            "longitude": df["longitude"],
        }
    ).drop_duplicates(["plot", "date", "species"])
    out["year"] = out["date"].str[:4].astype(int)
    return out.reset_index(drop=True)


def split(df: pd.DataFrame, how: str, seed: int = 0) -> tuple[np.ndarray, str]:
    """Boolean test mask and a description."""
    if how == "year":
        last = int(df["year"].max())
        return (df["year"] == last).to_numpy(), f"year {last} held out"
    sites = np.sort(df["site"].unique())
    rng = np.random.default_rng(seed)
    test_sites = sites[rng.random(sites.size) < SITE_FRACTION]
    return df["site"].isin(
        test_sites
    ).to_numpy(), f"{test_sites.size} of {sites.size} sites held out: {', '.join(test_sites)}"


def events(test: pd.DataFrame, species: tuple[str, ...]) -> tuple[pd.DataFrame, np.ndarray, int]:
    """Test events (plot x day), their 0/1 detections over ``species``, and how many test
    detections are of species absent from training (they cannot be ranked; counted)."""
    known = test["species"].isin(species)
    ev = test.groupby(["plot", "date"], sort=True)
    table_ = ev.agg(latitude=("latitude", "first"), longitude=("longitude", "first")).reset_index()
    key = pd.MultiIndex.from_frame(test[["plot", "date"]])
    row = pd.MultiIndex.from_frame(table_[["plot", "date"]]).get_indexer(key)
    col = pd.Index(species).get_indexer(test["species"])
    present = np.zeros((len(table_), len(species)), bool)
    present[row[known.to_numpy()], col[known.to_numpy()]] = True
    keep = present.any(axis=1)
    return table_[keep].reset_index(drop=True), present[keep], int((~known).sum())


def _case(df, taxon, how, nodate, quick, timer, cache) -> dict:
    test_mask, desc = split(df, how)
    train_df, test_df = df[~test_mask], df[test_mask]
    obs = Observations.from_arrays(
        train_df["latitude"],
        train_df["longitude"],
        train_df["species"],
        date=train_df["date"],
        where=f"NEON {taxon} train",
    )
    train_obs = subsample(obs, quick)
    ev, present, unseen = events(test_df, obs.species)
    if quick and len(ev) > QUICK_EVENTS:
        rows = np.sort(np.random.default_rng(0).choice(len(ev), QUICK_EVENTS, replace=False))
        ev, present = ev.iloc[rows].reset_index(drop=True), present[rows]
    lat, lon, date = ev["latitude"].to_numpy(), ev["longitude"].to_numpy(), ev["date"].to_numpy()
    scores, notes = {}, []
    name = f"{taxon}/{how}"
    with timer(f"{name}: {GEO_DATE} train"):
        prior = train(train_obs, quick)
    scores[GEO_DATE] = prior.predict(lat, lon, date)
    scores[GEO_UNDATED] = prior.predict(lat, lon)
    if nodate:
        with timer(f"{name}: {GEO_NODATE} train"):
            prior_nd = train(train_obs, quick, use_date=False)
        scores[GEO_NODATE] = prior_nd.predict(lat, lon)
    with timer(f"{name}: baselines"):
        scores[GRID_MONTH] = CountGridPrior.fit(train_obs, by_month=True).predict(lat, lon, date)
        scores[GRID] = CountGridPrior.fit(train_obs).predict(lat, lon)
        scores[FREQ] = FrequencyPrior.fit(train_obs).predict(lat, lon)
    if cache is not None:
        cache[("neon", taxon, how)] = (train_obs, test_df, {GEO_DATE: prior})
    birdnet = {}
    if taxon == "bird":
        with timer(f"{name}: BirdNET"):
            bn, alignment, reason = birdnet_aligned(obs.species)
            if bn is None:
                notes.append(reason)
            else:
                scores[BIRDNET] = alignment.apply(bn.predict(lat, lon, date))
                unmatched = set(alignment.unmatched)
                birdnet = {
                    "species_unknown_to_birdnet": len(unmatched),
                    "detections_of_unknown_species": int(
                        present[:, [s in unmatched for s in obs.species]].sum()
                    ),
                    "unknown_examples": sorted(unmatched)[:10],
                    "note": "species BirdNET does not know get a neutral prior (geometric "
                    "mean of the row's known species)",
                }
    month = pd.to_datetime(ev["date"]).dt.month.to_numpy()
    results = {}
    for m, s in scores.items():
        ap = event_average_precision(s, present)
        rec = recall_at_k(s, present, K)
        by_month = {int(mo): float(np.mean(ap[month == mo])) for mo in np.unique(month)}
        results[m] = {
            "ap": float(np.mean(ap)),
            f"recall@{K}": float(np.mean(rec)),
            "ap_by_month": by_month,
        }
    return {
        "taxon": taxon,
        "split": how,
        "split_description": desc,
        "n_train": len(train_obs),
        "n_train_full": len(obs),
        "n_species": obs.n_species,
        "n_test_events": len(ev),
        "mean_detected_per_event": float(present.sum(1).mean()),
        "test_detections_of_untrained_species": unseen,
        "geoprior_steps": prior.header["resolved"]["steps"],
        "months": {int(mo): int((month == mo).sum()) for mo in np.unique(month)},
        "methods": results,
        "birdnet": birdnet,
        "notes": notes,
    }


def run(data: Path, quick: bool, img: Path, cache: dict | None = None) -> Section:
    section = Section("neon", "Date-aware priors (NEON surveys)")
    plan = QUICK_PLAN if quick else PLAN
    note = missing(data, "neon", sorted({f"{t}.csv.gz" for t, _, _ in plan}))
    if note:
        section.skipped = note
        return section
    timer = Timer()
    frames, cases = {}, []
    for taxon, how, nodate in plan:
        if taxon not in frames:
            with timer(f"{taxon}: load"):
                frames[taxon] = load(data, taxon)
        cases.append(_case(frames[taxon], taxon, how, nodate, quick, timer, cache))
    section.results = {"cases": cases, "k": K, "timing_s": timer.steps}
    section.seconds = timer.total()

    order = [GEO_DATE, GEO_NODATE, GEO_UNDATED, GRID_MONTH, GRID, FREQ, BIRDNET]
    md = [
        "For each held-out survey event (plot x day) every method ranks all species of "
        "the training vocabulary. AP: mean over events of the average precision of the "
        f"species detected; R@{K}: mean share of the detected species in the top {K}. "
        "`geoprior (date model, undated query)` is the date model asked without a date "
        "(it was trained with date dropout, so it also answers year-round)."
    ]
    rows = []
    for c in cases:
        methods = [m for m in order if m in c["methods"]]
        for m in methods:
            r = c["methods"][m]
            rows.append([f"{c['taxon']} / {c['split']}", m, r["ap"], r[f"recall@{K}"]])
    md.append("\n" + table(["taxon / split", "method", "event AP", f"recall@{K}"], rows))
    md.append(
        "\n"
        + table(
            [
                "taxon / split",
                "held out",
                "train rows",
                "species",
                "test events",
                "detections per event",
                "test detections of untrained species",
                "geoprior steps",
            ],
            [
                [
                    f"{c['taxon']} / {c['split']}",
                    c["split_description"],
                    c["n_train"],
                    c["n_species"],
                    c["n_test_events"],
                    c["mean_detected_per_event"],
                    c["test_detections_of_untrained_species"],
                    c["geoprior_steps"],
                ]
                for c in cases
            ],
        )
    )
    for c in cases:
        if c["birdnet"]:
            b = c["birdnet"]
            md.append(
                f"\nBirdNET ({c['taxon']} / {c['split']}): {b['species_unknown_to_birdnet']} of "
                f"{c['n_species']} species unknown to BirdNET "
                f"({b['detections_of_unknown_species']} test detections); {b['note']}."
            )
        for n in c["notes"]:
            md.append(f"\nNote ({c['taxon']} / {c['split']}): {n}.")
    groups = [f"{c['taxon']}/{c['split']}" for c in cases]
    shown = [m for m in order if any(m in c["methods"] for c in cases)]
    md.append(
        "\n"
        + bar_plot(
            img / "bench_neon_ap.png",
            groups,
            {m: [c["methods"].get(m, {}).get("ap") for c in cases] for m in shown},
            ylabel="mean event AP",
            title="NEON: ranking the species of held-out events",
        )
    )
    dated = [c for c in cases if GEO_NODATE in c["methods"]]
    if dated:
        md.append("\n" + _month_plot(img / "bench_neon_by_month.png", dated))
    section.markdown = "\n".join(md)
    for c in cases:
        ms = c["methods"]
        ours = {m: ms[m]["ap"] for m in ms if m.startswith("geoprior")}
        others = {m: ms[m]["ap"] for m in ms if not m.startswith("geoprior")}
        section.summary.append(compare(f"NEON {c['taxon']} / {c['split']} event AP", ours, others))
        if GEO_NODATE in ms:
            gain = ms[GEO_DATE]["ap"] - ms[GEO_NODATE]["ap"]
            section.summary.append(
                f"NEON {c['taxon']} / {c['split']}: the date input changes geoprior's event AP "
                f"by {gain:+.3f} ({ms[GEO_NODATE]['ap']:.3f} → {ms[GEO_DATE]['ap']:.3f}); "
                f"count grid by month {ms[GRID]['ap']:.3f} → {ms[GRID_MONTH]['ap']:.3f}."
            )
    return section


def _month_plot(path: Path, cases: list[dict]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cases), figsize=(4.2 * len(cases), 3.4), squeeze=False)
    for ax, c in zip(axes[0], cases):
        for m in (GEO_DATE, GEO_NODATE, GRID_MONTH, GRID):
            by = c["methods"][m]["ap_by_month"]
            months = sorted(k for k in by if c["months"][k] >= MIN_EVENTS_PER_MONTH)
            ax.plot(months, [by[k] for k in months], marker="o", label=m)
        ax.set_title(f"{c['taxon']} / {c['split']}")
        ax.set_xlabel("month of the event")
        ax.set_ylabel("mean event AP")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"![NEON: event AP by month, with and without the date input](img/{path.name})"
