"""Tests of geoprior.io: each reader on a tiny fixture in its real format, bad input,
auto-detection, chunking and column mapping."""

from __future__ import annotations

import re
import warnings
import zipfile
from dataclasses import replace
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import LineString, Point

from geoprior import Observations
from geoprior.errors import (
    ConfigError,
    CoordinateError,
    DateError,
    EmptyDataError,
    FileEncodingError,
    FormatError,
    GeopriorError,
    SpeciesNameError,
)
from geoprior.io import (
    FORMATS,
    PLANS,
    ObservationChunks,
    detect_format,
    read_dwca,
    read_ebird,
    read_gbif,
    read_inat_csv,
    read_inat_json,
    read_observations,
    read_table,
)
from geoprior.io.table import open_table

FIXTURES = Path(__file__).parent / "fixtures" / "io"


def dates(*values):
    return np.array([v if v is not None else "NaT" for v in values], dtype="datetime64[D]")


def same(a, b):
    """Two Observations hold identical rows, vocabulary, sites and report."""
    assert a.species == b.species
    np.testing.assert_array_equal(a.lat, b.lat)
    np.testing.assert_array_equal(a.lon, b.lon)
    np.testing.assert_array_equal(a.date, b.date)
    np.testing.assert_array_equal(a.species_index, b.species_index)
    assert (a.site is None) == (b.site is None)
    if a.site is not None:
        assert a.site.tolist() == b.site.tolist()
    assert a.report.dropped == b.report.dropped
    assert (a.report.rows_read, a.report.rows_kept) == (b.report.rows_read, b.report.rows_kept)


# ---------------------------------------------------------------------------- iNaturalist
def test_inat2018_json_with_locations_file():
    obs = read_inat_json(
        FIXTURES / "inat2018_train.json", locations=FIXTURES / "inat2018_locations.json"
    )
    np.testing.assert_array_equal(obs.lat, [51.5, -33.9, 42.36, 40.71, 45.5])
    np.testing.assert_array_equal(obs.lon, [-0.12, 151.2, -71.06, -74.0, -73.57])
    np.testing.assert_array_equal(
        obs.date, dates("2017-05-03", "2016-11-20", "2017-04-01", None, "2015-12-24")
    )
    assert obs.species_names.tolist() == [
        "Plantago lanceolata",
        "Plantago lanceolata",
        "Turdus migratorius",
        "Turdus migratorius",
        "Cyanocitta cristata",
    ]


def test_inat2018_json_needs_locations():
    with pytest.raises(FormatError, match="locations="):
        read_observations(FIXTURES / "inat2018_train.json")
    with pytest.raises(FormatError, match="locations file"):
        read_observations(FIXTURES / "inat2018_locations.json")


def test_inat2021_json_species_from_genus_and_epithet():
    obs = read_observations(FIXTURES / "inat2021_train.json")
    np.testing.assert_array_equal(obs.lat, [43.83486, -41.29, 60.17, 35.68])
    np.testing.assert_array_equal(obs.lon, [-71.22231, 174.78, 24.94, 139.69])
    np.testing.assert_array_equal(obs.date, dates("2010-07-22", "2019-03-02", "2018-10-09", None))
    assert obs.species_names.tolist() == ["Lumbricus terrestris"] * 2 + ["Parus major"] * 2


def _inat_meta(images, annotations):
    cats = [{"id": 7, "name": "Parus major"}, {"id": 8, "name": "Pica pica"}]
    return {"images": images, "annotations": annotations, "categories": cats}


