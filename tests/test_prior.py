import json
import re

import jax
import numpy as np
import pandas as pd
import pytest
from conftest import REGIONS, random_prior, small_config
from hypothesis import given, settings
from hypothesis import strategies as st

import geoprior
from geoprior import (
    ClassMismatchError,
    ConfigError,
    CoordinateError,
    DateError,
    GeoPrior,
    NonFiniteError,
    Observations,
    OutputExistsError,
    UnknownSpeciesError,
    load_prior,
    train_prior,
)
from geoprior.core.encoding import encode_inputs
from geoprior.priors.geoprior import FADE_STEPS, _padding
from geoprior.priors.protocol import predict_columns, scores_columns, top_k_frame

RNG = np.random.default_rng(7)
LAT = RNG.uniform(-70, 70, 23)
LON = RNG.uniform(-180, 180, 23)
DATES = np.datetime64("2021-01-01") + RNG.integers(0, 365, 23)


@pytest.fixture(scope="module")
def cov_prior():
    """A tiny prior trained with two covariates."""
    rng = np.random.default_rng(3)
    n = 120
    obs = Observations.from_arrays(
        rng.uniform(40, 50, n),
        rng.uniform(0, 10, n),
        np.where(np.arange(n) % 2 == 0, "Warm one", "Cold one"),
        covariates=np.column_stack([rng.normal(15, 5, n), rng.normal(800, 100, n)]),
        covariate_names=["temp", "rain"],
    )
    return train_prior(obs, small_config(steps=20), progress=False)


def test_is_a_prior(trained_prior):
    assert isinstance(trained_prior, geoprior.Prior)
    assert isinstance(trained_prior, GeoPrior)
    assert trained_prior.n_species == len(trained_prior.species) == 5
    assert trained_prior.uses_date
    assert "5 species" in repr(trained_prior)


def test_save_load_predicts_bit_identically(trained_prior, tmp_path):
    path = trained_prior.save(tmp_path / "birds.prior")
    loaded = load_prior(path)
    assert isinstance(loaded, GeoPrior)
    assert loaded.species == trained_prior.species
    as_json = json.loads(json.dumps(trained_prior.header))
    assert {k: loaded.header[k] for k in as_json} == as_json
    assert loaded.header["kind"] == "GeoPrior"
    for date in (None, DATES):
        np.testing.assert_array_equal(
            loaded.predict(LAT, LON, date), trained_prior.predict(LAT, LON, date)
        )
    np.testing.assert_array_equal(loaded.loss_curve, trained_prior.loss_curve)
    with pytest.raises(OutputExistsError):
        trained_prior.save(path, overwrite=False)


def test_save_load_with_covariates(cov_prior, tmp_path):
    cov = np.column_stack([np.linspace(5, 25, 4), np.linspace(600, 1000, 4)])
    loaded = load_prior(cov_prior.save(tmp_path / "c"))
    assert loaded.covariate_names == ("temp", "rain")
    np.testing.assert_array_equal(
        loaded.predict([45.0] * 4, [5.0] * 4, covariates=cov),
        cov_prior.predict([45.0] * 4, [5.0] * 4, covariates=cov),
    )


def test_batched_equals_unbatched(trained_prior):
    for date in (None, DATES):
        # equal to float32 rounding: XLA may tile a matrix product (and the softmax's sum
        # over species) differently for another batch shape
        for output in ("presence", "observation"):
            small = trained_prior.predict(LAT, LON, date, batch_size=7, output=output)
            large = trained_prior.predict(LAT, LON, date, batch_size=10_000, output=output)
            np.testing.assert_allclose(small, large, rtol=1e-5, atol=1e-7)


