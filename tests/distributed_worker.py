"""Run by tests/test_distributed.py in a fresh interpreter (device count and the
multi-process runtime are fixed when JAX starts): trains a small prior and saves its loss
curve and weights to ``OUT.npz``.

    python distributed_worker.py OUT [--store STORE] [key=value config updates ...]
    python distributed_worker.py OUT --predict

With ``--store`` it trains from that column store instead of the in-memory observations;
with ``--predict`` it scores random-weight priors instead (see :func:`scores`).
"""

from __future__ import annotations

import json
import sys

import numpy as np
from conftest import regional_observations, small_config

from geoprior.train import distributed


def scores() -> dict[str, np.ndarray]:
    """Predictions of random-weight priors: every species, chosen ones, chunked maxent."""
    from conftest import random_prior

    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-80, 80, 999), rng.uniform(-180, 180, 999)
    full = random_prior(37, use_date=True)
    maxent = random_prior(37, loss="maxent", head_rank=4)
    return {
        "every": full.predict(lat, lon, "2021-06-01", batch_size=300),
        "chosen": full.predict(lat, lon, species=[3, 1, 30], batch_size=512),
        "maxent": maxent.log_prob(lat, lon, species_chunk=8, batch_size=512),
    }


def main(out: str, *updates: str) -> None:
    if updates == ("--predict",):
        np.savez(out, **scores())
        return
    if distributed.ENV_COORDINATOR in __import__("os").environ:
        distributed.initialize()
    import jax

    from geoprior import ColumnStore, train_prior

    data = regional_observations()
    if updates and updates[0] == "--store":
        data, updates = ColumnStore.open(updates[1]), updates[2:]
    config = small_config(steps=40, checkpoint_every=20).with_updates(
        {k: json.loads(v) for k, v in (u.split("=", 1) for u in updates)}
    )
    prior = train_prior(data, config, progress=False)
    leaves = jax.tree_util.tree_leaves(prior.params)
    np.savez(
        out,
        losses=prior.loss_curve,
        devices=prior.header["training"]["devices"],
        processes=jax.process_count(),
        **{f"p{i}": np.asarray(x) for i, x in enumerate(leaves)},
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
