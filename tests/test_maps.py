"""Range maps: H3 grids, polygons, thresholds, land, writers, pictures and the CLI."""

from __future__ import annotations

import struct

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import shapely
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from geoprior import CountGridPrior, Observations
from geoprior.cli import main
from geoprior.errors import (
    ConfigError,
    DateError,
    EmptyDataError,
    OutputExistsError,
    UnknownSpeciesError,
)
from geoprior.maps import (
    monthly_range_maps,
    range_map,
    resolve_thresholds,
    write_all_species,
    write_range_map,
)
from geoprior.maps.grid import (
    MAX_GLOBAL_RES,
    cell_grid,
    cell_polygons,
    cell_strings,
    land_touching,
    parse_bbox,
)
from geoprior.maps.plot import plot_range_map
from geoprior.maps.writers import coordinate_digits
from geoprior.persistence import load_prior

CENTRES = {"Setophaga virens": (43.0, -75.0), "Dromaius novaehollandiae": (-25.0, 135.0)}


class BlobPrior:
    """p = exp(-d^2 / 2 sigma^2) around each species' centre (degrees); ``seasonal`` priors
    scale it by month / 12."""

    def __init__(self, seasonal=False, thresholds=None):
        self.species = tuple(CENTRES)
        self.uses_date = seasonal
        self.thresholds = thresholds

    def predict(self, lat, lon, date=None):
        lat, lon = np.atleast_1d(lat).astype(float), np.atleast_1d(lon).astype(float)
        out = np.stack(
            [np.exp(-((lat - a) ** 2 + (lon - b) ** 2) / 200.0) for a, b in CENTRES.values()], 1
        ).astype(np.float32)
        if self.uses_date and date is not None:
            month = np.datetime64(date, "M").astype(int) % 12 + 1
            out *= month / 12.0
        return out


def png_size(path) -> tuple[int, int]:
    data = open(path, "rb").read(24)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# ---------------------------------------------------------------------------- grids
@pytest.mark.parametrize(("res", "bbox"), [(2, None), (6, (-72.0, 43.0, -70.0, 44.0))])
def test_every_cell_is_a_valid_cell_at_the_resolution(res, bbox):
    frame = range_map(BlobPrior(), "Setophaga virens", res=res, bbox=bbox, threshold=0.5)
    assert frame.crs.to_epsg() == 4326
    assert list(frame.columns) == ["h3_cell", "species", "prob", "in_range", "geometry"]
    assert all(h3.is_valid_cell(c) and h3.get_resolution(c) == res for c in frame.h3_cell)
    assert frame.h3_cell.is_unique
    assert frame.geometry.is_valid.all()


def test_global_grids_stop_at_resolution_5_and_regions_are_bounded():
    assert len(cell_grid(1)) == h3.get_num_cells(1)
    with pytest.raises(ConfigError, match="bbox"):
        cell_grid(MAX_GLOBAL_RES + 1)
    with pytest.raises(ConfigError, match="limit"):
        cell_grid(9, bbox=(-120, 20, -60, 60))
    with pytest.raises(ConfigError, match="resolution"):
        cell_grid(16)


def test_bbox_keeps_cells_whose_centre_is_inside_including_across_the_antimeridian():
    grid = cell_grid(3, bbox=(170.0, -30.0, -170.0, -10.0))
    assert len(grid) > 0
    assert ((grid.lon >= 170) | (grid.lon <= -170)).all()
    assert ((grid.lat >= -30) & (grid.lat <= -10)).all()
    polygon = shapely.box(-80, 40, -70, 45)
    inside = cell_grid(3, bbox=polygon)
    assert shapely.contains_xy(polygon, inside.lon, inside.lat).all()
    assert parse_bbox("-80, 40, -70, 45") == (-80.0, 40.0, -70.0, 45.0)
    for bad in ("1,2,3", (0, 50, 10, 40), (-200, 0, 0, 10), (5, 0, 5, 10)):
        with pytest.raises(ValueError):
            parse_bbox(bad)


@pytest.mark.parametrize("res", [0, 1, 2, 3])
def test_polygons_are_valid_and_tile_the_plane_exactly(res):
    polygons = cell_polygons(cell_grid(res).cells)
    assert shapely.is_valid(polygons).all()
    xmin, ymin, xmax, ymax = shapely.total_bounds(polygons)
    assert (xmin, ymin, xmax, ymax) == (-180.0, -90.0, 180.0, 90.0)
    # no gaps, no overlaps: the areas add up to the whole lon/lat rectangle
    assert shapely.area(polygons).sum() == pytest.approx(360 * 180, rel=1e-9)