def test_shapes_and_probability_range(trained_prior):
    p = trained_prior.predict(LAT, LON, DATES)
    assert p.shape == (23, 5) and p.dtype == np.float32
    assert ((p >= 0) & (p <= 1)).all()
    assert trained_prior.predict(10.0, 20.0).shape == (1, 5)
    assert trained_prior.predict([], []).shape == (0, 5)
    np.testing.assert_allclose(
        np.log(trained_prior.predict(LAT, LON, DATES)),
        trained_prior.log_prob(LAT, LON, DATES),
        rtol=1e-5,
        atol=1e-6,
    )
    assert (trained_prior.log_prob(LAT, LON) <= 0).all()


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 22), st.sampled_from(["2021-03-01", "2021-08-20"]))
def test_one_date_broadcasts_like_a_date_per_row(trained_prior, row, date):
    one = trained_prior.predict(LAT, LON, date)
    per_row = trained_prior.predict(LAT, LON, [date] * LAT.size)
    np.testing.assert_array_equal(one, per_row)
    alone = trained_prior.predict(LAT[row], LON[row], np.datetime64(date))
    np.testing.assert_allclose(alone[0], one[row], rtol=1e-5)


def test_undated_rows_get_the_year_round_prior(trained_prior):
    dates = np.array(["2021-07-01", None, "2021-01-10"], dtype=object)
    mixed = trained_prior.predict(LAT[:3], LON[:3], dates)
    np.testing.assert_allclose(mixed[1], trained_prior.predict(LAT[1], LON[1])[0], rtol=1e-5)
    np.testing.assert_allclose(
        mixed[0], trained_prior.predict(LAT[0], LON[0], "2021-07-01")[0], rtol=1e-5
    )