def test_inat_json_images_without_annotation_or_location_are_invalid():
    images = [{"id": i} for i in (1, 2, 3, 4)]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 7},
        {"id": 2, "image_id": 2, "category_id": 8},
        {"id": 4, "image_id": 4, "category_id": 8},
    ]
    locs = [
        {"id": 1, "lat": 10.0, "lon": 20.0, "date": "2018-01-02"},
        {"id": 3, "lat": 11.0, "lon": 21.0, "date": "2018-01-03"},
        {"id": 4, "lat": 12.0, "lon": 22.0, "date": None},
    ]
    with pytest.raises(CoordinateError, match=r"1 of 4 latitudes are missing.*first: row 1"):
        read_inat_json(_inat_meta(images, anns), locations=locs)
    with pytest.warns(UserWarning, match="dropped 2"):
        obs = read_inat_json(_inat_meta(images, anns), locations=locs, on_invalid="drop")
    assert obs.report.dropped == {"missing latitude": 1, "empty species name": 1}
    np.testing.assert_array_equal(obs.lat, [10.0, 12.0])
    assert obs.species_names.tolist() == ["Parus major", "Pica pica"]
    bad = [{"id": 1, "image_id": 1, "category_id": 99}, *anns[1:]]
    with pytest.raises(
        FormatError, match="annotations of a category_id not in categories; first: row 0: "
        "annotation 0 names category_id 99"
    ):
        read_inat_json(_inat_meta(images, bad), locations=locs)
    with pytest.warns(UserWarning, match="1 unknown category"):
        obs = read_inat_json(_inat_meta(images, bad), locations=locs, on_invalid="drop")
    report = obs.report
    assert report.dropped == {"unknown category": 1, "missing latitude": 1, "empty species name": 1}
    assert report.rows_read == report.rows_kept + report.n_dropped == 4
    assert obs.species_names.tolist() == ["Pica pica"]


def test_inat_csv_export():
    obs = read_observations(FIXTURES / "inat_observations.csv")
    np.testing.assert_array_equal(obs.lat, [44.0637, 35.1983, 46.8139, -41.2865])
    np.testing.assert_array_equal(obs.lon, [-71.2872, -111.6513, -71.208, 174.7762])
    np.testing.assert_array_equal(
        obs.date, dates("2021-06-14", "2021-06-15", "2020-01-02", "2019-08-30")
    )
    assert obs.species_names.tolist() == [
        "Setophaga virens",
        "Junco hyemalis",
        "Poecile atricapillus",
        "Prosthemadera novaeseelandiae",
    ]
    assert obs.site.tolist() == ["alice", "bob", "alice", "chloé"]
    by_id = read_inat_csv(FIXTURES / "inat_observations.csv", site="user_id")
    assert by_id.site.tolist() == ["1001", "1002", "1001", "1003"]


# ---------------------------------------------------------------------------- GBIF
def test_gbif_simple_download():
    obs = read_observations(FIXTURES / "gbif_simple.csv")
    np.testing.assert_array_equal(obs.lat, [44.0637, -21.9, -13.5, 42.36])
    np.testing.assert_array_equal(obs.lon, [-71.2872, -66.1, -71.0, -71.06])
    # an interval is its middle day; a year alone is undated and noted
    np.testing.assert_array_equal(obs.date, dates("2021-06-14", "1979-01-29", "2005-03-16", None))
    assert any("give only a year" in n for n in obs.report.notes)
    # empty `species` falls back to scientificName
    assert obs.species_names.tolist() == [
        "Setophaga virens",
        "Solanum acaule",
        "Solanum L.",
        "Turdus migratorius",
    ]
    assert obs.site.tolist() == ["Alice A.", "G. C. Giberti", "A. Tupayachi H.", None]


def test_gbif_simple_download_in_a_zip(tmp_path):
    path = tmp_path / "0001234-240101000000000.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.write(FIXTURES / "gbif_simple.csv", "0001234-240101000000000.csv")
    same(read_observations(path), read_gbif(FIXTURES / "gbif_simple.csv"))


