"""Tests of geoprior.columnstore: conversion of files to a shuffled column store, its
validation and manifest, opening errors, sampling, and the memory bound."""

from __future__ import annotations

import json
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geoprior import ColumnStore, Observations, convert_to_columns, read_observations
from geoprior.columnstore import convert as columns_module
from geoprior.columnstore import store as store_module
from geoprior.columnstore.store import RowIndexError
from geoprior.errors import (
    ConfigError,
    CoordinateError,
    EmptyDataError,
    FormatError,
    GeopriorError,
    MissingFileError,
    OutputExistsError,
)

FIXTURES = Path(__file__).parent / "fixtures" / "io"
NAMES = [f"Genus species{i:02d}" for i in range(12)]


def frame(n: int, seed: int = 0, covariates: bool = False) -> pd.DataFrame:
    """``n`` valid rows; species of very unequal frequency; a tenth undated."""
    rng = np.random.default_rng(seed)
    weights = 0.5 ** np.arange(len(NAMES))
    day = np.datetime64("2015-01-01") + rng.integers(0, 3000, n)
    df = pd.DataFrame(
        {
            "latitude": rng.uniform(-60, 70, n),
            "longitude": rng.uniform(-180, 180, n),
            "species": rng.choice(NAMES, n, p=weights / weights.sum()),
            "date": np.where(rng.random(n) < 0.1, None, day.astype(str)),
        }
    )
    if covariates:
        df["temp"] = rng.normal(12, 8, n)
        df["flat"] = 3.5
    return df


def rows(lat, lon, species, date) -> list[tuple]:
    """The rows as a sorted list (a multiset), coordinates rounded to float32 as stored."""
    lat = np.asarray(lat, dtype=np.float32).tolist()
    lon = np.asarray(lon, dtype=np.float32).tolist()
    date = np.asarray(date, dtype="datetime64[D]").astype(str).tolist()
    return sorted(zip(lat, lon, [str(s) for s in species], date))


def store_rows(store: ColumnStore) -> list[tuple]:
    names = np.asarray(store.species, dtype=object)[store.species_index]
    return rows(store.lat, store.lon, names, store.date)


def obs_rows(obs: Observations) -> list[tuple]:
    return rows(obs.lat, obs.lon, obs.species_names, obs.date)


def frame_rows(df: pd.DataFrame) -> list[tuple]:
    return obs_rows(
        Observations.from_arrays(df.latitude, df.longitude, df.species, date=df.date.to_numpy())
    )


# ---------------------------------------------------------------------------- round trips
def test_parquet_round_trip_is_a_shuffled_permutation(tmp_path):
    df = frame(300)
    df.to_parquet(tmp_path / "obs.parquet")
    store = convert_to_columns(tmp_path / "obs.parquet", tmp_path / "store", chunk_rows=7)
    assert len(store) == 300 and store_rows(store) == frame_rows(df)
    assert not np.array_equal(store.lat, df.latitude.to_numpy(np.float32))  # order changed
    assert store.species == tuple(sorted(set(df.species)))
    np.testing.assert_array_equal(
        store.species_counts, [int((df.species == s).sum()) for s in store.species]
    )
    assert store.dated_fraction == pytest.approx(df.date.notna().mean())
    assert (store.lat.dtype, store.date.dtype, store.species_index.dtype) == (
        np.float32,
        np.dtype("datetime64[D]"),
        np.int32,
    )
    assert isinstance(store.lat, np.memmap) and not store.lat.flags.writeable
    for name in ("lat", "lon", "date", "species_index"):  # plain .npy files
        np.testing.assert_array_equal(np.load(store.path / f"{name}.npy"), getattr(store, name))
    manifest = json.loads((store.path / "manifest.json").read_text())
    assert manifest["sources"][0]["path"] == str(tmp_path / "obs.parquet")
    assert manifest["seed"] == 0 and manifest["n_rows"] == 300
    assert sorted(p.name for p in tmp_path.iterdir()) == ["obs.parquet", "store"]  # no temp left


