"""The dense scoring core (geoprior.priors.scoring) and what stands on it: the grouped top-k
is exactly lax.top_k, block sizes follow the machine, reductions on the device give what
the same reduction of ``predict`` gives, and the species lists and all-species maps that
use them match the generic paths any prior takes."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from conftest import random_prior
from hypothesis import given, settings
from hypothesis import strategies as st

from geoprior.errors import ConfigError
from geoprior.fusion import species_list
from geoprior.maps import write_all_species
from geoprior.priors import scoring


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 6),
    s=st.integers(1, 400),
    k=st.integers(1, 30),
    levels=st.integers(1, 40),
    seed=st.integers(0, 2**31 - 1),
)
def test_grouped_top_k_is_exactly_lax_top_k_ties_included(rows, s, k, levels, seed):
    rng = np.random.default_rng(seed)
    k = min(k, s)
    x = rng.integers(0, levels, (rows, s)).astype(np.float32)  # few levels: many ties
    x[:, rng.integers(0, s, s // 3)] = -np.inf
    want = jax.lax.top_k(jnp.asarray(x), k)
    got = scoring.top_k(jnp.asarray(x), k)
    np.testing.assert_array_equal(np.asarray(got[0]), np.asarray(want[0]))
    np.testing.assert_array_equal(np.asarray(got[1]), np.asarray(want[1]))


def test_rows_per_call_follows_the_cache_and_the_columns():
    cpu = [scoring.rows_per_call(s, 2, 3000, backend="cpu") for s in (100, 1_000, 10_000, 100_000)]
    assert cpu == sorted(cpu, reverse=True)  # more species, fewer rows
    assert all(r % scoring.ROW_STEP == 0 and scoring.ROW_STEP <= r <= scoring.MAX_ROWS for r in cpu)
    working = 4 * 3 * 10_000 * scoring.rows_per_call(10_000, 2, 0, backend="cpu")
    assert working <= 1.2 * scoring.cache_bytes()  # about the last-level cache
    assert scoring.rows_per_call(10_000, 2, 3000, backend="gpu") > cpu[2]  # accelerators: big


def test_cache_sizes_are_positive():
    assert scoring.cache_bytes() > 0 and scoring.cache_bytes(2) > 0


def test_host_array_is_a_writable_array_of_its_shape():
    a = scoring.host_array((3000, 6000), np.float32)  # 72 MB: the huge-page route
    assert a.shape == (3000, 6000) and a.dtype == np.float32 and a.flags.writeable
    a[:] = 1.5
    assert float(a.sum()) == 1.5 * a.size
    small = scoring.host_array((3, 2), np.int32)
    assert small.shape == (3, 2) and small.dtype == np.int32


def test_split_members_gives_each_member_its_own_weights():
    stacked = {"a": jnp.arange(12.0).reshape(3, 4), "b": {"c": jnp.ones((3, 2, 2))}}
    split = scoring.split_members(stacked, 3)
    assert len(split) == 3
    for m, tree in enumerate(split):
        np.testing.assert_array_equal(tree["a"], stacked["a"][m])
        assert tree["b"]["c"].shape == (2, 2)
    assert scoring.split_members(stacked, 1) == (stacked,)  # one member: the tree as it is


def test_member_logits_refuse_the_wrong_number_of_members():
    logits = scoring.member_logits(lambda *a: a[0][:, None], lambda p, x: x, lambda p: p, 2)
    with pytest.raises(ValueError, match="2 member trees, got 1"):
        logits((jnp.ones((1, 3)),), jnp.zeros(4), None, None, None)


def test_elementwise_options_leave_the_values_unchanged():
    options = scoring.elementwise_options()
    assert isinstance(options, dict)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(64, 999)).astype(np.float32) * 8)
    f = lambda v: jax.nn.sigmoid(v) * jnp.exp(-v[:, :1] ** 2)  # noqa: E731
    wide = scoring._jit_elementwise(f)
    np.testing.assert_array_equal(np.asarray(wide(x)), np.asarray(jax.jit(f)(x)))


def test_ahead_yields_everything_in_order():
    assert list(scoring.ahead(iter(range(5)))) == [0, 1, 2, 3, 4]
    assert list(scoring.ahead(iter(()))) == []


@pytest.mark.parametrize("members", [1, 3])
@pytest.mark.parametrize("loss", ["joint", "an_full"])
def test_dense_scoring_matches_the_column_path_and_log_prob(members, loss):
    prior = random_prior(70, loss=loss, members=members, use_date=True, seed=members)
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-80, 80, 300), rng.uniform(-180, 180, 300)
    for output in prior.outputs:
        dense = prior.predict(lat, lon, "2021-04-01", output=output, batch_size=64)
        chunked = prior.predict(lat, lon, "2021-04-01", output=output, species_chunk=16)
        np.testing.assert_allclose(dense, chunked, rtol=2e-5, atol=1e-7)
        logs = prior.log_prob(lat, lon, "2021-04-01", output=output, batch_size=64)
        np.testing.assert_allclose(np.exp(logs), dense, rtol=2e-5, atol=1e-7)
        if output == "observation":
            np.testing.assert_allclose(dense.sum(1), 1.0, rtol=1e-5)


def _listed_reference(probs, thresholds, k):
    passed = probs >= np.where(np.isnan(thresholds), np.inf, thresholds)[None]
    order = np.argsort(-np.where(passed, probs, -np.inf), 1, kind="stable")
    listed = np.take_along_axis(passed, order, 1)
    if k is not None:
        order, listed = order[:, :k], listed[:, :k]
    r, j = np.nonzero(listed)
    return r, order[r, j]


@pytest.fixture(params=["this", "accelerator"])
def backend(request, monkeypatch):
    """Run a test as this machine scores, and again down the paths an accelerator takes
    (wide blocks, lists ranked on the device, masks gathered on the device)."""
    if request.param == "accelerator":
        monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    return request.param


@pytest.mark.parametrize("k", [None, 1, 5])
def test_select_lists_what_thresholding_predict_lists(k, backend):
    prior = random_prior(300, loss="an_full", members=2)
    rng = np.random.default_rng(1)
    lat, lon = rng.uniform(-70, 70, 500), rng.uniform(-180, 180, 500)
    probs = prior.predict(lat, lon)
    thresholds = np.quantile(probs, 0.6, axis=0).astype(np.float32)  # long lists: > 64
    thresholds[:3] = np.nan
    rows, cols, values = prior.select(lat, lon, thresholds=thresholds, k=k, batch_size=128)
    want_rows, want_cols = _listed_reference(probs, thresholds, k)
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_array_equal(cols, want_cols)
    np.testing.assert_array_equal(values, probs[want_rows, want_cols])
    if k is None:
        assert np.bincount(rows).max() > 64  # longer than the first width of a device list
    with pytest.raises(ConfigError, match="one per species"):
        prior.select(lat, lon, thresholds=[0.5, 0.5])


def test_iter_above_streams_the_mask_of_predict(backend):
    prior = random_prior(120, loss="an_full")
    rng = np.random.default_rng(2)
    lat, lon = rng.uniform(-70, 70, 700), rng.uniform(-180, 180, 700)
    probs = prior.predict(lat, lon)
    thresholds = np.quantile(probs, 0.9, axis=0).astype(np.float32)
    mask = np.zeros(probs.shape, bool)
    for start, m, r, c, v in prior.iter_above(lat, lon, thresholds=thresholds, batch_size=256):
        assert r.max(initial=0) < m
        mask[start + r, c] = True
        np.testing.assert_array_equal(v, probs[start + r, c])
    np.testing.assert_array_equal(mask, probs >= thresholds[None])


class _Generic:
    """A prior offering only the protocol's ``species``/``predict``/``outputs``: the paths
    any prior takes, for comparison with a GeoPrior's device ones."""

    def __init__(self, prior):
        self.prior, self.species, self.outputs = prior, prior.species, prior.outputs
        self.thresholds = prior.thresholds

    def predict(self, lat, lon, date=None, output=None, **_):
        return self.prior.predict(lat, lon, date, output=output)


