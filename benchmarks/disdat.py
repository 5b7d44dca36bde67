"""Range accuracy against real absences: the disdat benchmark (Elith et al. 2020).

Per region, every method is fitted on the presence-only records (``train_po.csv``; the
covariate methods also see the 10,000 background sites of ``train_bg.csv``) and scores the
independent presence-absence survey sites (``test_env*.csv`` / ``test_pa*.csv``). Each
species is scored on the test file of its biological group (the file whose columns include
it), with ROC AUC and average precision (:mod:`geoprior.evaluate`).

Methods: geoprior on location only; geoprior with the region's environmental covariates as
inputs (numeric columns standardised, categorical ones one-hot) and the background sites
as extra background; the count-grid and nearest-neighbour baselines (location only); and
MaxEnt as implemented by ``elapid`` (the standard SDM tool, one model per species,
presences against the background sites, the same covariates, categorical ones as
categorical, elapid's defaults).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from geoprior import CountGridPrior, NearestNeighborPrior, Observations
from geoprior.errors import FormatError
from geoprior.evaluate import per_species_auc_ap

from .common import Section, Timer, bar_plot, compare, missing, table, train

REGIONS = ("AWT", "CAN", "NSW", "NZ")
#: Categorical covariates per region (Valavi et al. 2022 treat them as factors); a listed
#: column absent from a region's files (AWT's ``geo`` in this release) is noted.
CATEGORICAL = {"AWT": ("geo",), "CAN": ("ontveg",), "NSW": ("vegsys",), "NZ": ("age", "toxicats")}
NOT_COVARIATES = ("siteid", "spid", "x", "y", "lon", "lat", "occ", "group")
#: ``--quick``: only this region, and only its first species are scored.
QUICK_REGION, QUICK_SPECIES = "NZ", 4
GEO_LOC, GEO_COV = "geoprior (location)", "geoprior (+covariates)"
GRID, KNN, MAXENT = "count grid", "nearest neighbour", "MaxEnt (elapid, covariates)"


def _test_files(folder: Path) -> list[tuple[Path, Path]]:
    envs = sorted(folder.glob("test_env*.csv"))
    return [(e, e.with_name(e.name.replace("test_env", "test_pa"))) for e in envs]


def _design(
    frames: list[pd.DataFrame], numeric: list[str], categorical: list[str], ref: pd.DataFrame
) -> tuple[list[np.ndarray], list[str]]:
    """Standardised numeric columns (by the background's mean and sd) and one-hot
    categorical ones (levels seen in training; an unseen level is all zeros)."""
    mean = ref[numeric].mean()
    std = ref[numeric].std().replace(0, 1.0)
    levels = {c: sorted(ref[c].unique().tolist()) for c in categorical}
    names = list(numeric) + [f"{c}={v}" for c in categorical for v in levels[c]]
    out = []
    for f in frames:
        parts = [((f[numeric] - mean) / std).to_numpy(np.float64)]
        for c in categorical:
            parts.append((f[c].to_numpy()[:, None] == np.array(levels[c])[None, :]).astype(float))
        out.append(np.concatenate(parts, axis=1))
    return out, names


def _maxent_scores(po, bg, tests, covs, categorical, species) -> tuple[dict, str | None]:
    """elapid MaxEnt per species: ``{species: [scores on each test file]}``."""
    try:
        import elapid
    except ImportError:
        return {}, "elapid is not installed (pip install 'geoprior[bench]')"
    cat_idx = [covs.index(c) for c in categorical]
    x_bg = bg[covs].to_numpy(np.float64)
    out = {}
    for sp in species:
        x_pr = po.loc[po["spid"] == sp, covs].to_numpy(np.float64)
        x = np.concatenate([x_pr, x_bg])
        y = np.r_[np.ones(len(x_pr)), np.zeros(len(x_bg))]
        model = elapid.MaxentModel()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(x, y, categorical=cat_idx or None)
            out[sp] = [
                np.asarray(model.predict(t[covs].to_numpy(np.float64))).ravel() for t in tests
            ]
    return out, None


def _region(folder: Path, region: str, quick: bool, timer: Timer) -> tuple[list[dict], dict]:
    po = pd.read_csv(folder / "train_po.csv")
    bg = pd.read_csv(folder / "train_bg.csv")
    covs = [c for c in po.columns if c not in NOT_COVARIATES]
    categorical = [c for c in CATEGORICAL[region] if c in covs]
    numeric = [c for c in covs if c not in categorical]
    files = _test_files(folder)
    tests = [pd.read_csv(e) for e, _ in files]
    pas = [pd.read_csv(p) for _, p in files]
    for (e, p), env, pa in zip(files, tests, pas):
        if len(env) != len(pa) or not (env["siteid"].to_numpy() == pa["siteid"].to_numpy()).all():
            raise FormatError(f"{e.name} and {p.name} do not list the same sites in the same order")

    obs = Observations.from_arrays(
        po["lat"], po["lon"], po["spid"].astype(str), where=f"disdat {region} train_po"
    )
    species = list(obs.species)
    scored = species[:QUICK_SPECIES] if quick else species
    (x_po, x_bg, *x_tests), cov_names = _design([po, bg, *tests], numeric, categorical, bg)
    obs_cov = Observations.from_arrays(
        po["lat"],
        po["lon"],
        po["spid"].astype(str),
        covariates=x_po,
        covariate_names=cov_names,
        where=f"disdat {region} train_po",
    )
    background = Observations.from_arrays(
        bg["lat"],
        bg["lon"],
        [species[0]] * len(bg),
        covariates=x_bg,
        covariate_names=cov_names,
        vocabulary=species,
        where=f"disdat {region} train_bg",
    )

    scores: dict[str, list[np.ndarray]] = {}
    with timer(f"{region}: {GEO_LOC} train"):
        prior = train(obs, quick)
    # a range question (which sites, for one species): the presence output
    scores[GEO_LOC] = [prior.predict(t["lat"], t["lon"], output="presence") for t in tests]
    with timer(f"{region}: {GEO_COV} train"):
        prior_cov = train(obs_cov, quick, background=background)
    scores[GEO_COV] = [
        prior_cov.predict(t["lat"], t["lon"], covariates=x, output="presence")
        for t, x in zip(tests, x_tests)
    ]
    with timer(f"{region}: baselines"):
        grid = CountGridPrior.fit(obs)
        knn = NearestNeighborPrior.fit(obs)
        scores[GRID] = [grid.predict(t["lat"], t["lon"]) for t in tests]
        scores[KNN] = [knn.predict(t["lat"], t["lon"]) for t in tests]
    with timer(f"{region}: {MAXENT}"):
        maxent, maxent_note = _maxent_scores(po, bg, tests, covs, categorical, scored)

    counts = obs.species_counts()
    rows, untested = [], []
    for j, sp in enumerate(species):
        if sp not in scored:
            continue
        k = next((i for i, pa in enumerate(pas) if sp in pa.columns), None)
        if k is None:
            untested.append(sp)
            continue
        labels = pas[k][[sp]].to_numpy()
        row = {
            "region": region,
            "species": sp,
            "test_file": files[k][1].name,
            "n_train": int(counts[j]),
            "n_test_sites": len(labels),
            "n_test_presences": int(labels.sum()),
        }
        methods = {m: s[k][:, [j]] for m, s in scores.items()}
        if sp in maxent:
            methods[MAXENT] = maxent[sp][k][:, None]
        for m, s in methods.items():
            auc, ap = per_species_auc_ap(labels, s)
            row[f"{m} auc"], row[f"{m} ap"] = float(auc[0]), float(ap[0])
        rows.append(row)
    info = {
        "covariates": covs,
        "categorical": categorical,
        "categorical_missing": [c for c in CATEGORICAL[region] if c not in covs],
        "n_presences": len(po),
        "n_species": len(species),
        "n_background": len(bg),
        "test_files": [p.name for _, p in files],
        "species_without_test_file": untested,
        "maxent": maxent_note or "fitted",
        "geoprior_steps": {
            GEO_LOC: prior.header["resolved"]["steps"],
            GEO_COV: prior_cov.header["resolved"]["steps"],
        },
    }
    return rows, info


def run(data: Path, quick: bool, img: Path) -> Section:
    section = Section("disdat", "Range accuracy against real absences (disdat)")
    regions = (QUICK_REGION,) if quick else REGIONS
    note = missing(
        data, "disdat", [f"{r}/{f}" for r in regions for f in ("train_po.csv", "train_bg.csv")]
    )
    no_tests = [r for r in regions if not _test_files(data / "disdat" / r)]
    if not note and no_tests:
        note = missing(data, "disdat", [f"{r}/test_env.csv" for r in no_tests])
    if note:
        section.skipped = note
        return section
    timer = Timer()
    rows, infos = [], {}
    for region in regions:
        r, info = _region(data / "disdat" / region, region, quick, timer)
        rows += r
        infos[region] = info
    methods = [m for m in (GEO_LOC, GEO_COV, GRID, KNN, MAXENT) if f"{m} auc" in rows[0]]
    df = pd.DataFrame(rows)
    means = {}
    for metric in ("auc", "ap"):
        per = {
            reg: {m: float(df.loc[df.region == reg, f"{m} {metric}"].mean()) for m in methods}
            for reg in regions
        }
        per["overall"] = {m: float(df[f"{m} {metric}"].mean()) for m in methods}
        means[metric] = per
    wins = {m: int((df[f"{GEO_LOC} auc"] > df[f"{m} auc"]).sum()) for m in methods if m != GEO_LOC}
    section.results = {
        "means": means,
        "species": rows,
        "regions": infos,
        "geoprior_location_auc_wins": wins,
        "timing_s": timer.steps,
    }
    section.seconds = timer.total()

    headers = ["region", "species", *methods]
    md = [
        "Train on presence-only records, score the independent presence-absence sites "
        "(Elith et al. 2020). Each species is scored on the test sites of its group; the "
        "overall mean is over all species. geoprior is trained with `TrainConfig()` "
        "defaults, one multi-species model per region.",
    ]
    for metric, name in (("auc", "ROC AUC"), ("ap", "average precision")):
        body = [
            [
                reg,
                int((df.region == reg).sum()) if reg != "overall" else len(df),
                *[means[metric][reg][m] for m in methods],
            ]
            for reg in [*regions, "overall"]
        ]
        md += [f"\n**Mean per-species {name}**\n", table(headers, body, range(2, 2 + len(methods)))]
    md.append(
        "\nSpecies (of {}) where geoprior (location) has the higher AUC: {}.".format(
            len(df), ", ".join(f"vs {m} {w}" for m, w in wins.items())
        )
    )
    notes = [
        f"{reg}: {info['maxent']}" for reg, info in infos.items() if info["maxent"] != "fitted"
    ]
    notes += [
        f"{reg}: categorical column(s) {info['categorical_missing']} absent from the files"
        for reg, info in infos.items()
        if info["categorical_missing"]
    ]
    if notes:
        md.append("\nNotes: " + "; ".join(notes) + ".")
    md.append(
        "\n"
        + bar_plot(
            img / "bench_disdat_auc.png",
            [*regions, "overall"],
            {m: [means["auc"][r][m] for r in [*regions, "overall"]] for m in methods},
            ylabel="mean ROC AUC",
            title="disdat: per-species ROC AUC",
        )
    )
    section.markdown = "\n".join(md)
    ours = {m: means["auc"]["overall"][m] for m in methods if m.startswith("geoprior")}
    others = {m: means["auc"]["overall"][m] for m in methods if not m.startswith("geoprior")}
    section.summary.append(compare("disdat mean AUC (all regions)", ours, others))
    ours_ap = {m: means["ap"]["overall"][m] for m in ours}
    others_ap = {m: means["ap"]["overall"][m] for m in others}
    section.summary.append(compare("disdat mean AP (all regions)", ours_ap, others_ap))
    for reg in regions:
        o = {m: means["auc"][reg][m] for m in ours}
        t = {m: means["auc"][reg][m] for m in others}
        section.summary.append(compare(f"disdat {reg} AUC", o, t))
    for reg in regions:
        o = {m: means["ap"][reg][m] for m in ours}
        t = {m: means["ap"][reg][m] for m in others}
        section.summary.append(compare(f"disdat {reg} AP", o, t))
    return section