def test_parquet_directory_recursive_sorted_skipping_hidden(tmp_path):
    data = tmp_path / "data"
    (data / "year=2021").mkdir(parents=True)
    parts = [frame(40, seed=i) for i in range(4)]
    for i, part in enumerate(parts[:3]):
        part.to_parquet(data / f"part-{i}.parquet", row_group_size=9)
    parts[3].to_csv(data / "year=2021" / "extra.csv.gz", index=False)
    (data / "_SUCCESS").write_text("")
    frame(5, seed=9).to_parquet(data / ".hidden.parquet")
    frame(5, seed=9).to_parquet(data / "_metadata.parquet")
    store = convert_to_columns(data, tmp_path / "store", chunk_rows=11)
    assert store_rows(store) == frame_rows(pd.concat(parts))
    sources = [s["path"] for s in store.manifest["sources"]]
    assert sources == sorted(sources) and len(sources) == 4


def test_csv_with_many_chunks_agrees_with_read_observations(tmp_path):
    df = frame(250, seed=3, covariates=True)
    df.to_csv(tmp_path / "obs.csv", index=False)
    store = convert_to_columns(
        tmp_path / "obs.csv", tmp_path / "store", chunk_rows=7, covariates=["temp", "flat"]
    )
    obs = read_observations(tmp_path / "obs.csv", covariates=["temp", "flat"])
    assert store_rows(store) == obs_rows(obs)
    assert store.covariate_names == ("temp", "flat") and store.covariates.shape == (250, 2)
    mean, std = store.covariate_stats()
    cov = np.asarray(store.covariates, dtype=np.float64)
    np.testing.assert_allclose(mean, cov.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(std[0], cov[:, 0].std(), rtol=1e-6)
    assert std[1] == 1.0 and mean.dtype == std.dtype == np.float32  # constant column
    np.testing.assert_allclose(np.sort(cov[:, 0]), np.sort(obs.covariates[:, 0]))
    # extent: what Observations.extent() says of the same (float32-rounded) rows
    assert store.extent() == store.to_observations().extent()
    for key, value in obs.extent().items():
        assert store.extent()[key] == pytest.approx(value, abs=1e-4)


@pytest.mark.parametrize("name", ["gbif_simple.csv", "ebd_sample.txt", "inat_observations.csv"])
def test_each_streamed_format_reads_what_its_reader_reads(tmp_path, name):
    obs = read_observations(FIXTURES / name, chunksize=2)
    store = convert_to_columns(FIXTURES / name, tmp_path / "store", chunk_rows=2)
    assert store_rows(store) == obs_rows(obs)
    assert store.report == obs.report  # rows read and kept, drops, notes


def test_antimeridian_extent(tmp_path):
    df = pd.DataFrame({"lat": [10.0, 12.0, -5.0], "lon": [179.0, -178.5, 175.0], "species": "a b"})
    df.to_parquet(tmp_path / "pacific.parquet")
    store = convert_to_columns(tmp_path / "pacific.parquet", tmp_path / "store")
    expected = Observations.from_arrays(df.lat, df.lon.astype(np.float32), df.species).extent()
    assert store.extent() == expected and store.extent()["west"] > store.extent()["east"]


# ---------------------------------------------------------------------------- the shuffle
def test_same_seed_same_store_other_seed_other_order(tmp_path):
    frame(200).to_parquet(tmp_path / "obs.parquet")
    a, b, c = (
        convert_to_columns(tmp_path / "obs.parquet", tmp_path / name, chunk_rows=13, seed=seed)
        for name, seed in (("a", 5), ("b", 5), ("c", 6))
    )
    for name in ("lat", "lon", "date", "species_index"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.lat, c.lat) and store_rows(a) == store_rows(c)


def test_low_row_estimate_splits_oversized_buckets(tmp_path, monkeypatch):
    monkeypatch.setattr(columns_module, "_estimate_rows", lambda path: 1)  # one huge bucket
    df = frame(120)
    df.to_parquet(tmp_path / "obs.parquet")
    store = convert_to_columns(tmp_path / "obs.parquet", tmp_path / "store", chunk_rows=5)
    assert store_rows(store) == frame_rows(df)


def test_bucket_shuffle_is_uniform(tmp_path):
    """Each of 4 records lands at each of 4 places about equally often, also when the
    bucket must be split again (chunk_rows=1)."""
    dtype = columns_module._record_dtype(0)
    places = np.zeros((4, 4), int)
    rng = np.random.default_rng(0)
    for rep in range(1000):
        rec = np.zeros(4, dtype)
        rec["species"] = np.arange(4)
        buckets = columns_module._scatter([rec], str(tmp_path / f"b{rep}"), 2, rng)
        out = np.concatenate(
            [r for p, n in buckets for r in columns_module._shuffled(p, n, dtype, 1, rng)]
        )
        places[out["species"], np.arange(4)] += 1
    assert list(tmp_path.iterdir()) == []  # bucket files are deleted
    assert np.abs(places - 250).max() < 70  # 250 expected, standard deviation ~14


# ---------------------------------------------------------------------------- invalid rows
def bad_csv(tmp_path) -> Path:
    df = frame(30)
    df.loc[13, "latitude"] = 91.0
    df.loc[21, "species"] = None
    df.to_csv(tmp_path / "bad.csv", index=False)
    return tmp_path / "bad.csv"


def test_invalid_rows_raise_naming_file_and_row(tmp_path):
    path = bad_csv(tmp_path)
    with pytest.raises(CoordinateError, match=r"bad\.csv, rows 10\.\.14: 1 of 5 latitudes "):
        convert_to_columns(path, tmp_path / "store", chunk_rows=5)
    with pytest.raises(CoordinateError, match=r"first: row 13 = 91\.0"):
        convert_to_columns(path, tmp_path / "store", chunk_rows=5)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]  # nothing half-written


