"""Reading a classifier's saved logits (``.npy``, ``.npz``, CSV), its class names and the
places of its inputs, for reranking.

A thin shell for :func:`geoprior.fusion.rerank` and the ``geoprior rerank`` command: it
reads the array, checks it with :func:`geoprior.fusion.checks.check_logits` and returns the class
names when the file carries them; :func:`read_classes` and :func:`read_points` read the
class list and the points table. Every problem is a :class:`~geoprior.GeopriorError` naming
the file.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import EmptyDataError, FormatError, MissingFileError, suggest
from ..fusion.checks import check_logits
from .table import (
    binary_opener,
    check_encoding,
    check_path,
    encoding_error,
    find_column,
    open_table,
)

__all__ = ["LOGIT_SUFFIXES", "read_logits", "read_classes", "read_points"]

LOGIT_SUFFIXES = (".npy", ".npz", ".csv", ".csv.gz", ".tsv")


def read_logits(
    path: str | os.PathLike, *, encoding: str | None = None
) -> tuple[np.ndarray, tuple[str, ...] | None]:
    """Read classifier logits, and class names when the file has them.

    * ``.npy``: one ``(n, S)`` (or ``(S,)``) array; no class names.
    * ``.npz``: a single array, or the array named ``logits``; an optional string array
      named ``classes`` gives the class names. Loaded with ``allow_pickle=False``.
    * ``.csv`` / ``.csv.gz`` / ``.tsv``: one row per input, one column per class. A first row
      that is not all numbers is the header of class names; otherwise there is no header
      (so a header of numeric taxon ids reads as data: use ``.npz`` with ``classes``).

    Args:
        path: the file.
        encoding: the text encoding of a CSV / TSV (default UTF-8).

    Returns:
        ``(logits, classes)``: a 2-d float array and a tuple of names, or ``None``.

    Raises:
        FormatError: unknown suffix, several arrays without ``logits``, non-numeric cells
            (naming the first), a wrong number of class names, not 1-d / 2-d.
        NonFiniteError: NaN, empty or infinite values, naming how many rows and the first.
        EmptyDataError: no rows.
        FileEncodingError: a CSV that is not valid ``encoding`` text, naming the first bad
            byte.
        MissingFileError: no such file.
        ConfigError: an ``encoding`` Python does not know.

    Example:
        >>> logits, classes = read_logits("val_logits.csv")  # doctest: +SKIP
    """
    path = Path(path)
    name = path.name.lower()
    suffix = next((s for s in LOGIT_SUFFIXES if name.endswith(s)), None)
    if suffix is None:
        raise FormatError(
            f"{path}: cannot read logits from a {path.suffix or 'suffix-less'} file; expected "
            f"one of {', '.join(LOGIT_SUFFIXES)}." + suggest(path.suffix, LOGIT_SUFFIXES)
        )
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file")
    if encoding is not None:
        check_encoding(encoding, str(path))
    if suffix == ".npy":
        logits, classes = _load_npy(path), None
    elif suffix == ".npz":
        logits, classes = _load_npz(path)
    else:
        logits, classes = _load_csv(path, "\t" if suffix == ".tsv" else ",", encoding or "utf-8")
    if logits.size == 0:
        raise EmptyDataError(f"{path}: no logits (array of shape {logits.shape})")
    logits = np.atleast_2d(check_logits(logits, what=f"logits in {path}"))
    if classes is not None and len(classes) != logits.shape[1]:
        raise FormatError(
            f"{path}: {len(classes)} class names for {logits.shape[1]} columns of logits"
        )
    return logits, classes


def read_classes(path: str | os.PathLike, *, encoding: str | None = None) -> tuple[str, ...]:
    """Read class names, one per line in logit order (blank lines and surrounding spaces
    ignored).

    Args:
        path: a text file.
        encoding: its encoding (default UTF-8; a byte-order mark is skipped).

    Returns:
        The names, in file order.

    Raises:
        MissingFileError: no such file.
        FileEncodingError: not valid ``encoding`` text, naming the first bad byte.
        EmptyDataError: no names.
        ConfigError: an ``encoding`` Python does not know.

    Example:
        >>> classes = read_classes("classes.txt")  # doctest: +SKIP
    """
    path = check_path(path)
    encoding = encoding or "utf-8-sig"
    check_encoding(encoding, str(path))
    try:
        text = path.read_bytes().decode(encoding)
    except UnicodeDecodeError:
        raise encoding_error(str(path), binary_opener(path), encoding) from None
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not names:
        raise EmptyDataError(f"{path} holds no class names; expected one name per line")
    return names


def read_points(
    path: str | os.PathLike, *, encoding: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Read the place (and date) of each classifier input from a table.

    The table (CSV / TSV, optionally compressed, or Parquet) has a latitude column
    (``latitude``, ``lat``, ``decimalLatitude``), a longitude column (``longitude``, ``lon``,
    ``lng``, ``decimalLongitude``) and optionally ``date``. Values are returned as read:
    :func:`geoprior.rerank` validates them (text is an error, empty means no location).

    Args:
        path: the table.
        encoding: the text encoding (default UTF-8).

    Returns:
        ``(lat, lon, date)``; ``date`` is an object array of strings, or ``None``.

    Raises:
        MissingFileError: no such file.
        EmptyDataError: an empty file.
        FileEncodingError: not valid ``encoding`` text, naming the first bad byte.
        FormatError: no latitude or longitude column, or malformed text.
        ConfigError: an ``encoding`` Python does not know.

    Example:
        >>> lat, lon, date = read_points("points.csv")  # doctest: +SKIP
    """
    table = open_table(path, encoding=encoding)
    lat = find_column(table.columns, "latitude", "lat", "decimalLatitude")
    lon = find_column(table.columns, "longitude", "lon", "lng", "decimalLongitude")
    if lat is None or lon is None:
        raise FormatError(
            f"{table.where} needs latitude and longitude columns; found {list(table.columns)}"
        )
    date = find_column(table.columns, "date")
    columns = [c for c in (lat, lon, date) if c is not None]
    chunks = list(table.chunks(columns, {date} - {None}))
    frame = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=columns)
    return (
        frame[lat].to_numpy(),
        frame[lon].to_numpy(),
        None if date is None else frame[date].to_numpy(dtype=object),
    )


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise FormatError(f"{path} is not a readable .npy array: {e}") from None


