"""Environmental rasters as covariates (geoprior.io.rasters): real GeoTIFFs written here
with rasterio, sampled, trained on from the CLI, mapped and queried."""

from __future__ import annotations

import io
import json
import shutil
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

rasterio = pytest.importorskip("rasterio", reason="needs the rasters extra: pip install 'geoprior[rasters]'")
from affine import Affine  # noqa: E402
from conftest import random_prior, small_config  # noqa: E402
from pyproj import Transformer  # noqa: E402  (after the skip: rasterio brings PROJ)

import geoprior.io.rasters as rz  # noqa: E402
from geoprior import Observations, load_prior, monthly_range_maps, range_map  # noqa: E402
from geoprior.cli import main  # noqa: E402
from geoprior.errors import (  # noqa: E402
    ClassMismatchError,
    ConfigError,
    CoverageError,
    EmptyDataError,
    GeopriorWarning,
    MissingDependencyError,
    MissingFileError,
    PriorFileError,
    RasterError,
)
from geoprior.io.rasters import (  # noqa: E402
    RasterCovariates,
    attach_covariates,
    cell_covariates,
    covariates_for,
    open_rasters,
)
from geoprior.maps import write_all_species  # noqa: E402
from geoprior.priors.header import PriorHeader  # noqa: E402
from geoprior.train.backgrounds import _far_from, raster_background  # noqa: E402

# every raster of the tests covers lon 0..30, lat 30..50 (30 x 20 one-degree pixels)
WEST, SOUTH, EAST, NORTH = 0.0, 30.0, 30.0, 50.0
TINY = [
    "--set", "steps=150", "--set", "members=1", "--set", "validation=none",
    "--set", "model.width=32", "--set", "model.depth=1", "--set", "batch_size=128",
    "--set", "checkpoint_every=1000",
]  # fmt: skip
MERC = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
UTM = Transformer.from_crs("EPSG:4326", "EPSG:32633", always_xy=True)


def from_origin(west, north, xsize, ysize):
    """The affine transform of a north-up raster whose top-left corner is (west, north)."""
    return Affine(xsize, 0.0, west, 0.0, -ysize, north)


def write(path, bands, transform, crs="EPSG:4326", nodata=None, dtype="float32", **tags):
    bands = np.asarray(bands, dtype)
    if bands.ndim == 2:
        bands = bands[None]
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=bands.shape[2],
        height=bands.shape[1],
        count=bands.shape[0],
        dtype=dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as ds:
        ds.write(bands)
        if "scales" in tags:
            ds.scales, ds.offsets = tags["scales"], tags["offsets"]
    return path


def temperature(lat):
    """The test's 'temperature': 15 degrees at 30 N, 5 at 50 N."""
    return 30.0 - 0.5 * np.asarray(lat)


def mercator_field(x, y):
    """A field linear in Web Mercator metres (bilinear interpolation reproduces it)."""
    return 1e-5 * np.asarray(x) - 2e-6 * np.asarray(y) + 40.0