def test_antimeridian_cells_are_split_and_polar_cells_reach_the_pole():
    grid = cell_grid(2, bbox=(175.0, -60.0, -175.0, 60.0))
    polygons = cell_polygons(grid.cells)
    split = [p for p in polygons if p.geom_type == "MultiPolygon"]
    assert split and all(p.is_valid for p in split)
    assert all({round(x) for x in shapely.bounds(p)[[0, 2]]} == {-180, 180} for p in split)
    for lat in (90.0, -90.0):
        for res in (0, 2, 4, 6):
            cell = h3.str_to_int(h3.latlng_to_cell(lat, 0.0, res))
            polygon = cell_polygons(np.array([cell]))[0]
            assert polygon.is_valid
            assert polygon.covers(shapely.Point(0.0, lat)) and polygon.covers(
                shapely.Point(179.9, lat)
            )


@settings(max_examples=60, deadline=None)
@given(
    lat=st.floats(-90, 90),
    lon=st.floats(-180, 180),
    res=st.integers(0, 5),
)
def test_a_cell_polygon_holds_the_cell_centre(lat, lon, res):
    cell = h3.latlng_to_cell(lat, lon, res)
    clat, clon = h3.cell_to_latlng(cell)
    polygon = cell_polygons(np.array([h3.str_to_int(cell)]))[0]
    assert polygon.is_valid
    assert polygon.covers(shapely.Point(clon, clat))


def test_land_only_drops_sea_cells_and_keeps_coasts():
    prior = BlobPrior()
    land = range_map(prior, "Setophaga virens", res=2, threshold=0.5)
    everything = range_map(prior, "Setophaga virens", res=2, threshold=0.5, land_only=False)
    assert len(everything) == h3.get_num_cells(2)
    assert 0.2 * len(everything) < len(land) < 0.5 * len(everything)
    centres = np.array([h3.cell_to_latlng(c) for c in land.h3_cell])
    assert land_touching(centres[:, 0], centres[:, 1], 2).all()
    mid_atlantic = h3.latlng_to_cell(30.0, -40.0, 2)
    assert mid_atlantic not in set(land.h3_cell) and mid_atlantic in set(everything.h3_cell)
    with pytest.raises(EmptyDataError, match="land_only=False"):
        range_map(prior, "Setophaga virens", res=3, bbox=(-40, 20, -35, 25), threshold=0.5)


# ---------------------------------------------------------------------------- thresholds
def test_in_range_is_prob_at_or_above_the_threshold_and_shrinks_as_it_rises():
    prior = BlobPrior()
    low = range_map(prior, list(CENTRES), res=2, threshold=0.1)
    high = range_map(prior, list(CENTRES), res=2, threshold=[0.6, 0.3])
    assert (low.in_range == (low.prob >= np.float32(0.1))).all()
    per_species = high.species.map({"Setophaga virens": 0.6, "Dromaius novaehollandiae": 0.3})
    assert (high.in_range == (high.prob >= per_species.astype(np.float32))).all()
    assert (high.in_range <= low.in_range).all() and high.in_range.sum() < low.in_range.sum()
    virens = low[low.species == "Setophaga virens"]
    assert shapely.get_x(shapely.centroid(virens[virens.in_range].geometry.values)).mean() < -60


def test_stored_thresholds_are_the_default():
    prior = BlobPrior(thresholds=np.array([0.5, 0.2], np.float32))
    frame = range_map(prior, ["Dromaius novaehollandiae"], res=1)
    assert (frame.in_range == (frame.prob >= np.float32(0.2))).all()
    assert frame.attrs["thresholds"] == {"Dromaius novaehollandiae": pytest.approx(0.2)}
    with pytest.raises(ConfigError, match="no stored thresholds"):
        range_map(BlobPrior(), "Setophaga virens", res=1)


def test_rule_thresholds_come_from_observations():
    rng = np.random.default_rng(0)
    obs = Observations.from_arrays(
        43 + rng.normal(0, 3, 50), -75 + rng.normal(0, 3, 50), ["Setophaga virens"] * 50
    )
    values = BlobPrior().predict(obs.lat, obs.lon)[:, 0]
    t = resolve_thresholds(BlobPrior(), ["Setophaga virens"], "lpt", obs)
    assert t[0] == np.percentile(values, 5, method="lower")
    with pytest.raises(ConfigError, match="observations"):
        resolve_thresholds(BlobPrior(), ["Setophaga virens"], "f1")
    with pytest.raises(ConfigError, match="no threshold"):
        resolve_thresholds(BlobPrior(), list(CENTRES), "lpt", obs)  # no emu presences
    for bad in (1.5, -0.1, [0.1, 0.2, 0.3], "max"):
        with pytest.raises(ValueError):
            resolve_thresholds(BlobPrior(), list(CENTRES), bad)