def test_top_k_frame_columns_and_ordering(trained_prior):
    frame = trained_prior.top_k(LAT[:4], LON[:4], "2021-06-01", k=3)
    assert list(frame.columns) == ["row", "rank", "species", "prob"]
    assert len(frame) == 12
    assert frame["row"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert frame["rank"].tolist() == [1, 2, 3] * 4
    probs = trained_prior.predict(LAT[:4], LON[:4], "2021-06-01")
    for row, group in frame.groupby("row"):
        assert (np.diff(group["prob"].to_numpy()) <= 0).all()
        best = [trained_prior.species[i] for i in np.argsort(-probs[row], kind="stable")[:3]]
        assert group["species"].tolist() == best
    everything = trained_prior.top_k(0.0, 0.0, k=99)
    assert len(everything) == 5
    for k in (0, -1, 2.5, True, "3", None):
        message = re.escape(f"k must be >= 1 (a positive integer), got {k!r} ({type(k).__name__})")
        with pytest.raises(ConfigError, match=message):
            trained_prior.top_k(0.0, 0.0, k=k)
        with pytest.raises(ConfigError, match=message):
            top_k_frame(np.ones((1, 2)), ["a", "b"], k)
    assert len(trained_prior.top_k(0.0, 0.0, k=np.int64(2))) == 2


@pytest.mark.parametrize("loss", ["an_full", "maxent"])
def test_top_k_in_batches_equals_ranking_the_whole_matrix(loss):
    prior = random_prior(37, loss=loss, use_date=True)
    rng = np.random.default_rng(1)
    lat, lon = rng.uniform(-80, 80, 1000), rng.uniform(-180, 180, 1000)
    dates = np.datetime64("2021-01-01") + rng.integers(0, 365, 1000)
    whole = prior.top_k(lat, lon, dates, k=4)
    for batch_size in (64, 300, 999):
        pd.testing.assert_frame_equal(
            prior.top_k(lat, lon, dates, k=4, batch_size=batch_size), whole
        )
    pd.testing.assert_frame_equal(
        whole, top_k_frame(prior.predict(lat, lon, dates), prior.species, 4)
    )
    chosen = ["s30", "s2", "s11"]
    some = prior.top_k(lat, lon, dates, k=2, species=chosen, batch_size=64)
    probs = prior.predict(lat, lon, dates, species=chosen)
    pd.testing.assert_frame_equal(some, top_k_frame(probs, chosen, 2))


def test_top_k_species_filter(trained_prior):
    chosen = ["Australis beta", "Hiemalis winter"]
    frame = trained_prior.top_k(*REGIONS["Australis beta"], k=5, species=chosen)
    assert sorted(frame["species"]) == sorted(chosen)
    assert frame["species"].iloc[0] == "Australis beta"
    single = trained_prior.top_k(0.0, 0.0, species="Borealis alpha")
    assert single["species"].tolist() == ["Borealis alpha"]
    with pytest.raises(UnknownSpeciesError, match="Did you mean 'Borealis alpha'") as info:
        trained_prior.top_k(0.0, 0.0, species=["Borealis alfa"])
    assert not str(info.value).startswith('"')


@pytest.mark.parametrize(
    "lat, lon, date, error, fragment",
    [
        ([np.nan], [0.0], None, CoordinateError, "latitudes are missing"),
        ([10.0, 91.0], [0.0, 0.0], None, CoordinateError, "first: row 1 = 91.0"),
        ([0.0], [200.0], None, CoordinateError, "outside [-180, 180]"),
        ([0.0], [0.0], "2021-02-30", DateError, "impossible"),
        ([0.0], [0.0], "not a date", DateError, "could not be parsed"),
        ([0.0, 1.0, 2.0], [0.0, 1.0, 2.0], ["2021-01-01"] * 2, ClassMismatchError, "3 locations"),
        ([0.0, 1.0], [0.0], None, CoordinateError, "2 latitudes but 1 longitudes"),
        (
            [True],
            [0.0],
            None,
            CoordinateError,
            "1-D array of real numbers (or one number), got a bool",
        ),
        ([0.0], [1 + 2j], None, CoordinateError, "longitudes must be a 1-D array of real numbers"),
        ([[0.0, 1.0]], [[0.0, 1.0]], None, CoordinateError, "array of shape (1, 2)"),
    ],
)
def test_bad_queries_raise(trained_prior, lat, lon, date, error, fragment):
    for call in (trained_prior.predict, trained_prior.log_prob, trained_prior.top_k):
        with pytest.raises(error) as info:
            call(lat, lon, date)
        assert fragment in str(info.value)


def test_covariate_errors(trained_prior, cov_prior):
    with pytest.raises(ClassMismatchError, match="trained without covariates"):
        trained_prior.predict(0.0, 0.0, covariates=[[1.0]])
    with pytest.raises(ClassMismatchError, match=r"needs covariates \['temp', 'rain'\]"):
        cov_prior.predict(45.0, 5.0)
    with pytest.raises(ClassMismatchError, match=r"1-D \(length 2\), which is ambiguous"):
        cov_prior.predict([45.0, 46.0], [5.0, 5.0], covariates=[1.0, 2.0])
    with pytest.raises(ClassMismatchError, match=r"shape \(2, 1\), expected \(2, 2\)"):
        cov_prior.predict([45.0, 46.0], [5.0, 5.0], covariates=[[1.0], [2.0]])
    with pytest.raises(NonFiniteError, match="1 of 2 covariate rows are not finite; first: row 1"):
        cov_prior.predict([45.0, 46.0], [5.0, 5.0], covariates=[[10.0, 700.0], [np.inf, 1.0]])
    one = cov_prior.predict(45.0, 5.0, covariates=[[10.0, 700.0]])
    assert one.shape == (1, 2) and ((one >= 0) & (one <= 1)).all()
    frame = cov_prior.top_k([45.0], [5.0], k=1, covariates=[[10.0, 700.0]])
    assert len(frame) == 1


def test_top_k_frame_is_stable_on_ties():
    probs = np.array([[0.2, 0.5, 0.5], [0.1, 0.1, 0.1]])
    frame = top_k_frame(probs, ["a", "b", "c"], 2)
    assert frame["species"].tolist() == ["b", "c", "a", "b"]
    assert frame["prob"].tolist() == [0.5, 0.5, 0.1, 0.1]


# ---------------------------------------------------------------------------- scoring
@pytest.mark.parametrize("loss", ["an_full", "maxent"])
def test_predict_is_exp_of_log_prob(trained_prior, loss):
    for prior in (trained_prior, random_prior(37, loss=loss, use_date=True)):
        p = prior.predict(LAT, LON, DATES)
        np.testing.assert_allclose(p, np.exp(prior.log_prob(LAT, LON, DATES)), rtol=2e-6)
    if loss == "maxent":
        np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)