def test_dismo_gbif_csv_latin1_encoding():
    path = FIXTURES / "dismo_latin1.csv"
    raw = path.read_bytes()
    first_bad = next(i for i, b in enumerate(raw) if b >= 0x80)
    line = raw[:first_bad].count(b"\n") + 1
    with pytest.raises(FileEncodingError) as e:
        read_observations(path)
    msg = str(e.value)
    assert str(path) in msg and f"byte {first_bad} (line {line})" in msg
    assert "encoding=" in msg
    obs = read_observations(path, encoding="latin-1")
    assert obs.species_names.tolist() == [
        "Solanum acaule Bitter",
        "Solanum × edinense",
        "Solanum acaule f. acaule",
    ]
    np.testing.assert_array_equal(obs.lat, [-21.9, -13.5, -18.6333])
    np.testing.assert_array_equal(obs.date, dates("1979-01-29", "2005-03-17", None))


_META = """<?xml version="1.0" encoding="UTF-8"?>
<archive xmlns="http://rs.tdwg.org/text/" metadata="eml.xml">
  <core encoding="{encoding}" fieldsTerminatedBy="{sep}" linesTerminatedBy="\\n"
        fieldsEnclosedBy="{quote}" ignoreHeaderLines="1"
        rowType="http://rs.tdwg.org/dwc/terms/Occurrence">
    <files><location>occurrence.txt</location></files>
    <id index="0" />
    <field index="1" term="http://rs.tdwg.org/dwc/terms/eventDate"/>
    <field index="2" term="http://rs.tdwg.org/dwc/terms/scientificName"/>
    <field index="3" term="http://rs.tdwg.org/dwc/terms/decimalLongitude"/>
    <field index="4" term="http://rs.tdwg.org/dwc/terms/decimalLatitude"/>
    <field index="5" term="http://rs.tdwg.org/dwc/terms/recordedBy"/>
    <field term="http://rs.tdwg.org/dwc/terms/basisOfRecord" default="HumanObservation"/>
  </core>
</archive>
"""


def _dwca(tmp_path, sep, quote, encoding="UTF-8", rows=None):
    rows = rows or [
        ["o1", "2019-05-04", "Pica pica (Linnaeus, 1758)", "10.75", "59.91", "Åse, B."],
        ["o2", "2020-07-01T10:00:00Z", "Parus major Linnaeus, 1758", "-3.7", "40.4", "Jo"],
        ["o3", "", "Pica pica (Linnaeus, 1758)", "151.2", "-33.87", ""],
    ]
    q = quote
    lines = [sep.join(f"{q}{v}{q}" for v in ["id", "a", "b", "c", "d", "e"])]
    lines += [sep.join(f"{q}{v}{q}" for v in row) for row in rows]
    path = tmp_path / "dwca.zip"
    escaped = sep.replace("\t", "\\t")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(
            "meta.xml",
            _META.format(encoding=encoding, sep=escaped, quote=quote.replace('"', "&quot;")),
        )
        zf.writestr("occurrence.txt", ("\n".join(lines) + "\n").encode(encoding))
        zf.writestr("eml.xml", "<eml/>")
    return path


@pytest.mark.parametrize(("sep", "quote"), [("\t", ""), (",", '"')])
def test_darwin_core_archive(tmp_path, sep, quote):
    path = _dwca(tmp_path, sep, quote)
    assert detect_format(path) == "dwca"
    obs = read_observations(path)
    np.testing.assert_array_equal(obs.lat, [59.91, 40.4, -33.87])
    np.testing.assert_array_equal(obs.lon, [10.75, -3.7, 151.2])
    np.testing.assert_array_equal(obs.date, dates("2019-05-04", "2020-07-01", None))
    assert obs.species_names.tolist() == [
        "Pica pica (Linnaeus, 1758)",
        "Parus major Linnaeus, 1758",
        "Pica pica (Linnaeus, 1758)",
    ]
    assert obs.site.tolist() == ["Åse, B.", "Jo", None]
    same(read_gbif(path, chunksize=1), obs)


def test_darwin_core_archive_encoding_from_meta_xml(tmp_path):
    path = _dwca(tmp_path, "\t", "", encoding="ISO-8859-1")
    assert read_dwca(path).site.tolist() == ["Åse, B.", "Jo", None]
    with pytest.raises(FileEncodingError, match=r"dwca\.zip!occurrence\.txt.*byte \d+"):
        read_dwca(path, encoding="utf-8")