def test_unknown_species_suggest_close_matches():
    with pytest.raises(UnknownSpeciesError, match="Did you mean 'Setophaga virens'"):
        range_map(BlobPrior(), "Setophaga viren", threshold=0.5)


def test_month_and_date():
    prior = BlobPrior(seasonal=True)
    june = range_map(prior, "Setophaga virens", res=1, month=6, threshold=0.3)
    june15 = range_map(prior, "Setophaga virens", res=1, date="2019-06-15", threshold=0.3)
    year = range_map(prior, "Setophaga virens", res=1, threshold=0.3)
    np.testing.assert_allclose(june.prob, year.prob * 0.5, rtol=1e-6)
    np.testing.assert_array_equal(june.prob, june15.prob)
    assert june.attrs["month"] == 6 and june.attrs["date"] == "2021-06-15"
    with pytest.raises(ConfigError):
        range_map(prior, "Setophaga virens", month=13, threshold=0.3)
    with pytest.raises(ConfigError, match="not both"):
        range_map(prior, "Setophaga virens", month=6, date="2021-06-15", threshold=0.3)
    with pytest.raises(DateError):
        range_map(prior, "Setophaga virens", date="2021-02-30", threshold=0.3)
    monthly = monthly_range_maps(prior, "Setophaga virens", res=1, threshold=0.3)
    assert monthly.month.unique().tolist() == list(range(1, 13))
    assert (monthly.groupby("month").in_range.sum().diff().dropna() >= 0).all()


def test_dissolve_gives_one_valid_multipolygon_per_species():
    prior = BlobPrior()
    cells = range_map(prior, list(CENTRES), res=3, threshold=0.3)
    dissolved = range_map(prior, list(CENTRES), res=3, threshold=0.3, dissolve=True)
    assert list(dissolved.species) == list(CENTRES)
    assert (dissolved.geom_type == "MultiPolygon").all() and dissolved.geometry.is_valid.all()
    for _, row in dissolved.iterrows():
        inside = cells[(cells.species == row.species) & cells.in_range]
        assert row.n_cells == len(inside)
        assert row.geometry.area == pytest.approx(
            shapely.area(inside.geometry.values).sum(), rel=1e-6
        )
    empty = range_map(prior, "Setophaga virens", res=1, threshold=1.0, dissolve=True)
    assert empty.geometry.iloc[0].is_empty and empty.n_cells.iloc[0] == 0


# ---------------------------------------------------------------------------- files
@pytest.fixture(scope="module")
def frame():
    return range_map(BlobPrior(), list(CENTRES), res=2, threshold=0.3)


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg", ".parquet"])
def test_vector_formats_round_trip(frame, tmp_path, suffix):
    path = write_range_map(frame, tmp_path / f"map{suffix}")
    back = gpd.read_parquet(path) if suffix == ".parquet" else gpd.read_file(path)
    assert back.crs.to_epsg() == 4326
    assert list(back.columns) == list(frame.columns)
    assert back.h3_cell.tolist() == frame.h3_cell.tolist()
    np.testing.assert_allclose(back.prob, frame.prob, rtol=1e-6, atol=1e-30)
    assert back.in_range.astype(bool).tolist() == frame.in_range.tolist()
    assert back.geometry.is_valid.all()
    # GeoPackage promotes every polygon to a MultiPolygon; the shapes stay the same (GeoJSON
    # rounds each vertex to coordinate_digits places: half a unit of the last in x and y)
    tolerance = 0.5 * 10.0 ** -coordinate_digits(2) * 2**0.5 if suffix == ".geojson" else 1e-9
    distance = shapely.hausdorff_distance(back.geometry.values, frame.geometry.values)
    assert (distance <= tolerance).all()


