"""Range-map outputs: which cells are kept, well-formed files (RFC 7946 GeoJSON, GeoPackage
and GeoParquet metadata, CSV centres, PNG text), ``-o -`` and interactive HTML maps."""

from __future__ import annotations

import json
import re

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

from geoprior.cli import main
from geoprior.errors import ConfigError, EmptyDataError
from geoprior.geo import KM_PER_DEGREE, edge_km
from geoprior.maps import monthly_range_maps, range_map, write_all_species, write_range_map
from geoprior.maps.grid import cell_grid, cell_polygons
from geoprior.maps.writers import coordinate_digits, map_metadata
from geoprior.persistence import load_prior

CENTRES = {"Setophaga virens": (43.0, -75.0), "Dromaius novaehollandiae": (-25.0, 135.0)}
NEEDED = ("prior", "species", "threshold_rule", "thresholds", "month", "geoprior_version")


class ExtentPrior:
    """p = exp(-d^2 / 200) around each species' centre (degrees); ``outside`` more than 20
    degrees of latitude and longitude from both centres; common names known."""

    species = tuple(CENTRES)
    common_names = ("Black-throated green warbler", "")
    far_km = 2000.0

    def predict(self, lat, lon, date=None):
        lat, lon = np.atleast_1d(lat).astype(float), np.atleast_1d(lon).astype(float)
        return np.stack(
            [np.exp(-((lat - a) ** 2 + (lon - b) ** 2) / 200.0) for a, b in CENTRES.values()], 1
        ).astype(np.float32)

    def outside(self, lat, lon):
        near = [(np.abs(lat - a) < 20) & (np.abs(lon - b) < 20) for a, b in CENTRES.values()]
        return ~np.logical_or(*near)


# ---------------------------------------------------------------------------- which cells
@settings(max_examples=12, deadline=None)
@given(threshold=st.floats(0.05, 0.95), res=st.integers(1, 2))
def test_in_range_cells_are_exactly_the_rows_in_range_of_all_cells(threshold, res):
    prior = ExtentPrior()
    every = range_map(prior, list(CENTRES), res=res, threshold=threshold)
    inside = range_map(prior, list(CENTRES), res=res, threshold=threshold, cells="in-range")
    expected = every[every.in_range].reset_index(drop=True)
    assert inside.in_range.all() and len(inside) == len(expected)
    pd.testing.assert_frame_equal(
        pd.DataFrame(inside.drop(columns="geometry")),
        pd.DataFrame(expected.drop(columns="geometry")),
    )
    assert inside.geometry.geom_equals_exact(expected.geometry, tolerance=0).all()
    assert inside.attrs["cells"] == "in-range" and every.attrs["cells"] == "all"
    dissolved = range_map(prior, list(CENTRES), res=res, threshold=threshold, dissolve=True)
    assert dissolved.attrs["cells"] == "in-range"
    assert dissolved.n_cells.tolist() == inside.species.value_counts().reindex(
        list(CENTRES), fill_value=0
    ).tolist()


def test_extent_keeps_the_cells_within_the_priors_extent():
    prior = ExtentPrior()
    every = range_map(prior, list(CENTRES), res=2, threshold=0.3)
    within = range_map(prior, list(CENTRES), res=2, threshold=0.3, cells="extent")
    grid = cell_grid(2, land_only=True)
    keep = ~prior.outside(grid.lat, grid.lon)
    assert 0 < keep.sum() < len(grid)
    assert set(within.h3_cell) == set(every.h3_cell[np.tile(keep, 2)])
    assert within.attrs["far_km"] == 2000.0
    with pytest.raises(EmptyDataError, match="extent"):
        range_map(
            prior, "Setophaga virens", res=2, threshold=0.3, cells="extent", bbox=(-20, 0, 20, 30)
        )
    with pytest.raises(ConfigError, match="cells"):
        range_map(prior, "Setophaga virens", res=1, threshold=0.3, cells="some")
    # a prior that states no extent covers everything
    plain = range_map(gpd_free_prior(), "Setophaga virens", res=1, threshold=0.3, cells="extent")
    assert len(plain) == len(cell_grid(1, land_only=True))


def gpd_free_prior():
    prior = ExtentPrior()
    return type("Plain", (), {"species": prior.species, "predict": prior.predict})()


