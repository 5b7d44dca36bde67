"""compute_thresholds: the LPT and F1 rules, checked against brute force on small priors."""

from __future__ import annotations

import h3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoprior import CountGridPrior, Observations
from geoprior.errors import ConfigError, EmptyDataError, UnknownSpeciesError
from geoprior.maps.grid import cell_centres
from geoprior.maps.thresholds import _background_cells, compute_thresholds

CENTRES = {"a": (45.0, -75.0), "b": (-20.0, 135.0), "c": (50.0, 10.0)}


class BlobPrior:
    """p = exp(-d^2 / 2 sigma^2) around each species' centre (d in degrees); with
    ``seasonal`` the value is scaled by month / 12, so the date matters."""

    def __init__(self, species=tuple(CENTRES), sigma=8.0, seasonal=False):
        self.species = tuple(species)
        self.sigma = sigma
        self.seasonal = seasonal
        self.calls = []

    def predict(self, lat, lon, date=None):
        lat, lon = np.atleast_1d(lat).astype(float), np.atleast_1d(lon).astype(float)
        self.calls.append(date)
        out = np.zeros((lat.size, len(self.species)), np.float32)
        for j, name in enumerate(self.species):
            clat, clon = CENTRES.get(name, (0.0, 0.0))
            d2 = (lat - clat) ** 2 + (lon - clon) ** 2
            out[:, j] = np.exp(-d2 / (2 * self.sigma**2))
        if self.seasonal and date is not None:
            d = np.asarray(date, dtype="datetime64[D]")
            month = (d.astype("datetime64[M]").astype(int) % 12 + 1).astype(np.float32)
            out *= (month / 12.0)[:, None] if month.ndim else month / 12.0
        return out


def observations(n=60, seed=0, species=tuple(CENTRES)):
    rng = np.random.default_rng(seed)
    lat, lon, sp = [], [], []
    for name in species:
        clat, clon = CENTRES[name]
        lat.append(clat + rng.normal(0, 4, n))
        lon.append(clon + rng.normal(0, 4, n))
        sp += [name] * n
    dates = np.datetime64("2021-01-01") + rng.integers(0, 365, n * len(species))
    return Observations.from_arrays(np.concatenate(lat), np.concatenate(lon), sp, date=dates)


def own_values(prior, obs):
    probs = prior.predict(obs.lat, obs.lon, obs.date)
    idx = obs.with_vocabulary(prior.species).species_index
    return probs[np.arange(len(obs)), idx], idx


@settings(max_examples=25, deadline=None)
@given(percentile=st.floats(0, 99.9), seed=st.integers(0, 1000))
def test_lpt_keeps_at_least_the_promised_share_of_presences(percentile, seed):
    prior, obs = BlobPrior(), observations(n=37, seed=seed)
    t = compute_thresholds(prior, obs, "lpt", percentile)
    values, idx = own_values(prior, obs)
    for j in range(len(prior.species)):
        v = values[idx == j]
        assert (v >= t[j]).mean() >= 1 - percentile / 100
        assert t[j] in v  # a presence's own value
        assert t[j] == np.percentile(v, percentile, method="lower")


def test_lpt_zero_percentile_is_the_lowest_presence():
    prior, obs = BlobPrior(), observations()
    values, idx = own_values(prior, obs)
    t = compute_thresholds(prior, obs, "lpt", 0.0)
    np.testing.assert_array_equal(t, [values[idx == j].min() for j in range(3)])


def test_lpt_evaluates_each_presence_at_its_own_date():
    prior, obs = BlobPrior(seasonal=True), observations()
    values, idx = own_values(prior, obs)  # dated values: scaled by month / 12
    t = compute_thresholds(prior, obs, "lpt", 10.0)
    expected = [np.percentile(values[idx == j], 10.0, method="lower") for j in range(3)]
    np.testing.assert_array_equal(t, expected)
    undated = compute_thresholds(
        prior, Observations.from_arrays(obs.lat, obs.lon, obs.species_names)
    )
    assert (undated > t).all()  # year-round values are not scaled down


def test_lpt_works_for_a_baseline(synthetic_obs):
    prior = CountGridPrior.fit(synthetic_obs, res=3)
    t = compute_thresholds(prior, synthetic_obs)
    assert t.shape == (len(prior.species),) and np.isfinite(t).all()
    assert ((t > 0) & (t <= 1)).all()


def test_lpt_works_for_a_trained_geoprior(trained_prior, synthetic_obs):
    t = compute_thresholds(trained_prior, synthetic_obs, "lpt", 5.0)
    probs = trained_prior.predict(
        synthetic_obs.lat, synthetic_obs.lon, synthetic_obs.date, output="presence"
    )
    obs = synthetic_obs.with_vocabulary(trained_prior.species)
    own = probs[np.arange(len(obs)), obs.species_index]
    for j in range(len(trained_prior.species)):
        assert (own[obs.species_index == j] >= t[j]).mean() >= 0.95


