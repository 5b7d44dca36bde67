"""Many devices and many processes, on CPU: each run starts a fresh interpreter with
``--xla_force_host_platform_device_count`` or JAX's distributed runtime."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import regional_observations, small_config

from geoprior import ConfigError, TrainConfig, train_prior
from geoprior.train import resolve_config
from geoprior.train.distributed import make_mesh, shard_range

HERE = Path(__file__).parent
WORKER = HERE / "distributed_worker.py"


def _env(devices: int = 1, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GEOPRIOR_")}
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def _run(out: Path, *updates: str, devices: int = 1) -> dict:
    subprocess.run(
        [sys.executable, str(WORKER), str(out), *updates],
        env=_env(devices),
        check=True,
        timeout=300,
        capture_output=True,
    )
    with np.load(out) as z:
        return dict(z)


def _params(result: dict) -> list[np.ndarray]:
    return [result[f"p{i}"] for i in range(sum(k.startswith("p") for k in result) - 1)]


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("d1") / "one.npz")


@pytest.mark.parametrize(
    "updates", [(), ("model_parallel=2",), ('loss="an_ssdl"',)], ids=["data", "model", "ssdl"]
)
def test_two_devices_follow_the_one_device_loss_curve(one_device, tmp_path, updates):
    two = _run(tmp_path / "two.npz", *updates, devices=2)
    assert int(two["devices"]) == 2 and int(one_device["devices"]) == 1
    if updates == ('loss="an_ssdl"',):
        one = _run(tmp_path / "one.npz", *updates)
    else:
        one = one_device
    np.testing.assert_allclose(two["losses"], one["losses"], rtol=2e-4, atol=1e-6)
    for a, b in zip(_params(two), _params(one)):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5)


def test_model_parallel_pads_a_head_that_does_not_split_evenly(tmp_path):
    # 5 species over 2 devices: the head is padded to 6 columns in training, 5 when saved
    two = _run(tmp_path / "mp.npz", "model_parallel=2", devices=2)
    one = _run(tmp_path / "one.npz")
    heads = [p for p in _params(two) if p.shape[-1] == 5]
    assert heads and all(p.shape == q.shape for p, q in zip(_params(two), _params(one)))


def test_scoring_splits_places_over_local_devices(tmp_path):
    from distributed_worker import scores

    two = _run(tmp_path / "scores.npz", "--predict", devices=2)
    for name, one in scores().items():
        np.testing.assert_allclose(two[name], one, rtol=1e-5, atol=1e-6, err_msg=name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_train_one_prior_from_a_column_store(tmp_path):
    from geoprior import convert_to_columns

    regional_observations().to_frame().to_parquet(tmp_path / "obs.parquet")
    store = convert_to_columns(tmp_path / "obs.parquet", tmp_path / "store")
    port = _free_port()
    procs = []
    for pid in range(2):
        env = _env(
            1,
            GEOPRIOR_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
            GEOPRIOR_NUM_PROCESSES="2",
            GEOPRIOR_PROCESS_ID=str(pid),
        )
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(WORKER),
                    str(tmp_path / f"p{pid}.npz"),
                    "--store",
                    str(store.path),
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
        )
    for p in procs:
        output = p.communicate(timeout=300)[0].decode(errors="replace")
        assert p.returncode == 0, output[-3000:]
    results = [dict(np.load(tmp_path / f"p{pid}.npz")) for pid in range(2)]
    assert [int(r["processes"]) for r in results] == [2, 2]
    assert [int(r["devices"]) for r in results] == [2, 2]
    # one model: both processes end with the same weights and the same loss curve
    np.testing.assert_array_equal(results[0]["losses"], results[1]["losses"])
    for a, b in zip(_params(results[0]), _params(results[1])):
        np.testing.assert_array_equal(a, b)
    losses = results[0]["losses"]
    assert np.isfinite(losses).all() and losses[-10:].mean() < losses[:10].mean()


def test_shard_ranges_cover_every_row_once():
    for n in (0, 1, 7, 100):
        for k in (1, 2, 3, 8):
            ranges = [shard_range(n, p, k) for p in range(k)]
            assert ranges[0][0] == 0 and ranges[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
            sizes = [b - a for a, b in ranges]
            assert max(sizes) - min(sizes) <= 1


def test_mesh_and_batch_errors():
    assert make_mesh().shape == {"data": jax.device_count(), "model": 1}
    with pytest.raises(ConfigError, match="model_parallel must divide"):
        make_mesh(jax.device_count() + 1)
    with pytest.raises(ConfigError, match="model_parallel"):
        TrainConfig(model_parallel=0)
    obs = regional_observations(20)
    with pytest.raises(ConfigError, match="multiple of the 2 devices"):
        resolve_config(TrainConfig(batch_size=129), obs, data_parallel=2)
    assert resolve_config(TrainConfig(), obs, data_parallel=3).batch_size % 3 == 0


def test_more_processes_than_rows_is_a_clear_error(monkeypatch):
    import geoprior.train.loop as tr

    monkeypatch.setattr(tr, "shard_range", lambda n: (0, 0))
    with pytest.raises(Exception, match="got no rows"):
        train_prior(regional_observations(2), small_config(steps=2), progress=False)