def test_monthly_in_range_rows_differ_by_month():
    class Seasonal(ExtentPrior):
        uses_date = True

        def predict(self, lat, lon, date=None):
            out = super().predict(lat, lon)
            month = np.datetime64(date, "M").astype(int) % 12 + 1
            return out * np.float32(month / 12.0)

    frames = monthly_range_maps(
        Seasonal(), "Setophaga virens", res=2, threshold=0.5, cells="in-range"
    )
    every = monthly_range_maps(Seasonal(), "Setophaga virens", res=2, threshold=0.5)
    assert frames.in_range.all()
    assert frames.groupby("month").size().to_dict() == (
        every[every.in_range].groupby("month").size().to_dict()
    )
    assert frames.attrs["max_prob"]["Setophaga virens"] == pytest.approx(float(every.prob.max()))


# ---------------------------------------------------------------------------- GeoJSON
def rfc7946_problems(doc: dict) -> list[str]:
    """What a GeoJSON FeatureCollection breaks of RFC 7946 (empty: nothing)."""
    problems = []
    if doc.get("type") != "FeatureCollection":
        problems.append("not a FeatureCollection")
    if "crs" in doc:
        problems.append("has a crs member (removed in RFC 7946)")
    for i, feature in enumerate(doc.get("features", [])):
        if feature.get("type") != "Feature" or "properties" not in feature:
            problems.append(f"feature {i}: not a Feature with properties")
        geometry = feature.get("geometry") or {}
        kind = geometry.get("type")
        polygons = {
            "Polygon": [geometry.get("coordinates")],
            "MultiPolygon": geometry.get("coordinates"),
        }
        if kind not in polygons:
            problems.append(f"feature {i}: geometry {kind}")
            continue
        for polygon in polygons[kind]:
            for j, ring in enumerate(polygon):
                xy = np.asarray(ring, float)
                if xy.ndim != 2 or xy.shape[1] != 2 or len(xy) < 4:
                    problems.append(f"feature {i}: a ring is not 4+ [lon, lat] positions")
                    continue
                if not (xy[0] == xy[-1]).all():
                    problems.append(f"feature {i}: ring not closed")
                if (np.abs(xy[:, 0]) > 180).any() or (np.abs(xy[:, 1]) > 90).any():
                    problems.append(f"feature {i}: position outside lon/lat")
                if np.ptp(xy[:, 0]) > 180:
                    problems.append(f"feature {i}: ring crosses the antimeridian uncut")
                ccw = shapely.LinearRing(xy).is_ccw
                if ccw != (j == 0):
                    problems.append(f"feature {i}: ring {j} breaks the right-hand rule")
    return problems


@pytest.fixture(scope="module")
def antimeridian_frame():
    """Cells on both sides of the antimeridian and round the south pole, in range or not."""
    prior = ExtentPrior()
    box = shapely.MultiPolygon([shapely.box(160, -90, 180, -10), shapely.box(-180, -90, -160, -10)])
    return range_map(
        prior, list(CENTRES), res=2, threshold=0.05, land_only=False, bbox=box, month=6
    )


def test_geojson_follows_rfc_7946_and_records_the_map(antimeridian_frame, tmp_path):
    frame = antimeridian_frame
    assert (frame.geom_type == "MultiPolygon").any()  # split cells are there
    path = write_range_map(frame, tmp_path / "map.geojson")
    text = path.read_text()
    doc = json.loads(text)
    assert rfc7946_problems(doc) == []
    assert doc["name"] == "range_map"  # not the temporary file's name
    meta = doc["geoprior"]
    assert all(meta.get(k) is not None for k in NEEDED)
    assert meta["species"] == list(CENTRES) and meta["month"] == 6
    assert meta["threshold_rule"] == "given" and meta["thresholds"]["Setophaga virens"] == 0.05
    assert meta["common_names"] == {"Setophaga virens": "Black-throated green warbler"}
    assert meta == json.loads(json.dumps(map_metadata(frame)))
    # coordinates rounded to the resolution's digits, as text too
    digits = coordinate_digits(2)
    xy = np.concatenate(
        [
            np.asarray(shapely.get_coordinates(shapely.from_geojson(json.dumps(f["geometry"]))))
            for f in doc["features"]
        ]
    )
    np.testing.assert_array_equal(xy, np.round(xy, digits))
    geometry_text = re.findall(r'"coordinates": (\[.*?\]) \}', text)
    places = {len(m) for g in geometry_text for m in re.findall(r"\.(\d+)", g)}
    assert max(places) <= digits
    back = gpd.read_file(path)
    assert back.crs.to_epsg() == 4326 and back.geometry.is_valid.all()
    assert len(back) == len(frame) and back.h3_cell.tolist() == frame.h3_cell.tolist()