@pytest.fixture(scope="module")
def rasters(tmp_path_factory):
    d = tmp_path_factory.mktemp("rasters")
    rows, cols = np.mgrid[0:20, 0:30]
    centre_lat = NORTH - rows - 0.5
    paths = {"temp": write(d / "temp.tif", temperature(centre_lat), from_origin(WEST, NORTH, 1, 1))}
    # Web Mercator: the same box, 30 x 20 pixels, values linear in x and y
    x0, y0 = MERC.transform(WEST, NORTH)
    x1, y1 = MERC.transform(EAST, SOUTH)
    px, py = (x1 - x0) / 30, (y0 - y1) / 20
    cx, cy = x0 + (cols + 0.5) * px, y0 - (rows + 0.5) * py
    paths["merc"] = write(d / "merc.tif", mercator_field(cx, cy), from_origin(x0, y0, px, py), "EPSG:3857")
    # UTM 33N: 30 x 20 pixels of 120 km holding their own index (covers lat 32..48, lon 2..28)
    paths["utm"] = write(
        d / "utm.tif", rows * 30 + cols, from_origin(-1.3e6, 5.6e6, 1.2e5, 1.2e5), "EPSG:32633"
    )
    # a 'sea' of nodata west of lon 8, and a NaN pixel (no nodata value needed for NaN)
    land = np.where(cols < 8, -9999.0, 100.0 + cols)
    paths["land"] = write(d / "land.tif", land, from_origin(WEST, NORTH, 1, 1), nodata=-9999.0)
    nan = np.ones((20, 30))
    nan[5, 5] = np.nan
    paths["nan"] = write(d / "nan.tif", nan, from_origin(WEST, NORTH, 1, 1))
    # two bands
    paths["stack"] = write(
        d / "stack.tif", np.stack([cols, rows]), from_origin(WEST, NORTH, 1, 1), dtype="int16"
    )
    # stored as int16 tenths of a degree plus an offset (as CHELSA does)
    paths["scaled"] = write(
        d / "scaled.tif",
        np.full((20, 30), 2931),
        from_origin(WEST, NORTH, 1, 1),
        dtype="int16",
        scales=(0.1,),
        offsets=(-273.15,),
    )
    # longitudes 0..360 (a global geographic raster as some climate models write it)
    paths["east360"] = write(d / "east360.tif", np.arange(36)[None, :] * np.ones((18, 1)), from_origin(0, 90, 10, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(
            d / "nocrs.tif", "w", driver="GTiff", width=3, height=2, count=1, dtype="float32"
        ) as ds:
            ds.write(np.ones((1, 2, 3), np.float32))
    paths["nocrs"] = d / "nocrs.tif"
    return {k: str(v) for k, v in paths.items()}


# ---------------------------------------------------------------------------- sampling
def test_nearest_is_the_pixel_the_place_falls_in(rasters):
    r = open_rasters([rasters["temp"]])
    lat = np.array([45.5, 45.01, 30.2, 49.99])
    got = r.sample(lat, [10.2, 0.1, 29.9, 15.0])
    assert got.dtype == np.float32 and got.shape == (4, 1)
    np.testing.assert_allclose(got[:, 0], temperature(np.floor(lat) + 0.5))


def test_bilinear_interpolates_between_pixel_centres(rasters):
    r = open_rasters([rasters["temp"]], method="bilinear")
    got = r.sample([45.0, 45.5, 30.2], [10.5, 10.5, 10.5])[:, 0]
    # between the centres 44.5 and 45.5; at a centre; clamped at the edge
    np.testing.assert_allclose(got, temperature([45.0, 45.5, 30.5]), rtol=1e-6)


@settings(max_examples=60, deadline=None)
@given(
    st.floats(SOUTH + 1.0, NORTH - 1.0),
    st.floats(WEST + 1.0, EAST - 1.0),
)
def test_bilinear_of_a_reprojected_linear_field_is_exact(rasters, lat, lon):
    """Places are reprojected to the raster's CRS: bilinear interpolation of a field
    linear in Web Mercator metres gives the field at the place's own metres."""
    r = open_rasters([rasters["merc"]], method="bilinear")
    x, y = MERC.transform(lon, lat)
    got = float(r.sample([lat], [lon])[0, 0])
    assert got == pytest.approx(float(mercator_field(x, y)), abs=1e-4)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(32.0, 48.0), st.floats(2.0, 28.0)), min_size=1, max_size=20))
def test_nearest_in_utm_agrees_with_rasterio_sample(rasters, places):
    lat, lon = np.array(places).T
    got = open_rasters([rasters["utm"]]).lookup(lat, lon)
    x, y = UTM.transform(lon, lat)
    with rasterio.open(rasters["utm"]) as ds:
        want = np.array([v[0] for v in ds.sample(zip(x, y))], np.float32)
    assert not got.outside.any()
    np.testing.assert_array_equal(got.values[:, 0], want)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.tuples(st.floats(28.0, 52.0), st.floats(-2.0, 32.0)), min_size=1, max_size=40),
    st.sampled_from(rz.METHODS),
)
def test_windowed_reads_sample_as_a_whole_read(rasters, places, method):
    """Large rasters are read by windows: forcing tiny windows changes nothing."""
    lat, lon = np.array(places).T
    r = open_rasters([rasters["land"], rasters["temp"]], method=method)
    whole = r.lookup(lat, lon)
    old = rz.WHOLE_PIXELS, rz.TILE
    rz.WHOLE_PIXELS, rz.TILE = 0, 7
    try:
        tiled = r.lookup(lat, lon)
    finally:
        rz.WHOLE_PIXELS, rz.TILE = old
    np.testing.assert_array_equal(whole.values, tiled.values)
    np.testing.assert_array_equal(whole.outside, tiled.outside)
    np.testing.assert_array_equal(whole.nodata, tiled.nodata)


def test_outside_and_nodata_are_masked_and_named(rasters):
    r = open_rasters([rasters["temp"], rasters["land"]])
    lat = np.array([40.2, 40.2, 60.0, 40.2])
    lon = np.array([20.0, 3.0, 20.0, -5.0])
    found = r.lookup(lat, lon)
    assert found.valid.tolist() == [True, False, False, False]
    assert found.outside.tolist() == [[False, False], [False, False], [True, True], [True, True]]
    assert found.nodata[:, 1].tolist() == [False, True, False, False]
    assert np.isnan(found.values[1, 1]) and found.values[1, 0] == temperature(40.5)
    with pytest.raises(CoverageError, match=r"2 of 4 places lie outside temp.tif \(covering lon 0..30, lat 30..50\); first: row 2 = \(60, 20\)"):
        r.sample(lat, lon)
    with pytest.raises(CoverageError, match=r"1 of 2 places fall on nodata in land.tif .*first: row 1 = \(40.2, 3\)"):
        r.sample(lat[:2], lon[:2])


def test_nan_pixels_are_nodata(rasters):
    found = open_rasters([rasters["nan"]]).lookup([44.5, 44.5], [5.5, 6.5])
    assert found.nodata[:, 0].tolist() == [True, False]