def test_darwin_core_archive_errors(tmp_path):
    text = _META.replace("dwc/terms/Occurrence", "dwc/terms/Event").format(
        encoding="UTF-8", sep="\\t", quote=""
    )
    bad = tmp_path / "event.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("meta.xml", text)
        zf.writestr("occurrence.txt", "id\n")
    with pytest.raises(FormatError, match="no occurrence file.*Event"):
        read_observations(bad)
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as zf:
        zf.writestr("meta.xml", "<archive><core")
    with pytest.raises(FormatError, match="meta.xml is not valid XML"):
        read_observations(broken)


# ---------------------------------------------------------------------------- eBird
def test_ebird_basic_dataset_keeps_species_category():
    obs = read_observations(FIXTURES / "ebd_sample.txt")
    np.testing.assert_array_equal(obs.lat, [52.2594075, 43.8948966, 26.1, 64.84])
    np.testing.assert_array_equal(obs.lon, [-96.816917, -122.9290871, -98.2, -147.72])
    np.testing.assert_array_equal(
        obs.date, dates("2011-07-12", "2012-09-16", "2019-12-31", "2021-01-05")
    )
    assert obs.species_names.tolist() == [
        "Perisoreus canadensis",
        "Cyanocitta cristata",
        "Cyanocorax yncas",
        "Perisoreus canadensis",
    ]
    assert obs.species == ("Cyanocitta cristata", "Cyanocorax yncas", "Perisoreus canadensis")
    assert obs.site.tolist() == ["S8726496", "S11593649", "S62000002", "S79000004"]
    removed = {"CATEGORY 'issf'": 1, "CATEGORY 'spuh'": 1, "CATEGORY 'slash'": 1}
    report = obs.report
    assert report.removed == removed and report.dropped == {}
    assert (report.rows_read, report.rows_kept, report.n_removed) == (7, 4, 3)
    assert report.notes == [
        "removed 3 of 7 rows filtered out by design (not errors): 1 with CATEGORY 'issf', "
        "1 with CATEGORY 'slash', 1 with CATEGORY 'spuh'"
    ]
    assert report.summary() == (
        "read 7 rows, kept 4, removed 3 by design: "
        "1 CATEGORY 'issf'; 1 CATEGORY 'slash'; 1 CATEGORY 'spuh'"
    )


def test_ebird_categories_keyword():
    all_rows = read_ebird(FIXTURES / "ebd_sample.txt", categories=None)
    assert len(all_rows) == 7 and all_rows.report.notes == []
    some = read_observations(FIXTURES / "ebd_sample.txt", categories=("species", "issf"))
    assert len(some) == 5 and "Junco hyemalis" in some.species
    by_observer = read_ebird(FIXTURES / "ebd_sample.txt", site="OBSERVER ID")
    assert by_observer.site.tolist() == ["obsr121883", "obsr236430", "obsr2", "obsr4"]
    with pytest.raises(ConfigError, match="categories"):
        read_ebird(FIXTURES / "ebd_sample.txt", categories=[])


# ---------------------------------------------------------------------------- detection
@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("ebd_sample.txt", "ebird"),
        ("gbif_simple.csv", "gbif"),
        ("dismo_latin1.csv", "gbif"),
        ("inat_observations.csv", "inat-csv"),
        ("inat2021_train.json", "inat-json"),
    ],
)
def test_detect_format(name, fmt):
    assert detect_format(FIXTURES / name) == fmt


def test_detect_format_of_frames_and_plain_tables(tmp_path):
    df = pd.read_csv(FIXTURES / "inat_observations.csv")
    assert detect_format(df) == "inat-csv"
    same(read_observations(df), read_observations(FIXTURES / "inat_observations.csv"))
    path = tmp_path / "plain.csv"
    path.write_text("species,lon,lat\nBradypus variegatus,-65.4,-10.3833\n")
    assert detect_format(path) == "table"


