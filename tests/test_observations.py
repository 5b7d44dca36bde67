import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoprior import (
    ClassMismatchError,
    ConfigError,
    CoordinateError,
    DateError,
    EmptyDataError,
    NonFiniteError,
    Observations,
    SpeciesNameError,
    UnknownSpeciesError,
)


def small(n=12, seed=0, **kw) -> Observations:
    """n rows over three species, dates across 2019-2021, sites s0..s3."""
    rng = np.random.default_rng(seed)
    names = np.array(["Pica pica", "Corvus corax", "Turdus merula"])
    return Observations.from_arrays(
        rng.uniform(-60, 60, n),
        rng.uniform(-170, 170, n),
        names[np.arange(n) % 3],
        date=np.datetime64("2019-01-01") + rng.integers(0, 3 * 365, n),
        site=np.array([f"s{i % 4}" for i in range(n)], dtype=object),
        **kw,
    )


# ----------------------------------------------------------------- from_arrays
def test_from_arrays_builds_sorted_vocabulary_and_aligned_arrays():
    obs = Observations.from_arrays(
        [44.0, 35.1, 10.0],
        [-71.3, -111.6, 20.0],
        ["b sp", "a sp", "b sp"],
        date=["2021-06-14", None, ""],
    )
    assert obs.species == ("a sp", "b sp")
    assert obs.species_index.tolist() == [1, 0, 1]
    assert obs.species_names.tolist() == ["b sp", "a sp", "b sp"]
    assert obs.has_date.tolist() == [True, False, False]
    assert obs.lat.dtype == np.float64 and obs.species_index.dtype == np.int32
    assert "3 rows, 2 species, 1 dated" in repr(obs)


@pytest.mark.parametrize(
    "field, bad, error, fragment",
    [
        ("lat", 91.5, CoordinateError, "latitudes outside [-90, 90]; first: row 2 = 91.5"),
        ("lat", np.nan, CoordinateError, "latitudes are missing"),
        ("lon", 200.0, CoordinateError, "longitudes outside [-180, 180]"),
        ("lon", np.inf, CoordinateError, "longitudes are infinite"),
        ("date", "2021-02-30", DateError, "dates are impossible"),
        ("date", "soon", DateError, "could not be parsed"),
        ("species", "  ", SpeciesNameError, "species names are empty or missing"),
        ("species", None, SpeciesNameError, "first: row 2 = None"),
        ("cov", np.nan, NonFiniteError, "non-finite covariates; first: row 2"),
    ],
)
def test_each_bad_value_raises_its_error_with_count_and_first_row(field, bad, error, fragment):
    cols = {
        "lat": [1.0, 2.0, 3.0, 4.0],
        "lon": [5.0, 6.0, 7.0, 8.0],
        "species": ["a", "b", "a", "b"],
        "date": ["2021-01-01"] * 4,
        "cov": [1.0, 2.0, 3.0, 4.0],
    }
    cols = {
        k: np.array(v, dtype=object if k in ("species", "date") else float) for k, v in cols.items()
    }
    cols[field][2] = bad
    kw = dict(date=cols["date"], covariates=cols["cov"])
    with pytest.raises(error, match="1 of 4") as info:
        Observations.from_arrays(cols["lat"], cols["lon"], cols["species"], **kw)
    assert fragment in str(info.value)
    assert "on_invalid='drop'" in str(info.value)
    with pytest.warns(UserWarning, match="dropped 1"):
        kept = Observations.from_arrays(
            cols["lat"], cols["lon"], cols["species"], **kw, on_invalid="drop"
        )
    assert len(kept) == 3
    assert kept.lat.tolist() == [1.0, 2.0, 4.0]
    assert kept.report.rows_read == 4 and kept.report.rows_kept == 3
    assert kept.report.n_dropped == 1


