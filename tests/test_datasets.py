import numpy as np
import pandas as pd
import pytest

from geoprior import ConfigError, Observations, load_sample
from geoprior.io.samples import SAMPLES, sample_path


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_file_has_the_documented_columns(name):
    with sample_path(name).open("rb") as f:
        head = pd.read_csv(f, compression="gzip", nrows=5)
    assert list(head.columns) == ["site", "plot", "date", "species", "latitude", "longitude"]


@pytest.fixture(scope="module")
def bird():
    return load_sample("neon_bird")


def test_bird_sample_loads_whole(bird):
    assert isinstance(bird, Observations)
    assert bird.n_species > 500 and len(bird) > 60_000
    assert bird.report.n_dropped == 0
    assert bird.has_date.all()
    assert bird.site is not None and len(set(bird.site)) > 100
    assert (bird.species_counts() > 0).all()
    years = bird.year()
    assert 2013 <= years.min() and years.max() <= 2021
    # NEON spans Puerto Rico to Alaska and Hawaii
    e = bird.extent()
    assert 17 <= e["south"] < 20 and 65 < e["north"] <= 72
    assert -160 <= e["west"] < -150 and -67 < e["east"] <= -64


@pytest.mark.parametrize("name", ["neon_beetle", "neon_mosquito"])
def test_other_samples_load(name):
    obs = load_sample(name)
    assert obs.n_species > 100 and len(obs) > 1000
    assert obs.has_date.mean() > 0.99
    assert ((obs.lat > 17) & (obs.lat < 72)).all()
    assert ((obs.lon > -160) & (obs.lon < -64)).all()
    df = obs.to_frame()
    assert {"latitude", "longitude", "date", "species", "site"} <= set(df.columns)
    assert not df["species"].isna().any()


def test_unknown_sample_name_suggests():
    with pytest.raises(
        ConfigError, match=r"no sample named 'neon_birds'.*Did you mean 'neon_bird'"
    ):
        load_sample("neon_birds")
    with pytest.raises(ConfigError, match="samples: neon_bird, neon_beetle, neon_mosquito"):
        sample_path("xyz")


def test_sample_is_deterministic(bird):
    again = load_sample("neon_bird")
    np.testing.assert_array_equal(again.lat, bird.lat)
    assert again.species == bird.species
