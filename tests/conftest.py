"""Shared fixtures: small synthetic observations and one small trained prior per session."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geoprior import GeoPrior, ModelConfig, Observations, TrainConfig, train_prior
from geoprior.core.encoding import EncoderSpec, encode_inputs
from geoprior.core.model import GeoNet
from geoprior.priors.header import PriorHeader

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


def random_prior(
    n_species: int,
    *,
    width: int = 16,
    depth: int = 1,
    loss: str = "an_full",
    head_rank: int = 0,
    use_date: bool = False,
    n_covariates: int = 0,
    seed: int = 0,
    members: int = 1,
) -> GeoPrior:
    """A GeoPrior with random weights (no training): species ``s0, s1, ...``; with
    ``members > 1`` an ensemble of that many networks (a leading member axis)."""
    enc = EncoderSpec(kind="fourier", n_features=8, min_km=100.0)
    model = ModelConfig(width=width, depth=depth, dropout=0.0, head_rank=head_rank)
    doy = jnp.ones(1) if use_date else None
    cov = jnp.zeros((1, n_covariates)) if n_covariates else None
    x = encode_inputs(enc, enc.frequencies(), jnp.zeros(1), jnp.zeros(1), doy, cov)
    net = GeoNet(n_species, model, observation_head=loss == "joint")
    if members == 1:
        params = net.init(jax.random.PRNGKey(seed), x)["params"]
    else:
        keys = jax.random.split(jax.random.PRNGKey(seed), members)
        params = jax.vmap(lambda k: net.init(k, x)["params"])(keys)
    header = PriorHeader(
        config={"loss": loss, "model": model.to_dict(), "members": members},
        resolved={"use_date": use_date, "encoder": enc.to_dict()},
        covariates=[f"c{i}" for i in range(n_covariates)],
        extent={"bbox": [-180.0, -90.0, 180.0, 90.0]},
    ).to_dict()
    stats = np.arange(1, n_covariates + 1, dtype=np.float32) if n_covariates else None
    return GeoPrior(
        [f"s{i}" for i in range(n_species)],
        jax.device_get(params),
        header,
        cov_mean=stats,
        cov_std=stats,
    )


@pytest.fixture(scope="module")
def saved_prior(tmp_path_factory, trained_prior, synthetic_obs):
    """The session's trained prior with LPT thresholds, saved once per test module."""
    from geoprior.maps.thresholds import compute_thresholds

    prior = GeoPrior(
        trained_prior.species,
        trained_prior.params,
        dict(trained_prior.header),
        thresholds=compute_thresholds(trained_prior, synthetic_obs),
        anchors=trained_prior.anchors,
        support=trained_prior.support,
    )
    path = tmp_path_factory.mktemp("saved") / "small.prior"
    prior.save(path)
    return path
