"""Error reduction when fusing with a classifier — a SEMI-SYNTHETIC test.

No real classifier outputs on geotagged, dated bird images or sounds are available offline,
so the classifier is simulated; everything else is real. The held-out records (their place,
date and true species) come from BirdCLEF 2022 (the random split's test recordings) and
from NEON birds (the 2021 detections), and the priors are those of the other benchmarks,
trained on the other records.

The simulated classifier's logits for a record of species ``y`` are
``scale * affinity(y, j) + noise``, ``noise ~ N(0, 1)`` i.i.d. with a fixed seed, where the
affinity follows the eBird/Clements taxonomy v2021: 1 for ``y`` itself, 0.75 for
congeners, 0.5 for confamilials, 0.2 for species of the same order, 0 otherwise; so a
classifier confuses congeners and confamilials far more than distant species. ``scale`` is
set by bisection so the classifier's top-1 accuracy on the records is 60% (the regime of
iNat2018 classifiers). The same logits are used for every prior and fusion mode.

For every prior: the fusion modes at their documented defaults (``product`` weight 1,
``floor`` 0.005, ``filter`` 0.03) and :func:`geoprior.fit_fusion` (mode and parameters fitted
on a validation half of the records, scored on the other, test half, split by place).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from geoprior import CountGridPrior, FrequencyPrior, Observations, fit_fusion, fuse
from geoprior.evaluate import error_reduction, top_k_accuracy

from . import birdclef, neon
from .common import (
    Section,
    Timer,
    bar_plot,
    birdnet_aligned,
    compare,
    missing,
    table,
    train,
)

TARGET_TOP1 = 0.60
AFFINITY = {"self": 1.0, "genus": 0.75, "family": 0.5, "order": 0.2}
SEED = 2018
FIXED_MODES = {
    "product": {"mode": "product", "weight": 1.0},
    "floor": {"mode": "floor", "weight": 1.0, "floor": 0.005},
    "filter": {"mode": "filter", "threshold": 0.03},
}


def taxonomy(data: Path) -> pd.DataFrame:
    """``SCI_NAME, FAMILY, ORDER1`` of every species in the eBird taxonomy."""
    tax = pd.read_csv(data / "birdclef2022" / "eBird_Taxonomy_v2021.csv", encoding="utf-8-sig")
    return tax[tax["CATEGORY"] == "species"][["SCI_NAME", "FAMILY", "ORDER1"]]


def affinity_matrix(species, tax: pd.DataFrame) -> tuple[np.ndarray, int]:
    """``(S, S)`` confusion affinity from the taxonomy, and how many species it lacks (they
    share only their genus, taken from the name)."""
    by_name = tax.drop_duplicates("SCI_NAME").set_index("SCI_NAME")
    names = pd.Index(species)
    known = names.isin(by_name.index)
    genus = np.array([s.split()[0] for s in species])
    family = np.where(known, by_name.reindex(names)["FAMILY"].to_numpy(), names.to_numpy())
    order = np.where(known, by_name.reindex(names)["ORDER1"].to_numpy(), names.to_numpy())
    a = np.zeros((len(species), len(species)))
    a[order[:, None] == order[None, :]] = AFFINITY["order"]
    a[family[:, None] == family[None, :]] = AFFINITY["family"]
    a[genus[:, None] == genus[None, :]] = AFFINITY["genus"]
    np.fill_diagonal(a, AFFINITY["self"])
    return a, int((~known).sum())


def simulate_logits(
    labels: np.ndarray, affinity: np.ndarray, target: float = TARGET_TOP1, seed: int = SEED
) -> tuple[np.ndarray, float]:
    """Logits ``scale * affinity[label] + N(0, 1)`` with ``scale`` bisected so that the
    top-1 accuracy is ``target``. Returns ``(logits, scale)``."""
    noise = np.random.default_rng(seed).standard_normal((labels.size, affinity.shape[0]))
    rows = affinity[labels]
    lo, hi = 0.0, 50.0
    for _ in range(40):
        mid = (lo + hi) / 2
        acc = np.mean(np.argmax(mid * rows + noise, axis=1) == labels)
        lo, hi = (mid, hi) if acc < target else (lo, mid)
    scale = (lo + hi) / 2
    return (scale * rows + noise).astype(np.float32), float(scale)


def _confusions(logits, labels, affinity) -> dict:
    pred = np.argmax(logits, axis=1)
    wrong = pred != labels
    a = affinity[labels[wrong], pred[wrong]]
    chance = affinity[labels[wrong]]
    share = lambda x, v: float(np.mean(np.isclose(x, v)))  # noqa: E731
    return {
        "errors_to_congeners": share(a, AFFINITY["genus"]),
        "errors_to_confamilials": share(a, AFFINITY["family"]),
        "errors_to_same_order": share(a, AFFINITY["order"]),
        "chance_congeners": float(
            np.mean(np.isclose(chance, AFFINITY["genus"]).sum(1) / (affinity.shape[0] - 1))
        ),
    }


def _fine_grained(scores, labels, affinity) -> dict:
    """How many top-1 errors there are and how many of them name a congener or a
    confamilial (same family, other genus) of the true species."""
    pred = np.argmax(scores, axis=1)
    wrong = pred != labels
    a = affinity[labels[wrong], pred[wrong]]
    n = int(wrong.sum())
    out = {"errors": n}
    for key, level in (("congener", "genus"), ("confamilial", "family")):
        k = int(np.isclose(a, AFFINITY[level]).sum())
        out[f"{key}_errors"] = k
        out[f"{key}_share"] = k / n if n else 0.0
    return out


def _evaluate(name, logits, labels, priors, val, test, affinity) -> dict:
    base = {
        "top1_error": 1 - top_k_accuracy(logits[test], labels[test], 1),
        "top5_error": 1 - top_k_accuracy(logits[test], labels[test], 5),
        "fine_grained": _fine_grained(logits[test], labels[test], affinity),
    }
    rows = []
    for prior_name, p in priors.items():
        settings = dict(FIXED_MODES)
        fitted = fit_fusion(logits[val], labels[val], p[val])
        settings["fitted"] = fitted.as_kwargs()
        for mode, kw in settings.items():
            fused = np.asarray(fuse(logits[test], p[test], **kw))
            e1 = 1 - top_k_accuracy(fused, labels[test], 1)
            e5 = 1 - top_k_accuracy(fused, labels[test], 5)
            rows.append(
                {
                    "prior": prior_name,
                    "mode": mode,
                    "params": kw,
                    "top1_error": e1,
                    "top5_error": e5,
                    "top1_error_reduction": error_reduction(base["top1_error"], e1),
                    "top5_error_reduction": error_reduction(base["top5_error"], e5),
                    "fine_grained": _fine_grained(fused, labels[test], affinity),
                }
            )
    return {
        "dataset": name,
        "no_prior": base,
        "n_val": int(val.sum()),
        "n_test": int(test.sum()),
        "rows": rows,
    }


def _halves(groups: np.ndarray, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Validation / test halves by group (place), so no place is in both."""
    uniq, inv = np.unique(groups.astype(str), return_inverse=True)
    val_groups = np.random.default_rng(seed).random(uniq.size) < 0.5
    val = val_groups[inv]
    return val, ~val