def test_bilinear_leaves_out_nodata_neighbours_and_keeps_validity_of_the_own_pixel(rasters):
    r = open_rasters([rasters["land"]], method="bilinear")
    found = r.lookup([40.5, 40.5], [8.2, 7.9])
    # lon 8.2: own pixel (col 8) valid, its west neighbour (col 7) is sea: the value is col 8's
    assert found.values[0, 0] == 108.0
    assert found.nodata[:, 0].tolist() == [False, True]
    nearest = open_rasters([rasters["land"]]).lookup([40.5, 40.5], [8.2, 7.9])
    np.testing.assert_array_equal(nearest.nodata, found.nodata)


def test_bands_scales_and_longitudes_0_to_360(rasters):
    both = open_rasters([rasters["stack"]])
    assert both.names == ("stack_1", "stack_2")
    np.testing.assert_array_equal(both.sample([40.5], [12.5]), [[12, 9]])
    second = open_rasters([rasters["stack"] + ":2"])
    assert second.names == ("stack_2",) and second.sample([40.5], [12.5])[0, 0] == 9
    with pytest.raises(RasterError, match="has 2 band\\(s\\) \\(1..2\\); band 3"):
        open_rasters([rasters["stack"] + ":3"])
    assert open_rasters([rasters["scaled"]]).sample([40.0], [10.0])[0, 0] == pytest.approx(19.95, abs=1e-4)
    wrap = open_rasters([rasters["east360"]])
    assert wrap.layers[0].bounds == (-180.0, -90.0, 180.0, 90.0)
    np.testing.assert_array_equal(wrap.sample([0.0, 0.0], [-75.0, 15.0])[:, 0], [28, 1])


def test_unusable_rasters_raise_clear_errors(rasters, tmp_path):
    with pytest.raises(RasterError, match="no coordinate reference system"):
        open_rasters([rasters["nocrs"]])
    with pytest.raises(MissingFileError, match="does not exist"):
        open_rasters([str(tmp_path / "bio1.tif")])
    (tmp_path / "notes.tif").write_text("not a raster")
    with pytest.raises(RasterError, match="not a raster GDAL can read"):
        open_rasters([str(tmp_path / "notes.tif")])
    with pytest.raises(ConfigError, match="sampling must be one of"):
        open_rasters([rasters["temp"]], method="cubic")


def test_random_places_are_uniform_over_area_and_have_data(rasters):
    r = open_rasters([rasters["land"]])
    lat, lon, values, drawn = r.random_places(4000, seed=1)
    assert lat.size == 4000 and drawn >= 4000
    assert (lon >= 8.0).all() and (values[:, 0] >= 108).all()  # only where land has data
    # uniform over the sphere's area: sin(lat) is uniform between sin(30) and sin(50)
    z = np.sin(np.radians(lat))
    lo, hi = np.sin(np.radians(SOUTH)), np.sin(np.radians(NORTH))
    assert abs(z.mean() - (lo + hi) / 2) < 4 * (hi - lo) / np.sqrt(12 * lat.size)
    again = r.random_places(4000, seed=1)
    np.testing.assert_array_equal(lat, again[0])


# ---------------------------------------------------------------------------- observations
def test_attach_covariates_raises_or_drops_with_a_count(rasters):
    obs = Observations.from_arrays([40.0, 40.0, 60.0], [20.0, 3.0, 20.0], ["a", "b", "a"])
    r = open_rasters([rasters["land"]])
    with pytest.raises(CoverageError, match="1 of 3 observations lie outside land.tif.*--on-invalid drop"):
        attach_covariates(obs, r)
    kept = attach_covariates(obs, r, on_invalid="drop")
    assert len(kept) == 1 and kept.covariate_names == ("land",)
    assert kept.report.dropped == {"outside the covariate rasters": 1, "on raster nodata": 1}
    assert rz.dropped_note(obs, kept) == (
        "left out 2 of 3 observations: 1 outside the covariate rasters, 1 on raster nodata"
    )
    with pytest.raises(ConfigError, match="already carry covariates"):
        attach_covariates(kept, r)
    with pytest.raises(EmptyDataError, match="no observations left"):
        attach_covariates(obs[np.array([1, 2])], r, on_invalid="drop")


# ---------------------------------------------------------------------------- backgrounds
@pytest.fixture(scope="module")
def obs_env(rasters):
    rng = np.random.default_rng(0)
    n = 150
    lat = np.r_[rng.uniform(31, 36, n), rng.uniform(44, 49, n)]
    lon = rng.uniform(10, 28, 2 * n)
    obs = Observations.from_arrays(lat, lon, ["warm"] * n + ["cold"] * n)
    return obs


