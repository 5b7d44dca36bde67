"""Tests of the baseline priors: Uniform, Frequency, CountGrid, NearestNeighbor."""

from __future__ import annotations

import h3
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoprior import Observations
from geoprior.errors import (
    ClassMismatchError,
    ConfigError,
    CoordinateError,
    DateError,
    EmptyDataError,
    GeopriorError,
    PriorFileError,
)
from geoprior.persistence import load_prior
from geoprior.priors.baselines import (
    CountGridPrior,
    FrequencyPrior,
    NearestNeighborPrior,
    UniformPrior,
    auto_resolution,
    common,
    nearest,
)
from geoprior.priors.protocol import Prior

HOME = (44.0, -71.3)  # a cell full of species "a"
DESERT = (35.0, -110.0)  # a cell full of species "c"
FAR = (-30.0, 140.0)  # Australia: no data in its whole resolution-0 cell


def _obs(groups, date=None, vocabulary=None):
    """Observations from ``[(lat, lon, species, count), ...]``."""
    lat = np.concatenate([np.full(n, la) for la, _, _, n in groups])
    lon = np.concatenate([np.full(n, lo) for _, lo, _, n in groups])
    sp = np.concatenate([np.full(n, s, dtype=object) for _, _, s, n in groups])
    return Observations.from_arrays(lat, lon, sp, date=date, vocabulary=vocabulary)


@pytest.fixture(scope="module")
def obs():
    return _obs(
        [(*HOME, "a", 50), (*HOME, "b", 5), (*DESERT, "c", 100)], vocabulary=["a", "b", "c", "d"]
    )


@pytest.fixture(scope="module")
def seasonal():
    """One cell: "a" only in July, "b" only in January."""
    dates = ["2020-07-10"] * 20 + ["2020-01-10"] * 20 + [None] * 4
    return _obs([(*HOME, "a", 20), (*HOME, "b", 20), (*DESERT, "c", 4)], date=dates)


def _neighbour(lat, lon, res):
    cell = h3.latlng_to_cell(lat, lon, res)
    return h3.cell_to_latlng(sorted(h3.grid_ring(cell, 1))[0])


# ---------------------------------------------------------------------------- all priors
def _all_priors(obs):
    return [
        UniformPrior(obs.species),
        FrequencyPrior.fit(obs),
        CountGridPrior.fit(obs, res=6),
        NearestNeighborPrior.fit(obs, bandwidth=20.0),
    ]


def test_priors_follow_the_protocol_and_rows_sum_to_one(obs):
    lat, lon = [HOME[0], DESERT[0], FAR[0], 0.0], [HOME[1], DESERT[1], FAR[1], 0.0]
    for prior in _all_priors(obs):
        assert isinstance(prior, Prior)
        assert prior.species == obs.species
        p = prior.predict(lat, lon)
        assert p.shape == (4, 4) and p.dtype == np.float32
        assert (p >= 0).all() and (p <= 1).all()
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
        assert prior.predict(HOME[0], HOME[1]).shape == (1, 4)


def test_save_and_load_predict_bit_identical(obs, seasonal, tmp_path):
    lat = np.array([HOME[0], DESERT[0], FAR[0], 44.05])
    lon = np.array([HOME[1], DESERT[1], FAR[1], -71.35])
    dates = ["2021-07-01", "2021-01-05", None, "2021-03-03"]
    priors = _all_priors(obs) + [
        CountGridPrior.fit(seasonal, res=5, by_month=True, alpha=2.0, smoothing=0.5),
        NearestNeighborPrior.fit(obs, bandwidth=30.0, k=1, smoothing=2.0),
    ]
    for i, prior in enumerate(priors):
        path = prior.save(tmp_path / f"p{i}")
        back = load_prior(path)
        assert type(back) is type(prior) and back.species == prior.species
        np.testing.assert_array_equal(back.predict(lat, lon, dates), prior.predict(lat, lon, dates))


def test_bad_queries_raise_clear_errors(obs):
    for prior in _all_priors(obs):
        with pytest.raises(CoordinateError, match="outside \\[-90, 90\\]; first: row 1 = 91.0"):
            prior.predict([0.0, 91.0], [0.0, 0.0])
        with pytest.raises(CoordinateError, match="missing"):
            prior.predict([np.nan], [0.0])
        with pytest.raises(DateError, match="impossible"):
            prior.predict([0.0], [0.0], "2021-02-30")
        with pytest.raises(DateError, match="could not be parsed"):
            prior.predict([0.0], [0.0], "next tuesday")
        with pytest.raises(ClassMismatchError, match="2 locations but 3 dates"):
            prior.predict([0.0, 1.0], [0.0, 1.0], ["2021-01-01"] * 3)


