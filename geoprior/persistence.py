"""Persistence: every file geoprior writes, written atomically under a versioned header;
and saving and loading priors as a JSON header plus ``.npz`` arrays, never pickle.

One temp-file-and-rename (:func:`atomic_path`, with :func:`atomic_file` and
:func:`atomic_folder` on it) serves saved priors, column stores, fusion parameter files,
checkpoints and map files. One header (:func:`json_header`: ``format``,
``format_version``, ``geoprior_version``), written by :func:`write_json_header` and read by
:func:`read_json_header` (its version check, :func:`format_version_problem`, also serves
fusion parameters parsed from text and checkpoint records), serves prior headers,
column-store manifests, fusion parameter files and checkpoint records.

A saved prior is a folder::

    PRIOR/
      prior.json    {"format": "geoprior", "format_version": 1, "kind": "GeoPrior", ...}
      arrays.npz    named float/int arrays, loaded with allow_pickle=False

The folder is written under a temporary name beside the target and renamed into place,
so a crash never leaves a half-written prior. :func:`load_prior` reads the header's
``kind``, checks the header and the arrays against the schema registered for that kind
(:class:`Schema`: header fields, and each array's dtype, shape and finiteness as the header
implies them), and only then hands them to the loader, so a corrupt prior raises
:class:`~geoprior.PriorFileError` naming the file and the problem instead of predicting
garbage.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .errors import PriorFileError, show
from .outputs import check_output

__all__ = [
    "FORMAT_VERSION",
    "ArraySpec",
    "Schema",
    "save_folder",
    "read_folder",
    "load_prior",
    "register_kind",
    "atomic_file",
    "atomic_folder",
    "atomic_path",
    "json_header",
    "read_json_header",
    "write_json_header",
]

#: 2: GeoPriors may hold two heads (loss ``joint``), an anchors table and support places;
#: 3: GeoPriors may be ensembles (``config.members`` > 1, a leading member axis on every
#: weight). Files of every earlier version still load.
FORMAT_VERSION = 3
HEADER = "prior.json"
ARRAYS = "arrays.npz"

_MISSING = object()

#: A header field check: ``value -> None`` when fine, else what is wrong with it.
FieldCheck = Callable[[Any], "str | None"]


class ArraySpec(NamedTuple):
    """What one saved array must be.

    ``shape`` holds ints (exact), names (one length shared by every array using the name,
    e.g. ``"locations"``) or ``None`` (any length); ``kind`` is ``"f"`` (floating point)
    or ``"i"`` (integers); ``finite`` forbids NaN and infinities; ``min`` is a lower bound
    on the values; ``optional`` arrays may be absent.
    """

    shape: tuple[int | str | None, ...]
    kind: str = "f"
    finite: bool = True
    min: float | None = None
    optional: bool = False


class Schema(NamedTuple):
    """What a saved prior of one kind must hold: ``fields`` maps dotted header paths
    (``"config.model.depth"``) to checks (see :func:`field`), and ``arrays(header)`` gives
    the :class:`ArraySpec` of every array the header implies (no others may be stored).
    Every kind's header has ``"species"``: a non-empty list of distinct non-empty names."""

    fields: Mapping[str, FieldCheck] = {}
    arrays: Callable[[dict], Mapping[str, ArraySpec]] = lambda header: {}


_LOADERS: dict[str, Callable[[dict, dict[str, np.ndarray]], Any]] = {}
_SCHEMAS: dict[str, Schema] = {}


def register_kind(kind: str, schema: Schema | None = None):
    """Decorator: register ``loader(header, arrays) -> prior`` for saved priors of ``kind``;
    :func:`load_prior` checks the files against ``schema`` before calling it."""

    def deco(loader):
        _LOADERS[kind] = loader
        if schema is not None:
            _SCHEMAS[kind] = schema
        return loader

    return deco


_TYPE_NAMES = {
    bool: "true/false",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "a list",
    dict: "an object",
    type(None): "null",
}


def field(*types: type, min: float | None = None, choices=None, optional: bool = False):
    """A header field check: a JSON value of one of ``types`` (``bool`` is never taken for
    ``int``; an ``int`` is a ``float``), finite, at least ``min``, one of ``choices``.
    ``optional`` fields may be absent."""

    def ok_type(value, t) -> bool:
        if isinstance(value, bool):
            return t is bool
        return isinstance(value, t) or (t is float and isinstance(value, int))

    def check(value) -> str | None:
        if not any(ok_type(value, t) for t in types):
            wanted = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
            return f"expected {wanted}, got {value!r}"
        if isinstance(value, float) and not np.isfinite(value):
            return f"expected a finite number, got {value!r}"
        if min is not None and isinstance(value, (int, float)) and value < min:
            return f"expected at least {min}, got {value!r}"
        if choices is not None and value not in choices:
            return f"expected one of {list(choices)}, got {value!r}"
        return None

    check.optional = optional
    return check


