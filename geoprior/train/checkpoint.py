"""Resumable training checkpoints: the state, the loss curve and the run's record in one
file, written atomically, and read back only for the run that wrote it."""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import jax
import numpy as np

from ..errors import ConfigError, PriorFileError
from ..persistence import atomic_file, format_version_problem, json_header, write_json_header
from .distributed import is_main_process, put_global, to_host

if TYPE_CHECKING:
    from .step import TrainState

__all__ = ["CHECKPOINT", "CHECKPOINT_META", "save_checkpoint", "load_checkpoint"]

CHECKPOINT = "checkpoint.npz"
CHECKPOINT_META = "checkpoint.json"
#: The record of a checkpoint is a versioned header (older checkpoints' records have none;
#: resuming reads only their ``step`` and ``header``).
CHECKPOINT_FORMAT = "geoprior-checkpoint"


def save_checkpoint(workdir: Path, state: TrainState, header: dict, losses: np.ndarray) -> None:
    """Write the state, the loss curve and the record of the run (step and header) as one
    file, atomically: a crash leaves the previous checkpoint or this one, never a mix.
    Every process gathers the state; process 0 writes. ``checkpoint.json`` repeats the
    record for people and tools; resuming never reads it."""
    host = to_host(state)
    if not is_main_process():
        return
    body = {"step": int(host.step), "header": header}
    record = json_header(CHECKPOINT_FORMAT, 1, body)
    arrays = {f"leaf_{i:05d}": np.asarray(v) for i, v in enumerate(jax.tree_util.tree_leaves(host))}
    arrays.update(losses=losses, record=np.array(json.dumps(record)))
    with atomic_file(workdir / CHECKPOINT) as f:
        np.savez(f, **arrays)
    write_json_header(workdir / CHECKPOINT_META, CHECKPOINT_FORMAT, 1, body, indent=None)


def _broken_checkpoint(file: Path, problem: str) -> PriorFileError:
    return PriorFileError(
        f"{file} cannot be resumed: {problem}; delete it (and {CHECKPOINT_META} beside it) "
        f"to start the run again without --resume (resume=False)"
    )


def load_checkpoint(
    workdir: Path, shapes: TrainState, shardings, header: dict
) -> tuple[TrainState, int, np.ndarray]:
    """The state, step and losses of ``workdir``'s checkpoint, after checking that it was
    written for this run and that its record and its state agree on the step."""
    file = workdir / CHECKPOINT
    if not file.exists():
        raise PriorFileError(f"nothing to resume: no {CHECKPOINT} in {workdir}")
    leaves, treedef = jax.tree_util.tree_flatten(shapes)
    try:
        with np.load(file, allow_pickle=False) as z:
            saved = [z[f"leaf_{i:05d}"] for i in range(len(leaves))]
            saved_losses = z["losses"]
            record = json.loads(str(z["record"])) if "record" in z.files else None
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise _broken_checkpoint(file, f"it is truncated or corrupt ({e})") from None
    if record is None:  # an older checkpoint: its record is the file beside it
        record = _legacy_record(workdir / CHECKPOINT_META, file)
    problem = "format" in record and format_version_problem(record, 1)
    if problem:
        raise _broken_checkpoint(file, f"its record {problem}")
    if json.loads(json.dumps(header)) != record.get("header"):
        raise ConfigError(
            f"the checkpoint in {workdir} was written for other data or another config; "
            f"resume with the same observations and config, or start a new workdir"
        )
    for i, (s, l) in enumerate(zip(saved, leaves)):
        if s.shape != l.shape:
            raise _broken_checkpoint(file, f"array {i} has shape {s.shape}, expected {l.shape}")
    host = jax.tree_util.tree_unflatten(treedef, [s.astype(l.dtype) for s, l in zip(saved, leaves)])
    step = int(host.step)
    if record.get("step") != step or saved_losses.shape != (step,):
        raise _broken_checkpoint(
            file,
            f"its state is at step {step} but its record says step {record.get('step')!r} "
            f"and it holds {saved_losses.size} losses (a crash between two writes?)",
        )
    return put_global(host, shardings), step, saved_losses


def _legacy_record(meta: Path, file: Path) -> dict:
    """The record of a checkpoint written as two files (checked against the state by the
    caller, so a crash between their writes is refused, not resumed)."""
    try:
        record = json.loads(meta.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _broken_checkpoint(file, f"it has no record inside and no {meta.name}") from None
    except (ValueError, OSError) as e:
        raise _broken_checkpoint(meta, f"it is truncated or corrupt ({e})") from None
    if not isinstance(record, dict):
        raise _broken_checkpoint(meta, f"expected a JSON object, got {type(record).__name__}")
    return record