@settings(max_examples=10, deadline=None)
@given(
    loss=st.sampled_from(["an_full", "maxent"]),
    head_rank=st.sampled_from([0, 4]),
    chunk=st.sampled_from([None, 1, 5]),
    batch=st.sampled_from([6, 8192]),
    seed=st.integers(0, 2**16),
    members=st.sampled_from([1, 3]),
)
def test_species_columns_are_the_full_columns(loss, head_rank, chunk, batch, seed, members):
    prior = _cached_prior(loss, head_rank, members)
    rng = np.random.default_rng(seed)
    full = prior.predict(LAT, LON)
    cols = rng.integers(0, prior.n_species, rng.integers(1, 12))
    kw = dict(batch_size=batch, species_chunk=chunk)
    by_index = prior.predict(LAT, LON, species=cols, **kw)
    np.testing.assert_allclose(by_index, full[:, cols], rtol=1e-5, atol=1e-7)
    names = [prior.species[i] for i in cols]
    np.testing.assert_array_equal(prior.predict(LAT, LON, species=names, **kw), by_index)
    own = rng.integers(0, prior.n_species, (LAT.size, 2))  # each row its own two species
    np.testing.assert_allclose(
        prior.predict(LAT, LON, species=own, **kw),
        np.take_along_axis(full, own, 1),
        rtol=1e-5,
        atol=1e-7,
    )
    chunked = prior.log_prob(LAT, LON, **kw)
    np.testing.assert_allclose(chunked, np.log(full), rtol=1e-5, atol=1e-6)


_PRIORS: dict = {}


def _cached_prior(loss, head_rank, members=1):
    """Hypothesis examples share a few random priors (and their compilations)."""
    key = (loss, head_rank, members)
    if key not in _PRIORS:
        _PRIORS[key] = random_prior(37, loss=loss, head_rank=head_rank, members=members)
    return _PRIORS[key]


def _member(prior: GeoPrior, i: int) -> GeoPrior:
    """Member ``i`` of an ensemble prior, as a one-network prior."""
    header = json.loads(json.dumps(prior.header))
    header["config"]["members"] = 1
    return GeoPrior(
        prior.species,
        jax.tree_util.tree_map(lambda x: x[i], prior.params),
        header,
        cov_mean=prior.cov_mean,
        cov_std=prior.cov_std,
        anchors=prior.anchors,
        support=prior.support,
    )


@settings(max_examples=6, deadline=None)
@given(
    loss=st.sampled_from(["an_full", "maxent", "joint"]),
    chunk=st.sampled_from([None, 2]),
    seed=st.integers(0, 2**16),
)
def test_an_ensemble_predicts_the_mean_of_its_members(loss, chunk, seed):
    """On every output and scoring path, an ensemble's probability is the mean of its
    members' (so observation rows still sum to 1) and its log-probability the log of it."""
    prior = _cached_prior(loss, 0, 3)
    members = [_member(prior, i) for i in range(3)]
    cols = np.random.default_rng(seed).integers(0, prior.n_species, 5)
    for output in prior.outputs:
        kw = dict(output=output, species_chunk=chunk)
        mean = np.mean([m.predict(LAT, LON, **kw) for m in members], axis=0)
        np.testing.assert_allclose(prior.predict(LAT, LON, **kw), mean, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(
            prior.log_prob(LAT, LON, **kw), np.log(mean), rtol=1e-5, atol=1e-6
        )
        np.testing.assert_allclose(
            prior.predict(LAT, LON, species=cols, **kw), mean[:, cols], rtol=1e-5, atol=1e-7
        )
        if output == "observation":
            np.testing.assert_allclose(mean.sum(1), 1.0, rtol=1e-5)


def test_a_trained_ensemble_saves_and_reloads_its_members(trained_prior, tmp_path):
    """The default prior is an ensemble (TrainConfig.members); its members differ, and a
    saved ensemble reloads bit-identically with its member axis checked."""
    assert trained_prior.members == 2
    a, b = (_member(trained_prior, i).predict(LAT, LON, DATES) for i in range(2))
    assert not np.allclose(a, b)
    np.testing.assert_allclose(trained_prior.predict(LAT, LON, DATES), (a + b) / 2, rtol=1e-5)
    trained_prior.save(tmp_path / "e.prior")
    back = load_prior(tmp_path / "e.prior")
    assert back.members == 2
    np.testing.assert_array_equal(
        back.predict(LAT, LON, DATES), trained_prior.predict(LAT, LON, DATES)
    )


def test_species_argument_errors(trained_prior):
    with pytest.raises(UnknownSpeciesError, match="Did you mean 'Borealis alpha'"):
        trained_prior.predict(0.0, 0.0, species=["Borealis alfa"])
    with pytest.raises(
        UnknownSpeciesError, match=r"1 of 2 species indices outside \[0, 5\); first: position 1 = 5"
    ):
        trained_prior.predict(0.0, 0.0, species=[0, 5])
    with pytest.raises(UnknownSpeciesError, match="= -1"):
        trained_prior.log_prob(0.0, 0.0, species=-1)
    with pytest.raises(ConfigError, match="names or integer column indices, got float64"):
        trained_prior.predict(0.0, 0.0, species=[0.5])
    with pytest.raises(ClassMismatchError, match="per-row species have 1 rows for 2 places"):
        trained_prior.predict([0.0, 1.0], [0.0, 1.0], species=[[0, 1]])
    with pytest.raises(ConfigError, match="shape"):
        trained_prior.predict(0.0, 0.0, species=np.zeros((1, 1, 1), int))
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ConfigError, match=r"must be >= 1 \(a positive integer\)"):
            trained_prior.predict(0.0, 0.0, species_chunk=bad)
    assert trained_prior.predict([1.0, 2.0], [1.0, 2.0], species=[]).shape == (2, 0)
    assert trained_prior.predict(1.0, 2.0, species="Borealis alpha").shape == (1, 1)


