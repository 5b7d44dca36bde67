"""Devices and processes: the mesh training runs on, and JAX's multi-process runtime.

Training uses every device JAX sees — the local accelerators, or with
:func:`initialize` the devices of every process on every host — arranged in a 2-D mesh
with axes ``("data", "model")``. Batches are split over ``"data"``; the species head is
split over ``"model"`` (``TrainConfig.model_parallel``, 1 by default: parameters are
replicated) so a head with hundreds of thousands of species need not fit on one device.

In a multi-process run every process executes the same program; process ``p`` of ``P``
reads only its own contiguous shard of the training rows (:func:`shard_range`) and
contributes ``1/P`` of every global batch.

Example (two processes on one machine; see docs/scaling.md):

    $ GEOPRIOR_COORDINATOR_ADDRESS=127.0.0.1:12355 GEOPRIOR_NUM_PROCESSES=2 \\
      GEOPRIOR_PROCESS_ID=0 geoprior train data.columns -o data.prior --distributed &
    $ GEOPRIOR_COORDINATOR_ADDRESS=127.0.0.1:12355 GEOPRIOR_NUM_PROCESSES=2 \\
      GEOPRIOR_PROCESS_ID=1 geoprior train data.columns -o data.prior --distributed
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ..errors import ConfigError

__all__ = ["initialize", "make_mesh", "shard_range", "is_main_process", "to_host"]

ENV_COORDINATOR = "GEOPRIOR_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "GEOPRIOR_NUM_PROCESSES"
ENV_PROCESS_ID = "GEOPRIOR_PROCESS_ID"


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(
            f"environment variable {name} must be an integer, got {value!r}"
        ) from None


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> tuple[int, int]:
    """Join a multi-process JAX run (call once per process, before any computation).

    Arguments not given come from ``GEOPRIOR_COORDINATOR_ADDRESS`` (or JAX's own
    ``JAX_COORDINATOR_ADDRESS``), ``GEOPRIOR_NUM_PROCESSES`` and ``GEOPRIOR_PROCESS_ID``;
    when none of them is set, JAX detects the cluster itself (SLURM, Open MPI, Kubernetes,
    Cloud TPU). Returns ``(process_index, process_count)``.

    Example:
        >>> initialize("10.0.0.1:12355", num_processes=2, process_id=0)  # doctest: +SKIP
        (0, 2)
    """
    address = coordinator_address or os.environ.get(ENV_COORDINATOR) or None
    count = num_processes if num_processes is not None else _env_int(ENV_NUM_PROCESSES)
    pid = process_id if process_id is not None else _env_int(ENV_PROCESS_ID)
    given = [v is not None for v in (address, count, pid)]
    if any(given) and not all(given) and not os.environ.get("JAX_COORDINATOR_ADDRESS"):
        raise ConfigError(
            f"a multi-process run needs all of {ENV_COORDINATOR}, {ENV_NUM_PROCESSES} and "
            f"{ENV_PROCESS_ID} (or none, to let JAX detect the cluster); got "
            f"address={address!r}, num_processes={count!r}, process_id={pid!r}"
        )
    if count is not None and pid is not None and not 0 <= pid < count:
        raise ConfigError(f"process_id must be in [0, {count}), got {pid}")
    jax.distributed.initialize(address, count, pid)
    return jax.process_index(), jax.process_count()


def make_mesh(model_parallel: int = 1, devices=None) -> Mesh:
    """A ``("data", "model")`` mesh over ``devices`` (default: all of them, every process).

    ``model_parallel`` devices share each copy of the species head; the other factor of
    the device count splits the batch.

    >>> make_mesh().axis_names
    ('data', 'model')
    """
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    if model_parallel < 1 or n % model_parallel:
        raise ConfigError(
            f"model_parallel must divide the number of devices ({n}), got {model_parallel}"
        )
    local = jax.local_device_count()
    if jax.process_count() > 1 and local % model_parallel:
        raise ConfigError(
            f"the species head is split within a process: model_parallel must divide the "
            f"{local} devices of each process, got {model_parallel}"
        )
    grid = np.array(devices, dtype=object).reshape(n // model_parallel, model_parallel)
    return Mesh(grid, ("data", "model"))


def shard_range(n: int, process_index: int | None = None, process_count: int | None = None):
    """``(start, stop)`` of the rows process ``process_index`` of ``process_count`` reads:
    contiguous, sizes differ by at most one.

    >>> shard_range(10, 1, 3)
    (3, 6)
    """
    p = jax.process_index() if process_index is None else process_index
    k = jax.process_count() if process_count is None else process_count
    return (n * p) // k, (n * (p + 1)) // k


def is_main_process() -> bool:
    """True on the process that writes files (process 0)."""
    return jax.process_index() == 0


def to_host(tree):
    """Numpy copies of a pytree of (possibly sharded, possibly multi-process) arrays."""

    def one(x):
        if not isinstance(x, jax.Array):
            return np.asarray(x)
        if x.is_fully_addressable:
            return np.asarray(jax.device_get(x))
        if x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree_util.tree_map(one, tree)


def put_global(tree, shardings):
    """Place host arrays that every process holds in full onto ``shardings``."""

    def one(x, sharding: NamedSharding):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree_util.tree_map(one, tree, shardings)


def put_batch(local: dict, sharding: NamedSharding, global_rows: int) -> dict:
    """Assemble a global batch from each process's ``local`` rows (split over ``"data"``)."""
    return {
        k: jax.make_array_from_process_local_data(sharding, v, (global_rows, *v.shape[1:]))
        for k, v in local.items()
    }


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())