def test_fit_rejects_bad_data_and_settings(obs):
    with pytest.raises(ConfigError, match="expects an Observations"):
        CountGridPrior.fit([(1.0, 2.0, "a")])
    with pytest.raises(EmptyDataError, match="0 observations"):
        FrequencyPrior.fit(obs[np.zeros(len(obs), bool)])
    with pytest.raises(ConfigError, match="smoothing"):
        FrequencyPrior.fit(obs, smoothing=0)
    with pytest.raises(ConfigError, match="alpha"):
        CountGridPrior.fit(obs, res=5, alpha=-1)
    with pytest.raises(ConfigError, match="resolution"):
        CountGridPrior.fit(obs, res=16)
    with pytest.raises(ConfigError, match="by_month"):
        CountGridPrior.fit(obs, res=5, by_month="yes")
    with pytest.raises(ConfigError, match="bandwidth"):
        NearestNeighborPrior.fit(obs, bandwidth="wide")
    with pytest.raises(ConfigError, match="bandwidth"):
        NearestNeighborPrior.fit(obs, bandwidth=-3.0)
    with pytest.raises(ConfigError, match="k must be"):
        NearestNeighborPrior.fit(obs, bandwidth=3.0, k=0)
    with pytest.raises(ClassMismatchError, match="more than once; first: 'a'"):
        UniformPrior(["a", "b", "a"])
    with pytest.raises(EmptyDataError):
        UniformPrior([])
    with pytest.raises(GeopriorError, match="empty or missing"):
        UniformPrior(["a", ""])


def test_corrupt_saved_prior_raises(obs, tmp_path):
    path = CountGridPrior.fit(obs, res=4).save(tmp_path / "grid")
    with np.load(path / "arrays.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "cells_indptr"}
    np.savez(path / "arrays.npz", **arrays)
    with pytest.raises(PriorFileError, match="incomplete or corrupt"):
        load_prior(path)


# ---------------------------------------------------------------------------- Uniform, Frequency
def test_uniform_is_one_over_s(obs):
    p = UniformPrior(obs.species).predict([1.0, 2.0], [3.0, 4.0], "2021-05-05")
    np.testing.assert_array_equal(p, np.full((2, 4), 0.25, np.float32))


def test_frequency_is_additively_smoothed(obs):
    p = FrequencyPrior.fit(obs, smoothing=1.0).predict([0.0], [0.0])[0]
    expected = (np.array([50, 5, 100, 0]) + 1.0) / (155 + 4.0)
    np.testing.assert_allclose(p, expected, rtol=1e-6)
    assert p[3] > 0  # an unseen species is not impossible


# ---------------------------------------------------------------------------- CountGrid
def test_count_grid_smoothing_levels(obs):
    prior = CountGridPrior.fit(obs, res=6)
    at_home, next_door, far = prior.predict(
        [HOME[0], _neighbour(*HOME, 6)[0], FAR[0]], [HOME[1], _neighbour(*HOME, 6)[1], FAR[1]]
    )
    assert at_home.argmax() == 0 and at_home[0] > 0.8  # many observations: trusts itself
    assert next_door.argmax() == 0  # an empty cell borrows from its neighbour
    global_freq = FrequencyPrior.fit(obs).predict([0.0], [0.0])[0]
    np.testing.assert_allclose(far, global_freq, rtol=1e-6)  # no data anywhere near


def test_count_grid_shrinks_less_with_more_data():
    few = CountGridPrior.fit(_obs([(*HOME, "a", 2), (*DESERT, "b", 50)]), res=6)
    many = CountGridPrior.fit(_obs([(*HOME, "a", 200), (*DESERT, "b", 50)]), res=6)
    assert few.predict(*HOME)[0, 0] < many.predict(*HOME)[0, 0]


def test_count_grid_months(seasonal):
    monthly = CountGridPrior.fit(seasonal, res=6, by_month=True)
    jul, jan, undated = monthly.predict(
        [HOME[0]] * 3, [HOME[1]] * 3, ["2021-07-20", "2021-01-03", None]
    )
    a, b = seasonal.species.index("a"), seasonal.species.index("b")
    assert jul[a] > jan[a] and jan[b] > jul[b]
    assert jul.argmax() == a and jan.argmax() == b
    yearly = CountGridPrior.fit(seasonal, res=6)
    np.testing.assert_array_equal(undated, yearly.predict(*HOME)[0])  # no date = all year
    # without by_month, dates are validated but do not matter
    np.testing.assert_array_equal(yearly.predict(*HOME, "2021-07-20"), yearly.predict(*HOME))


def test_count_grid_month_borrows_from_neighbouring_months(seasonal):
    monthly = CountGridPrior.fit(seasonal, res=6, by_month=True)
    aug, oct_ = monthly.predict([HOME[0]] * 2, [HOME[1]] * 2, ["2021-08-15", "2021-10-15"])
    a = seasonal.species.index("a")
    assert aug[a] > oct_[a]  # August's window holds July


def test_count_grid_auto_resolution_adapts_to_extent():
    rng = np.random.default_rng(0)
    regional = rng.normal(0, 0.002, (400, 2)) + HOME  # a few hundred metres
    spread = np.column_stack([rng.uniform(-60, 70, 400), rng.uniform(-180, 180, 400)])
    fine = auto_resolution(regional[:, 0], regional[:, 1])
    coarse = auto_resolution(spread[:, 0], spread[:, 1])
    assert fine > coarse
    obs = Observations.from_arrays(regional[:, 0], regional[:, 1], ["a"] * 400)
    assert CountGridPrior.fit(obs).res == fine


def test_count_grid_chunking_does_not_change_results(seasonal, monkeypatch):
    rng = np.random.default_rng(1)
    lat = np.concatenate([rng.normal(HOME[0], 0.1, 30), rng.uniform(-80, 80, 10)])
    lon = np.concatenate([rng.normal(HOME[1], 0.1, 30), rng.uniform(-180, 180, 10)])
    dates = np.where(rng.random(40) < 0.5, np.datetime64("2021-07-04"), np.datetime64("NaT"))
    prior = CountGridPrior.fit(seasonal, res=7, by_month=True)
    whole = prior.predict(lat, lon, dates)
    monkeypatch.setattr(common, "_CHUNK_VALUES", 7)
    np.testing.assert_array_equal(prior.predict(lat, lon, dates), whole)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-90, 90), st.floats(-180, 180), st.integers(1, 12)),
        min_size=1,
        max_size=20,
    )
)
def test_count_grid_rows_are_distributions(points):
    prior = _seasonal_prior()
    lat, lon, month = (np.array(c) for c in zip(*points, strict=True))
    dates = np.array([f"2021-{m:02d}-11" for m in month], dtype="datetime64[D]")
    p = prior.predict(lat, lon, dates)
    assert (p > 0).all() and (p <= 1).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)