def test_csv_holds_the_cells(frame, tmp_path):
    back = pd.read_csv(write_range_map(frame, tmp_path / "cells.csv"))
    assert list(back.columns) == ["h3_cell", "lat", "lon", "species", "prob", "in_range"]
    assert back.h3_cell.tolist() == frame.h3_cell.tolist()
    centres = np.array([h3.cell_to_latlng(c) for c in back.h3_cell])
    step = 0.5 * 10.0 ** -coordinate_digits(2)
    np.testing.assert_allclose(back[["lat", "lon"]], centres, atol=step * (1 + 1e-9))
    dissolved = range_map(BlobPrior(), "Setophaga virens", res=1, threshold=0.3, dissolve=True)
    with pytest.raises(ConfigError, match="CSV"):
        write_range_map(dissolved, tmp_path / "d.csv")
    write_range_map(dissolved, tmp_path / "d.gpkg")
    assert gpd.read_file(tmp_path / "d.gpkg").n_cells.tolist() == dissolved.n_cells.tolist()


def test_png_is_an_image_of_the_expected_size(frame, tmp_path):
    one = frame[frame.species == "Setophaga virens"]
    one.attrs = frame.attrs
    assert png_size(write_range_map(one, tmp_path / "a.png", figsize=(5, 3), dpi=50)) == (250, 150)
    both = write_range_map(frame, tmp_path / "b.png", color="in_range", figsize=(6, 3), dpi=40)
    assert png_size(both) == (240, 120)
    monthly = monthly_range_maps(BlobPrior(seasonal=True), "Setophaga virens", res=1, threshold=0.3)
    assert png_size(write_range_map(monthly, tmp_path / "m.png", dpi=20)) == (360, 208)
    with pytest.raises(ConfigError, match="color"):
        write_range_map(frame, tmp_path / "c.png", color="rainbow")


@settings(max_examples=5, deadline=None)
@given(west=st.floats(-100.0, -80.0), threshold=st.floats(0.05, 0.95))
def test_a_panel_is_drawn_onto_the_axes_it_is_given_and_nowhere_else(west, threshold):
    plt = pytest.importorskip("matplotlib.pyplot")
    box = (west, 30.0, west + 30.0, 55.0)
    one = range_map(BlobPrior(), "Setophaga virens", res=2, threshold=threshold, bbox=box)
    fig, axes = plt.subplots(1, 2, figsize=(6, 3), dpi=40)
    try:
        figures = plt.get_fignums()
        out = plot_range_map(
            one, ax=axes[1], title="blob", colorbar_label="blob score", projection="lonlat"
        )
        assert out is fig and plt.get_fignums() == figures  # no figure of its own
        assert axes[1].get_xlim() == (box[0], box[2]) and axes[1].get_ylim() == (30.0, 55.0)
        assert axes[1].get_title() == "blob" and not fig.get_suptitle()
        assert len(axes[1].collections) >= 2 and not axes[0].collections  # land and cells
        bars = [a for a in fig.axes if a not in axes]
        assert [a.get_ylabel() for a in bars] == ["blob score"]
        legend = [t.get_text() for t in axes[1].get_legend().get_texts()]
        assert legend == [f"in range (p ≥ {float(np.float32(threshold)):.3g})"]
    finally:
        plt.close(fig)


def test_an_axes_takes_one_panel():
    plt = pytest.importorskip("matplotlib.pyplot")
    monthly = monthly_range_maps(BlobPrior(seasonal=True), "Setophaga virens", res=1, threshold=0.3)
    fig, ax = plt.subplots()
    try:
        with pytest.raises(ConfigError, match="one panel"):
            plot_range_map(monthly, ax=ax)
        one = range_map(BlobPrior(), "Setophaga virens", res=1, threshold=0.3)
        with pytest.raises(ConfigError, match="figsize"):
            plot_range_map(one, ax=ax, figsize=(4, 3))
    finally:
        plt.close(fig)


def test_outputs_are_not_overwritten_without_asking(frame, tmp_path):
    path = write_range_map(frame, tmp_path / "map.gpkg")
    with pytest.raises(OutputExistsError):
        write_range_map(frame, path)
    write_range_map(frame.iloc[:10], path, overwrite=True)
    assert len(gpd.read_file(path)) == 10
    with pytest.raises(ConfigError, match="format"):
        write_range_map(frame, tmp_path / "map.shp")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.gpkg"]  # no temporary files