@pytest.mark.parametrize(
    "kw, fragment",
    [
        (dict(species=["a", "b"]), "3 coordinates but 2 species"),
        (dict(date=["2021-01-01"] * 2), "3 coordinates but 2 dates"),
        (dict(covariates=np.zeros((2, 1))), "3 coordinates but 2 covariate rows"),
        (dict(site=["x"]), "3 coordinates but 1 site ids"),
        (dict(covariates=np.zeros((3, 2)), covariate_names=["t"]), "2 covariate columns but 1"),
        (dict(species=[0, 1, 0]), "integer species need a vocabulary"),
        (dict(species=[0, 1, 5], vocabulary=["a", "b"]), "species indices outside [0, 2)"),
    ],
)
def test_length_and_shape_mismatches_raise_class_mismatch(kw, fragment):
    args = dict(lat=[1.0, 2.0, 3.0], lon=[4.0, 5.0, 6.0], species=["a", "b", "a"])
    args.update(kw)
    with pytest.raises(ClassMismatchError, match=fragment.replace("[", r"\[").replace(")", r"\)")):
        Observations.from_arrays(args.pop("lat"), args.pop("lon"), args.pop("species"), **args)


def test_lat_lon_length_mismatch_is_a_coordinate_error():
    with pytest.raises(CoordinateError, match="2 latitudes but 3 longitudes"):
        Observations.from_arrays([1.0, 2.0], [1.0, 2.0, 3.0], ["a", "b"])


def test_integer_species_with_vocabulary_and_unknown_names():
    obs = Observations.from_arrays([1.0, 2.0], [3.0, 4.0], [1, 0], vocabulary=["x", "y"])
    assert obs.species == ("x", "y") and obs.species_names.tolist() == ["y", "x"]
    with pytest.raises(UnknownSpeciesError, match="Did you mean 'Pica pica'"):
        Observations.from_arrays([1.0], [2.0], ["Pica pic"], vocabulary=["Pica pica", "Corvus"])


def test_on_invalid_must_be_raise_or_drop():
    from geoprior import GeopriorError

    with pytest.raises(GeopriorError, match="on_invalid"):
        Observations.from_arrays([1.0], [2.0], ["a"], on_invalid="ignore")


def test_lon_360_is_shifted():
    obs = Observations.from_arrays([0.0, 0.0], [350.0, 10.0], ["a", "a"], lon_360=True)
    assert obs.lon.tolist() == [-10.0, 10.0]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.booleans()), min_size=1, max_size=30))
def test_drop_removes_exactly_the_bad_rows(flags):
    """Whatever rows have a bad latitude, date or name, drop keeps exactly the others."""
    n = len(flags)
    bad_lat, bad_date, bad_name = (np.array(f, bool) for f in zip(*flags))
    lat = np.where(bad_lat, 123.0, np.linspace(-50, 50, n))
    dates = np.where(bad_date, "2021-02-31", "2021-03-01").astype(object)
    names = np.where(bad_name, "", "Pica pica").astype(object)
    bad = bad_lat | bad_date | bad_name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs = Observations.from_arrays(lat, np.zeros(n), names, date=dates, on_invalid="drop")
    assert len(obs) == int((~bad).sum())
    np.testing.assert_array_equal(obs.lat, lat[~bad])
    assert obs.report.n_dropped == int(bad.sum())
    assert obs.report.rows_read == n and obs.report.rows_kept == len(obs)
    if bad.any():
        with pytest.raises((CoordinateError, DateError, SpeciesNameError)):
            Observations.from_arrays(lat, np.zeros(n), names, date=dates)


# ----------------------------------------------------------------- selection
def test_len_bool_index_slice_select_rows_and_keep_vocabulary():
    obs = small(12)
    mask = obs.species_index == 0
    for key, rows in [
        (mask, np.flatnonzero(mask)),
        ([3, 0, 5], np.array([3, 0, 5])),
        (slice(2, 8, 3), np.arange(12)[2:8:3]),
        (4, np.array([4])),
        (np.int64(-1), np.array([11])),
    ]:
        sub = obs[key]
        assert sub.species == obs.species
        assert len(sub) == rows.size
        np.testing.assert_array_equal(sub.lat, obs.lat[rows])
        np.testing.assert_array_equal(sub.date, obs.date[rows])
        np.testing.assert_array_equal(sub.species_names, obs.species_names[rows])
        np.testing.assert_array_equal(sub.site, obs.site[rows])
    with pytest.raises(ClassMismatchError, match="boolean mask has shape"):
        obs[np.ones(3, bool)]