def _species_problem(species) -> str | None:
    if not isinstance(species, list) or not species:
        return f"expected a non-empty list of names, got {_short(species)}"
    empty = [i for i, s in enumerate(species) if not isinstance(s, str) or not s.strip()]
    if empty:
        i = empty[0]
        return (
            f"{len(empty)} of {len(species)} species names are empty or not strings; "
            f"first: position {i} = {species[i]!r}"
        )
    first: dict[str, int] = {}
    dupes = []  # (first position, repeated position)
    for i, s in enumerate(species):
        if s in first:
            dupes.append((first[s], i))
        first.setdefault(s, i)
    if dupes:
        a, b = dupes[0]
        return (
            f"{len(dupes)} of {len(species)} species names appear more than once; first: "
            f"{species[b]!r} at positions {a} and {b}"
        )
    return None


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_COMMON_FIELDS: dict[str, FieldCheck] = {"species": _species_problem}


def header_problems(header: dict, fields: Mapping[str, FieldCheck]) -> list[str]:
    """What is wrong with ``header`` against ``fields`` (dotted paths to :func:`field`
    checks), one message per field, naming it; empty when nothing is."""
    problems = []
    for path, check in fields.items():
        value: Any = header
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                value = _MISSING
                break
            value = value[part]
        if value is _MISSING:
            if not getattr(check, "optional", False):
                problems.append(f"header field {path!r} is missing")
            continue
        problem = check(value)
        if problem:
            problems.append(f"header field {path!r}: {problem}")
    return problems


def _array_problems(arrays: dict[str, np.ndarray], specs: Mapping[str, ArraySpec]) -> list[str]:
    problems = []
    missing = [k for k, s in specs.items() if k not in arrays and not s.optional]
    if missing:
        problems.append(
            f"{len(missing)} array(s) the header implies are missing: {_names(missing)}"
        )
    extra = sorted(set(arrays) - set(specs))
    if extra:
        problems.append(
            f"{len(extra)} stored array(s) the header does not describe: {_names(extra)}"
        )
    sizes: dict[str, int] = {}
    for name, spec in specs.items():
        if name not in arrays:
            continue
        a = arrays[name]
        if spec.kind == "f" and a.dtype.kind != "f":
            problems.append(f"array {name!r} holds {a.dtype} values, expected floating point")
            continue
        if spec.kind == "i" and a.dtype.kind not in "iu":
            problems.append(f"array {name!r} holds {a.dtype} values, expected integers")
            continue
        expected = tuple(
            sizes.setdefault(d, n) if isinstance(d, str) else d for d, n in zip(spec.shape, a.shape)
        )
        if a.ndim != len(spec.shape) or any(
            e is not None and e != n for e, n in zip(expected, a.shape)
        ):
            want = tuple("any" if d is None else d for d in spec.shape)
            problems.append(f"array {name!r} has shape {a.shape}, expected {want}")
            continue
        bad = ~np.isfinite(a) if spec.finite and a.dtype.kind == "f" else np.zeros(a.shape, bool)
        if spec.min is not None:
            with np.errstate(invalid="ignore"):
                bad |= a < spec.min
        if bad.any():
            i = np.unravel_index(int(np.flatnonzero(bad)[0]), a.shape)
            what = ", ".join(
                (["NaN", "infinite"] if spec.finite else [])
                + ([f"below {spec.min}"] if spec.min is not None else [])
            )
            what = " or ".join(what.rsplit(", ", 1))
            problems.append(
                f"array {name!r} has {int(bad.sum())} of {a.size} values {what}; first: "
                f"index {tuple(int(j) for j in i)} = {show(a[i])}"
            )
    return problems


def _names(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names[:5]) + (" ..." if len(names) > 5 else "")


def check_saved(path: Path, header: dict, arrays: dict[str, np.ndarray], schema: Schema) -> None:
    """Raise :class:`~geoprior.PriorFileError` naming ``path`` and every problem found when
    ``header`` and ``arrays`` do not match ``schema``."""
    problems = header_problems(header, {**_COMMON_FIELDS, **schema.fields})
    if not problems:
        try:
            specs = schema.arrays(header)
        except (KeyError, TypeError, ValueError) as e:
            problems = [f"the header does not describe a valid prior: {type(e).__name__}: {e}"]
        else:
            problems = _array_problems(arrays, specs)
    if problems:
        shown = "; ".join(problems[:3]) + (
            f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        )
        raise PriorFileError(f"{path} is incomplete or corrupt: {shown}")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Write the file ``path`` atomically, with a writer that wants a path: yields a
    temporary path beside it (same name and suffix, in a hidden temporary folder), which is
    flushed to disk and renamed onto ``path`` when the block ends without error (removed,
    with its folder, either way), so a reader sees the old file or the new one, never part
    of one. The one temp-file-and-rename of geoprior; :func:`atomic_file` is built on it.

    Example:
        >>> with atomic_path(tmp / "map.gpkg") as out:  # doctest: +SKIP
        ...     frame.to_file(out, driver="GPKG")
    """
    path = Path(path)
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        tmp = folder / path.name
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Write ``path`` atomically (see :func:`atomic_path`): yields the temporary file open in
    ``mode`` (text modes are UTF-8).

    Example:
        >>> with atomic_file(tmp / "notes.txt", "w") as f:  # doctest: +SKIP
        ...     f.write("done")
    """
    with atomic_path(path) as tmp:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f