def test_raster_background_follows_the_background_rule(rasters, obs_env):
    r = open_rasters([rasters["land"], rasters["temp"]])
    obs = attach_covariates(obs_env, r)
    far_km = 150.0
    bg, about = raster_background(r, "target+far", obs, (8.0, 30.0, 30.0, 50.0), far_km, seed=3)
    assert len(bg) == len(obs) and about["kind"] == "far" and about["distinct"] == len(obs)
    assert bg.covariate_names == obs.covariate_names and np.isnat(bg.date).all()
    assert _far_from(bg.lat, bg.lon, obs.lat, obs.lon, far_km).all()
    np.testing.assert_array_equal(bg.covariates, r.sample(bg.lat, bg.lon))
    ext, about = raster_background(r, "target+extent", obs, (12.0, 35.0, 20.0, 45.0), far_km)
    assert about["kind"] == "extent"
    assert ((ext.lon >= 12) & (ext.lon <= 20) & (ext.lat >= 35) & (ext.lat <= 45)).all()
    assert raster_background(r, "target", obs, (0, 30, 30, 50), far_km) == (
        None,
        {"kind": "target", "places": 0},
    )
    with pytest.raises(ConfigError, match="'far' cannot be used with covariate rasters"):
        raster_background(r, "far", obs, (0, 30, 30, 50), far_km)
    # every raster place is near the data: the data's extent instead, as land does
    near, about = raster_background(r, "target+far", obs, (8.0, 30.0, 30.0, 50.0), 5000.0)
    assert about["kind"] == "extent" and "no place farther than 5000 km" in about["fallback"]


def test_train_prior_with_rasters_records_them(rasters, obs_env):
    from geoprior import train_prior

    r = open_rasters([rasters["temp"], rasters["merc"]], method="bilinear")
    prior = train_prior(obs_env, small_config(steps=30, members=1), rasters=r, progress=False)
    source = prior.header["covariate_source"]
    assert prior.covariate_names == ("temp", "merc")
    assert source["method"] == "bilinear" and len(source["probes"]["lat"]) == rz.PROBES
    assert [la["path"] for la in source["layers"]] == [rasters["temp"], rasters["merc"]]
    assert covariates_for(prior).names == ("temp", "merc")
    # the covariate statistics are those of the sampled observations
    np.testing.assert_allclose(
        prior.cov_mean, r.sample(obs_env.lat, obs_env.lon).mean(0), rtol=1e-5
    )
    with pytest.raises(ConfigError, match="use_covariates=False"):
        train_prior(obs_env, small_config(steps=5, use_covariates=False), rasters=r, progress=False)
    with pytest.raises(ConfigError, match="'uniform' cannot be used with covariate rasters"):
        train_prior(obs_env, small_config(steps=5, background="uniform"), rasters=r, progress=False)


# ---------------------------------------------------------------------------- priors
# ---------------------------------------------------------------------------- column stores
def test_a_store_converted_from_rasters_trains_a_raster_prior(rasters, obs_env, tmp_path):
    """convert_to_columns(rasters=) samples every row as attach_covariates would and
    records the rasters; train_prior on the store trains as from the observations with
    rasters=: the prior records them, draws its far background from them, and maps."""
    from geoprior import ColumnStore, convert_to_columns, train_prior

    csv = tmp_path / "obs.csv"
    pd.DataFrame(
        {"latitude": obs_env.lat, "longitude": obs_env.lon, "species": np.array(obs_env.species)[obs_env.species_index]}
    ).to_csv(csv, index=False)
    r = open_rasters([rasters["temp"], rasters["merc"]], method="bilinear")
    store = convert_to_columns(csv, tmp_path / "s", rasters=r, chunk_rows=64)
    assert store.covariate_names == ("temp", "merc") and len(store) == len(obs_env)
    source = store.covariate_source
    assert source["method"] == "bilinear" and [la["path"] for la in source["layers"]] == [rasters["temp"], rasters["merc"]]
    # the same values as sampling in memory, row for row (the store is shuffled: matched by place)
    order = np.lexsort((store.lon, store.lat))
    mem = attach_covariates(obs_env, r)
    mine = np.lexsort((mem.lon.astype(np.float32), mem.lat.astype(np.float32)))
    np.testing.assert_array_equal(np.asarray(store.covariates)[order], mem.covariates[mine])
    again = ColumnStore.open(tmp_path / "s")  # the record survives reopening
    assert again.covariate_source == source

    prior = train_prior(again, small_config(steps=30, members=1), progress=False)
    assert prior.covariate_names == ("temp", "merc")
    recorded = prior.header["covariate_source"]
    assert recorded["method"] == "bilinear" and recorded["background"]["kind"] == "far"
    assert recorded["background"]["places"] == len(obs_env)
    assert covariates_for(prior).names == ("temp", "merc")
    np.testing.assert_allclose(prior.cov_mean, mem.covariates.mean(0), rtol=1e-4)
    frame = range_map(prior, "warm", res=3, threshold=0.5, bbox=(10, 32, 28, 48))
    assert frame.attrs["covariates"]["outside"] == 0 and len(frame) > 0
    # the same rasters given again are taken; others, or sampled otherwise, are refused
    train_prior(again, small_config(steps=2, members=1), rasters=r, progress=False)
    nearest = open_rasters([rasters["temp"], rasters["merc"]])
    with pytest.raises(ConfigError, match="sampled bilinear, these nearest"):
        train_prior(again, small_config(steps=2, members=1), rasters=nearest, progress=False)
    other = open_rasters([rasters["temp"]])
    with pytest.raises(ConfigError, match=r"converted from rasters \['temp', 'merc'\] and these are \['temp'\]"):
        train_prior(again, small_config(steps=2, members=1), rasters=other, progress=False)
    plain = convert_to_columns(csv, tmp_path / "plain")
    with pytest.raises(ConfigError, match="was not converted from covariate rasters"):
        train_prior(plain, small_config(steps=2, members=1), rasters=r, progress=False)
    with pytest.raises(ConfigError, match="from table columns or from rasters, not both"):
        convert_to_columns(csv, tmp_path / "both", rasters=r, covariates=["latitude"])