_CACHE = {}


def _seasonal_prior():
    if "p" not in _CACHE:
        dates = ["2020-07-10"] * 5 + ["2020-01-10"] * 5
        _CACHE["p"] = CountGridPrior.fit(
            _obs([(*HOME, "a", 5), (*DESERT, "b", 5)], date=dates), res=3, by_month=True
        )
    return _CACHE["p"]


# ---------------------------------------------------------------------------- NearestNeighbor
def test_nearest_neighbor_kernel(obs):
    prior = NearestNeighborPrior.fit(obs, bandwidth=20.0)
    home, desert, far = prior.predict([HOME[0], DESERT[0], FAR[0]], [HOME[1], DESERT[1], FAR[1]])
    assert home.argmax() == 0 and desert.argmax() == 2
    # at HOME the kernel sees 50 "a", 5 "b" at weight 1: (n + 1 * g) / (55 + 1)
    g = FrequencyPrior.fit(obs).frequencies
    np.testing.assert_allclose(home, (np.array([50, 5, 0, 0]) + g) / 56, rtol=1e-5)
    np.testing.assert_allclose(far, g, rtol=1e-6)  # nothing within reach: global frequency


def test_nearest_neighbor_weights_fall_with_distance(obs):
    prior = NearestNeighborPrior.fit(obs, bandwidth=50.0)
    lat = HOME[0] + np.array([0.0, 0.2, 0.5, 1.0])  # 0, 22, 56, 111 km north
    p_a = prior.predict(lat, np.full(4, HOME[1]))[:, 0]
    assert (np.diff(p_a) < 0).all()


def test_nearest_neighbor_k_limits_to_nearest():
    data = _obs([(*HOME, "a", 10), (44.1, -71.3, "b", 10)])  # 11 km apart
    near_only = NearestNeighborPrior.fit(data, bandwidth=100.0, k=1)
    both = NearestNeighborPrior.fit(data, bandwidth=100.0)
    assert near_only.predict(*HOME)[0, 1] < 0.1 < both.predict(*HOME)[0, 1]


def test_nearest_neighbor_sparse_path_matches_dense(obs, monkeypatch):
    lat = np.array([HOME[0], 44.3, DESERT[0], 36.0, FAR[0]])
    lon = np.array([HOME[1], -71.0, DESERT[1], -109.0, FAR[1]])
    dense = NearestNeighborPrior.fit(obs, bandwidth=80.0)
    monkeypatch.setattr(nearest, "_DENSE_TABLE_VALUES", 0)
    sparse = NearestNeighborPrior.fit(obs, bandwidth=80.0)
    np.testing.assert_allclose(sparse.predict(lat, lon), dense.predict(lat, lon), rtol=1e-6)


def _clusters(scale_km, seed=0):
    """Two species in two clusters ``10 * scale_km`` apart, each spread over ``scale_km``."""
    rng = np.random.default_rng(seed)
    deg = scale_km / 111.0
    centres = np.array([[0.0, 0.0], [10 * deg, 0.0]])
    which = rng.integers(0, 2, 300)
    xy = centres[which] + rng.normal(0, deg, (300, 2))
    return Observations.from_arrays(xy[:, 0], xy[:, 1], np.array(["a", "b"])[which])


def test_auto_bandwidth_follows_the_spacing_of_the_data():
    tight = NearestNeighborPrior.fit(_clusters(1.0)).bandwidth_km
    spread = NearestNeighborPrior.fit(_clusters(100.0)).bandwidth_km
    assert tight < spread
    assert 0.1 <= tight <= 10.0 and 10.0 <= spread <= 1000.0


def test_auto_bandwidth_needs_two_places():
    with pytest.raises(ConfigError, match="2 or more distinct places"):
        NearestNeighborPrior.fit(_obs([(*HOME, "a", 5)]))