def test_all_species_streams_row_groups_that_match_range_map(tmp_path):
    prior = BlobPrior(thresholds=np.array([0.3, 0.4], np.float32))
    path = tmp_path / "all.parquet"
    summary = write_all_species(prior, path, res=2, chunk_values=600)
    assert pq.ParquetFile(path).metadata.num_row_groups > 1
    back = gpd.read_parquet(path)
    assert back.crs.to_epsg() == 4326 and back.in_range.all()
    expected = range_map(prior, list(CENTRES), res=2)
    expected = expected[expected.in_range]
    assert summary["rows"] == len(back) == len(expected)
    key = ["species", "h3_cell"]
    a = back.sort_values(key).reset_index(drop=True)
    b = expected.sort_values(key).reset_index(drop=True)
    assert a.h3_cell.tolist() == b.h3_cell.tolist() and a.species.tolist() == b.species.tolist()
    np.testing.assert_array_equal(a.prob, b.prob)
    assert a.geometry.geom_equals_exact(b.geometry, tolerance=0).all()
    every = write_all_species(prior, tmp_path / "every.parquet", res=1, cells="all")
    assert every["rows"] == len(cell_grid(1, land_only=True)) * 2
    with pytest.raises(OutputExistsError):
        write_all_species(prior, path, res=2)
    with pytest.raises(ConfigError, match="parquet"):
        write_all_species(prior, tmp_path / "all.gpkg", res=2)


def test_all_species_of_a_large_prior_stream_in_bounded_memory(tmp_path):
    import tracemalloc

    from conftest import random_prior

    prior = random_prior(5_000, width=16)
    grid = cell_grid(2, land_only=True)
    dense_bytes = len(grid) * prior.n_species * 4
    path = tmp_path / "all.parquet"
    tracemalloc.start()
    try:
        summary = write_all_species(prior, path, res=2, threshold=0.9, chunk_values=1 << 16)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < dense_bytes / 8, (peak, dense_bytes)
    assert pq.ParquetFile(path).metadata.num_row_groups > 1
    schema = pq.read_schema(path)  # plain text and WKB for any reader, with GeoParquet metadata
    assert [str(t) for t in schema.types] == ["string", "string", "float", "bool", "binary"]
    assert b"geo" in schema.metadata
    back = gpd.read_parquet(path)
    assert back.crs.to_epsg() == 4326 and len(back) == summary["rows"] > 0
    assert back.in_range.all() and (back.prob >= 0.9).all()
    # the same cells as a dense prediction (up to float rounding at the threshold)
    dense = prior.predict(grid.lat, grid.lon)
    sp = back.species.str[1:].astype(int).to_numpy()
    cell = np.searchsorted(cell_strings(grid.cells), back.h3_cell.to_numpy())
    np.testing.assert_allclose(back.prob, dense[cell, sp], rtol=1e-5)
    sure, maybe = (dense >= 0.9 + 1e-5).sum(), (dense >= 0.9 - 1e-5).sum()
    assert sure <= len(back) <= maybe


def test_works_with_a_baseline_and_a_trained_geoprior(synthetic_obs, trained_prior):
    grid_prior = CountGridPrior.fit(synthetic_obs, res=3)
    frame = range_map(
        grid_prior, "Australis beta", res=2, threshold="lpt", observations=synthetic_obs
    )
    inside = frame[frame.in_range]
    assert len(inside) and (shapely.get_y(shapely.centroid(inside.geometry.values)) < 0).all()
    geo = range_map(
        trained_prior, "Borealis alpha", res=2, threshold="lpt", observations=synthetic_obs
    )
    assert shapely.get_y(shapely.centroid(geo[geo.in_range].geometry.values)).mean() > 30


# ---------------------------------------------------------------------------- CLI
def test_cli_writes_maps_and_protects_outputs(saved_prior, tmp_path):
    runner = CliRunner()
    out = tmp_path / "map.gpkg"
    args = ["range-map", str(saved_prior), "Borealis alpha", "--res", "2", "-o", str(out)]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    back = gpd.read_file(out)
    assert back.crs.to_epsg() == 4326 and back.in_range.any()
    again = runner.invoke(main, args)
    assert again.exit_code == 1 and "--overwrite" in again.output
    assert runner.invoke(main, [*args, "--overwrite", "--month", "6"]).exit_code == 0
    png = tmp_path / "map.png"
    result = runner.invoke(
        main, ["range-map", str(saved_prior), "Borealis alpha", "--res", "1", "-o", str(png)]
    )
    assert result.exit_code == 0, result.output
    assert png_size(png) == (18 * 120, int((3 * 3.2 + 0.8) * 120))  # twelve monthly panels