def test_unknown_format_and_missing_file(tmp_path):
    with pytest.raises(FormatError, match="valid formats: auto, inat-json, inat-csv, gbif"):
        read_observations(FIXTURES / "gbif_simple.csv", format="csv")
    missing = tmp_path / "nope.csv"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        read_observations(missing)
    with pytest.raises(ConfigError, match="takes no keyword 'latitude'"):
        read_observations(FIXTURES / "inat_observations.csv", latitude="lat")
    with pytest.raises(GeopriorError, match="on_invalid"):
        read_observations(FIXTURES / "inat_observations.csv", on_invalid="ignore")
    assert set(FORMATS) == {"auto", "inat-json", "inat-csv", "gbif", "dwca", "ebird", "table"}


# ---------------------------------------------------------------------------- tables
def test_guessed_and_named_columns(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        "Decimal_Latitude;LNG;Taxon Name;EventDate;plot;temp\n"
        "10.5;20.25;Aa bb;2020-01-02;p1;3.5\n"
        "-1;-2;Cc dd;2021-12-31;p2;4\n"
    )
    obs = read_observations(path, covariates=["temp"])
    np.testing.assert_array_equal(obs.lat, [10.5, -1.0])
    np.testing.assert_array_equal(obs.lon, [20.25, -2.0])
    np.testing.assert_array_equal(obs.date, dates("2020-01-02", "2021-12-31"))
    assert obs.site.tolist() == ["p1", "p2"] and obs.covariate_names == ("temp",)
    np.testing.assert_array_equal(obs.covariates[:, 0], [3.5, 4.0])
    named = read_table(path, lat="LNG", lon="Decimal_Latitude", species="plot", date=None)
    np.testing.assert_array_equal(named.lat, [20.25, -2.0])
    assert named.species == ("p1", "p2")