@pytest.mark.parametrize("ask", [{"k": 4}, {"min_prob": 0.55}, {"min_prob": 0.55, "k": 2}])
def test_species_lists_on_the_device_match_the_generic_lists(ask):
    prior = random_prior(90, loss="joint", members=2)
    rng = np.random.default_rng(4)
    lat, lon = rng.uniform(-60, 60, 150), rng.uniform(-180, 180, 150)
    got = species_list(prior, lat, lon, **ask)
    want = species_list(_Generic(prior), lat, lon, **ask)
    assert len(got) > 0 and list(got.columns) == list(want.columns)
    exact = [c for c in got.columns if c not in ("prob", "presence")]
    pd.testing.assert_frame_equal(got[exact], want[exact])
    for c in ("prob", "presence"):
        np.testing.assert_allclose(got[c], want[c], rtol=1e-5, atol=1e-8)


def test_all_species_map_of_a_geoprior_matches_the_generic_map(tmp_path):
    import geopandas as gpd

    prior = random_prior(40, loss="an_full")
    prior.thresholds = np.linspace(0.3, 0.7, 40).astype(np.float32)
    got = gpd.read_parquet(write_all_species(prior, tmp_path / "a.parquet", res=1)["path"])
    want = gpd.read_parquet(
        write_all_species(_Generic(prior), tmp_path / "b.parquet", res=1)["path"]
    )
    assert len(got) == len(want) > 0
    key = ["species", "h3_cell"]
    got, want = (f.sort_values(key).reset_index(drop=True) for f in (got, want))
    assert got.h3_cell.tolist() == want.h3_cell.tolist()
    assert got.species.tolist() == want.species.tolist()
    np.testing.assert_array_equal(got.prob, want.prob)