def test_species_counts_day_of_year_and_year():
    obs = Observations.from_arrays(
        [0.0] * 4,
        [0.0] * 4,
        ["b", "a", "b", "b"],
        date=["2020-01-01", "2020-12-31", None, "2021-03-01"],
    )
    assert obs.species_counts().tolist() == [1, 3]
    doy = obs.day_of_year()
    assert doy[[0, 1, 3]].tolist() == [1.0, 366.0, 60.0]
    assert np.isnan(doy[2])
    year = obs.year()
    assert year[[0, 1, 3]].tolist() == [2020.0, 2020.0, 2021.0] and np.isnan(year[2])


def test_species_counts_include_unobserved_vocabulary_entries():
    obs = Observations.from_arrays([0.0], [0.0], ["b"], vocabulary=["a", "b", "c"])
    assert obs.species_counts().tolist() == [0, 1, 0]


@pytest.mark.parametrize(
    "lons, west, east",
    [
        ([10.0, -20.0, 30.0], -20.0, 30.0),
        ([179.5, -179.5, 178.0], 178.0, -179.5),  # across the antimeridian: west > east
    ],
)
def test_extent(lons, west, east):
    obs = Observations.from_arrays([-5.0, 1.0, 7.0], lons, ["a"] * 3)
    assert obs.extent() == {"west": west, "south": -5.0, "east": east, "north": 7.0}


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-180, 180), min_size=1, max_size=20))
def test_extent_contains_every_point_and_is_never_wider_than_plain_min_max(lons):
    lons = np.array(lons)
    e = Observations.from_arrays(np.zeros(lons.size), lons, ["a"] * lons.size).extent()
    width = (e["east"] - e["west"]) % 360 if e["west"] > e["east"] else e["east"] - e["west"]
    assert width <= lons.max() - lons.min() + 1e-9
    inside = (lons - e["west"]) % 360 <= width + 1e-9
    assert inside.all()


def test_extent_of_nothing_is_an_error():
    with pytest.raises(EmptyDataError, match="0 observations"):
        Observations.from_arrays([], [], []).extent()


def test_to_frame_has_one_row_per_observation():
    obs = small(6, covariates=np.arange(12.0).reshape(6, 2), covariate_names=["t", "p"])
    df = obs.to_frame()
    assert list(df.columns) == ["latitude", "longitude", "date", "species", "site", "t", "p"]
    assert len(df) == 6
    np.testing.assert_array_equal(df["latitude"].to_numpy(), obs.lat)
    assert df["species"].tolist() == obs.species_names.tolist()
    assert pd.api.types.is_datetime64_any_dtype(df["date"])
    assert df["p"].tolist() == [1.0, 3.0, 5.0, 7.0, 9.0, 11.0]


def test_with_vocabulary_reindexes_raises_or_drops():
    obs = Observations.from_arrays([1.0, 2.0, 3.0], [0.0] * 3, ["a", "b", "c"])
    wider = obs.with_vocabulary(["z", "c", "b", "a"])
    assert wider.species == ("z", "c", "b", "a")
    assert wider.species_names.tolist() == ["a", "b", "c"]
    with pytest.raises(UnknownSpeciesError, match="'c'"):
        obs.with_vocabulary(["a", "b"])
    narrow = obs.with_vocabulary(["b", "a"], unknown="drop")
    assert narrow.species == ("b", "a")
    assert narrow.species_names.tolist() == ["a", "b"]
    assert narrow.lat.tolist() == [1.0, 2.0]
    assert narrow.report.dropped == {"species not in vocabulary": 1}
    assert narrow.report.summary() == (
        "read 3 rows, kept 2, dropped 1: 1 species not in vocabulary"
    )
    assert obs.report.dropped == {}  # the original is untouched


