"""geoprior.runtime: an export run without JAX, validated and ranked as the library does."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import random_prior
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("onnxruntime")
pytest.importorskip("jax2onnx")

from geoprior import GeopriorError  # noqa: E402
from geoprior.export import export_onnx, write_range_table  # noqa: E402
from geoprior.maps import range_map  # noqa: E402
from geoprior.runtime import OnnxPrior, RangeTable, load, load_export  # noqa: E402


@pytest.fixture(scope="module")
def files(trained_prior, tmp_path_factory):
    folder = tmp_path_factory.mktemp("runtime")
    onnx = export_onnx(trained_prior, folder / "p.onnx")
    table = folder / "t.parquet"
    write_range_table(trained_prior, table, res=2, months=[0, 7], bbox=(0, 40, 20, 56))
    return onnx, table


@pytest.fixture(scope="module")
def runtime(files):
    return load_export(files[0])


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """A 40-species prior with dates and covariates, and its export."""
    prior = random_prior(40, loss="joint", members=2, use_date=True, n_covariates=2)
    path = export_onnx(prior, tmp_path_factory.mktemp("wide") / "w.onnx")
    return prior, load_export(path)


def test_runtime_imports_no_jax_and_reproduces_the_top_10(trained_prior, files):
    onnx, table = files
    places = [(48.0, 10.0, "2021-07-01"), (60.0, -100.0, None), (-25.0, 135.0, "2021-01-15")]
    want = [trained_prior.top_k(lat, lon, d, k=10)[["species", "prob"]] for lat, lon, d in places]
    script = textwrap.dedent(f"""
        import json, sys
        from geoprior.runtime import load_export, read_range_table
        prior = load_export({str(onnx)!r})
        out = [prior.top_k(lat, lon, d, k=10)[["species", "prob"]].to_dict("list")
               for lat, lon, d in {places!r}]
        rows = len(read_range_table({str(table)!r}).species_in([0]))
        print(json.dumps({{"top": out, "jax": "jax" in sys.modules, "flax": "flax" in sys.modules}}))
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["jax"] is False and got["flax"] is False
    for frame, answer in zip(want, got["top"]):
        assert answer["species"] == frame["species"].tolist()
        np.testing.assert_allclose(answer["prob"], frame["prob"], atol=1e-5)


def _error(fn):
    try:
        fn()
    except GeopriorError as e:
        return type(e), str(e)
    return None


BAD = [
    ("lat 91", lambda p: p.predict(91.0, 0.0)),
    ("nan lon", lambda p: p.predict([1.0, 2.0], [0.0, np.nan])),
    ("lengths", lambda p: p.predict([1.0, 2.0], [0.0])),
    ("bad date", lambda p: p.predict(1.0, 2.0, "2021-02-30")),
    ("dates count", lambda p: p.predict([1.0, 2.0, 3.0], [0.0] * 3, ["2021-01-01"] * 2)),
    ("unknown species", lambda p: p.predict(1.0, 2.0, species=["Aestiva sumer"])),
    ("species index", lambda p: p.predict(1.0, 2.0, species=[99])),
    ("k", lambda p: p.top_k(1.0, 2.0, k=0)),
    ("output", lambda p: p.predict(1.0, 2.0, output="abundance")),
    ("covariates", lambda p: p.predict(1.0, 2.0, covariates=[[1.0]])),
    ("batch", lambda p: p.predict(1.0, 2.0, batch_size=0)),
]


@pytest.mark.parametrize("what,call", BAD, ids=[b[0] for b in BAD])
def test_bad_input_raises_the_librarys_error(trained_prior, runtime, what, call):
    want = _error(lambda: call(trained_prior))
    assert want is not None
    got = _error(lambda: call(runtime))
    if what == "output":  # the library names the loss that fixed its outputs
        assert got[0] is want[0] and got[1].startswith("output must be one of")
    else:
        assert got == want


def test_covariate_errors_match(wide):
    prior, onnx = wide
    for cov in (None, [1.0, 2.0, 3.0], [[1.0, np.inf]], np.ones((2, 2))):
        assert _error(lambda c=cov: onnx.predict(1.0, 2.0, covariates=c)) == _error(
            lambda c=cov: prior.predict(1.0, 2.0, covariates=c))