def test_dropped_rows_are_counted_and_warned(tmp_path):
    path = bad_csv(tmp_path)
    with pytest.warns(UserWarning, match=r"bad\.csv: read 30 rows, kept 28, dropped 2"):
        store = convert_to_columns(path, tmp_path / "store", chunk_rows=5, on_invalid="drop")
    assert len(store) == 28
    report = store.manifest["report"]
    assert report["dropped"] == {"latitude out of range": 1, "empty species name": 1}
    assert (report["rows_read"], report["rows_kept"]) == (30, 28)
    assert store.manifest["sources"][0]["dropped"] == report["dropped"]


def test_no_valid_rows_and_unstreamable_formats(tmp_path):
    pd.DataFrame({"lat": [95.0], "lon": [0.0], "species": ["a"]}).to_csv(
        tmp_path / "all_bad.csv", index=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(EmptyDataError, match="no usable rows"):
            convert_to_columns(tmp_path / "all_bad.csv", tmp_path / "s", on_invalid="drop")
    with pytest.raises(
        FormatError, match=r"inat2021_train\.json: a 'inat-json' file is read whole"
    ):
        convert_to_columns(FIXTURES / "inat2021_train.json", tmp_path / "s")
    with pytest.raises(FormatError, match="no column 'elevation'"):
        convert_to_columns(tmp_path / "all_bad.csv", tmp_path / "s", covariates=["elevation"])
    with pytest.raises(ConfigError, match="columns takes the keys"):
        convert_to_columns(tmp_path / "all_bad.csv", tmp_path / "s", columns={"latt": "lat"})
    with pytest.raises(ConfigError, match="chunk_rows"):
        convert_to_columns(tmp_path / "all_bad.csv", tmp_path / "s", chunk_rows=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyDataError, match="no data files"):
        convert_to_columns(tmp_path / "empty", tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_named_columns(tmp_path):
    df = frame(20).rename(columns={"latitude": "y_deg", "longitude": "x_deg", "species": "what"})
    df.to_parquet(tmp_path / "obs.parquet")
    store = convert_to_columns(
        tmp_path / "obs.parquet",
        tmp_path / "store",
        columns={"lat": "y_deg", "lon": "x_deg", "species": "what", "date": "date"},
    )
    assert store_rows(store) == frame_rows(frame(20))


# ---------------------------------------------------------------------------- writing, opening
def test_overwrite_only_when_asked_and_only_a_store(tmp_path):
    frame(20).to_parquet(tmp_path / "a.parquet")
    frame(30, seed=1).to_parquet(tmp_path / "b.parquet")
    convert_to_columns(tmp_path / "a.parquet", tmp_path / "store")
    with pytest.raises(OutputExistsError, match="pass overwrite=True") as info:
        convert_to_columns(tmp_path / "b.parquet", tmp_path / "store")
    assert isinstance(info.value, FileExistsError)
    assert len(ColumnStore.open(tmp_path / "store")) == 20
    assert len(convert_to_columns(tmp_path / "b.parquet", tmp_path / "store", overwrite=True)) == 30
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="not a column store"):
        convert_to_columns(tmp_path / "b.parquet", tmp_path / "mine", overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_the_target_is_checked_as_the_cli_checks_it(tmp_path):
    frame(20).to_parquet(tmp_path / "a.parquet")
    (tmp_path / "empty").mkdir()  # not a column store, though nothing would be lost
    with pytest.raises(OutputExistsError, match="empty exists and is not a column store"):
        convert_to_columns(tmp_path / "a.parquet", tmp_path / "empty", overwrite=True)
    deep = tmp_path / "new" / "folders" / "store"  # missing folders are made, as before
    assert len(convert_to_columns(tmp_path / "a.parquet", deep)) == 20


def test_open_errors(tmp_path):
    frame(50).to_parquet(tmp_path / "obs.parquet")
    path = convert_to_columns(tmp_path / "obs.parquet", tmp_path / "store").path
    with pytest.raises(MissingFileError):
        ColumnStore.open(tmp_path / "nowhere")
    with pytest.raises(FormatError, match="no manifest.json"):
        ColumnStore.open(tmp_path)
    raw = (path / "species_index.npy").read_bytes()
    (path / "species_index.npy").write_bytes(raw[: len(raw) - 8])  # truncated
    with pytest.raises(FormatError, match=r"species_index\.npy is corrupt or truncated"):
        ColumnStore.open(path)
    np.save(path / "species_index.npy", np.zeros(49, np.int32))  # wrong length
    with pytest.raises(
        FormatError, match=r"expected int32 of shape \(50,\), found int32 of shape \(49,\)"
    ):
        ColumnStore.open(path)
    (path / "lat.npy").unlink()
    with pytest.raises(FormatError, match=r"incomplete: no lat\.npy"):
        ColumnStore.open(path)
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(FormatError, match="upgrade geoprior"):
        ColumnStore.open(path)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(FormatError, match="corrupt"):
        ColumnStore.open(path)


# ---------------------------------------------------------------------------- reading rows
@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ColumnStore:
    tmp = tmp_path_factory.mktemp("columns")
    frame(400, seed=7, covariates=True).to_parquet(tmp / "obs.parquet")
    return convert_to_columns(
        tmp / "obs.parquet", tmp / "store", chunk_rows=50, covariates=["temp"]
    )


def test_take_and_to_observations(store):
    picked = np.array([399, 0, 17, 17])
    obs = store.take(picked)
    assert obs.species == store.species and obs.lat.dtype == np.float64
    np.testing.assert_array_equal(obs.lat, store.lat[picked])
    np.testing.assert_array_equal(obs.species_index, store.species_index[picked])
    np.testing.assert_array_equal(obs.covariates, store.covariates[picked])
    assert len(store.take([])) == 0
    everything = store.to_observations()
    assert obs_rows(everything) == store_rows(store) and everything.covariate_names == ("temp",)
    assert everything.lat.flags.writeable  # in memory, not a view of the files
    with pytest.raises(
        RowIndexError, match=r"2 of 3 row numbers outside \[0, 400\); first: rows\[1\] = 400"
    ):
        store.take([3, 400, -1])
    assert issubclass(RowIndexError, IndexError) and issubclass(RowIndexError, GeopriorError)
    with pytest.raises(ConfigError, match="integer row numbers"):
        store.take([1.5])


@pytest.mark.parametrize("k", [0, 1, 3, 40, 1000])
def test_per_species_sample(store, monkeypatch, k):
    monkeypatch.setattr(store_module, "_SCAN_ROWS", 7)  # many blocks, wrapping round
    sample = store.per_species_sample(k, seed=3)
    assert np.array_equal(sample, np.unique(sample))
    got = np.bincount(store.species_index[sample], minlength=store.n_species)
    np.testing.assert_array_equal(got, np.minimum(store.species_counts, k))
    assert (store.species_counts < 40).any() and (store.species_counts > 40).any()


def test_per_species_sample_depends_on_seed(store):
    a, b = store.per_species_sample(5, seed=0), store.per_species_sample(5, seed=1)
    assert len(a) == len(b) and not np.array_equal(a, b)
    np.testing.assert_array_equal(a, store.per_species_sample(5, seed=0))


def test_sample_rows(store):
    rows_ = store.sample_rows(50, seed=1)
    assert rows_.size == 50 and np.array_equal(rows_, np.unique(rows_))
    assert rows_.min() >= 0 and rows_.max() < len(store)
    np.testing.assert_array_equal(store.sample_rows(10_000), np.arange(len(store)))
    with pytest.raises(ConfigError):
        store.sample_rows(-1)


def test_repr(store):
    assert f"400 rows, {store.n_species} species, " in repr(store)
    assert repr(store).endswith("% dated, 1 covariates)")


# ---------------------------------------------------------------------------- memory
def test_peak_memory_grows_with_the_chunk_not_the_data(tmp_path):
    """Four times the rows, same chunk: the peak traced allocation (numpy and Python
    objects) barely moves, and stays far below the columns written."""
    chunk, peaks = 1_000, {}
    rng = np.random.default_rng(0)
    names = [f"Genus species{i}" for i in range(500)]
    for n in (chunk, 20_000, 80_000):  # the first run warms caches up
        path = tmp_path / f"{n}.parquet"
        pd.DataFrame(
            {
                "lat": rng.uniform(-60, 70, n),
                "lon": rng.uniform(-180, 180, n),
                "species": pd.Categorical.from_codes(rng.integers(0, 500, n), names),
            }
        ).to_parquet(path, row_group_size=chunk)
        tracemalloc.start()
        try:
            store = convert_to_columns(path, tmp_path / f"store{n}", chunk_rows=chunk)
            peaks[n] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert len(store) == n
    columns = 80_000 * (4 + 4 + 8 + 4)
    assert peaks[80_000] < 1.5 * peaks[20_000], peaks  # linear growth would be 4x
    assert peaks[80_000] < columns / 2, (peaks, columns)


def test_ebird_categories_as_read_ebird(tmp_path):
    from geoprior import ConfigError
    from geoprior.io import read_ebird

    src = FIXTURES / "ebd_sample.txt"
    every = read_ebird(src, categories=None)
    store = convert_to_columns(src, tmp_path / "all", categories=None)
    assert store_rows(store) == obs_rows(every)
    species_only = convert_to_columns([src, src], tmp_path / "species")  # counts add up
    report = species_only.report
    assert report.removed == {"CATEGORY 'issf'": 2, "CATEGORY 'spuh'": 2, "CATEGORY 'slash'": 2}
    assert report.rows_read == report.rows_kept + report.n_dropped + report.n_removed == 14
    frame_ = pd.read_csv(src, sep="\t", dtype=str).drop(columns=["CATEGORY"])
    frame_.to_csv(tmp_path / "nocat.txt", sep="\t", index=False)
    with pytest.raises(ConfigError, match="categories=None"):
        convert_to_columns(tmp_path / "nocat.txt", tmp_path / "x")
