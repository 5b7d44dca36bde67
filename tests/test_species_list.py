"""Tests of geoprior.fusion.species_list and the ``geoprior species-list`` command."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from geoprior import FrequencyPrior, Observations
from geoprior.cli import main
from geoprior.errors import (
    ConfigError,
    CoordinateError,
    DateError,
    OutsideExtentWarning,
    SwappedCoordinatesWarning,
)
from geoprior.fusion import species_list, week_dates
from geoprior.priors.adapters.birdnet import birdnet_weeks

SETTINGS = settings(max_examples=25, deadline=None)
EUROPE, NORTH, FAR = (48.0, 10.0), (60.0, -100.0), (0.0, -30.0)  # FAR: mid-Atlantic


@pytest.fixture(scope="module")
def prior_dir(trained_prior, tmp_path_factory):
    path = tmp_path_factory.mktemp("sl") / "regions.prior"
    trained_prior.save(path)
    return path


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_error(result, fragment, code=1):
    assert result.exit_code == code, (result.output, result.exception)
    assert "Traceback" not in result.output and fragment in result.stderr, result.stderr


# ---------------------------------------------------------------------------- weeks
@SETTINGS
@given(st.integers(1, 48), st.integers(1901, 2099))
def test_a_week_is_a_day_of_that_week_in_birdnet_s_calendar(week, year):
    day = week_dates([week], year=year)
    assert birdnet_weeks(day)[0] == week
    assert day[0].astype(object).year == year


def test_week_dates_are_mid_week_and_year_round_is_nat():
    days = week_dates(np.arange(1, 49))
    np.testing.assert_array_equal(birdnet_weeks(days), np.arange(1, 49))
    assert str(days[0]) == "2021-01-04" and str(days[3]) == "2021-01-26"  # 22-31: the 26th
    assert np.isnat(week_dates([-1, None])).all()
    for bad in ([0], [49], [2.5], ["x"]):
        with pytest.raises(DateError, match=r"1 of 1 weeks are not whole weeks 1-48"):
            week_dates(bad)


# ---------------------------------------------------------------------------- the library
def test_k_ranks_the_observation_output_and_adds_presence(trained_prior):
    lat, lon = [EUROPE[0], NORTH[0]], [EUROPE[1], NORTH[1]]
    frame = species_list(trained_prior, lat, lon, "2021-07-01", k=3)
    assert frame.columns.tolist() == ["row", "rank", "species", "prob", "presence",
                                      "outside_extent"]
    expected = trained_prior.top_k(lat, lon, "2021-07-01", k=3)
    assert frame["species"].tolist() == expected["species"].tolist()
    np.testing.assert_allclose(frame["prob"], expected["prob"], rtol=1e-5)
    assert frame["row"].tolist() == [0, 0, 0, 1, 1, 1] and frame["rank"].tolist() == [1, 2, 3] * 2
    for row, (a, o) in enumerate(zip(lat, lon, strict=True)):
        part = frame[frame["row"] == row]
        presence = trained_prior.predict(a, o, "2021-07-01", species=part["species"].tolist(),
                                         output="presence")[0]
        np.testing.assert_allclose(part["presence"], presence, rtol=1e-5)
    assert "observation made here" in frame.attrs["meaning"]
    assert "the 3 species with the highest prob" in frame.attrs["meaning"]
    assert not frame["outside_extent"].any()
    # the summer species is listed in July, the winter one in January
    summer = species_list(trained_prior, *EUROPE, week=27, k=1)["species"].iloc[0]
    winter = species_list(trained_prior, *EUROPE, week=2, k=1)["species"].iloc[0]
    assert (summer, winter) == ("Aestiva summer", "Hiemalis winter")


@SETTINGS
@given(st.floats(0.0, 1.0), st.sampled_from([None, 1, 2]))
def test_min_prob_lists_exactly_the_species_whose_presence_passes(trained_prior, p, k):
    frame = species_list(trained_prior, *EUROPE, week=27, min_prob=p, k=k)
    presence = trained_prior.predict(*EUROPE, week_dates([27]), output="presence")[0]
    passing = [s for s, v in zip(trained_prior.species, presence, strict=True) if v >= p]
    passing.sort(key=lambda s: -presence[trained_prior.species.index(s)])
    assert frame["species"].tolist() == passing[:k]
    assert (np.diff(frame["presence"]) <= 0).all()
    assert f"presence >= {p:g}" in frame.attrs["meaning"]


def test_in_range_uses_the_prior_s_own_thresholds(trained_prior):
    frame = species_list(trained_prior, *EUROPE, week=27, in_range=True)
    presence = trained_prior.predict(*EUROPE, week_dates([27]), output="presence")[0]
    expected = {s for s, v, t in zip(trained_prior.species, presence, trained_prior.thresholds,
                                     strict=True) if v >= t}
    assert set(frame["species"]) == expected and "Europaea gamma" in expected
    assert "own threshold" in frame.attrs["meaning"]
    obs = Observations.from_arrays([1.0, 2.0], [1.0, 2.0], ["Aa bb", "Cc dd"])
    with pytest.raises(ConfigError, match="no stored thresholds"):
        species_list(FrequencyPrior.fit(obs), 1.0, 1.0, in_range=True)


def test_outside_the_extent_is_flagged_and_warned(trained_prior):
    with pytest.warns(OutsideExtentWarning, match=r"1 of 2 places are outside the prior's "
                      r"training extent \(first: row 1, \(0, -30\), [\d,]+ km from the nearest"):
        frame = species_list(trained_prior, [EUROPE[0], FAR[0]], [EUROPE[1], FAR[1]], k=2)
    assert frame.groupby("row")["outside_extent"].first().tolist() == [False, True]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        species_list(trained_prior, *EUROPE, k=2)


def test_common_names_from_a_taxonomy_the_caller_or_the_prior():
    obs = Observations.from_arrays([44.0, 44.1, 30.0], [-71.3, -71.2, -90.0],
                                   ["Setophaga virens", "Setophaga virens", "Zenaida macroura"])
    prior = FrequencyPrior.fit(obs)
    taxonomy = pd.DataFrame({"SPECIES_CODE": ["btnwar"], "SCI_NAME": ["Setophaga virens"],
                             "PRIMARY_COM_NAME": ["Black-throated Green Warbler"]})
    frame = species_list(prior, 44.0, -71.3, k=2, taxonomy=taxonomy)
    assert frame["species"].tolist() == ["Setophaga virens", "Zenaida macroura"]
    assert frame["common_name"].iloc[0] == "Black-throated Green Warbler"
    assert pd.isna(frame["common_name"].iloc[1])  # not in the taxonomy
    assert "presence" not in frame.columns and "outside_extent" not in frame.columns
    assert "FrequencyPrior's score" in frame.attrs["meaning"]
    given = species_list(prior, 44.0, -71.3, k=1, common_names=["BTGW", "MODO"])
    assert given["common_name"].tolist() == ["BTGW"]
    prior.common_names = ("Black-throated Green Warbler", "Mourning Dove")  # as BirdNET's
    listed = species_list(prior, 30.0, -90.0, k=2)
    assert listed["common_name"].tolist() == [
        dict(zip(prior.species, prior.common_names, strict=True))[s] for s in listed["species"]]
    with pytest.raises(Exception, match="1 common names for 2 species"):
        species_list(prior, 30.0, -90.0, common_names=["x"])


@pytest.mark.filterwarnings("ignore::geoprior.errors.OutsideExtentWarning")
def test_argument_and_place_errors(trained_prior):
    with pytest.raises(ConfigError, match="date or week, not both"):
        species_list(trained_prior, 1.0, 1.0, "2021-01-01", week=3)
    with pytest.raises(ConfigError, match="min_prob or in_range"):
        species_list(trained_prior, 1.0, 1.0, min_prob=0.1, in_range=True)
    with pytest.raises(ConfigError, match="min_prob must be a probability"):
        species_list(trained_prior, 1.0, 1.0, min_prob=1.5)
    with pytest.raises(ConfigError, match="k must be >= 1"):
        species_list(trained_prior, 1.0, 1.0, k=0)
    with pytest.raises(CoordinateError, match=r"latitudes outside.*swapped\?"):
        species_list(trained_prior, [-100.0, 10.0], [60.0, 48.0])
    with pytest.warns(SwappedCoordinatesWarning, match="2 of 2 places are outside"):
        species_list(trained_prior, [10.0, 10.5], [48.0, 47.5])


# ---------------------------------------------------------------------------- the command
def test_cli_one_place_prints_a_table_and_says_what_the_numbers_mean(prior_dir, trained_prior):
    result = run("species-list", prior_dir, "--lat", 48, "--lon", 10, "--week", 27, "-k", 2)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[0].split() == ["rank", "species", "prob", "presence", "outside_extent"]
    assert "Aestiva summer" in lines[1] and len(lines) == 3
    assert "prob: the probability that an observation made here" in result.stderr
    for args in (["--format", "csv"], ["-o", "-", "--format", "csv"]):
        csv = run("species-list", prior_dir, "--lat", 48, "--lon", 10, "--week", 27, "-k", 2,
                  *args)
        assert csv.exit_code == 0, csv.output
        assert csv.stdout.splitlines()[0] == "rank,species,prob,presence,outside_extent"
    expected = species_list(trained_prior, 48.0, 10.0, week=27, k=2)
    got = pd.read_csv(pd.io.common.StringIO(csv.stdout))
    np.testing.assert_allclose(got["prob"], expected["prob"], rtol=1e-5)


def test_cli_points_file_passes_every_column_through(prior_dir, trained_prior, tmp_path):
    points = pd.DataFrame({
        "id": ["007", "008", "009"],
        "latitude": [EUROPE[0], NORTH[0], FAR[0]],
        "longitude": [EUROPE[1], NORTH[1], FAR[1]],
        "date": ["2021-07-01", "", "2021-01-15"],
        "observer": ["ann", "bo", "cy"],
    })  # fmt: skip
    points.to_csv(tmp_path / "points.csv", index=False)
    for suffix in ("csv", "parquet"):
        out = tmp_path / f"list.{suffix}"
        result = run("species-list", prior_dir, "--points", tmp_path / "points.csv",
                     "--min-prob", 0.05, "-k", 3, "-o", out)
        assert result.exit_code == 0, result.output
        frame = pd.read_csv(out, dtype={"id": str}) if suffix == "csv" else pd.read_parquet(out)
        assert frame.columns.tolist()[:5] == ["id", "latitude", "longitude", "date", "observer"]
        assert set(frame["id"]) <= {"007", "008", "009"} and "007" in set(frame["id"])
        assert "warning: 1 of 3 places are outside the prior's training extent" in result.stderr
        assert "presence >= 0.05" in result.stderr and f"wrote {len(frame)} rows" in result.stderr
    dates = points["date"].replace("", None).to_numpy(dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OutsideExtentWarning)
        expected = species_list(trained_prior, points["latitude"], points["longitude"], dates,
                                min_prob=0.05, k=3)
    assert frame["species"].tolist() == expected["species"].tolist()
    assert frame["observer"].tolist() == points["observer"].iloc[expected["row"]].tolist()
    # a week column, and --week for the rows without one
    points.drop(columns="date").assign(week=[27, None, 2]).to_parquet(tmp_path / "weeks.parquet")
    result = run("species-list", prior_dir, "--points", tmp_path / "weeks.parquet", "-k", 1,
                 "--week", 27, "--format", "csv")
    assert result.exit_code == 0, result.output
    listed = pd.read_csv(pd.io.common.StringIO(result.stdout))
    assert listed["week"].isna().tolist() == [False, True, False]  # as in the file
    assert listed["id"].tolist() == [7, 8, 9]
    assert listed.loc[0, "species"] == "Aestiva summer"


def test_cli_common_names_from_a_taxonomy(prior_dir, tmp_path):
    path = tmp_path / "taxonomy.csv"
    pd.DataFrame({"SPECIES_CODE": ["aessum"], "SCI_NAME": ["Aestiva summer"],
                  "PRIMARY_COM_NAME": ["Summer Bird"]}).to_csv(path, index=False)
    result = run("species-list", prior_dir, "--lat", 48, "--lon", 10, "--week", 27, "-k", 1,
                 "--taxonomy", path, "--format", "json")
    assert result.exit_code == 0, result.output
    assert '"common_name":"Summer Bird"' in result.stdout


def test_cli_usage_errors(prior_dir, tmp_path):
    base = ["species-list", prior_dir]
    assert_error(run(*base), "give --lat and --lon, or --points", code=2)
    pd.DataFrame({"lat": [1.0], "lon": [1.0]}).to_csv(tmp_path / "p.csv", index=False)
    assert_error(run(*base, "--lat", 1, "--lon", 1, "--points", tmp_path / "p.csv"),
                 "not both", code=2)
    assert_error(run(*base, "--lat", 1, "--lon", 1, "--date", "2021-01-01", "--week", 2),
                 "--date or --week", code=2)
    assert_error(run(*base, "--lat", 1, "--lon", 1, "--min-prob", 0.1, "--in-range"),
                 "--min-prob or --in-range", code=2)
    assert_error(run(*base, "--lat", 1, "--lon", 1, "--week", 49), "49", code=2)
    assert_error(run(*base, "--lat", 1, "--lon", 1, "-o", tmp_path / "x.txt"),
                 "cannot write a table to a .txt file")
    assert_error(run(*base, "--lat", 1, "--lon", 1, "-o", tmp_path / "x.csv", "--format", "json"),
                 "does not match", code=2)
    pd.DataFrame({"a": [1.0], "b": [1.0]}).to_csv(tmp_path / "bad.csv", index=False)
    assert_error(run(*base, "--points", tmp_path / "bad.csv"), "needs latitude and longitude")
    pd.DataFrame({"lat": [1.0], "lon": [1.0], "species": ["x"]}).to_csv(tmp_path / "s.csv",
                                                                        index=False)
    assert_error(run(*base, "--points", tmp_path / "s.csv"), "'species', which the list adds")
    assert_error(run(*base, "--lat", 95, "--lon", 1), "outside [-90, 90]")