def test_predict_columns_for_any_prior(trained_prior):
    class Dense:  # a Prior without species=
        species = trained_prior.species

        def predict(self, lat, lon, date=None):
            return trained_prior.predict(lat, lon, date)

    assert scores_columns(trained_prior) and not scores_columns(Dense())
    cols, own = np.array([4, 0]), np.arange(LAT.size)[:, None] % 5
    for c in (cols, own):
        np.testing.assert_allclose(
            predict_columns(trained_prior, LAT, LON, DATES, c),
            predict_columns(Dense(), LAT, LON, DATES, c),
            rtol=1e-5,
            atol=1e-7,
        )


def test_compiles_once_per_shape(monkeypatch):
    import geoprior.priors.geoprior as module

    traces = []

    def counting(*args):
        traces.append(1)
        return encode_inputs(*args)

    monkeypatch.setattr(module, "encode_inputs", counting)
    prior = random_prior(50, loss="maxent")
    for call in range(3):  # same shapes, other places and species each call
        lat, lon = LAT * 0.9 + call, LON * 0.9 - call
        prior.predict(lat, lon)
        prior.predict(lat, lon, species=[call, call + 1, call + 2], species_chunk=2)
        prior.predict(lat, lon, species=[[call]] * LAT.size)
        if call == 0:
            first = len(traces)
    assert len(traces) == first > 0


def test_one_dimensional_covariates():
    two, one = random_prior(3, n_covariates=2), random_prior(3, n_covariates=1)
    # one place, its two covariates
    np.testing.assert_array_equal(
        two.predict(45.0, 5.0, covariates=[10.0, 700.0]),
        two.predict(45.0, 5.0, covariates=[[10.0, 700.0]]),
    )
    # three places, one covariate each
    np.testing.assert_array_equal(
        one.predict(LAT[:3], LON[:3], covariates=[1.0, 2.0, 3.0]),
        one.predict(LAT[:3], LON[:3], covariates=[[1.0], [2.0], [3.0]]),
    )
    np.testing.assert_array_equal(
        one.predict(1.0, 2.0, covariates=4.0), one.predict(1.0, 2.0, covariates=[[4.0]])
    )
    with pytest.raises(
        ClassMismatchError, match="got 3 covariate values for one place, expected 2"
    ):
        two.predict(45.0, 5.0, covariates=[1.0, 2.0, 3.0])
    with pytest.raises(ClassMismatchError, match="got 2 values of covariate 'c0' for 3 places"):
        one.predict(LAT[:3], LON[:3], covariates=[1.0, 2.0])
    with pytest.raises(ClassMismatchError, match=r"give a \(3, 2\) array"):
        two.predict(LAT[:3], LON[:3], covariates=[1.0, 2.0, 3.0])


