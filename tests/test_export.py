"""ONNX exports and range tables: parity with the JAX prior, metadata, errors, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import random_prior
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("jax2onnx")

from geoprior import ConfigError, OutputExistsError, PriorFileError, UniformPrior  # noqa: E402
from geoprior.cli import main  # noqa: E402
from geoprior.export import export_onnx, write_range_table  # noqa: E402
from geoprior.maps import range_map  # noqa: E402
from geoprior.runtime import load_export, read_range_table  # noqa: E402

#: float32 exports agree with GeoPrior.predict within this (probabilities; measured ~3e-6).
ATOL = 1e-5
#: float16 / int8 weights: measured max abs differences ~8e-4 / ~3e-2 on the sample prior.
ATOL_WEIGHTS = {"float16": 5e-3, "int8": 6e-2}


def _places(n: int = 400, seed: int = 0):
    """Random places worldwide, the poles, both sides of the antimeridian; half dated."""
    rng = np.random.default_rng(seed)
    lat = rng.uniform(-90, 90, n)
    lon = rng.uniform(-180, 180, n)
    special = [(90, 0), (-90, 0), (90, 180), (0, 180), (0, -180), (60, 179.999), (60, -179.999),
               (-25.0, 135.0), (48.0, 10.0), (60.0, -100.0)]
    lat[: len(special)], lon[: len(special)] = zip(*special)
    dates = (np.datetime64("2021-01-01") + rng.integers(0, 365, n)).astype("datetime64[D]")
    dates[::2] = np.datetime64("NaT")
    return lat, lon, dates


@pytest.fixture(scope="module")
def exports(trained_prior, tmp_path_factory):
    folder = tmp_path_factory.mktemp("exports")
    return {w: export_onnx(trained_prior, folder / f"p_{w}.onnx", weights=w)
            for w in ("float32", "float16", "int8")}


def _top(probs, k=10):
    return np.argsort(-probs, axis=1, kind="stable")[:, :k]


def assert_same_top(got, want, k=10, atol=1e-6, rtol=1e-3):
    """The top ``k`` (in order) agree on every row whose top ``k + 1`` values are
    separated by more than the tolerance (no near ties it could swap)."""
    k = min(k, want.shape[1])
    ordered = np.sort(want, 1)[:, ::-1][:, : k + 1]
    clear = (-np.diff(ordered, axis=1) > atol + rtol * ordered[:, :-1]).all(1)
    assert clear.mean() > 0.5
    np.testing.assert_array_equal(_top(got, k)[clear], _top(want, k)[clear])


def test_float32_export_matches_the_jax_prior(trained_prior, exports):
    lat, lon, dates = _places()
    onnx = load_export(exports["float32"])
    got = onnx.scores(lat, lon, dates)
    inside = ~got.outside  # beyond the extent presence fades to ~1e-30: no ranking there
    for output in ("observation", "presence"):
        want = trained_prior.predict(lat, lon, dates, output=output)
        np.testing.assert_allclose(getattr(got, output), want, atol=ATOL, rtol=1e-4)
        rows = slice(None) if output == "observation" else inside
        assert_same_top(getattr(got, output)[rows], want[rows])
    np.testing.assert_allclose(got.distance_km, trained_prior.distance_km(lat, lon), rtol=1e-4,
                               atol=0.05)
    np.testing.assert_array_equal(got.outside, trained_prior.outside(lat, lon))
    np.testing.assert_allclose(got.observation.sum(1), 1.0, atol=1e-5)
    assert got.outside.any() and not got.outside.all()  # both sides of the extent tested


@pytest.mark.parametrize("weights", ["float16", "int8"])
def test_smaller_weights_stay_close(trained_prior, exports, weights):
    lat, lon, dates = _places(seed=1)
    got = load_export(exports[weights]).scores(lat, lon, dates)
    want = trained_prior.predict(lat, lon, dates)
    assert np.abs(got.observation - want).max() < ATOL_WEIGHTS[weights]
    assert np.abs(got.presence - trained_prior.predict(lat, lon, dates, output="presence")).max() \
        < ATOL_WEIGHTS[weights]
    first = _top(got.observation, 1)[:, 0] == _top(want, 1)[:, 0]
    assert first.mean() > 0.95


def test_smaller_weights_make_smaller_files(exports):
    sizes = {w: p.stat().st_size for w, p in exports.items()}
    assert sizes["int8"] < sizes["float16"] < sizes["float32"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lat=st.floats(-90, 90, allow_nan=False),
    lon=st.floats(-180, 180, allow_nan=False),
    day=st.one_of(st.none(), st.integers(0, 364)),
)
def test_any_place_and_day_agrees(trained_prior, exports, lat, lon, day):
    date = None if day is None else np.datetime64("2021-01-01") + day
    got = load_export(exports["float32"]).predict(lat, lon, date, output="presence")
    want = trained_prior.predict(lat, lon, date, output="presence")
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=1e-4)


@pytest.mark.parametrize(
    "kw",
    [
        dict(loss="joint", members=2, n_covariates=2, use_date=True),
        dict(loss="an_full", members=1, head_rank=4),
        dict(loss="maxent", members=3, n_covariates=1),
    ],
)
def test_every_kind_of_network_exports(tmp_path, kw):
    prior = random_prior(30, **kw)
    path = export_onnx(prior, tmp_path / "r.onnx")
    onnx = load_export(path)
    assert onnx.outputs == prior.outputs
    rng = np.random.default_rng(2)
    lat, lon = rng.uniform(-90, 90, 50), rng.uniform(-180, 180, 50)
    date = np.datetime64("2021-07-01") if kw.get("use_date") else None
    c = kw.get("n_covariates", 0)
    cov = rng.normal(3, 2, (50, c)) if c else None
    for output in prior.outputs:
        got = onnx.predict(lat, lon, date, covariates=cov, output=output)
        want = prior.predict(lat, lon, date, covariates=cov, output=output)
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=1e-4)
        assert_same_top(got, want, atol=1e-6)
    scores = onnx.scores(lat, lon, date, covariates=cov)
    assert np.isnan(scores.distance_km).all() and not scores.outside.any()  # no support kept


def test_export_header_carries_what_a_runtime_needs(trained_prior, exports):
    import onnx

    import geoprior

    model = onnx.load(str(exports["float32"]))
    meta = {p.key: p.value for p in model.metadata_props}
    header = json.loads(meta["geoprior"])
    assert header["format"] == "geoprior-onnx" and header["format_version"] == 1
    assert header["geoprior_version"] == geoprior.__version__
    assert header["species"] == list(trained_prior.species)
    assert header["outputs"] == ["observation", "presence"]
    assert header["far_km"] == pytest.approx(trained_prior.far_km)
    assert header["uses_date"] is True and header["weights"] == "float32"
    assert [i.name for i in model.graph.input] == ["points"]
    assert [o.name for o in model.graph.output] == [
        "observation", "presence", "distance_km", "outside"]
    runtime = load_export(exports["float32"])
    np.testing.assert_allclose(runtime.thresholds, trained_prior.thresholds)


def test_export_refuses_what_it_cannot_write(trained_prior, exports, tmp_path):
    with pytest.raises(OutputExistsError):
        export_onnx(trained_prior, exports["float32"])
    with pytest.raises(ConfigError, match="weights must be one of"):
        export_onnx(trained_prior, tmp_path / "x.onnx", weights="int4")
    with pytest.raises(ConfigError, match="only a trained GeoPrior"):
        export_onnx(UniformPrior(["a", "b"]), tmp_path / "u.onnx")


def test_files_that_are_not_exports_are_refused(exports, tmp_path):
    import onnx

    model = onnx.load(str(exports["float32"]))
    del model.metadata_props[:]
    onnx.save(model, tmp_path / "bare.onnx")
    with pytest.raises(PriorFileError, match="not a geoprior export"):
        load_export(tmp_path / "bare.onnx")
    model = onnx.load(str(exports["float32"]))
    header = json.loads(model.metadata_props[0].value)
    model.metadata_props[0].value = json.dumps({**header, "format_version": 99})
    onnx.save(model, tmp_path / "newer.onnx")
    with pytest.raises(PriorFileError, match="upgrade geoprior"):
        load_export(tmp_path / "newer.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(PriorFileError, match="not a readable ONNX model"):
        load_export(tmp_path / "junk.onnx")


# ------------------------------------------------------------------ range tables
BBOX = (0.0, 40.0, 20.0, 56.0)  # the European species' region


@pytest.fixture(scope="module")
def table(trained_prior, tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "range.parquet"
    summary = write_range_table(trained_prior, path, res=3, months=[0, 1, 7], bbox=BBOX)
    return path, summary


def test_range_table_holds_the_range_maps_cells(trained_prior, table):
    path, summary = table
    t = read_range_table(path)
    assert t.months == (0, 1, 7) and t.res == 3 and len(t) == summary["rows"] > 0
    for name in trained_prior.species:
        for month in (None, 7):
            frame = range_map(trained_prior, name, res=3, month=month, bbox=BBOX)
            want = frame.loc[frame.in_range, "h3_cell"].map(lambda c: int(c, 16))
            got = t.cells_of(name, month)
            assert set(got.tolist()) == set(want.tolist())
            if len(got):
                scores = t.species_in(got, month)
                scores = scores[scores.species == name].set_index("h3_cell")["score"]
                probs = frame.set_index("h3_cell")["prob"]
                close = np.abs(scores - probs.loc[scores.index]) <= 0.5 / 255 + 1e-6
                low = probs.loc[scores.index] < 1 / 255  # kept in range, stored as level 1
                assert (close | low).all()


def test_range_table_reads_with_pyarrow_alone(table):
    import pyarrow.parquet as pq

    path, _ = table
    t = read_range_table(path)
    frame = t.species_in(t.cells_of("Aestiva summer", 7)[:1], month=7)
    cell = int(frame.h3_cell[0], 16)
    raw = pq.read_table(path, filters=[("h3_cell", "=", cell), ("month", "=", 7)]).to_pandas()
    assert sorted(raw.species.astype(str)) == sorted(frame.species)
    np.testing.assert_allclose(np.sort(raw.score / 255), np.sort(frame.score), atol=1e-7)
    # the summer species is in range in July and not in January
    assert len(t.cells_of("Aestiva summer", 7)) > len(t.cells_of("Aestiva summer", 1))


def test_range_table_lookups_validate(table):
    from geoprior import UnknownSpeciesError

    t = read_range_table(table[0])
    with pytest.raises(ConfigError, match="hexadecimal"):
        t.species_in(["zz"])
    with pytest.raises(ConfigError, match="holds months"):
        t.species_in([0], month=3)
    with pytest.raises(UnknownSpeciesError, match="Did you mean"):
        t.cells_of("Aestiva sumer")
    assert t.species_in([0]).empty  # a cell that holds nothing


def test_range_table_from_an_onnx_export_matches(trained_prior, exports, table, tmp_path):
    summary = write_range_table(load_export(exports["float32"]), tmp_path / "o.parquet", res=3,
                                months=[0, 1, 7], bbox=BBOX)
    a, b = read_range_table(table[0]), read_range_table(tmp_path / "o.parquet")
    assert abs(summary["rows"] - len(a)) <= max(2, len(a) // 1000)  # ties at the threshold
    for name in trained_prior.species:
        for month in (None, 1, 7):
            x, y = set(a.cells_of(name, month).tolist()), set(b.cells_of(name, month).tolist())
            assert len(x ^ y) <= max(1, len(x) // 100)


def test_sixteen_bit_scores_keep_the_ranking(trained_prior, tmp_path):
    import pyarrow.parquet as pq

    path = tmp_path / "r16.parquet"
    write_range_table(trained_prior, path, res=3, months=[7], bbox=BBOX, score_bits=16)
    assert pq.read_table(path).schema.field("score").type == "uint16"
    t = read_range_table(path)
    frame = range_map(trained_prior, list(trained_prior.species), res=3, month=7, bbox=BBOX)
    frame = frame[frame.in_range]
    got = t.species_in(frame.h3_cell.unique(), month=7)
    merged = got.merge(frame[["h3_cell", "species", "prob"]], on=["h3_cell", "species"])
    assert len(merged) == len(got) == len(frame)
    assert (np.abs(merged.score - merged.prob) <= 0.5 / 65535 + 1e-7).all()
    for _, cell in merged.groupby("h3_cell"):  # best first, as the prior ranks them
        assert (np.diff(cell.prob.to_numpy()) <= 1e-6).all()


def test_range_table_refuses_bad_options(trained_prior, tmp_path):
    with pytest.raises(ConfigError, match="score_bits"):
        write_range_table(trained_prior, tmp_path / "x.parquet", score_bits=12)
    with pytest.raises(ConfigError, match="months must be"):
        write_range_table(trained_prior, tmp_path / "x.parquet", months=[13])
    with pytest.raises(ConfigError, match=".parquet"):
        write_range_table(trained_prior, tmp_path / "x.csv")
    with pytest.raises(ConfigError, match="no stored thresholds"):
        write_range_table(UniformPrior(["a"]), tmp_path / "u.parquet", res=1)


# ------------------------------------------------------------------ the command
def test_cli_exports_onnx_and_a_range_table(trained_prior, tmp_path):
    folder = tmp_path / "p.prior"
    trained_prior.save(folder)
    runner = CliRunner()
    out = tmp_path / "p.onnx"
    r = runner.invoke(main, ["export", str(folder), "-o", str(out), "--weights", "float16"])
    assert r.exit_code == 0, r.output
    assert "float16 weights" in r.output and load_export(out).weights == "float16"
    r = runner.invoke(main, ["export", str(folder), "-o", str(out)])
    assert r.exit_code == 1 and "exists" in r.output
    table_path = tmp_path / "t.parquet"
    r = runner.invoke(main, ["export", str(out), "-o", str(table_path), "--format", "range-table",
                             "--res", "2", "--month", "7", "--bbox", "0,40,20,56"])
    assert r.exit_code == 0, r.output
    assert read_range_table(table_path).months == (7,)
    r = runner.invoke(main, ["export", str(folder), "-o", str(tmp_path / "x.txt")])
    assert r.exit_code == 2 and "writes a .onnx file" in r.output
    r = runner.invoke(main, ["export", str(folder), "-o", str(tmp_path / "y.onnx"), "--month", "3"])
    assert r.exit_code == 2 and "range-table" in r.output