def _birdclef_case(data, quick, timer, cache) -> tuple[tuple, dict, np.ndarray, np.ndarray]:
    key = ("birdclef", "random")
    if key not in cache:
        obs = birdclef.load(data)
        train_obs, test_obs = birdclef.split(obs, "random")
        cache[key] = (train_obs, test_obs, birdclef.priors(train_obs, quick, timer, "fusion"))
    train_obs, test_obs, fitted = cache[key]
    probs = {m: p.predict(test_obs.lat, test_obs.lon) for m, p in fitted.items()}
    bn, alignment, _ = birdnet_aligned(train_obs.species)
    if bn is not None:
        probs[birdclef.BIRDNET] = alignment.apply(bn.predict(test_obs.lat, test_obs.lon))
    places = np.char.add(test_obs.lat.round(3).astype(str), test_obs.lon.round(3).astype(str))
    return train_obs.species, probs, test_obs.species_index, places


def _neon_case(data, quick, timer, cache) -> tuple[tuple, dict, np.ndarray, np.ndarray]:
    key = ("neon", "bird", "year")
    if key not in cache:
        df = neon.load(data, "bird")
        mask, _ = neon.split(df, "year")
        tr = df[~mask]
        obs = Observations.from_arrays(
            tr["latitude"], tr["longitude"], tr["species"], date=tr["date"], where="NEON bird train"
        )
        with timer("fusion: NEON bird geoprior train"):
            cache[key] = (obs, df[mask], {neon.GEO_DATE: train(obs, quick)})
    train_obs, test_df, fitted = cache[key]
    test_df = test_df[test_df["species"].isin(train_obs.species)]
    lat, lon, date = (test_df[c].to_numpy() for c in ("latitude", "longitude", "date"))
    probs = {
        neon.GEO_DATE: fitted[neon.GEO_DATE].predict(lat, lon, date),
        neon.GRID_MONTH: CountGridPrior.fit(train_obs, by_month=True).predict(lat, lon, date),
        neon.FREQ: FrequencyPrior.fit(train_obs).predict(lat, lon),
    }
    bn, alignment, _ = birdnet_aligned(train_obs.species)
    if bn is not None:
        probs[neon.BIRDNET] = alignment.apply(bn.predict(lat, lon, date))
    labels = pd.Index(train_obs.species).get_indexer(test_df["species"])
    return train_obs.species, probs, labels, test_df["plot"].to_numpy()