def brute_f1(prior, obs, res, n_background, seed=0):
    """The F1 rule written out species by species."""
    obs = obs.with_vocabulary(prior.species)
    occupied = np.array([h3.str_to_int(c) for c in obs.h3_cells(res)], dtype=np.int64)
    cells = np.unique(np.concatenate([occupied, _background_cells(n_background, res, seed)]))
    probs = prior.predict(*cell_centres(cells))
    out = []
    for j in range(len(prior.species)):
        present = np.isin(cells, occupied[obs.species_index == j])
        best, best_t = -1.0, np.nan
        for t in np.unique(probs[present, j]):
            tp = (probs[present, j] >= t).sum()
            fp = (probs[~present, j] >= t).sum()
            f1 = 2 * tp / (2 * tp + fp + (present.sum() - tp))
            if f1 >= best:
                best, best_t = f1, t
        out.append(best_t)
    return np.array(out, np.float32)


@pytest.mark.parametrize("n_background", [0, 300])
def test_f1_matches_brute_force(n_background):
    prior, obs = BlobPrior(sigma=12.0), observations(n=80)
    t = compute_thresholds(prior, obs, "f1", res=3, n_background=n_background)
    np.testing.assert_array_equal(t, brute_f1(prior, obs, 3, n_background))


def test_f1_with_shared_cells_and_ties():
    # species "a" and "c" share places; a constant prior makes every value a tie
    class Flat(BlobPrior):
        def predict(self, lat, lon, date=None):
            return np.full((np.atleast_1d(lat).size, len(self.species)), 0.25, np.float32)

    obs = Observations.concat([observations(n=30), observations(n=30, species=("a",), seed=3)])
    t = compute_thresholds(Flat(), obs, "f1", res=2, n_background=50)
    np.testing.assert_array_equal(t, brute_f1(Flat(), obs, 2, 50))
    assert (t == 0.25).all()


def test_species_subset_and_species_without_presences():
    prior = BlobPrior(species=("a", "b", "c", "z"))
    obs = observations()
    full = compute_thresholds(prior, obs)
    assert np.isnan(full[3]) and np.isfinite(full[:3]).all()
    sub = compute_thresholds(prior, obs, species=["c", "a"])
    np.testing.assert_array_equal(sub, full[[2, 0]])
    f1 = compute_thresholds(prior, obs, "F1", species=["z", "b"], res=2, n_background=10)
    assert np.isnan(f1[0]) and np.isfinite(f1[1])


def test_bad_arguments_raise_clear_errors():
    prior, obs = BlobPrior(), observations(n=5)
    with pytest.raises(ConfigError, match="rule"):
        compute_thresholds(prior, obs, "median")
    with pytest.raises(ConfigError, match="percentile"):
        compute_thresholds(prior, obs, "lpt", 100.0)
    with pytest.raises(ConfigError, match="Observations"):
        compute_thresholds(prior, {"lat": [1.0]})
    with pytest.raises(ConfigError, match="n_background"):
        compute_thresholds(prior, obs, "f1", n_background=-1)
    with pytest.raises(UnknownSpeciesError, match="Did you mean"):
        compute_thresholds(prior, obs, species=["aa", "b"])
    with pytest.raises(UnknownSpeciesError):
        compute_thresholds(BlobPrior(species=("a", "b")), obs)
    with pytest.raises(EmptyDataError):
        compute_thresholds(
            BlobPrior(species=("a", "z")), observations(species=("a",)), species=["z"]
        )


def test_a_geoprior_scores_only_the_columns_a_rule_needs():
    from conftest import random_prior

    prior = random_prior(40, use_date=True, loss="maxent", seed=5)
    rng = np.random.default_rng(1)
    n = 300
    obs = Observations.from_arrays(
        rng.uniform(-60, 70, n),
        rng.uniform(-180, 180, n),
        rng.choice(["s3", "s17", "s31"], n),
        date=np.datetime64("2021-01-01") + rng.integers(0, 365, n),
    )

    class Columns:  # the prior, recording the columns each call asks for
        species = prior.species

        def __init__(self):
            self.shapes = []

        def predict(self, lat, lon, date=None, species=None):
            self.shapes.append(np.shape(species))
            return prior.predict(lat, lon, date, species=species)

    class Whole:  # the generic route: every species, then the columns
        species = prior.species

        def predict(self, lat, lon, date=None):
            return prior.predict(lat, lon, date)

    for rule, kw, width in (
        ("lpt", {}, 1),  # each presence's own species
        ("f1", dict(species=["s31", "s3"], res=2, n_background=50), 2),
    ):
        spy = Columns()
        t = compute_thresholds(spy, obs, rule, **kw)
        assert spy.shapes and all(shape[-1] == width for shape in spy.shapes)
        np.testing.assert_allclose(t, compute_thresholds(Whole(), obs, rule, **kw), rtol=1e-5)
