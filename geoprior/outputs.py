"""Output paths, checked before the work that fills them: one rule for the CLI and the writers.

An output file needs an existing, writable folder and must not name a folder; an output
folder (a saved prior, a column store) replaces only a folder of its own kind; nothing
existing is replaced without ``overwrite``.

``-`` (:data:`STDOUT`) is standard output, for outputs that can go there (text tables:
CSV, TSV, JSON, a printed table); an output that cannot (a folder, Parquet, a picture)
refuses it with a clear error instead of writing a file named ``-`` (write ``./-`` for
that). :func:`write_table` writes a table to a file, by its suffix, or to standard output.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import FormatError, OutputExistsError, PathError, suggest

__all__ = ["STDOUT", "TABLE_FORMATS", "check_output", "is_stdout", "table_format", "write_table"]

#: the output name that means standard output
STDOUT = "-"
#: table formats by file suffix; ``"table"`` (aligned columns, for people) prints only
TABLE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".parquet": "parquet",
                 ".pq": "parquet"}
_BINARY = {"parquet"}
_TEXT = ("table", "csv", "tsv", "json")


def is_stdout(path) -> bool:
    """Whether an output path is :data:`STDOUT` (``-``).

    >>> is_stdout("-"), is_stdout("./-"), is_stdout(None)
    (True, False, False)
    """
    return path is not None and os.fspath(path) == STDOUT


def check_output(
    path: str | os.PathLike,
    overwrite: bool,
    *,
    marker: str | None = None,
    kind: str = "file",
    stdout: bool = False,
) -> Path:
    """Refuse an output that must not or cannot be written, before any work is done.

    Args:
        path: the output.
        overwrite: whether an existing output may be replaced.
        marker: for an output that is a folder, the file that marks one of its kind (e.g.
            a saved prior's header): an existing folder is replaced only when it holds it.
            ``None``: the output is a file.
        kind: what the output is, for messages (``"saved prior"``, ``"column store"``).
        stdout: whether ``-`` (standard output) is allowed: the caller writes text there.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False, or it exists and is
            not a ``kind`` (a file where a folder is written, a folder without ``marker``).
        PathError: ``-`` for an output that cannot go to standard output.
        PathError: a file output names a folder; its folder does not exist, is a file, or
            is not writable.

    Example:
        >>> check_output("reranked.csv", overwrite=False)  # doctest: +SKIP
        PosixPath('reranked.csv')
    """
    if is_stdout(path):
        if stdout:
            return Path(STDOUT)
        what = f"a {kind} (a folder)" if marker is not None else f"a {kind}"
        raise PathError(
            f"-o - means standard output, which cannot take {what}; give a "
            f"{'folder' if marker is not None else 'file'} name (./- for one named '-')"
        )
    path = Path(os.fspath(path)).expanduser()
    if marker is None and path.is_dir():
        raise PathError(
            f"{path} is a folder; give the name of a file to write, e.g. "
            f"{path / ('out' + (path.suffix or '.csv'))}"
        )
    if path.exists():
        if not overwrite:
            raise OutputExistsError(
                f"{path} exists; pass overwrite=True (CLI: --overwrite) to replace it"
            )
        if marker is not None and not (path / marker).is_file():
            raise OutputExistsError(
                f"{path} exists and is not a {kind}; refusing to replace it (choose another name)"
            )
    parent = path.parent
    if not parent.is_dir():
        what = "is a file, not a folder" if parent.exists() else "does not exist"
        raise PathError(f"cannot write {path}: the folder {parent} {what}; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PathError(f"cannot write {path}: no permission to write in the folder {parent}")
    return path


def table_format(path, fmt: str | None = None) -> str:
    """The format a table is written in: ``fmt`` for standard output (default ``"csv"``),
    else the file's suffix (``fmt``, when given, must agree with it).

    Raises:
        PathError: a binary format (Parquet) to standard output.
        FormatError: a suffix that is no table format, or ``fmt`` and suffix disagreeing.

    Example:
        >>> table_format("-", "json"), table_format("out.parquet")
        ('json', 'parquet')
    """
    if fmt is not None and fmt not in _TEXT and fmt not in _BINARY:
        raise FormatError(
            f"table format must be one of {', '.join((*_TEXT, *sorted(_BINARY)))}, got {fmt!r}"
            + suggest(str(fmt), (*_TEXT, *_BINARY))
        )
    if is_stdout(path):
        fmt = fmt or "csv"
        if fmt in _BINARY:
            raise PathError(
                f"{fmt} is binary and cannot be written to standard output (-o -); give a file "
                f"name ending {', '.join(s for s, f in TABLE_FORMATS.items() if f == fmt)}"
            )
        return fmt
    suffix = Path(os.fspath(path)).suffix.lower()
    found = TABLE_FORMATS.get(suffix)
    if found is None:
        raise FormatError(
            f"{path}: cannot write a table to a {suffix or 'suffix-less'} file; use one of "
            f"{', '.join(TABLE_FORMATS)} (or -o - for standard output)."
            + suggest(suffix, TABLE_FORMATS)
        )
    if fmt is not None and fmt not in (found, "table"):
        raise FormatError(f"{path}: the format {fmt!r} does not match the suffix {suffix!r}")
    return found


def write_table(frame, path, *, fmt: str | None = None, float_digits: int = 4) -> str:
    """Write a DataFrame to ``path`` in its format (:func:`table_format`): a file
    (atomically: a reader never sees half of it; check it first with
    :func:`check_output`) or standard output for ``-``. ``"table"`` prints aligned columns
    with ``float_digits`` decimals; files keep full precision. Returns the format.

    Example:
        >>> import pandas as pd
        >>> write_table(pd.DataFrame({"species": ["Pica pica"], "prob": [0.25]}), "-")
        species,prob
        Pica pica,0.25
        'csv'
    """
    fmt = table_format(path, fmt)
    if is_stdout(path):
        if fmt == "table":
            text = frame.to_string(index=False, float_format=lambda v: f"{v:.{float_digits}f}")
            text += "\n"
        elif fmt == "json":
            text = frame.to_json(orient="records") + "\n"
        else:
            text = frame.to_csv(index=False, sep="\t" if fmt == "tsv" else ",")
        sys.stdout.write(text)
        sys.stdout.flush()
        return fmt
    from .persistence import atomic_path  # persistence imports this module

    with atomic_path(path) as tmp:
        if fmt == "parquet":
            frame.to_parquet(tmp, index=False)
        elif fmt == "json":
            frame.to_json(tmp, orient="records")
        else:
            frame.to_csv(tmp, index=False, sep="\t" if fmt == "tsv" else ",")
    return fmt