def test_cli_errors_and_all_species(saved_prior, tmp_path):
    runner = CliRunner()
    base = ["range-map", str(saved_prior)]
    bad = runner.invoke(main, [*base, "Borealis alpah", "-o", str(tmp_path / "x.csv")])
    assert bad.exit_code == 1 and "Did you mean 'Borealis alpha'" in bad.output
    usage = runner.invoke(main, [*base, "Borealis alpha", "-o", str(tmp_path / "x.txt")])
    assert usage.exit_code == 2
    usage = runner.invoke(
        main, [*base, "Borealis alpha", "--threshold", "lpt", "-o", str(tmp_path / "x.csv")]
    )
    assert usage.exit_code == 2 and "--observations" in usage.output
    out = tmp_path / "all.parquet"
    result = runner.invoke(main, [*base, "--all-species", "--res", "2", "--quiet", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert set(gpd.read_parquet(out).species) <= set(load_prior(saved_prior).species)
    csv = tmp_path / "cells.csv"
    result = runner.invoke(
        main,
        [
            *base,
            "Borealis alpha",
            "--res",
            "1",
            "--threshold",
            "0.2",
            "--bbox",
            "-120,40,-80,70",
            "-o",
            str(csv),
        ],
    )
    assert result.exit_code == 0, result.output
    cells = pd.read_csv(csv)
    assert len(cells) and (cells.in_range == (cells.prob >= 0.2)).all()


def test_dissolved_cells_leave_no_slivers():
    import h3.api.numpy_int as h3i

    from geoprior.maps.grid import dissolve_cells

    # every resolution-3 cell within 6 rings of a resolution-3 cell that sits on an
    # icosahedron edge region: the plain union of such cells has hairline gaps
    centre = h3i.latlng_to_cell(41.0, -100.0, 3)
    cells = np.asarray(h3i.grid_disk(centre, 6), dtype=np.int64)
    merged = dissolve_cells(cells)
    assert merged.is_valid and merged.geom_type == "MultiPolygon"
    assert len(merged.geoms) == 1 and len(merged.geoms[0].interiors) == 0
    # the merged area equals the sum of the cells' areas (nothing lost, nothing doubled)
    np.testing.assert_allclose(
        shapely.area(merged), shapely.area(cell_polygons(cells)).sum(), rtol=1e-9
    )
    assert dissolve_cells(np.array([], np.int64)).is_empty


@settings(max_examples=80, deadline=None)
@given(
    lat=st.floats(-90, 90),
    lon=st.floats(-180, 180),
    res=st.integers(0, 4),
    k=st.integers(0, 4),
    holes=st.integers(0, 3),
)
def test_dissolved_cells_are_the_union_of_their_polygons_anywhere(lat, lon, res, k, holes):
    """Disks of cells (with a few cells taken out: holes) anywhere, across the antimeridian
    and round the poles: one valid MultiPolygon covering exactly the cells' polygons."""
    import h3.api.numpy_int as h3i

    from geoprior.maps.grid import dissolve_cells

    centre = h3i.latlng_to_cell(lat, lon, res)
    cells = np.asarray(h3i.grid_disk(centre, k), np.int64)
    if holes and k >= 2:
        ring = np.asarray(h3i.grid_ring(centre, 1), np.int64)[:holes]
        cells = np.setdiff1d(cells, ring)
    merged = dissolve_cells(cells)
    polygons = cell_polygons(cells)
    assert merged.is_valid and merged.geom_type == "MultiPolygon"
    total = shapely.area(polygons).sum()
    assert merged.area == pytest.approx(total, rel=1e-6)
    assert shapely.union_all(polygons).symmetric_difference(merged).area <= 1e-6 * total
    clat, clon = h3i.cell_to_latlng(centre)
    assert merged.covers(shapely.Point(clon, clat)) == (centre in set(cells.tolist()))


def test_dissolved_bands_round_the_globe_and_polar_caps():
    """Regions whose boundary goes right round the Earth: h3 gives rings round a pole;
    the dissolved shape closes each on the side it encloses."""
    from geoprior.maps.grid import dissolve_cells

    grid = cell_grid(2)
    for south, north in [(50, 75), (-30, 30), (-90, -60), (60, 90), (-90, 70)]:
        cells = grid.cells[(grid.lat > south) & (grid.lat < north)]
        merged = dissolve_cells(cells)
        assert merged.is_valid
        assert merged.area == pytest.approx(shapely.area(cell_polygons(cells)).sum(), rel=1e-6)
        assert sum(len(p.interiors) for p in merged.geoms) == 0  # no slivers
    world = dissolve_cells(grid.cells)
    assert len(world.geoms) == 1 and world.symmetric_difference(shapely.box(-180, -90, 180, 90)).area < 1e-6