def test_all_species_map_stores_probabilities_as_byte_streams(tmp_path):
    import pyarrow.parquet as pq

    prior = random_prior(40, loss="an_full")
    prior.thresholds = np.linspace(0.3, 0.7, 40).astype(np.float32)
    path = write_all_species(prior, tmp_path / "a.parquet", res=1)["path"]
    group = pq.ParquetFile(path).metadata.row_group(0)
    cols = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
    assert "BYTE_STREAM_SPLIT" in cols["prob"].encodings  # no dictionary of distinct floats
    assert cols["prob"].statistics.has_min_max and cols["species"].statistics.has_min_max
    assert cols["geometry"].statistics is None  # min/max of polygons prune nothing


@pytest.mark.parametrize("species", [None, ["s3", "s1", "s7"]])
def test_f1_thresholds_on_the_device_match_the_generic_rule(species):
    from geoprior import Observations, compute_thresholds

    prior = random_prior(12, loss="an_full", members=2)
    rng = np.random.default_rng(5)
    n = 400
    labels = rng.integers(0, 12, n)
    lat = np.clip(rng.normal(-30 + 5 * labels, 8), -80, 80)
    lon = rng.normal(-100 + 15 * labels, 10)
    obs = Observations.from_arrays(lat, lon, np.asarray(prior.species)[labels])
    got = compute_thresholds(prior, obs, "f1", species=species, res=3, n_background=300)
    want = compute_thresholds(_Generic(prior), obs, "f1", species=species, res=3, n_background=300)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    assert np.isfinite(got).all()


def test_predict_writes_into_a_given_out_and_returns_it():
    prior = random_prior(30, loss="joint", members=2, use_date=True)
    rng = np.random.default_rng(3)
    lat, lon = rng.uniform(-70, 70, 200), rng.uniform(-180, 180, 200)
    for output in prior.outputs:
        want = prior.predict(lat, lon, "2021-05-01", output=output, batch_size=64)
        out = np.full((200, 30), np.nan, np.float32)
        got = prior.predict(lat, lon, "2021-05-01", output=output, batch_size=64, out=out)
        assert got is out
        np.testing.assert_array_equal(out, want)
    logs = np.empty((200, 30), np.float32)
    assert prior.log_prob(lat, lon, out=logs) is logs
    np.testing.assert_array_equal(logs, prior.log_prob(lat, lon))
    chosen = np.empty((200, 2), np.float32)  # chosen columns: the result's own shape
    prior.predict(lat, lon, species=["s1", "s4"], out=chosen)
    np.testing.assert_array_equal(chosen, prior.predict(lat, lon, species=["s1", "s4"]))


@pytest.mark.parametrize(
    "bad, says",
    [
        (np.empty((5, 30), np.float64), "float64 (5, 30)"),
        (np.empty((4, 30), np.float32), "float32 (4, 30)"),
        (np.empty((5, 30), np.float32), "read-only"),
        ([[0.0] * 30] * 5, "numpy array, got list"),
    ],
)
def test_predict_refuses_an_out_it_cannot_write(bad, says):
    prior = random_prior(30, loss="an_full")
    if says == "read-only":
        bad.flags.writeable = False
    with pytest.raises(ConfigError, match="out must be") as info:
        prior.predict(np.zeros(5), np.zeros(5), out=bad)
    assert says in str(info.value) and ("(5, 30)" in str(info.value) or "list" in says)