@settings(max_examples=60, deadline=None)
@given(lat=st.floats(-89.9, 89.9), lon=st.floats(-180, 180), res=st.integers(0, 10))
def test_rounding_moves_no_vertex_more_than_a_thousandth_of_an_edge(lat, lon, res):
    cell = h3.str_to_int(h3.latlng_to_cell(lat, lon, res))
    polygon = cell_polygons(np.array([cell]))[0]
    digits = coordinate_digits(res)
    rounded = shapely.set_precision(polygon, 10.0**-digits)
    assert rounded.is_valid and not rounded.is_empty
    moved_km = shapely.hausdorff_distance(polygon, rounded) * KM_PER_DEGREE
    assert moved_km <= 1e-3 * edge_km(res) + 1e-9
    # and one place fewer would not do
    assert 0.5**0.5 * 10.0 ** -(digits - 1) * KM_PER_DEGREE > 1e-3 * edge_km(res)


# ---------------------------------------------------------------------------- metadata
def test_geopackage_records_the_map_in_its_layer_metadata(antimeridian_frame, tmp_path):
    import pyogrio

    path = write_range_map(antimeridian_frame, tmp_path / "map.gpkg")
    info = pyogrio.read_info(path)
    assert info["layer_name"] == "range_map"
    meta = info["layer_metadata"]
    for key in NEEDED:
        assert key in meta
    assert json.loads(meta["species"]) == list(CENTRES) and meta["threshold_rule"] == "given"
    assert "Setophaga virens" in meta["DESCRIPTION"] and "resolution-2" in meta["DESCRIPTION"]
    assert gpd.read_file(path).geometry.is_valid.all()


def geo_metadata_by_geopandas(frame, tmp_path) -> dict:
    reference = tmp_path / "reference.parquet"
    gpd.GeoDataFrame(geometry=frame.geometry.to_numpy(), crs=frame.crs).to_parquet(reference)
    return json.loads(pq.read_schema(reference).metadata[b"geo"])


def test_geoparquet_metadata_is_geopandas_own_and_attrs_come_back(antimeridian_frame, tmp_path):
    path = write_range_map(antimeridian_frame, tmp_path / "map.parquet")
    back = gpd.read_parquet(path)
    assert back.attrs == map_metadata(antimeridian_frame)
    geo = json.loads(pq.read_schema(path).metadata[b"geo"])
    assert geo == geo_metadata_by_geopandas(antimeridian_frame, tmp_path)


def test_streamed_geoparquet_has_the_geo_metadata_geopandas_writes(tmp_path):
    prior = ExtentPrior()
    prior.thresholds = np.array([0.3, 0.2], np.float32)
    path = tmp_path / "all.parquet"
    write_all_species(
        prior,
        path,
        res=2,
        chunk_values=200,
        land_only=False,
        cells="all",
        bbox=(150, -60, -150, -10),
        metadata={"prior_file": "extent.prior"},
    )
    assert pq.ParquetFile(path).metadata.num_row_groups > 1
    back = gpd.read_parquet(path)
    assert (back.geom_type == "MultiPolygon").any()  # cells split at the antimeridian
    geo = json.loads(pq.read_schema(path).metadata[b"geo"])
    assert geo == geo_metadata_by_geopandas(back, tmp_path)
    assert back.attrs["prior_file"] == "extent.prior" and back.attrs["cells"] == "all"
    assert back.attrs["thresholds"] == pytest.approx(
        {"Setophaga virens": 0.3, "Dromaius novaehollandiae": 0.2}
    )
    assert back.attrs["species"] == list(CENTRES)
    default = gpd.read_parquet(write_all_species(prior, tmp_path / "r.parquet", res=2)["path"])
    assert default.in_range.all() and default.attrs["cells"] == "in-range"
    geo = json.loads(pq.read_schema(tmp_path / "r.parquet").metadata[b"geo"])
    assert geo == geo_metadata_by_geopandas(default, tmp_path)
    every = write_all_species(prior, tmp_path / "extent.parquet", res=1, cells="extent")
    grid = cell_grid(1, land_only=True)
    assert every["cells"] == int((~prior.outside(grid.lat, grid.lon)).sum())


