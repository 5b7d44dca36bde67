"""Shared fixtures: small synthetic observations and one small trained prior per session."""

from __future__ import annotations

import numpy as np
import pytest

from geoprior import ModelConfig, Observations, TrainConfig, train_prior

# species name -> (lat, lon) centre of its range, far apart
REGIONS = {
    "Borealis alpha": (60.0, -100.0),
    "Australis beta": (-25.0, 135.0),
    "Europaea gamma": (48.0, 10.0),
}


def small_config(**kw) -> TrainConfig:
    """A tiny network that trains in seconds on CPU."""
    base = dict(
        model=ModelConfig(width=32, depth=1, dropout=0.0),
        n_features=32,
        batch_size=128,
        steps=300,
        learning_rate=3e-3,
        checkpoint_every=100,
    )
    base.update(kw)
    return TrainConfig(**base)


def regional_observations(n_per_species: int = 200, seed: int = 0) -> Observations:
    """Three species, each within ~3 degrees of its own centre; a summer-only species shares
    the European site with a winter-only one."""
    rng = np.random.default_rng(seed)
    lat, lon, sp, date = [], [], [], []
    for name, (clat, clon) in REGIONS.items():
        lat.append(clat + rng.normal(0, 1.5, n_per_species))
        lon.append(clon + rng.normal(0, 1.5, n_per_species))
        sp += [name] * n_per_species
        date.append(np.datetime64("2020-01-01") + rng.integers(0, 365, n_per_species))
    for name, days in (("Aestiva summer", (160, 230)), ("Hiemalis winter", (0, 50))):
        lat.append(48.0 + rng.normal(0, 1.5, n_per_species))
        lon.append(10.0 + rng.normal(0, 1.5, n_per_species))
        sp += [name] * n_per_species
        date.append(np.datetime64("2020-01-01") + rng.integers(*days, n_per_species))
    return Observations.from_arrays(
        np.concatenate(lat), np.concatenate(lon), sp, date=np.concatenate(date)
    )


@pytest.fixture(scope="session")
def synthetic_obs() -> Observations:
    return regional_observations()


@pytest.fixture(scope="session")
def trained_prior(synthetic_obs):
    return train_prior(synthetic_obs, small_config(), progress=False)
