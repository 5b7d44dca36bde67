"""Rerank an image classifier's predictions with a where-and-when prior.

Usage:
    python examples/rerank_classifier.py            # fits a count-grid prior on the sample
    python examples/rerank_classifier.py PRIOR_DIR  # uses a saved prior (geoprior train ...)

Any model (PyTorch, JAX, TensorFlow) ends in a plain ``(n_photos, n_classes)`` array of
logits; here we simulate one on held-out NEON bird records. The simulated classifier is
good except on look-alike species that live in different regions (Eastern vs Western
Meadowlark, Black-capped vs Carolina Chickadee), which it confuses about half the time:
exactly what a location prior can fix.
"""

from __future__ import annotations

import sys

import numpy as np

from geoprior.fusion import align_classes, fit_fusion, rerank
from geoprior.io.samples import load_sample
from geoprior.persistence import load_prior
from geoprior.priors.baselines import CountGridPrior

LOOKALIKES = [("Sturnella magna", "Sturnella neglecta"),
              ("Poecile atricapillus", "Poecile carolinensis")]
N_CLASSES = 60  # the classifier knows the 60 most recorded species, plus the look-alikes


def simulate_logits(true_class: np.ndarray, n_classes: int, twin: np.ndarray, rng) -> np.ndarray:
    """Logits of a decent classifier: the true class stands out, except that a look-alike
    (``twin``, or -1) scores about as high as the true class."""
    n = true_class.size
    logits = rng.normal(0.0, 1.0, (n, n_classes))
    logits[np.arange(n), true_class] += 4.0
    has_twin = twin >= 0
    logits[np.flatnonzero(has_twin), twin[has_twin]] += 4.0 + rng.normal(0.0, 0.5, has_twin.sum())
    return logits


def main(argv: list[str]) -> None:
    rng = np.random.default_rng(0)
    obs = load_sample("neon_bird")
    if len(argv) > 1:
        prior = load_prior(argv[1])
        photos = obs
        print(f"prior: {prior!r} loaded from {argv[1]}")
    else:
        train, photos = obs.split_by_site(0.3, seed=0)  # photos come from held-out plots
        prior = CountGridPrior.fit(train)
        print(f"prior: {prior!r} fitted on {len(train)} records of the NEON bird sample")

    # the classifier's class list: the most recorded species plus the look-alikes
    counts = obs.species_counts()
    common = [obs.species[i] for i in np.argsort(-counts)[:N_CLASSES]]
    classes = common + [s for pair in LOOKALIKES for s in pair if s not in common]
    index = {s: i for i, s in enumerate(classes)}
    twin_of = {a: b for pair in LOOKALIKES for a, b in (pair, pair[::-1])}

    # 3000 "photos": held-out records of known species; 2% have no GPS (lat/lon NaN)
    names = photos.species_names
    rows = rng.choice(np.flatnonzero(np.isin(names, classes)), 3000, replace=False)
    truth = np.array([index[s] for s in names[rows]])
    twin = np.array([index.get(twin_of.get(s, ""), -1) for s in names[rows]])
    logits = simulate_logits(truth, len(classes), twin, rng)
    lat, lon, date = photos.lat[rows].copy(), photos.lon[rows], photos.date[rows]
    lat[rng.random(lat.size) < 0.02] = np.nan

    # fit the fusion on the first 1000 photos (validation), rerank the other 2000
    alignment = align_classes(classes, prior.species, missing="neutral")
    val = slice(0, 1000)
    located = ~np.isnan(lat[val])
    where = (lat[val][located], lon[val][located], date[val][located])
    val_prior = alignment.apply(prior.predict(*where))
    params = fit_fusion(logits[val][located], truth[val][located], val_prior)
    print(f"fitted fusion: mode {params.mode}, weight {params.weight:.3g}, "
          f"temperature {params.temperature:.3g} (validation top-1 {params.classifier_top1:.1%}"
          f" -> {params.top1:.1%})")

    test = slice(1000, None)
    result = rerank(logits[test], classes, prior, lat[test], lon[test], date[test],
                    params=params, missing="neutral", k=3)
    y = truth[test]
    before = result.classifier_index[:, 0] == y
    after = result.top_index[:, 0] == y
    print(f"\ntest photos: {len(result)} ({int(result.no_location.sum())} without location, "
          f"classifier alone for those)")
    print(f"top-1 accuracy: classifier {before.mean():.1%} -> with prior {after.mean():.1%}")
    twins = twin[test] >= 0
    print(f"  on look-alike species: {before[twins].mean():.1%} -> {after[twins].mean():.1%}")
    print(f"{int(result.changed.sum())} predictions changed: {int((after & ~before).sum())} fixed, "
          f"{int((before & ~after).sum())} broken; {int(result.outside_range.sum())} classifier "
          "top-1s flagged as outside their range")

    frame = result.to_frame()
    changed = frame[frame["changed"]]
    print("\nfirst changed predictions (prior value at the photo's place and date):")
    for i, r in changed.head(10).iterrows():
        mark = "fixed" if after[i] else ("broken" if before[i] else "still wrong")
        print(f"  photo {i:4d} at ({lat[test][i]:6.2f}, {lon[test][i]:8.2f}): "
              f"{r['classifier_species']} (prior {r['prior_classifier_species']:.2g}) -> "
              f"{r['species_1']} (prior {r['prior_species_1']:.2g})  [{mark}]")


if __name__ == "__main__":
    main(sys.argv)