def test_random_prior_saves_and_reloads(tmp_path):
    prior = random_prior(9, head_rank=3, n_covariates=1, loss="maxent")
    loaded = load_prior(prior.save(tmp_path / "r"))
    cov = np.linspace(0, 1, LAT.size)
    np.testing.assert_array_equal(
        loaded.predict(LAT, LON, covariates=cov, species=[2, 7]),
        prior.predict(LAT, LON, covariates=cov, species=[2, 7]),
    )


@given(n=st.integers(1, 5000), batch=st.integers(1, 3000))
def test_padding_keeps_few_shapes_and_little_waste(n, batch):
    shapes = set()
    for start in range(0, n, batch):
        m = min(batch, n - start)
        rows = m + _padding(m, n, batch)
        assert m <= rows <= batch
        assert rows == m or rows == batch or rows % 256 == 0
        assert rows - m < 256
        shapes.add(rows)
    assert len(shapes) <= 2


def test_long_queries_match_one_batch():
    prior = random_prior(7, loss="maxent")
    lat, lon = np.linspace(-60, 60, 700), np.linspace(-170, 170, 700)
    np.testing.assert_allclose(
        prior.predict(lat, lon, batch_size=512), prior.predict(lat, lon), rtol=1e-6
    )


def test_presence_fades_beyond_the_extent_and_outside_says_so(trained_prior):
    far = trained_prior.far_km
    assert far is not None and far > 0
    here = (np.array([48.0]), np.array([10.0]))  # among the training places
    away = (np.array([-45.0]), np.array([-170.0]))  # an ocean away from all of them
    assert not trained_prior.outside(*here)[0] and trained_prior.outside(*away)[0]
    d = trained_prior.distance_km(*away)[0]
    assert d > far
    p_here = trained_prior.predict(*here, output="presence")
    p_away = trained_prior.predict(*away, output="presence")
    fade = np.exp(-0.5 * ((d - far) / (far / FADE_STEPS)) ** 2)
    assert p_away.max() <= fade * 1.0001 + 1e-7 and p_here.max() > 0.1
    # the fade is applied on every scoring path alike
    cols = trained_prior.predict(*away, output="presence", species=[0, 2])
    np.testing.assert_allclose(cols, p_away[:, [0, 2]], rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(
        np.exp(trained_prior.log_prob(*away, output="presence")), p_away, rtol=1e-4, atol=1e-12
    )
    # the observation output is a distribution everywhere, far away included
    np.testing.assert_allclose(trained_prior.predict(*away).sum(1), 1.0, rtol=1e-5)


def test_cli_predict_says_what_the_numbers_are(trained_prior, tmp_path):
    from click.testing import CliRunner

    from geoprior.cli import main

    path = trained_prior.save(tmp_path / "p.prior")
    runner = CliRunner()
    ok = runner.invoke(main, ["predict", str(path), "--lat", "48", "--lon", "10", "-k", "2"])
    assert ok.exit_code == 0, ok.output
    assert "prob: the probability that an observation made here" in ok.stderr
    assert "presence" in ok.stdout and "outside_extent" in ok.stdout
    assert "warning" not in ok.stderr
    far = runner.invoke(main, ["predict", str(path), "--lat", "-45", "--lon", "-170"])
    assert far.exit_code == 0 and "beyond the prior's extent" in far.stderr
    assert "True" in far.stdout


def test_prior_header_round_trips_the_json_of_a_saved_prior(tmp_path, trained_prior):
    import json

    from geoprior.priors.header import PriorHeader

    trained_prior.save(tmp_path / "p.prior")
    text = (tmp_path / "p.prior" / "prior.json").read_text()
    envelope = ("format", "format_version", "kind", "geoprior_version", "species")
    on_disk = {k: v for k, v in json.loads(text).items() if k not in envelope}
    header = PriorHeader.from_dict(on_disk)
    assert header.n_species == trained_prior.n_species and header.training is not None
    assert not header.extra
    assert json.dumps(header.to_dict()) == json.dumps(on_disk)  # same fields, same order