def _load_npz(path: Path) -> tuple[np.ndarray, tuple[str, ...] | None]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise FormatError(f"{path} is not a readable .npz archive: {e}") from None
    classes = arrays.pop("classes", None)
    if "logits" in arrays:
        logits = arrays["logits"]
    elif len(arrays) == 1:
        logits = next(iter(arrays.values()))
    else:
        raise FormatError(
            f"{path} holds {len(arrays)} arrays ({', '.join(sorted(arrays))}); name the logits "
            "array 'logits' (and the class names 'classes')"
        )
    if classes is not None:
        if classes.ndim != 1 or classes.dtype.kind not in "USi":
            raise FormatError(f"{path}: 'classes' must be a 1-d array of names or ids, got "
                              f"shape {classes.shape} dtype {classes.dtype}")
        classes = tuple(str(c) for c in classes.tolist())
    return logits, classes


def _load_csv(path: Path, sep: str, encoding: str) -> tuple[np.ndarray, tuple[str, ...] | None]:
    try:
        table = pd.read_csv(path, sep=sep, header=None, dtype=str, keep_default_na=False,
                            skipinitialspace=True, encoding=encoding)
    except UnicodeDecodeError:
        raise encoding_error(str(path), binary_opener(path), encoding) from None
    except pd.errors.EmptyDataError:
        raise EmptyDataError(f"{path} is empty") from None
    except pd.errors.ParserError as e:
        raise FormatError(f"{path} is not a regular CSV table: {e}") from None
    cells = table.to_numpy(dtype=object)
    first = pd.to_numeric(pd.Series(cells[0]), errors="coerce")
    classes = None
    if first.isna().any() and not all(_is_missing(c) for c in cells[0][first.isna().to_numpy()]):
        classes = tuple(str(c).strip() for c in cells[0])
        cells = cells[1:]
    if cells.shape[0] == 0:
        raise EmptyDataError(f"{path} has a header but no rows of logits")
    values = pd.DataFrame(cells).apply(lambda col: pd.to_numeric(col, errors="coerce"))
    numbers = values.to_numpy(dtype=np.float64)
    text = np.vectorize(lambda c: not _is_missing(c))(cells) & np.isnan(numbers)
    if text.any():
        row, col = (int(i[0]) for i in np.nonzero(text))
        shown = f"column {classes[col]!r}" if classes else f"column {col}"
        raise FormatError(
            f"{path}: {int(text.any(axis=1).sum())} of {len(cells)} rows have cells that are "
            f"not numbers; first: row {row}, {shown} = {cells[row, col]!r}"
        )
    return numbers, classes


def _is_missing(cell) -> bool:
    return str(cell).strip().lower() in ("", "nan", "na", "null", "none")
