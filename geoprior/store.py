"""Saving and loading priors: a JSON header plus ``.npz`` arrays, never pickle.

A saved prior is a folder::

    PRIOR/
      prior.json    {"format": "geoprior", "format_version": 1, "kind": "GeoPrior", ...}
      arrays.npz    named float/int arrays, loaded with allow_pickle=False

The folder is written under a temporary name beside the target and renamed into place,
so a crash never leaves a half-written prior. :func:`load_prior` reads the header's
``kind`` and hands the arrays to the class registered for it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .errors import OutputExistsError, PriorFileError

__all__ = ["FORMAT_VERSION", "save_folder", "read_folder", "load_prior", "register_kind"]

FORMAT_VERSION = 1
HEADER = "prior.json"
ARRAYS = "arrays.npz"

_LOADERS: dict[str, Callable[[dict, dict[str, np.ndarray]], Any]] = {}


def register_kind(kind: str):
    """Decorator: register ``loader(header, arrays) -> prior`` for saved priors of ``kind``."""

    def deco(loader):
        _LOADERS[kind] = loader
        return loader

    return deco


def save_folder(
    path: str | os.PathLike,
    kind: str,
    header: dict,
    arrays: dict[str, np.ndarray],
    *,
    overwrite: bool = True,
) -> Path:
    """Write ``header`` (JSON-serialisable) and ``arrays`` atomically to folder ``path``."""
    from . import __version__

    path = Path(path)
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    objects = sorted(k for k, v in arrays.items() if v.dtype.hasobject)
    if objects:
        raise TypeError(
            f"arrays {objects} hold Python objects, which only pickle can save; "
            f"a saved prior holds numbers and fixed-width strings only"
        )
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"{path} exists; pass overwrite=True (CLI: --overwrite) to replace it"
        )
    if path.exists() and not (path / HEADER).exists():
        raise OutputExistsError(f"{path} exists and is not a saved prior; refusing to replace it")
    full = {
        "format": "geoprior",
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "geoprior_version": __version__,
        **header,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        with open(tmp / HEADER, "w", encoding="utf-8") as f:
            json.dump(full, f, indent=2, sort_keys=False)
        np.savez(tmp / ARRAYS, **arrays)
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_json_header(file: Path, fmt: str, max_version: int, error: type[Exception]) -> dict:
    """A JSON header whose ``"format"`` is ``fmt`` and ``"format_version"`` at most
    ``max_version``; anything else raises ``error`` saying what is wrong."""
    try:
        with open(file, encoding="utf-8") as f:
            header = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{file} is corrupt: {e}") from None
    if not isinstance(header, dict) or header.get("format") != fmt:
        raise error(f'{file} is not a {fmt} header (no "format": "{fmt}")')
    version = header.get("format_version")
    if not isinstance(version, int) or version > max_version:
        raise error(
            f"{file.parent} has format version {version!r}, this geoprior reads up to "
            f"{max_version}; upgrade geoprior (it was written by geoprior "
            f"{header.get('geoprior_version', 'unknown')})"
        )
    return header


def read_folder(
    path: str | os.PathLike, kind: str | None = None
) -> tuple[dict, dict[str, np.ndarray]]:
    """Read and check a saved prior's header and arrays."""
    path = Path(path)
    if not (path / HEADER).is_file():
        raise PriorFileError(
            f"{path} is not a saved prior: no {HEADER} inside (expected a folder "
            f"written by .save())"
        )
    header = read_json_header(path / HEADER, "geoprior", FORMAT_VERSION, PriorFileError)
    if kind is not None and header.get("kind") != kind:
        raise PriorFileError(f"{path} holds a {header.get('kind')!r}, expected a {kind!r}")
    try:
        with np.load(path / ARRAYS, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise PriorFileError(f"{path} has no {ARRAYS}: the prior is incomplete") from None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise PriorFileError(f"{path / ARRAYS} is corrupt: {e}") from None
    return header, arrays


def load_prior(path: str | os.PathLike):
    """Load any saved prior (a :class:`~geoprior.GeoPrior`, a count grid, ...).

    Example:
        >>> prior = load_prior("runs/birds.prior")  # doctest: +SKIP
    """
    header, arrays = read_folder(path)
    kind = header.get("kind")
    _import_kinds()
    if kind not in _LOADERS:
        raise PriorFileError(
            f"{path} holds an unknown kind of prior {kind!r}; known: {sorted(_LOADERS)}"
        )
    try:
        return _LOADERS[kind](header, arrays)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, PriorFileError):
            raise
        raise PriorFileError(f"{path} is incomplete or corrupt: {type(e).__name__}: {e}") from None


def _import_kinds() -> None:
    """Import the modules that register loaders (they register on import)."""
    import importlib

    for mod in ("geoprior.prior", "geoprior.baselines"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