def test_png_records_the_map_in_its_text_chunks(tmp_path):
    pytest.importorskip("matplotlib")
    from PIL import Image

    frame = range_map(ExtentPrior(), "Setophaga virens", res=1, threshold=0.3, month=6)
    path = write_range_map(frame, tmp_path / "map.png", figsize=(4, 3), dpi=40)
    text = Image.open(path).text
    assert "Setophaga virens" in text["Title"] and text["Software"].startswith("geoprior ")
    assert json.loads(text["Comment"]) == map_metadata(frame)


def test_empty_in_range_maps_write_empty_valid_files(tmp_path):
    frame = range_map(ExtentPrior(), "Setophaga virens", res=1, threshold=1.0, cells="in-range")
    assert len(frame) == 0 and frame.attrs["max_prob"]["Setophaga virens"] < 1.0
    for suffix in (".geojson", ".gpkg", ".parquet"):
        path = write_range_map(frame, tmp_path / f"empty{suffix}")
        back = gpd.read_parquet(path) if suffix == ".parquet" else gpd.read_file(path)
        assert len(back) == 0
    assert pd.read_csv(write_range_map(frame, tmp_path / "empty.csv")).columns.tolist() == [
        "h3_cell",
        "lat",
        "lon",
        "species",
        "prob",
        "in_range",
    ]


# ---------------------------------------------------------------------------- CLI
def test_cli_writes_the_range_by_default_and_every_cell_when_asked(saved_prior, tmp_path):
    runner = CliRunner()
    base = ["range-map", str(saved_prior), "Borealis alpha", "Australis beta", "--res", "2"]
    assert runner.invoke(main, [*base, "-o", str(tmp_path / "r.gpkg")]).exit_code == 0
    assert (
        runner.invoke(main, [*base, "--cells", "all", "-o", str(tmp_path / "a.gpkg")]).exit_code
        == 0
    )
    default, every = gpd.read_file(tmp_path / "r.gpkg"), gpd.read_file(tmp_path / "a.gpkg")
    assert default.in_range.all() and len(default) == int(every.in_range.sum()) > 0
    assert len(every) == 2 * len(cell_grid(2, land_only=True))
    help_text = runner.invoke(main, ["range-map", "--help"]).output
    assert "in-range for geodata" in help_text and "--cells" in help_text


def test_cli_writes_geojson_and_csv_to_stdout(saved_prior, tmp_path):
    runner = CliRunner()
    base = ["range-map", str(saved_prior), "Borealis alpha", "--res", "2", "-o", "-"]
    result = runner.invoke(main, base)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert rfc7946_problems(doc) == [] and doc["features"]
    assert doc["geoprior"]["prior_file"] == str(saved_prior)
    assert "wrote stdout" in result.stderr
    csv = runner.invoke(main, [*base, "--format", "csv"])
    assert csv.exit_code == 0
    assert csv.stdout.splitlines()[0] == "h3_cell,lat,lon,species,prob,in_range"
    binary = runner.invoke(main, [*base, "--format", "gpkg"])
    assert binary.exit_code == 2 and "text" in binary.output
    assert not (tmp_path / "-").exists()


