"""Property tests of coordinate and date validation, through the readers and directly."""

from __future__ import annotations

import calendar
import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoprior.errors import CoordinateError, DateError
from geoprior.io import read_observations
from geoprior.validation import InvalidRows, check_lat_lon, coordinate_problems, parse_dates

lats = st.floats(-90, 90, allow_nan=False)
lons = st.floats(-180, 180, allow_nan=False)
outside_lats = st.floats(90, 1e300, exclude_min=True) | st.floats(-1e300, -90, exclude_max=True)
valid_dates = st.dates(dt.date(1600, 1, 1), dt.date.today())


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(lats, lons), min_size=1, max_size=20))
def test_valid_coordinates_round_trip_exactly_through_csv(tmp_path_factory, points):
    path = tmp_path_factory.getbasetemp() / "points.csv"
    lines = ["lat,lon,species"] + [f"{a!r},{b!r},Aa bb" for a, b in points]
    path.write_text("\n".join(lines) + "\n")
    obs = read_observations(path, chunksize=7)
    np.testing.assert_array_equal(obs.lat, [a for a, _ in points])
    np.testing.assert_array_equal(obs.lon, [b for _, b in points])


@settings(max_examples=50, deadline=None)
@given(st.lists(lats, min_size=1, max_size=20), st.data())
def test_a_latitude_outside_raises_naming_its_row(good, data):
    row = data.draw(st.integers(0, len(good)))
    value = data.draw(outside_lats)
    lat = [*good[:row], value, *good[row:]]
    df = pd.DataFrame({"lat": lat, "lon": 0.0, "species": "Aa bb"})
    with pytest.raises(CoordinateError, match=f"1 of {len(lat)} latitudes outside .* row {row} "):
        read_observations(df)
    _, _, masks, _ = coordinate_problems(lat, np.zeros(len(lat)))
    assert np.flatnonzero(masks["latitude out of range"]).tolist() == [row]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 360, allow_nan=False), min_size=1, max_size=20))
def test_lon_360_shifts_into_range_and_keeps_the_place(lon):
    _, out, masks, _ = coordinate_problems(np.zeros(len(lon)), lon, lon_360=True)
    assert not masks
    assert ((out >= -180) & (out <= 180)).all()
    np.testing.assert_allclose(np.mod(out - np.asarray(lon), 360.0) % 360.0, 0.0, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.lists(valid_dates, min_size=1, max_size=20))
def test_valid_iso_dates_round_trip(days):
    text = [d.isoformat() for d in days]
    out, masks, _, _ = parse_dates(text)
    assert not masks
    np.testing.assert_array_equal(out, np.array(text, dtype="datetime64[D]"))
    df = pd.DataFrame({"lat": 1.0, "lon": 2.0, "species": "Aa bb", "date": text})
    np.testing.assert_array_equal(read_observations(df).date, out)


@settings(max_examples=100, deadline=None)
@given(st.integers(1600, dt.date.today().year), st.integers(1, 12), st.data())
def test_a_day_past_the_end_of_its_month_raises(year, month, data):
    last = calendar.monthrange(year, month)[1]
    day = data.draw(st.integers(last + 1, 99))
    bad = f"{year:04d}-{month:02d}-{day:02d}"
    df = pd.DataFrame(
        {"lat": [1.0, 1.0], "lon": [2.0, 2.0], "species": "Aa bb", "date": ["2020-01-01", bad]}
    )
    with pytest.raises(DateError, match=f"1 of 2 dates are impossible.*row 1 = '{bad}'"):
        read_observations(df)
    _, masks, _, _ = parse_dates([bad])
    assert masks["impossible date"].tolist() == [True]


def test_an_interval_keeps_the_problems_of_both_ends():
    values = [
        "2021-06-14",
        "2021-02-30/2021-13-45",  # both ends impossible
        "2021-06-01/2999-01-01",  # a far-future end
        "2021-06-01/2021-06-xx",  # an end that does not parse
        "2010/2999-01-01",  # a year-only start, an impossible end: impossible
        "2010/2012",  # only years: undated, counted
        "2010-05-01/2010-05-09",
    ]
    result = parse_dates(values, offset=10)
    dates, masks, messages = result[0], result[1], result[2]
    assert masks["impossible date"].tolist() == [0, 1, 1, 0, 1, 0, 0]
    assert masks["unparsable date"].tolist() == [0, 0, 0, 1, 0, 0, 0]
    assert messages["impossible date"].startswith("3 of 7 dates are impossible")
    assert messages["impossible date"].endswith("first: row 11 = '2021-02-30/2021-13-45'")
    assert messages["unparsable date"].endswith("first: row 13 = '2021-06-01/2021-06-xx'")
    assert result[3] == {"dates give only a year; they are kept as undated": 1}
    expected = ["2021-06-14", "NaT", "NaT", "NaT", "NaT", "NaT", "2010-05-05"]
    np.testing.assert_array_equal(dates, np.array(expected, dtype="datetime64[D]"))


def test_merged_reports_add_up_their_counts():
    what = "dates give only a year; they are kept as undated"
    total = InvalidRows()
    for kept, removed in ((10, 0), (9, 1), (10, 0)):
        chunk = InvalidRows(rows_read=10, rows_kept=kept)
        chunk.count(what, 6)  # the same note text in every chunk
        chunk.remove("CATEGORY 'spuh'", removed)
        chunk.note("a remark")
        total.merge(chunk)
    assert total.counted == {what: 18} and total.removed == {"CATEGORY 'spuh'": 1}
    assert total.notes == [
        f"18 of 30 {what}",
        "removed 1 of 30 rows filtered out by design (not errors): 1 with CATEGORY 'spuh'",
        "a remark",
    ]
    assert total.rows_read == total.rows_kept + total.n_dropped + total.n_removed
    assert "removed 1 by design: 1 CATEGORY 'spuh'" in total.summary()
    assert InvalidRows.from_dict(total.as_dict()) == total
    old = {"rows_read": 3, "rows_kept": 3, "dropped": {}, "notes": ["from an old manifest"]}
    assert InvalidRows.from_dict(old).notes == ["from an old manifest"]


@pytest.mark.parametrize(
    "lat, fragment",
    [
        (np.array([True, False]), r"got a bool array of shape \(2,\)"),
        (np.array([44.0 + 1j, 45.0]), r"got a complex128 array of shape \(2,\)"),
        (np.zeros((2, 3)), r"got a float64 array of shape \(2, 3\)"),
        ([[44.0], [45.0]], r"got a float64 array of shape \(2, 1\)"),
        (np.array(["2021-01-01"], "datetime64[D]"), "got a datetime64"),
        ([[44.0, 45.0], [46.0]], "got a ragged sequence"),
        (np.array([44.0, True], dtype=object), "1 of 2 latitudes are booleans or complex numbers"),
        (np.array([44.0, 2j], dtype=object), "first: row 1 = 2j"),
    ],
)
def test_query_coordinates_must_be_1d_real_numbers(lat, fragment):
    with pytest.raises(CoordinateError, match="latitudes must be a 1-D array of real numbers") as e:
        check_lat_lon(lat, [0.0, 1.0])
    assert e.match(fragment)
    lon = check_lat_lon([0.0, 1.0], [0.0, 1.0])[1]
    np.testing.assert_array_equal(lon, [0.0, 1.0])  # plain numbers still pass