@contextmanager
def atomic_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Write the folder ``path`` atomically: yields a new temporary folder beside it, renamed
    onto ``path`` when the block ends without error (an existing ``path`` is moved aside
    first, then removed) and removed if it raises. Check the target first
    (:func:`geoprior.outputs.check_output`): this replaces whatever is there.

    Example:
        >>> with atomic_folder(tmp / "birds.prior") as out:  # doctest: +SKIP
        ...     (out / "prior.json").write_text("{}")
    """
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
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


def save_folder(
    path: str | os.PathLike,
    kind: str,
    header: dict,
    arrays: dict[str, np.ndarray],
    *,
    overwrite: bool = True,
) -> Path:
    """Write ``header`` (JSON-serialisable) and ``arrays`` atomically to folder ``path``
    (:func:`atomic_folder`), after :func:`geoprior.outputs.check_output` (an existing
    ``path`` is replaced only with ``overwrite`` and only if it is a saved prior; a missing
    parent folder is created)."""
    path = Path(path)
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    objects = sorted(k for k, v in arrays.items() if v.dtype.hasobject)
    if objects:
        raise TypeError(
            f"arrays {objects} hold Python objects, which only pickle can save; "
            f"a saved prior holds numbers and fixed-width strings only"
        )
    if not path.parent.exists():
        path.parent.mkdir(parents=True)
    check_output(path, overwrite, marker=HEADER, kind="saved prior")
    with atomic_folder(path) as tmp:
        write_json_header(tmp / HEADER, "geoprior", FORMAT_VERSION, header, kind=kind)
        np.savez(tmp / ARRAYS, **arrays)
    return path


def json_header(
    fmt: str, format_version: int, body: Mapping, *, kind: str | None = None,
    geoprior_version: bool = True,
) -> dict:
    """The versioned header of every geoprior file: ``format``, ``format_version``, the
    ``kind`` of prior (saved priors only), the ``geoprior_version`` that wrote it (left out
    of fusion parameter files, whose readers refuse fields they do not know), then ``body``.
    :func:`read_json_header` reads it back.

    >>> json_header("geoprior-columns", 1, {"n_rows": 3})["format_version"]
    1
    """
    from ._version import __version__

    head: dict = {"format": fmt, "format_version": format_version}
    if kind is not None:
        head["kind"] = kind
    if geoprior_version:
        head["geoprior_version"] = __version__
    return {**head, **body}


def write_json_header(
    file: str | os.PathLike, fmt: str, format_version: int, body: Mapping, *,
    kind: str | None = None, indent: int | None = 2,
) -> Path:
    """Write :func:`json_header` as UTF-8 JSON to ``file``, atomically (:func:`atomic_file`)."""
    with atomic_file(file, "w") as f:
        json.dump(json_header(fmt, format_version, body, kind=kind), f, indent=indent)
    return Path(file)


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
    problem = format_version_problem(header, max_version)
    if problem:
        raise error(f"{file.parent} {problem}")
    return header


def format_version_problem(header: dict, max_version: int) -> str | None:
    """What is wrong with ``header["format_version"]`` (an integer from 1 to
    ``max_version``), or ``None``; a newer version asks to upgrade geoprior."""
    version = header.get("format_version", _MISSING)
    if version is _MISSING:
        return "has no format version (the header is incomplete)"
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        return (
            f"has format version {version!r}, expected an integer from 1 to {max_version} "
            "(the header is corrupt)"
        )
    if version > max_version:
        return (
            f"has format version {version!r}, this geoprior reads up to {max_version}; "
            f"upgrade geoprior (it was written by geoprior "
            f"{header.get('geoprior_version', 'unknown')})"
        )
    return None


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
    if kind in _SCHEMAS:
        check_saved(Path(path), header, arrays, _SCHEMAS[kind])
    try:
        return _LOADERS[kind](header, arrays)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, PriorFileError):
            raise
        raise PriorFileError(f"{path} is incomplete or corrupt: {type(e).__name__}: {e}") from None


def _import_kinds() -> None:
    """Import the modules that register loaders (they register on import)."""
    import importlib

    for mod in ("geoprior.priors", "geoprior.priors.geoprior"):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