def test_store_rows_beyond_the_rasters_raise_or_are_dropped_and_counted(rasters, tmp_path):
    from geoprior import convert_to_columns

    csv = tmp_path / "obs.csv"
    pd.DataFrame(
        {"latitude": [40.0, 41.0, 60.0, 42.0], "longitude": [20.0, 21.0, 20.0, 22.0], "species": ["a", "a", "b", "b"]}
    ).to_csv(csv, index=False)
    r = open_rasters([rasters["temp"]])
    with pytest.raises(CoverageError, match=r"obs.csv.*1 of 4 observations lie outside temp.tif"):
        convert_to_columns(csv, tmp_path / "s", rasters=r)
    with pytest.warns(UserWarning, match="outside the covariate rasters"):
        store = convert_to_columns(csv, tmp_path / "s", rasters=r, on_invalid="drop")
    assert len(store) == 3 and store.report.dropped == {"outside the covariate rasters": 1}
    assert store.report.rows_read == 4 and store.report.rows_kept == 3
    assert sorted(store.lat.tolist()) == [40.0, 41.0, 42.0]


def test_a_store_whose_raster_moved_is_refused_naming_the_store(rasters, obs_env, tmp_path):
    from geoprior import convert_to_columns, train_prior

    moved = tmp_path / "temp.tif"
    shutil.copy(rasters["temp"], moved)
    csv = tmp_path / "obs.csv"
    pd.DataFrame({"latitude": obs_env.lat, "longitude": obs_env.lon, "species": "x"}).to_csv(csv, index=False)
    store = convert_to_columns(csv, tmp_path / "s", rasters=open_rasters([moved]))
    moved.unlink()
    with pytest.raises(MissingFileError, match=r"the store .*s was converted from covariate raster .*temp.tif, which is no longer there"):
        train_prior(store, small_config(steps=2, members=1), progress=False)