def run(data: Path, quick: bool, img: Path, cache: dict | None = None) -> Section:
    section = Section("fusion", "Error reduction when fusing with a classifier (semi-synthetic)")
    note = missing(data, "birdclef2022", ["train_metadata.csv", "eBird_Taxonomy_v2021.csv"])
    if note:
        section.skipped = note
        return section
    cache = {} if cache is None else cache
    timer = Timer()
    tax = taxonomy(data)
    cases = [("BirdCLEF 2022 (random split, undated)", _birdclef_case)]
    if not quick and missing(data, "neon", ["bird.csv.gz"]) is None:
        cases.append(("NEON birds (2021, dated)", _neon_case))
    results = []
    for name, make in cases:
        species, probs, labels, places = make(data, quick, timer, cache)
        affinity, not_in_tax = affinity_matrix(species, tax)
        logits, scale = simulate_logits(labels, affinity)
        val, test = _halves(places)
        with timer(f"{name}: fit and score"):
            res = _evaluate(name, logits, labels, probs, val, test, affinity)
        res.update(
            {
                "n_species": len(species),
                "species_not_in_taxonomy": not_in_tax,
                "logit_scale": scale,
                "classifier_top1_all": top_k_accuracy(logits, labels, 1),
                "confusions": _confusions(logits, labels, affinity),
            }
        )
        results.append(res)
    section.results = {
        "cases": results,
        "affinity": AFFINITY,
        "target_top1": TARGET_TOP1,
        "seed": SEED,
        "timing_s": timer.steps,
    }
    section.seconds = timer.total()
    md = [
        "**Semi-synthetic**: real held-out places, dates and species; *simulated* classifier "
        f"logits (taxonomy-structured confusions, top-1 {TARGET_TOP1:.0%}, seed {SEED}); "
        "the same logits for every prior and mode. `fitted` = `fit_fusion` on the validation "
        "half (by place), scored on the test half. Error reductions are relative to the "
        "classifier alone on the test half."
    ]
    for r in results:
        c = r["confusions"]
        md.append(
            f"\n**{r['dataset']}** — {r['n_species']} species "
            f"({r['species_not_in_taxonomy']} not in the taxonomy), {r['n_val']} validation / "
            f"{r['n_test']} test records; classifier alone: top-1 error "
            f"{r['no_prior']['top1_error']:.3f}, top-5 error {r['no_prior']['top5_error']:.3f}; "
            f"its errors go to congeners {c['errors_to_congeners']:.0%} (chance "
            f"{c['chance_congeners']:.1%}), confamilials {c['errors_to_confamilials']:.0%}.\n"
        )
        body = [
            [
                row["prior"],
                row["mode"],
                row["top1_error"],
                row["top1_error_reduction"],
                row["top5_error"],
                row["top5_error_reduction"],
                _params(row["params"]) if row["mode"] == "fitted" else "defaults",
            ]
            for row in r["rows"]
        ]
        md.append(
            table(
                [
                    "prior",
                    "mode",
                    "top-1 error",
                    "rel. reduction",
                    "top-5 error",
                    "rel. reduction",
                    "parameters",
                ],
                body,
            )
        )
        md.append(_fine_grained_table(r))
    groups = [r["dataset"].split(" (")[0] for r in results]
    priors_all = list(dict.fromkeys(row["prior"] for r in results for row in r["rows"]))
    series = {
        p: [
            next(
                (
                    row["top1_error_reduction"]
                    for row in r["rows"]
                    if row["prior"] == p and row["mode"] == "fitted"
                ),
                None,
            )
            for r in results
        ]
        for p in priors_all
    }
    md.append(
        "\n"
        + bar_plot(
            img / "bench_fusion_reduction.png",
            groups,
            series,
            ylabel="relative top-1 error reduction",
            title="Fusion (fitted) with a simulated 60% classifier",
        )
    )
    section.markdown = "\n".join(md)
    for r in results:
        fitted = {
            row["prior"]: row["top1_error_reduction"]
            for row in r["rows"]
            if row["mode"] == "fitted"
        }
        ours = {p: v for p, v in fitted.items() if p.startswith("geoprior")}
        others = {p: v for p, v in fitted.items() if not p.startswith("geoprior")}
        section.summary.append(
            compare(f"{r['dataset']}: relative top-1 error reduction (fitted fusion)", ours, others)
        )
    return section