def test_missing_columns_list_what_was_found(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("where_y,where_x,name\n1,2,a\n")
    with pytest.raises(FormatError) as e:
        read_observations(path)
    msg = str(e.value)
    assert "'where_y', 'where_x', 'name'" in msg and "decimallatitude" in msg
    assert "lat, lon, species" in msg
    with pytest.raises(FormatError, match=r"no column 'nam' \(given as species=\).*'name'"):
        read_observations(path, lat="where_y", lon="where_x", species="nam")


def test_parquet_in_batches(tmp_path):
    df = pd.DataFrame(
        {
            "lat": [1.0, 2.0, 3.0, 4.0, 5.0],
            "lon": [10.0, 20.0, 30.0, 40.0, 50.0],
            "species": ["a", "b", "a", "c", "b"],
            "date": pd.to_datetime(["2020-01-01", "2020-02-02", None, "2021-03-03", "2022-04-04"]),
        }
    )
    path = tmp_path / "obs.parquet"
    df.to_parquet(path)
    obs = read_observations(path, chunksize=2)
    same(obs, read_observations(df))
    np.testing.assert_array_equal(
        obs.date, dates("2020-01-01", "2020-02-02", None, "2021-03-03", "2022-04-04")
    )


def test_geodataframe_points_reprojected():
    lonlat = [(-71.3, 44.0), (174.78, -41.29)]
    gdf = gpd.GeoDataFrame(
        {"species": ["a", "b"]}, geometry=[Point(x, y) for x, y in lonlat], crs=4326
    ).to_crs(3857)
    obs = read_observations(gdf)
    np.testing.assert_allclose(obs.lat, [44.0, -41.29], atol=1e-9)
    np.testing.assert_allclose(obs.lon, [-71.3, 174.78], atol=1e-9)
    lines = gpd.GeoDataFrame(
        {"species": ["a", "b"]}, geometry=[Point(0, 0), LineString([(0, 0), (1, 1)])], crs=4326
    )
    with pytest.raises(FormatError, match="1 of 2 geometries are not points; first: row 1"):
        read_observations(lines)


# ---------------------------------------------------------------------------- bad input
_GOOD = ("10.0", "20.0", "Aa bb", "2020-01-02")
BAD = [  # (column, bad value, error, reason, lon_360)
    ("lat", "91.5", CoordinateError, "latitude out of range", False),
    ("lat", "-90.01", CoordinateError, "latitude out of range", False),
    ("lon", "-180.5", CoordinateError, "longitude out of range", False),
    ("lon", "200.0", CoordinateError, "longitude out of range", False),
    ("lon", "361.0", CoordinateError, "longitude out of range", True),
    ("lat", "", CoordinateError, "missing latitude", False),
    ("lon", "NaN", CoordinateError, "missing longitude", False),
    ("lat", "inf", CoordinateError, "infinite latitude", False),
    ("date", "14th of June", DateError, "unparsable date", False),
    ("date", "2021-02-30", DateError, "impossible date", False),
    ("species", "", SpeciesNameError, "empty species name", False),
    ("species", "  ", SpeciesNameError, "empty species name", False),
]


def _write(tmp_path, n, bad_rows, column, value):
    cols = ["lat", "lon", "species", "date"]
    lines = [",".join(cols)]
    for i in range(n):
        row = dict(zip(cols, _GOOD, strict=True))
        row["lat"] = str(float(i))  # tells rows apart
        if i in bad_rows:
            row[column] = value
        lines.append(",".join(row[c] for c in cols))
    path = tmp_path / "obs.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("column", "value", "error", "reason", "lon_360"), BAD)
@pytest.mark.parametrize("chunksize", [1_000_000, 3])
def test_bad_values_raise_or_drop(tmp_path, column, value, error, reason, lon_360, chunksize):
    path = _write(tmp_path, 10, {4, 7}, column, value)
    with pytest.raises(error) as e:
        read_observations(path, lon_360=lon_360, chunksize=chunksize)
    msg = str(e.value)
    assert str(path) in msg and "first: row 4 = " in msg
    # the count: of the whole file when read in one chunk, else of the chunk (rows 3..5)
    assert ("2 of 10" in msg) if chunksize > 10 else ("1 of 3" in msg and "rows 3..5" in msg)
    with pytest.warns(UserWarning, match=f"dropped 2: 2 {reason}"):
        obs = read_observations(path, on_invalid="drop", lon_360=lon_360, chunksize=chunksize)
    assert obs.report.dropped == {reason: 2}
    assert (obs.report.rows_read, obs.report.rows_kept) == (10, 8)
    np.testing.assert_array_equal(obs.lat, [0, 1, 2, 3, 5, 6, 8, 9])


def test_longitudes_in_0_360(tmp_path):
    path = _write(tmp_path, 3, {1}, "lon", "200.0")
    with pytest.raises(
        CoordinateError,
        match=r"1 of 3 longitudes outside \[-180, 180\] \(for 0\.\.360 longitudes pass lon_360=True\); first: row 1",
    ):
        read_observations(path)
    obs = read_observations(path, lon_360=True)
    np.testing.assert_array_equal(obs.lon, [20.0, -160.0, 20.0])


def test_everything_dropped_is_an_error(tmp_path):
    path = _write(tmp_path, 3, {0, 1, 2}, "lat", "95")
    with pytest.raises(EmptyDataError, match="no usable rows"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read_observations(path, on_invalid="drop")


def test_ebird_rows_numbered_in_the_file_despite_the_category_filter(tmp_path):
    text = (FIXTURES / "ebd_sample.txt").read_text().splitlines()
    text[5] = text[5].replace("-98.2", "-998.2")  # data row 4, after the issf and spuh rows
    path = tmp_path / "ebd.txt"
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(CoordinateError, match=r"1 of 7 longitudes .*first: row 4 = -998\.2"):
        read_observations(path)
    with pytest.warns(UserWarning, match="dropped 1"):
        obs = read_observations(path, on_invalid="drop", chunksize=2)
    assert len(obs) == 3 and "Cyanocorax yncas" not in obs.species
    report = obs.report
    assert report.dropped == {"longitude out of range": 1}
    assert report.removed == {"CATEGORY 'issf'": 1, "CATEGORY 'spuh'": 1, "CATEGORY 'slash'": 1}
    assert report.rows_read == report.rows_kept + report.n_dropped + report.n_removed == 7


@pytest.mark.parametrize(("name", "data"), [("e.csv", b""), ("e.csv", b"\n\n"), ("e.parquet", b"")])
def test_open_table_refuses_an_empty_file_naming_it(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(EmptyDataError, match=f"{name} is empty"):
        open_table(path)
    with pytest.raises(EmptyDataError, match=f"{name} is empty"):
        read_observations(path)


# ---------------------------------------------------------------------------- chunking
@pytest.mark.parametrize(
    "name", ["ebd_sample.txt", "gbif_simple.csv", "inat_observations.csv", "dismo_latin1.csv"]
)
@pytest.mark.parametrize("chunksize", [1, 2, 3])
def test_chunked_reading_equals_unchunked(name, chunksize):
    kw = {"encoding": "latin-1"} if "latin1" in name else {}
    same(
        read_observations(FIXTURES / name, chunksize=chunksize, **kw),
        read_observations(FIXTURES / name, **kw),
    )


def test_chunked_reading_with_drops_equals_unchunked(tmp_path):
    rng = np.random.default_rng(1)
    n = 200
    df = pd.DataFrame(
        {
            "latitude": rng.uniform(-100, 100, n).round(4),
            "longitude": rng.uniform(-190, 190, n).round(4),
            "scientificName": rng.choice(["Aa bb", "Cc dd", "Ee ff", ""], n),
            "date": rng.choice(["2020-01-01", "2021-02-30", "2019-07-04", "soon"], n),
        }
    )
    path = tmp_path / "big.tsv"
    df.to_csv(path, sep="\t", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole = read_observations(path, on_invalid="drop")
        parts = read_observations(path, on_invalid="drop", chunksize=17)
    same(parts, whole)
    assert whole.report.rows_read == n and whole.report.n_dropped == n - len(whole) > 0


def test_repeated_dates_parsed_once_give_the_same_result(tmp_path):
    n = 3000
    days = np.array(["2020-01-01", "2021-06-14", "", "2019-12-31T08:00:00Z"], dtype=object)
    text = days[np.arange(n) % 4]
    df = pd.DataFrame({"lat": 1.0, "lon": 2.0, "species": "Aa bb", "date": text})
    expected = np.array([d[:10] if d else "NaT" for d in text], dtype="datetime64[D]")
    np.testing.assert_array_equal(read_observations(df).date, expected)
    df.loc[2500, "date"] = "2021-02-30"
    with pytest.raises(DateError, match=f"1 of {n} dates are impossible.*row 2500 = '2021-02-30'"):
        read_observations(df)


@pytest.mark.parametrize(
    "name, fmt",
    [
        ("ebd_sample.txt", "ebird"),
        ("gbif_simple.csv", "gbif"),
        ("inat_observations.csv", "inat-csv"),
    ],
)
@pytest.mark.parametrize("chunksize", [1, 2, 5])
def test_observation_chunks_are_the_reader_in_pieces(name, fmt, chunksize):
    """A format's plan read chunk by chunk: contiguous row offsets, every row read once, and
    the chunks joined (with their report and notes) are what its reader returns."""
    chunks = ObservationChunks(PLANS[fmt](FIXTURES / name, chunksize=chunksize))
    pieces = list(chunks)
    offsets = [c.offset for c in pieces]
    assert offsets == list(range(0, chunks.report.rows_read, chunksize))
    assert all(0 < c.rows <= chunksize and len(c.obs) <= c.rows for c in pieces)
    assert sum(c.rows for c in pieces) == chunks.report.rows_read
    whole = read_observations(FIXTURES / name, format=fmt, chunksize=chunksize)
    joined = replace(Observations.concat([c.obs for c in pieces]), report=chunks.report)
    same(joined, whole)
    assert chunks.report == whole.report
    assert sum(c.rows for c in chunks) == whole.report.rows_read  # a second pass starts afresh
    assert chunks.report == whole.report
