"""Tests of the Prior contract: capabilities read once, top_k for every prior, and
validated queries that are not validated again."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import geoprior.query as query_module
from geoprior import BirdNETPrior, CoordinateError, CountGridPrior, FrequencyPrior, Observations
from geoprior.fusion import rerank
from geoprior.maps import range_map, uses_dates
from geoprior.priors.protocol import (
    ColumnScoring,
    QueryAnswering,
    scores_columns,
    top_k,
    top_k_frame,
    uses_date,
)
from geoprior.query import Query, known_query, prepare_query

LAT = np.array([44.0, 44.1, -33.9, -34.0, 10.0])
LON = np.array([-71.3, -71.2, 151.2, 151.1, 0.0])


@pytest.fixture(scope="module")
def grid_prior():
    obs = Observations.from_arrays(
        np.r_[np.full(30, 44.0), np.full(20, -33.9)],
        np.r_[np.full(30, -71.3), np.full(20, 151.2)],
        ["a"] * 20 + ["b"] * 10 + ["c"] * 20,
        date=np.full(50, np.datetime64("2021-06-14")),
    )
    return CountGridPrior.fit(obs, res=3)


@pytest.fixture()
def lat_lon_checks(monkeypatch):
    """How often the public query check runs."""
    calls = []
    check = query_module.check_lat_lon

    def counting(*args, **kwargs):
        calls.append(1)
        return check(*args, **kwargs)

    monkeypatch.setattr(query_module, "check_lat_lon", counting)
    return calls


def test_top_k_of_a_baseline_ranks_its_predict(grid_prior):
    expected = top_k_frame(grid_prior.predict(LAT, LON), grid_prior.species, 2)
    pd.testing.assert_frame_equal(top_k(grid_prior, LAT, LON, k=2), expected)
    assert top_k(grid_prior, LAT, LON, k=2)["species"].iloc[0] == "a"


def test_top_k_uses_a_priors_own_ranking(trained_prior):
    pd.testing.assert_frame_equal(
        top_k(trained_prior, LAT, LON, "2021-06-14", k=3),
        trained_prior.top_k(LAT, LON, "2021-06-14", k=3),
    )


def test_capabilities_are_declared_by_the_priors(trained_prior, grid_prior):
    assert isinstance(trained_prior, ColumnScoring) and scores_columns(trained_prior)
    assert isinstance(trained_prior, QueryAnswering) and isinstance(grid_prior, QueryAnswering)
    assert not scores_columns(grid_prior)
    assert uses_date(trained_prior) and not uses_date(FrequencyPrior(["a"], [1.0]))

    class Declared:  # a declaration wins over the signature
        species = ("a",)
        scores_columns = False

        def predict(self, lat, lon, date=None, species=None): ...

    assert not scores_columns(Declared())


def test_birdnet_says_it_uses_dates_instead_of_being_named():
    assert BirdNETPrior.uses_date is True

    class BirdNETPrior_:  # a name no longer decides anything
        species = ("a",)

        def predict(self, lat, lon, date=None): ...

    BirdNETPrior_.__name__ = "BirdNETPrior"
    assert not uses_dates(BirdNETPrior_())
    seasonal = BirdNETPrior_()
    seasonal.uses_date = True
    assert uses_dates(seasonal)


def test_prepare_query_returns_a_query_and_known_query_broadcasts():
    q = prepare_query(LAT, LON, "2021-06-14")
    assert isinstance(q, Query) and q.dates.size == LAT.size
    k = known_query(LAT, LON, np.datetime64("2021-06-14"))
    for a, b in zip(q, k):
        np.testing.assert_array_equal(a, b)
    assert np.isnat(known_query(LAT, LON).dates).all()


def test_a_prepared_query_is_answered_as_the_public_call_would(grid_prior, lat_lon_checks):
    q = prepare_query(LAT, LON, "2021-06-14")
    assert len(lat_lon_checks) == 1
    np.testing.assert_array_equal(grid_prior.predict_query(q), grid_prior.predict(LAT, LON, q.dates))
    assert len(lat_lon_checks) == 2  # predict checks, predict_query does not


def test_rerank_validates_coordinates_once(grid_prior, lat_lon_checks):
    logits = np.zeros((LAT.size, 3))
    lat = LAT.copy()
    lat[4] = np.nan  # no location: the classifier alone
    result = rerank(logits, grid_prior.species, grid_prior, lat, LON, "2021-06-14")
    assert not lat_lon_checks  # rerank checked them; the prior is not asked to again
    assert result.no_location.tolist() == [False] * 4 + [True]
    assert result.top_species[0, 0] == "a" and result.top_species[2, 0] == "c"
    with pytest.raises(CoordinateError, match="outside"):
        rerank(logits, grid_prior.species, grid_prior, LAT + 100, LON)


def test_range_map_does_not_revalidate_its_cell_centres(grid_prior, lat_lon_checks):
    frame = range_map(grid_prior, "a", res=2, threshold=0.5, land_only=False,
                      bbox=(-80, 40, -60, 50))
    assert not lat_lon_checks
    assert frame["in_range"].any() and len(frame) > 1