def test_columns_batches_and_empty_queries(wide):
    prior, onnx = wide
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-90, 90, 37), rng.uniform(-180, 180, 37)
    cov = rng.normal(size=(37, 2))
    full = onnx.predict(lat, lon, "2021-03-01", covariates=cov)
    np.testing.assert_allclose(full, prior.predict(lat, lon, "2021-03-01", covariates=cov),
                               atol=1e-5, rtol=1e-4)
    # other batch sizes block the matrix products otherwise: the same up to rounding
    np.testing.assert_allclose(
        onnx.predict(lat, lon, "2021-03-01", covariates=cov, batch_size=5), full, rtol=1e-5)
    cols = onnx.predict(lat, lon, "2021-03-01", covariates=cov, species=["s3", "s0"])
    np.testing.assert_array_equal(cols, full[:, [3, 0]])
    per_row = np.tile([[1, 2]], (37, 1))
    np.testing.assert_array_equal(
        onnx.predict(lat, lon, "2021-03-01", covariates=cov, species=per_row), full[:, [1, 2]])
    empty = onnx.predict([], [], covariates=np.zeros((0, 2)))
    assert empty.shape == (0, 40)
    top = onnx.top_k(lat[:2], lon[:2], covariates=cov[:2], k=3, species=["s1", "s5", "s7", "s9"])
    assert set(top.species) <= {"s1", "s5", "s7", "s9"} and len(top) == 6


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.floats(-90, 90), st.floats(-180, 180)), min_size=1, max_size=20),
       st.integers(1, 12))
def test_top_k_is_the_librarys_ranking(trained_prior, runtime, places, k):
    lat, lon = (np.array(v) for v in zip(*places))
    want = trained_prior.top_k(lat, lon, "2021-06-01", k=k)
    got = runtime.top_k(lat, lon, "2021-06-01", k=k)
    assert list(got.columns) == list(want.columns) and len(got) == len(want)
    np.testing.assert_allclose(got.prob, want.prob, atol=1e-5)
    # equal where the probabilities are not a near tie
    gaps = want.groupby("row").prob.transform(lambda p: p.diff().abs().min() if len(p) > 1 else 1)
    clear = gaps > 1e-4
    assert (got.species[clear] == want.species[clear]).all()


def test_an_export_is_a_prior_everywhere(trained_prior, runtime):
    from geoprior.priors.protocol import Prior

    assert isinstance(runtime, Prior)
    a = range_map(trained_prior, "Europaea gamma", res=2, bbox=(0, 40, 20, 56))
    b = range_map(runtime, "Europaea gamma", res=2, bbox=(0, 40, 20, 56))
    np.testing.assert_allclose(b.prob, a.prob, atol=1e-5)
    assert (a.in_range == b.in_range).mean() > 0.98
    from geoprior import rerank

    logits = np.random.default_rng(1).normal(size=(3, 5))
    places = ([48.0, 60.0, -25.0], [10.0, -100.0, 135.0], "2021-07-01")
    x = rerank(logits, trained_prior.species, trained_prior, *places, k=3)
    y = rerank(logits, trained_prior.species, runtime, *places, k=3)
    np.testing.assert_array_equal(x.top_index, y.top_index)
    np.testing.assert_allclose(x.prior, y.prior, atol=1e-5)


def test_load_picks_by_suffix(files, tmp_path):
    assert isinstance(load(files[0]), OnnxPrior)
    assert isinstance(load(files[1]), RangeTable)
    from geoprior import ConfigError, MissingFileError

    with pytest.raises(ConfigError, match=".onnx export or a .parquet"):
        load(tmp_path / "x.prior")
    with pytest.raises(MissingFileError):
        load(tmp_path / "missing.onnx")


def test_threads_option(files):
    from geoprior import ConfigError

    assert load_export(files[0], threads=1).n_species == 5
    with pytest.raises(ConfigError, match="threads"):
        load_export(files[0], threads=0)
