import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoprior import CoordinateError, is_land
from geoprior.maps.land import land_cells

LAND = {
    "Kansas": (38.5, -98.0),
    "London": (51.51, -0.13),
    "Sydney": (-33.87, 151.0),
    "Reykjavik": (64.13, -21.8),
    "inland Iceland": (64.9, -18.6),
    "Antarctic plateau": (-80.0, 0.0),
    "Sahara": (23.0, 12.0),
}
SEA = {
    "mid-Atlantic": (30.0, -40.0),
    "central Pacific": (0.0, -150.0),
    "southern Indian Ocean": (-40.0, 80.0),
    "North Sea": (56.0, 3.0),
}


@pytest.mark.parametrize("name", LAND)
def test_known_land(name):
    assert is_land(*LAND[name]).tolist() == [True]


@pytest.mark.parametrize("name", SEA)
def test_known_sea(name):
    assert is_land(*SEA[name]).tolist() == [False]


def test_vectorised_and_order_kept():
    places = list(LAND.values()) + list(SEA.values())
    lat, lon = np.array(places).T
    out = is_land(lat, lon)
    assert out.shape == (len(places),) and out.dtype == bool
    assert out.tolist() == [True] * len(LAND) + [False] * len(SEA)
    rev = is_land(lat[::-1], lon[::-1])
    np.testing.assert_array_equal(rev, out[::-1])


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-90, 90), st.floats(-180, 180)), min_size=1, max_size=20),
)
def test_any_valid_place_gives_one_bool(places):
    lat, lon = np.array(places).T
    out = is_land(lat, lon)
    assert out.shape == lat.shape and out.dtype == bool


def test_edges_of_the_grid():
    out = is_land([90.0, -90.0, 0.0, 0.0], [180.0, -180.0, 180.0, -180.0])
    assert out.shape == (4,)
    assert out[[0, 2, 3]].tolist() == [False, False, False]  # North Pole, Pacific at 180


@pytest.mark.parametrize(
    "lat, lon",
    [(67.0, 100.0), (67.5, 160.0), (67.0, -120.0), (67.0, 25.0), (-87.0, 0.0)],
    ids=["Siberia", "Kolyma", "Nunavut", "Lapland", "South Pole plateau"],
)
def test_land_near_the_arctic_circle_and_the_pole(lat, lon):
    assert is_land(lat, lon).tolist() == [True]


@pytest.mark.parametrize(
    "lat, lon, fragment",
    [
        (91.0, 0.0, "outside [-90, 90]"),
        (0.0, 200.0, "outside [-180, 180]"),
        (np.nan, 0.0, "missing"),
    ],
)
def test_bad_coordinates_raise(lat, lon, fragment):
    with pytest.raises(CoordinateError, match=fragment.replace("[", r"\[")):
        is_land([0.0, lat], [0.0, lon])


def _check_cells(box, south, west, res, weights):
    w_, s_, e_, n_ = box
    assert south.shape == west.shape == weights.shape
    np.testing.assert_allclose(weights.sum(), 1.0, rtol=1e-9)
    assert (weights > 0).all()
    centre_lat, centre_lon = south + res / 2, west + res / 2
    assert ((centre_lat >= s_) & (centre_lat <= n_)).all()
    assert is_land(centre_lat, centre_lon).all()


def test_land_cells_in_a_box():
    box = (-100.0, 35.0, -95.0, 40.0)  # Kansas
    south, west, res, weights = land_cells(*box)
    assert res == pytest.approx(0.1)
    _check_cells(box, south, west, res, weights)
    assert ((west + res / 2 >= -100.0) & (west + res / 2 <= -95.0)).all()
    assert south.size == pytest.approx(50 * 50, rel=0.05)  # all land
    # weights follow cell area: a cell further north weighs less
    north_cells, south_cells = weights[south > 39.5], weights[south < 35.5]
    assert north_cells.mean() < south_cells.mean()


def test_land_cells_whole_world_and_open_sea():
    south, west, res, weights = land_cells()
    np.testing.assert_allclose(weights.sum(), 1.0)
    assert 0.2 < south.size / (1800 * 3600) < 0.4  # about 29% of the globe is land
    empty = land_cells(-40.0, 25.0, -35.0, 30.0)  # mid-Atlantic
    assert empty[0].size == 0 and empty[3].size == 0


def test_land_cells_across_the_antimeridian():
    box = (170.0, -25.0, -170.0, 70.0)  # west > east: Fiji, Kamchatka, Chukotka, Alaska tip
    south, west, res, weights = land_cells(*box)
    _check_cells(box, south, west, res, weights)
    centre_lon = west + res / 2
    assert ((centre_lon >= 170.0) | (centre_lon <= -170.0)).all()
    east_side = (centre_lon <= -170.0) & (south > 60.0)  # Chukotka east of 180
    fiji = (centre_lon > 177.0) & (south > -19.5) & (south < -15.5)
    kamchatka = (centre_lon > 170.0) & (centre_lon < 180.0) & (south > 60.0)
    assert east_side.any() and fiji.any() and kamchatka.any()
    west_only = land_cells(170.0, -25.0, 180.0, 70.0)
    assert west_only[0].size < south.size