def test_cli_checks_a_picture_request_before_computing(saved_prior, tmp_path, monkeypatch):
    import importlib

    maps = importlib.import_module("geoprior.maps.range_map")

    def never(*args, **kwargs):
        raise AssertionError("the map was computed")

    monkeypatch.setattr(maps, "_predict_cells", never)
    runner = CliRunner()
    base = ["range-map", str(saved_prior), "Borealis alpha", "Australis beta", "--res", "1"]
    result = runner.invoke(main, [*base, "--monthly", "-o", str(tmp_path / "m.png")])
    assert result.exit_code == 1 and "one species" in result.output
    result = runner.invoke(
        main,
        [*base, "--month", "6", "--dissolve", "--color", "prob", "-o", str(tmp_path / "d.png")],
    )
    assert result.exit_code == 1 and "dissolved" in result.output
    result = runner.invoke(main, [*base, "--dissolve", "-o", str(tmp_path / "d.csv")])
    assert result.exit_code == 2
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------- HTML
def test_html_map_has_the_probability_and_in_range_layers(saved_prior, tmp_path):
    pytest.importorskip("folium")
    runner = CliRunner()
    out = tmp_path / "map.html"
    result = runner.invoke(
        main, ["range-map", str(saved_prior), "Borealis alpha", "--res", "2", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "cells: extent" in result.stderr  # the training extent by default
    assert "L.geoJson" in page and "L.control.layers" in page
    meta = json.loads(
        re.search(r'id="geoprior-metadata">(.*?)</script>', page, re.S)
        .group(1)
        .replace("<\\/", "</")
    )
    threshold = meta["thresholds"]["Borealis alpha"]
    assert f'"Borealis alpha: in range (p \\u2265 {threshold:.3g})"' in page
    assert '"Borealis alpha: probability"' in page and "square-root scale" in page
    prior = load_prior(saved_prior)
    grid = cell_grid(2, land_only=True)
    within = int((~prior.outside(grid.lat, grid.lon)).sum())
    assert meta["cells"] == "extent" and page.count('"h3_cell"') >= within


def test_html_of_several_species_and_months_and_places(tmp_path):
    folium = pytest.importorskip("folium")
    from geoprior.maps.html import range_map_html

    frame = range_map(ExtentPrior(), list(CENTRES), res=1, threshold=0.3)
    m = range_map_html(frame, places=([43.0, 44.0], [-75.0, -74.0]))
    assert isinstance(m, folium.Map)
    page = m.get_root().render()
    for name in CENTRES:
        assert f"{name}: probability" in page
    assert "training places (2)" in page and page.count("L.circleMarker") == 2


def test_the_docs_explore_example_works_with_the_html_extra():
    pytest.importorskip("folium")
    pytest.importorskip("mapclassify")
    frame = range_map(ExtentPrior(), "Setophaga virens", res=2, threshold=0.3, month=6)
    m = frame[frame.in_range].explore()
    page = m.get_root().render()
    assert "L.geoJson" in page or "geo_json" in page
    assert frame.explore(column="prob").get_root().render()


# ---------------------------------------------------------------------------- pictures
def _cell_collections(ax):
    from matplotlib.collections import PathCollection

    return [
        c for c in ax.collections if isinstance(c, PathCollection) and c.get_array() is not None
    ]


def test_a_regional_picture_is_equal_area_with_basemap_labels_title_and_places():
    plt = pytest.importorskip("matplotlib.pyplot")
    from matplotlib.collections import LineCollection

    from geoprior.maps.plot import choose_projection, plot_range_map, project_points

    frame = range_map(ExtentPrior(), "Setophaga virens", res=2, threshold=0.5, month=6)
    frame.attrs["output"] = "presence"
    fig = plot_range_map(frame, places=([43.0, 44.5], [-75.0, -72.0]))
    try:
        ax = fig.axes[0]
        assert ax.geoprior_projection.startswith("+proj=laea")
        assert ax.geoprior_projection == choose_projection(ax_extent := _view(frame))
        w, s, e, n = ax_extent
        assert w < -75 < e and s < 43 < n
        # the view holds the in-range cells: their centres project inside the axes
        inside = frame[frame.in_range]
        lat, lon = np.array([h3.cell_to_latlng(c) for c in inside.h3_cell]).T
        x, y = project_points(ax, lat, lon)
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        assert ((x > x0) & (x < x1) & (y > y0) & (y < y1)).all()
        title = ax.get_title()
        assert "Setophaga virens (Black-throated green warbler)" in title and "June" in title
        assert "p ≥ 0.5" in title and "given threshold" in title
        assert [a.get_ylabel() for a in fig.axes[1:]] == [
            "presence probability (square-root scale)"
        ]
        labels = [t.get_text() for t in ax.texts]
        assert any(t.endswith("°N") for t in labels) and any(t.endswith("°W") for t in labels)
        lines = [c for c in ax.collections if isinstance(c, LineCollection)]
        assert len(lines) >= 3  # borders (with halo), graticule
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert legend == ["in range (p ≥ 0.5)", "training places (2)"]
        (dots,) = [c for c in ax.collections if c.get_gid() == "training places"]
        assert len(dots.get_offsets()) == 2
    finally:
        plt.close(fig)


def _view(frame):
    from geoprior.maps.plot import view_extent

    return view_extent(frame)


def test_a_world_picture_is_equal_earth_and_the_antimeridian_is_cut():
    plt = pytest.importorskip("matplotlib.pyplot")
    from geoprior.maps.plot import plot_range_map

    frame = range_map(ExtentPrior(), list(CENTRES), res=1, threshold=0.3)
    fig = plot_range_map(frame, extent=(-180, -90, 180, 90))
    try:
        panels = [a for a in fig.axes if hasattr(a, "geoprior_projection")]
        assert len(panels) == 2
        assert all(a.geoprior_projection.startswith("+proj=eqearth") for a in panels)
        for ax in panels:
            width = np.diff(ax.get_xlim())[0]
            for collection in _cell_collections(ax):
                wide = [np.ptp(p.vertices[:, 0]) > width / 4 for p in collection.get_paths()]
                assert sum(wide) <= 2  # none drawn across the map: only the two polar cells
    finally:
        plt.close(fig)

    # a view across the antimeridian is centred on it
    class Bering(ExtentPrior):
        def predict(self, lat, lon, date=None):
            lat, lon = np.atleast_1d(lat), np.atleast_1d(lon)
            d = (lat - 66.0) ** 2 + ((lon % 360.0 - 180.0) * 0.5) ** 2
            p = np.exp(-d / 100.0).astype(np.float32)
            return np.stack([p, p], 1)

    bering = range_map(Bering(), "Setophaga virens", res=2, threshold=0.5)
    w, s, e, n = _view(bering)
    assert w < 180 < e and e - w < 120
    fig = plot_range_map(bering)
    try:
        ax = fig.axes[0]
        lon_0 = float(re.search(r"\+lon_0=(\S+)", ax.geoprior_projection).group(1))
        assert abs((lon_0 + 180.0) % 360.0 - 180.0) > 170  # centred near the antimeridian
        width = np.diff(ax.get_xlim())[0]
        for collection in _cell_collections(ax):
            assert all(np.ptp(p.vertices[:, 0]) < width / 4 for p in collection.get_paths())
    finally:
        plt.close(fig)


def test_monthly_panels_share_one_colour_scale_and_show_that_months_places():
    plt = pytest.importorskip("matplotlib.pyplot")
    from geoprior import Observations
    from geoprior.maps.plot import plot_range_map

    class Seasonal(ExtentPrior):
        uses_date = True

        def predict(self, lat, lon, date=None):
            out = super().predict(lat, lon)
            return out * np.float32((np.datetime64(date, "M").astype(int) % 12 + 1) / 12.0)

    frame = monthly_range_maps(Seasonal(), "Setophaga virens", res=1, threshold=0.5)
    obs = Observations.from_arrays(
        [43.0, 44.0, 45.0, -25.0],
        [-75.0, -74.0, -73.0, 135.0],
        ["Setophaga virens"] * 3 + ["Dromaius novaehollandiae"],
        date=["2021-06-02", "2021-06-20", "2021-01-05", "2021-06-01"],
    )
    fig = plot_range_map(frame, places=obs, dpi=30)
    try:
        panels = [a for a in fig.axes if hasattr(a, "geoprior_projection")]
        assert [a.get_title() for a in panels] == [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ]
        norms = {id(c.norm) for a in panels for c in _cell_collections(a)}
        assert len(norms) == 1  # one colour scale
        (norm,) = {c.norm for a in panels for c in _cell_collections(a)}
        assert norm.vmax == pytest.approx(float(frame.prob.max()))
        counts = [
            sum(len(c.get_offsets()) for c in a.collections if c.get_gid() == "training places")
            for a in panels
        ]
        assert counts[5] == 2 and counts[0] == 1 and sum(counts) == 3  # June, January only
        assert "Setophaga virens (Black-throated green warbler)" in fig.get_suptitle()
        assert "p ≥ 0.5" in fig.get_suptitle()
    finally:
        plt.close(fig)


def test_cli_draws_the_training_places(saved_prior, tmp_path):
    pytest.importorskip("matplotlib")
    runner = CliRunner()
    base = ["range-map", str(saved_prior), "Borealis alpha", "--res", "1", "--month", "6"]
    png = tmp_path / "m.png"
    result = runner.invoke(main, [*base, "--places", "-o", str(png)])
    assert result.exit_code == 0, result.output
    assert png.stat().st_size > 0
    bad = runner.invoke(main, [*base, "--places", "-o", str(tmp_path / "m.csv")])
    assert bad.exit_code == 2 and "--places" in bad.output


def test_cli_says_when_a_species_has_no_cell_in_range(saved_prior, tmp_path):
    runner = CliRunner()
    out = tmp_path / "none.geojson"
    args = ["range-map", str(saved_prior), "Borealis alpha", "--res", "1", "--threshold", "1"]
    result = runner.invoke(main, [*args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "no cell is in range for Borealis alpha: highest probability" in result.stderr
    doc = json.loads(out.read_text())
    assert doc["features"] == [] and doc["geoprior"]["max_prob"]["Borealis alpha"] < 1