def test_concat_merges_vocabularies():
    a = Observations.from_arrays([1.0, 2.0], [0.0, 0.0], ["x", "y"], date=["2020-01-01", None])
    b = Observations.from_arrays([3.0], [0.0], ["w"])
    both = Observations.concat([a, b])
    assert both.species == ("w", "x", "y")
    assert both.species_names.tolist() == ["x", "y", "w"]
    assert both.lat.tolist() == [1.0, 2.0, 3.0]
    assert both.has_date.tolist() == [True, False, False]
    assert both.report.rows_read == 3
    with pytest.raises(EmptyDataError):
        Observations.concat([])
    with_cov = Observations.from_arrays([1.0], [0.0], ["x"], covariates=[1.0])
    with pytest.raises(ClassMismatchError, match="different covariates"):
        Observations.concat([a, with_cov])


# ----------------------------------------------------------------- splits
def _assert_partition(obs, train, test):
    assert len(train) > 0 and len(test) > 0
    assert train.species == obs.species == test.species
    rows = sorted(zip(train.lat.tolist(), train.lon.tolist())) + sorted(
        zip(test.lat.tolist(), test.lon.tolist())
    )
    assert sorted(rows) == sorted(zip(obs.lat.tolist(), obs.lon.tolist()))
    assert not set(zip(train.lat, train.lon)) & set(zip(test.lat, test.lon))


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 1000), st.floats(0.2, 0.8))
def test_random_split_is_a_partition(seed, fraction):
    obs = small(40, seed=seed)
    train, test = obs.split_random(fraction, seed=seed)
    _assert_partition(obs, train, test)
    again, _ = obs.split_random(fraction, seed=seed)
    np.testing.assert_array_equal(train.lat, again.lat)


def test_split_by_year_and_undated_rows():
    obs = small(30)
    obs = Observations.concat(
        [obs, Observations.from_arrays([0.5, 0.6], [0.5, 0.6], ["Pica pica"] * 2)]
    )
    train, test = obs.split_by_year(2020)
    _assert_partition(obs, train, test)
    assert (test.year() == 2020).all()
    assert not (train.year() == 2020).any()
    assert (~train.has_date).sum() == 2  # undated rows go to train
    train_d, test_d = obs.split_by_year([2020, 2021], undated="drop")
    assert train_d.has_date.all() and test_d.has_date.all()
    assert len(train_d) + len(test_d) == len(obs) - 2
    assert set(test_d.year().tolist()) <= {2020.0, 2021.0}
    with pytest.raises(ConfigError, match="undated"):
        obs.split_by_year(2020, undated="test")
    with pytest.raises(EmptyDataError, match="0 test rows"):
        obs.split_by_year(1999)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 1000))
def test_spatial_blocks_share_no_cell(seed):
    obs = small(60, seed=seed)
    train, test = obs.split_spatial_blocks(0.5, res=1, seed=seed)
    _assert_partition(obs, train, test)
    assert not set(train.h3_cells(1)) & set(test.h3_cells(1))


def test_split_by_site_keeps_sites_whole():
    obs = small(40)
    train, test = obs.split_by_site(0.5, seed=1)
    _assert_partition(obs, train, test)
    assert not set(train.site) & set(test.site)
    with pytest.raises(ConfigError, match="site column"):
        Observations.from_arrays([1.0], [1.0], ["a"]).split_by_site()


def test_bad_split_arguments():
    obs = small(10)
    for f in (0.0, 1.0, -0.1):
        with pytest.raises(ConfigError, match="test_fraction"):
            obs.split_random(f)
    with pytest.raises(ConfigError, match="H3 resolution"):
        obs.h3_cells(16)
    one = Observations.from_arrays([1.0], [1.0], ["a"])
    with pytest.raises(EmptyDataError, match="left"):
        one.split_random(0.5)