def test_covariates_for_checks_order_count_and_origin(rasters, tmp_path):
    plain = random_prior(2)
    assert covariates_for(plain) is None
    with pytest.raises(ConfigError, match="trained without covariates"):
        covariates_for(plain, [rasters["temp"]])
    table = random_prior(2, n_covariates=2)  # covariates from a table: no record
    with pytest.raises(ConfigError, match="records no rasters.*--covariates"):
        covariates_for(table)
    with pytest.raises(ClassMismatchError, match="takes 2 covariates"):
        covariates_for(table, [rasters["temp"]])
    with pytest.warns(GeopriorWarning, match="by position"):
        assert covariates_for(table, [rasters["temp"], rasters["land"]]).names == ("temp", "land")
    r = open_rasters([rasters["temp"], rasters["land"]])
    record = r.record([40.0, 45.0], [15.0, 20.0], background={"kind": "target", "places": 0})
    recorded = random_prior(2, n_covariates=2)
    recorded.header = dict(recorded.header, covariates=["temp", "land"], covariate_source=record)
    assert covariates_for(recorded).names == ("temp", "land")
    with pytest.raises(ConfigError, match="another order"):
        covariates_for(recorded, [rasters["land"], rasters["temp"]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same rasters given: nothing to warn about
        assert covariates_for(recorded, [rasters["temp"], rasters["land"]]).method == "nearest"
    with pytest.warns(GeopriorWarning, match="nan.tif band 1: nodata -9999.0 -> None"):
        covariates_for(recorded, [rasters["temp"], rasters["nan"]])


def test_a_changed_or_moved_raster_is_refused(rasters, tmp_path):
    path = tmp_path / "bio.tif"
    shutil.copy(rasters["temp"], path)
    r = open_rasters([path])
    record = r.record([40.0, 45.0, 33.0], [15.0, 20.0, 5.0])
    assert RasterCovariates.from_record(record).names == ("bio",)
    rows = np.mgrid[0:20, 0:30][0]
    write(path, temperature(NORTH - rows - 0.5) + 2.0, from_origin(WEST, NORTH, 1, 1))
    with pytest.raises(RasterError, match=r"bio.tif band 1: 3 of 3 training places have other values \(first: \(33, 5\) was 13.75, now 15.75\)"):
        RasterCovariates.from_record(record)
    write(path, temperature(NORTH - rows - 0.5), from_origin(WEST, NORTH, 0.5, 0.5))
    with pytest.raises(RasterError, match="transform"):
        RasterCovariates.from_record(record)
    path.unlink()
    with pytest.raises(MissingFileError, match="bio.tif, which is no longer there.*--covariates"):
        RasterCovariates.from_record(record)
    with pytest.raises(PriorFileError, match="malformed"):
        RasterCovariates.from_record({"kind": "rasters", "layers": [{"name": "bio"}]})


def test_old_headers_load_and_keep_their_bytes():
    old = {"config": {"loss": "an_full"}, "resolved": {"use_date": False}, "covariates": [], "extent": {}}
    h = PriorHeader.from_dict(old)
    assert h.covariate_source is None and h.to_dict() == old
    new = PriorHeader.from_dict(dict(old, covariate_source={"kind": "rasters"}))
    assert new.to_dict()["covariate_source"] == {"kind": "rasters"}


def test_cell_covariates_cut_to_the_rasters_or_refuse_a_region_beyond_them(rasters):
    r = open_rasters([rasters["land"]])
    lat, lon = np.array([40.0, 40.0, 60.0]), np.array([20.0, 3.0, 20.0])
    keep, values, about = cell_covariates(r, lat, lon, strict=False)
    assert keep.tolist() == [True, False, False] and values.shape == (1, 1)
    assert about["outside"] == 1 and about["nodata"] == 1 and about["cells"] == 3
    with pytest.raises(CoverageError, match="1 of 3 cells lie outside land.tif.*choose a region"):
        cell_covariates(r, lat, lon, strict=True)
    with pytest.raises(EmptyDataError, match="none of the 1 map cells"):
        cell_covariates(r, lat[1:2], lon[1:2], strict=False)


# ---------------------------------------------------------------------------- CLI, end to end
def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_error(result, fragment):
    assert result.exit_code == 1, (result.output, result.exception)
    assert "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert fragment in result.stderr, result.stderr


@pytest.fixture(scope="module")
def env_csv(obs_env, tmp_path_factory):
    path = tmp_path_factory.mktemp("env") / "obs.csv"
    pd.DataFrame(
        {"latitude": obs_env.lat, "longitude": obs_env.lon, "species": np.array(obs_env.species)[obs_env.species_index]}
    ).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def env_prior(env_csv, rasters):
    out = env_csv.parent / "env.prior"
    result = run("train", env_csv, "--covariates", rasters["temp"], rasters["merc"], "-o", out, "--quiet", *TINY)
    assert result.exit_code == 0, (result.output, result.exception)
    assert "temp (temp.tif band 1, EPSG:4326, 30 x 20 pixels)" in result.stderr
    assert "merc (merc.tif band 1, EPSG:3857, 30 x 20 pixels)" in result.stderr
    assert "300 places where every raster has a value, far from the observations" in result.stderr
    return out


def test_cli_trains_a_prior_that_records_its_rasters(env_prior, rasters):
    header = json.loads((env_prior / "prior.json").read_text())
    assert header["covariates"] == ["temp", "merc"]
    source = header["covariate_source"]
    assert [la["crs"] for la in source["layers"]] == ["EPSG:4326", "EPSG:3857"]
    assert source["background"]["kind"] == "far" and source["background"]["places"] == 300
    assert load_prior(env_prior).covariate_names == ("temp", "merc")


def test_cli_maps_a_covariate_prior_with_recorded_or_given_rasters(env_prior, env_csv, rasters, tmp_path):
    recorded = run("range-map", env_prior, "warm", "cold", "-o", tmp_path / "a.csv", "--res", 3)
    assert recorded.exit_code == 0, (recorded.output, recorded.exception)
    assert "cells where a covariate raster has no value" in recorded.stderr
    frame = pd.read_csv(tmp_path / "a.csv")
    inside = frame[frame.in_range]
    import h3

    lat = {s: np.mean([h3.cell_to_latlng(c)[0] for c in g.h3_cell]) for s, g in inside.groupby("species")}
    assert lat["warm"] < 38 < lat["cold"]  # warm species in the warm south, cold in the north
    given_ = run(
        "range-map", env_prior, "warm", "cold", "-o", tmp_path / "b.csv", "--res", 3,
        "--covariates", rasters["temp"], rasters["merc"],
    )  # fmt: skip
    assert given_.exit_code == 0, given_.output
    pd.testing.assert_frame_equal(frame, pd.read_csv(tmp_path / "b.csv"))
    beyond = run("range-map", env_prior, "warm", "-o", tmp_path / "c.csv", "--res", 3, "--bbox", "-10,30,30,50")
    assert_error(beyond, "cells lie outside temp.tif (covering lon 0..30, lat 30..50)")
    lpt = run(
        "range-map", env_prior, "warm", "-o", tmp_path / "d.csv", "--res", 3,
        "--threshold", "lpt", "--observations", env_csv,
    )  # fmt: skip
    assert lpt.exit_code == 0, lpt.output
    everything = run("range-map", env_prior, "--all-species", "-o", tmp_path / "e.parquet", "--res", 3)
    assert everything.exit_code == 0, (everything.output, everything.exception)
    assert "cells where a covariate raster has no value" in everything.stderr
    streamed = gpd.read_parquet(tmp_path / "e.parquet")
    assert streamed.attrs["covariates"]["outside"] > 0  # the land beyond the rasters
    inside = frame[frame.in_range].sort_values(["species", "h3_cell"])
    streamed = streamed.sort_values(["species", "h3_cell"])
    assert streamed.h3_cell.tolist() == inside.h3_cell.tolist()
    assert streamed.species.tolist() == inside.species.tolist()
    np.testing.assert_allclose(streamed.prob, inside.prob, rtol=1e-5)


def test_cli_converts_with_rasters_and_trains_from_the_store(env_csv, rasters, tmp_path):
    store = tmp_path / "s.columns"
    converted = run("convert", env_csv, "-o", store, "--covariates", rasters["temp"], rasters["merc"], "--quiet")
    assert converted.exit_code == 0, (converted.output, converted.exception)
    assert "temp (temp.tif band 1, EPSG:4326, 30 x 20 pixels)" in converted.stderr
    assert "wrote 300 rows of 2 species" in converted.stderr
    out = tmp_path / "p"
    trained = run("train", store, "-o", out, "--quiet", *TINY)
    assert trained.exit_code == 0, (trained.output, trained.exception)
    assert "covariates from the rasters the store was converted from: temp, merc" in trained.stderr
    assert "300 places where every raster has a value, far from the observations" in trained.stderr
    header = json.loads((out / "prior.json").read_text())
    assert header["covariates"] == ["temp", "merc"]
    mapped = run("range-map", out, "warm", "cold", "-o", tmp_path / "m.csv", "--res", 3)
    assert mapped.exit_code == 0, (mapped.output, mapped.exception)
    both = run("convert", env_csv, "-o", tmp_path / "b", "--covariate", "latitude", "--covariates", rasters["temp"])
    assert both.exit_code == 2 and "not both" in both.output and "Traceback" not in both.output
    other = run("train", store, "-o", tmp_path / "q", "--covariates", rasters["temp"], "--quiet", *TINY)
    assert_error(other, "converted from rasters ['temp', 'merc'] and these are ['temp']")


def test_cli_predict_samples_the_rasters_at_the_place(env_prior, rasters):
    south = run("predict", env_prior, "--lat", 33, "--lon", 20, "--format", "csv")
    assert south.exit_code == 0, south.output
    assert pd.read_csv(io.StringIO(south.stdout)).species[0] == "warm"
    north = run("predict", env_prior, "--lat", 47, "--lon", 20, "--format", "csv", "--covariates", rasters["temp"], rasters["merc"])
    assert pd.read_csv(io.StringIO(north.stdout)).species[0] == "cold"
    assert_error(run("predict", env_prior, "--lat", 60, "--lon", 20), "1 of 1 query places lie outside temp.tif")
    assert_error(
        run("predict", env_prior, "--lat", 40, "--lon", 20, "--covariates", rasters["temp"]),
        "this prior takes 2 covariates",
    )


def test_cli_refuses_a_moved_or_changed_raster(env_csv, rasters, tmp_path):
    for name in ("temp", "merc"):
        shutil.copy(rasters[name], tmp_path / f"{name}.tif")
    out = tmp_path / "p"
    short = [a if a != "steps=150" else "steps=20" for a in TINY]
    result = run("train", env_csv, "--covariates", tmp_path / "temp.tif", "--covariates", tmp_path / "merc.tif", "-o", out, "--quiet", *short)
    assert result.exit_code == 0, result.output
    (tmp_path / "temp.tif").rename(tmp_path / "moved.tif")
    assert_error(run("predict", out, "--lat", 40, "--lon", 20), "temp.tif, which is no longer there")
    moved = run("predict", out, "--lat", 40, "--lon", 20, "--covariates", tmp_path / "moved.tif", tmp_path / "merc.tif")
    assert moved.exit_code == 0 and "warning: sampling rasters other than" not in moved.stderr
    shutil.copy(rasters["land"], tmp_path / "temp.tif")  # another raster at the old path
    assert_error(run("range-map", out, "warm", "-o", tmp_path / "m.csv"), "a covariate raster changed since the prior was trained")
    anyway = run("predict", out, "--lat", 40, "--lon", 20, "--covariates", tmp_path / "temp.tif", tmp_path / "merc.tif")
    assert anyway.exit_code == 0 and "warning: sampling rasters other than those the prior was trained on" in anyway.stderr


def test_cli_observations_on_nodata_raise_or_are_left_out_with_a_count(env_csv, rasters, tmp_path):
    frame = pd.read_csv(env_csv)
    frame.loc[:4, "longitude"] = 3.0  # five observations in the 'sea' of land.tif
    path = tmp_path / "some_at_sea.csv"
    frame.to_csv(path, index=False)
    short = [a if a != "steps=150" else "steps=10" for a in TINY]
    refused = run("train", path, "--covariates", rasters["land"], "-o", tmp_path / "p", "--quiet", *short)
    assert_error(refused, "5 of 300 observations fall on nodata in land.tif (band 1); first: row 0")
    dropped = run("train", path, "--covariates", rasters["land"], "--on-invalid", "drop", "-o", tmp_path / "p", "--quiet", *short)
    assert dropped.exit_code == 0, dropped.output
    assert "left out 5 of 300 observations: 5 on raster nodata" in dropped.stderr
    assert load_prior(tmp_path / "p").header["n_observations"] == 295


def test_library_maps_and_monthly_maps_take_rasters(env_prior, rasters):
    prior = load_prior(env_prior)
    frame = range_map(prior, "warm", res=3, threshold=0.5, bbox=(10, 32, 28, 48))
    assert frame.attrs["covariates"]["outside"] == 0 and len(frame) > 0
    months = monthly_range_maps(prior, "warm", months=[1, 7], res=3, threshold=0.5, bbox=(10, 32, 28, 48))
    np.testing.assert_array_equal(months[months.month == 1].prob.to_numpy(), frame.prob.to_numpy())
    with pytest.raises(ConfigError, match="takes no rasters"):
        range_map(random_prior(2), "s0", res=2, threshold=0.5, covariates=[rasters["temp"]], bbox=(10, 32, 28, 48))


def test_all_species_maps_sample_the_rasters_as_range_map_does(env_prior, rasters, tmp_path):
    """Streamed every-species maps of a covariate prior: the same cells, species and
    probabilities as range_map's in-range rows, the same cells left out (counted), the
    given rasters used, and rasters refused for a prior without covariates."""
    prior = load_prior(env_prior)
    box = (1, 31, 29, 49)
    one = range_map(prior, ["warm", "cold"], res=3, threshold=0.5, bbox=box, cells="in-range")
    summary = write_all_species(prior, tmp_path / "all.parquet", res=3, threshold=0.5, bbox=box)
    streamed = gpd.read_parquet(summary["path"])
    assert summary["covariates"] == one.attrs["covariates"] == streamed.attrs["covariates"]
    assert summary["rows"] == len(streamed) == len(one) > 0
    key = ["species", "h3_cell"]
    a, b = one.sort_values(key).reset_index(drop=True), streamed.sort_values(key).reset_index(drop=True)
    assert a.h3_cell.tolist() == b.h3_cell.tolist() and a.species.tolist() == b.species.tolist()
    np.testing.assert_allclose(b.prob, a.prob, rtol=1e-5)
    everywhere = write_all_species(prior, tmp_path / "world.parquet", res=2, threshold=0.5)
    about = everywhere["covariates"]  # the land beyond the rasters: left out and counted
    assert about["outside"] > 0 and everywhere["cells"] == about["cells"] - about["outside"] - about["nodata"]
    rows = np.mgrid[0:20, 0:30][0]
    warmer = write(
        tmp_path / "temp_plus4.tif", temperature(NORTH - rows - 0.5) + 4.0, from_origin(WEST, NORTH, 1, 1)
    )
    with pytest.warns(GeopriorWarning, match="temp_plus4.tif band 1"):
        later = write_all_species(
            prior, tmp_path / "later.parquet", res=3, threshold=0.5, bbox=box, covariates=[warmer, rasters["merc"]]
        )
    later = gpd.read_parquet(later["path"])
    assert (later.species == "cold").sum() < (streamed.species == "cold").sum()
    with pytest.raises(ConfigError, match="takes no rasters"):
        write_all_species(random_prior(2), tmp_path / "x.parquet", res=2, threshold=0.5, covariates=[rasters["temp"]])


def test_a_warmer_scenario_raster_moves_the_ranges(env_prior, rasters, tmp_path):
    """The covariates reach the map: the same prior on a raster 4 degrees warmer (a
    climate scenario on the same grid) shrinks the cold species' range and widens the
    warm one's."""
    rows = np.mgrid[0:20, 0:30][0]
    warmer = write(
        tmp_path / "temp_plus4.tif", temperature(NORTH - rows - 0.5) + 4.0, from_origin(WEST, NORTH, 1, 1)
    )
    prior = load_prior(env_prior)
    box = (1, 31, 29, 49)
    now = range_map(prior, ["warm", "cold"], res=3, bbox=box)
    with pytest.warns(GeopriorWarning, match="temp_plus4.tif band 1: .* training places have other values"):
        later = range_map(prior, ["warm", "cold"], res=3, bbox=box, covariates=[warmer, rasters["merc"]])

    def cells(frame, species):
        return int((frame.in_range & (frame.species == species)).sum())

    assert cells(later, "cold") < cells(now, "cold") / 2
    assert cells(later, "warm") > cells(now, "warm")


def test_without_rasterio_the_error_names_the_extra(rasters, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "rasterio", None)  # import rasterio now fails
    with pytest.raises(MissingDependencyError, match=r"pip install 'geoprior\[rasters\]'"):
        open_rasters([rasters["temp"]])
