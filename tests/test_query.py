import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoprior import ClassMismatchError, CoordinateError, DateError, UnknownSpeciesError
from geoprior.query import prepare_query, species_indices

D = np.datetime64("2021-06-14", "D")
NAT = np.datetime64("NaT", "D")


def test_no_date_means_undated_rows():
    lat, lon, dates = prepare_query([1.0, 2.0], [3.0, 4.0])
    assert lat.dtype == lon.dtype == np.float64
    assert dates.dtype == np.dtype("datetime64[D]") and np.isnat(dates).all() and dates.size == 2


@pytest.mark.parametrize(
    "date",
    [
        "2021-06-14",
        "2021-06-14T09:30:00Z",
        dt.date(2021, 6, 14),
        dt.datetime(2021, 6, 14, 9, 30),
        pd.Timestamp("2021-06-14 23:59"),
        np.datetime64("2021-06-14T10:00"),
        ["2021-06-14"],
    ],
    ids=repr,
)
def test_one_date_of_any_kind_broadcasts(date):
    _, _, dates = prepare_query([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], date)
    assert dates.tolist() == [D.item()] * 3


@pytest.mark.parametrize(
    "dates",
    [
        ["2021-06-14", None, "2021-01-02"],
        [dt.date(2021, 6, 14), None, dt.date(2021, 1, 2)],
        [dt.datetime(2021, 6, 14, 5), "", "2021-01-02"],
        [np.datetime64("2021-06-14"), None, np.datetime64("2021-01-02")],
        np.array(["2021-06-14", "NaT", "2021-01-02"], dtype="datetime64[D]"),
        pd.Series(["2021-06-14", None, "2021-01-02"]),
    ],
    ids=["str", "date", "datetime", "datetime64", "array", "series"],
)
def test_a_date_per_row_with_undated_rows(dates):
    _, _, out = prepare_query([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], dates)
    assert out[0] == D and np.isnat(out[1]) and out[2] == np.datetime64("2021-01-02")


@settings(max_examples=40, deadline=None)
@given(st.dates(dt.date(1700, 1, 1), dt.date(2025, 12, 31)), st.integers(1, 5))
def test_any_real_date_round_trips(day, n):
    _, _, out = prepare_query(np.zeros(n), np.zeros(n), day.isoformat())
    assert out.tolist() == [day] * n
    _, _, out = prepare_query(np.zeros(n), np.zeros(n), [day] * n)
    assert out.tolist() == [day] * n


@pytest.mark.parametrize(
    "date, fragment",
    [
        ("2021-02-30", "1 of 1 dates are impossible"),
        ("14/06/2021x", "could not be parsed"),
        (["2021-01-01", "2021-13-01"], "first: row 1 = '2021-13-01'"),
        ("20210-01-01", "impossible"),
    ],
)
def test_bad_dates_raise(date, fragment):
    with pytest.raises(DateError, match=fragment):
        prepare_query([1.0, 2.0], [0.0, 0.0], date)


def test_mismatched_lengths_raise():
    with pytest.raises(ClassMismatchError, match="got 3 locations but 2 dates"):
        prepare_query([1.0, 2.0, 3.0], [0.0] * 3, ["2021-01-01"] * 2)
    with pytest.raises(ClassMismatchError, match="got 1 locations but 2 dates"):
        prepare_query(1.0, 0.0, ["2021-01-01"] * 2)
    with pytest.raises(CoordinateError, match="3 latitudes but 2 longitudes"):
        prepare_query([1.0, 2.0, 3.0], [0.0] * 2)


def test_bad_coordinates_raise():
    with pytest.raises(CoordinateError, match="1 of 3 latitudes outside"):
        prepare_query([1.0, -95.0, 3.0], [0.0] * 3)
    with pytest.raises(CoordinateError, match="are not numbers"):
        prepare_query(["52N"], [0.0])


def test_species_indices():
    species = ("a b", "c d", "e f")
    assert species_indices(["e f", "a b"], species).tolist() == [2, 0]
    assert species_indices("c d", species).tolist() == [1]
    assert species_indices([], species).tolist() == []
    with pytest.raises(UnknownSpeciesError, match=r"2 unknown.*'e g', 'x'.*Did you mean 'e f'"):
        species_indices(["a b", "e g", "x"], species)


def test_species_names_match_in_any_unicode_form_and_spacing():
    species = ["Pica pica", "Anser an\u00e9r"]  # NFC
    nfd = "Anser ane\u0301r"
    assert species_indices([nfd, " Pica  pica"], species).tolist() == [1, 0]
    exact = ["Pica  pica", "Pica pica"]  # an old prior with both spellings: exact wins
    assert species_indices(["Pica  pica", "Pica pica"], exact).tolist() == [0, 1]
    with pytest.raises(UnknownSpeciesError):
        species_indices(["pica pica"], species)  # case is a different name