def _fine_grained_table(r: dict) -> str:
    """Of the test half's top-1 errors, those between congeners and between confamilials,
    for the classifier alone and after each prior's fitted fusion."""
    base = r["no_prior"]["fine_grained"]

    def removed(before, after):
        return 1 - after / before if before else None

    def line(who, f):
        return [
            who,
            f["errors"],
            f"{f['congener_errors']} ({f['congener_share']:.0%})",
            f"{f['confamilial_errors']} ({f['confamilial_share']:.0%})",
            removed(base["congener_errors"], f["congener_errors"]),
            removed(base["confamilial_errors"], f["confamilial_errors"]),
        ]

    body = [line("classifier alone", base)] + [
        line(row["prior"], row["fine_grained"]) for row in r["rows"] if row["mode"] == "fitted"
    ]
    return (
        "\nFine-grained confusion on the test half: of the top-1 errors, those that name a "
        "congener (same genus) or a confamilial (same family, other genus) of the true "
        "species, before and after fitted fusion; *removed* is the relative reduction of "
        "that kind of error.\n\n"
        + table(
            [
                "prior (fitted fusion)",
                "top-1 errors",
                "to congeners",
                "to confamilials",
                "congener errors removed",
                "confamilial errors removed",
            ],
            body,
        )
    )


def _params(kw: dict) -> str:
    parts = [f"mode={kw['mode']}"]
    for k in ("weight", "floor", "threshold", "temperature"):
        v = kw.get(k)
        if v is not None and not (k == "weight" and kw["mode"] in ("filter", "none")):
            parts.append(f"{k}={v:.3g}")
    return ", ".join(parts)
