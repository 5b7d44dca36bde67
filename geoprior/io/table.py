"""Any table: CSV / TSV / Parquet files, pandas DataFrames and GeoDataFrames.

The other readers are tables with known columns, so the machinery they share lives here:
:class:`Columns` (which column holds what), :func:`open_table` (a source read in chunks of
at most ``chunksize`` rows, only the needed columns), :class:`ReadPlan` (a reader's set-up:
the table, its columns and any per-chunk steps; each streaming reader has a function that
makes its plan, such as :func:`table_plan`), :class:`ObservationChunks` (each chunk of a plan
validated by :meth:`Observations.from_arrays` with file row numbers) and
:func:`observations_from_table` (those chunks joined with :meth:`Observations.concat`).

Row numbers in messages are 0-based data rows: row 0 is the first record after the header.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import lzma
import os
import re
import sys
import warnings
import zipfile
import zlib
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import (
    ConfigError,
    EmptyDataError,
    FileEncodingError,
    FormatError,
    MissingFileError,
    suggest,
)
from ..names import case_variants
from ..observations import Observations
from ..validation import InvalidRows, check_on_invalid, parse_dates, warn_dropped

__all__ = [
    "Chunk",
    "Columns",
    "ObservationChunks",
    "ReadPlan",
    "Table",
    "binary_opener",
    "guess_columns",
    "observations_from_table",
    "open_table",
    "read_table",
    "table_plan",
]

# Candidate names, compared after lower-casing and removing everything but letters and digits.
CANDIDATES: dict[str, tuple[str, ...]] = {
    "lat": ("latitude", "lat", "decimallatitude", "latdd", "latitudedd", "y"),
    "lon": ("longitude", "lon", "lng", "long", "decimallongitude", "londd", "longitudedd", "x"),
    "species": (
        "species",
        "scientificname",
        "speciesname",
        "taxonname",
        "taxon",
        "acceptedscientificname",
    ),
    "date": (
        "date",
        "eventdate",
        "observedon",
        "observationdate",
        "observationdatetime",
        "datetime",
    ),
    "site": ("site", "siteid", "plot", "plotid", "locationid", "localityid"),
}
_REQUIRED = ("lat", "lon", "species")
_COMPRESSED = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
_PARQUET = (".parquet", ".pq")
_DEFAULT_ENCODING = "utf-8-sig"  # UTF-8, with a byte-order mark tolerated
_SCAN_BLOCK = 1 << 20
# Dates of a text column are parsed once per distinct text (see _dates) in chunks of at least
# this many rows with at most one distinct text per _DISTINCT_PER_DATE rows.
FACTORIZE_MIN_ROWS = 1000
_DISTINCT_PER_DATE = 4
# A reserved column that a chunk may carry: per row None, or (reason, what such rows do,
# what this row holds) for a problem the reader found (more fields than the header, copies
# of a column that disagree, an annotation of a missing image ...). ObservationChunks turns
# it into invalid rows: raised under on_invalid="raise", counted per reason under "drop".
PROBLEM = "\x00problem"
# What reading compressed data raises when it is truncated or corrupt.
_CORRUPT = (EOFError, OSError, zlib.error, lzma.LZMAError, zipfile.BadZipFile)


def norm(name: object) -> str:
    """A column name reduced for matching: ``"Decimal Latitude"`` -> ``"decimallatitude"``."""
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def find_column(columns: Sequence[str], *candidates: str) -> str | None:
    """The first of ``candidates`` (compared with :func:`norm`) present in ``columns``."""
    lookup: dict[str, str] = {}
    for c in columns:
        lookup.setdefault(norm(c), c)
    for cand in candidates:
        if norm(cand) in lookup:
            return lookup[norm(cand)]
    return None


@dataclass(frozen=True)
class Columns:
    """Which column of a table holds what (``date``, ``site`` and covariates optional)."""

    lat: str
    lon: str
    species: str
    date: str | None = None
    site: str | None = None
    covariates: tuple[str, ...] = ()

    def needed(self) -> list[str]:
        """The distinct column names to read, in a stable order."""
        names = [self.lat, self.lon, self.species, self.date, self.site, *self.covariates]
        return list(dict.fromkeys(n for n in names if n is not None))


def guess_columns(
    columns: Sequence[str],
    where: str,
    *,
    lat: str | None = None,
    lon: str | None = None,
    species: str | None = None,
    date: str | None = None,
    site: str | None = None,
    covariates: Sequence[str] | None = None,
    defaults: dict[str, str | None] | None = None,
) -> Columns:
    """Resolve :class:`Columns`: given names must exist; others come from ``defaults``
    (a reader's known layout) or are guessed from :data:`CANDIDATES`.

    Raises:
        FormatError: a named column is missing, or lat/lon/species cannot be guessed; the
            message lists the columns found and the names expected.
    """
    columns = [str(c) for c in columns]
    given = {"lat": lat, "lon": lon, "species": species, "date": date, "site": site}
    defaults = defaults or {}
    shown = ", ".join(repr(c) for c in columns[:40]) + (" ..." if len(columns) > 40 else "")
    for key, name in [*given.items(), *(("covariates", c) for c in covariates or ())]:
        if name is not None and name not in columns:
            raise FormatError(
                f"{where}: no column {name!r} (given as {key}=); columns found: {shown}."
                + suggest(name, columns)
            )
    resolved: dict[str, str | None] = {}
    for key, name in given.items():
        if name is None:
            name = defaults[key] if key in defaults else find_column(columns, *CANDIDATES[key])
        resolved[key] = name
    missing = [k for k in _REQUIRED if resolved[k] is None]
    if missing:
        expected = "; ".join(f"{k}: one of {', '.join(CANDIDATES[k])}" for k in missing)
        raise FormatError(
            f"{where}: could not find the {', '.join(missing)} column(s); columns found: {shown}. "
            f"Expected (case and punctuation ignored) {expected}. "
            f"Name them with e.g. read_observations(path, lat='...', lon='...', species='...')."
        )
    return Columns(
        lat=resolved["lat"],
        lon=resolved["lon"],
        species=resolved["species"],
        date=resolved["date"],
        site=resolved["site"],
        covariates=tuple(covariates or ()),
    )


@dataclass(frozen=True)
class Table:
    """A tabular source: its name for messages, its columns, and a chunk iterator.

    ``chunks(usecols, strings)`` yields DataFrames of at most ``chunksize`` rows (``None``:
    one chunk) holding only ``usecols``, in file order; ``strings`` are read as text.
    """

    where: str
    columns: tuple[str, ...]
    chunks: Callable[[list[str], Collection[str]], Iterator[pd.DataFrame]]
    chunksize: int | None = None


# ---------------------------------------------------------------------------- opening
def check_path(source) -> Path:
    """``source`` as a Path that exists; a missing file raises MissingFileError
    (a FileNotFoundError)."""
    path = Path(os.fspath(source)).expanduser()
    if not path.exists():
        raise MissingFileError(2, "No such file", str(path))
    if path.is_dir():
        raise FormatError(f"{path}: is a folder; give the path of a data file")
    return path


def real_suffix(path: Path) -> str:
    """The suffix that tells the format, under any compression suffix (``.csv.gz`` -> ``.csv``)."""
    suffixes = [s.lower() for s in path.suffixes]
    while suffixes and suffixes[-1] in _COMPRESSED:
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def binary_opener(path: Path) -> Callable[[], object]:
    """A function opening the (decompressed) bytes of ``path``; single-file zips included.
    Truncated or corrupt compressed data raises :class:`FormatError` naming the file, when it
    is opened or read (see :func:`reading_compressed`).

    Example:
        >>> with binary_opener(Path("ebd_sample.txt.gz"))() as fh:  # doctest: +SKIP
        ...     header = fh.readline()
    """
    suffix = path.suffix.lower()
    if suffix in _COMPRESSED:
        return lambda: CheckedStream(path, lambda: _COMPRESSED[suffix](path, "rb"))
    if suffix == ".zip":
        with reading_compressed(path), zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
        if len(names) != 1:
            raise FormatError(
                f"{path}: a zip with {len(names)} files and no meta.xml; expected a Darwin Core "
                f"Archive or a zip holding one table (found {', '.join(names[:10])})"
            )

        return lambda: zip_member(path, names[0])
    return lambda: open(path, "rb")


@contextmanager
def reading_compressed(path, member: str | None = None) -> Iterator[None]:
    """Turn what truncated or corrupt compressed data raises (``EOFError``, ``BadGzipFile``,
    ``zlib.error``, ``BadZipFile`` ...) into a :class:`FormatError` naming the file."""
    try:
        yield
    except _CORRUPT as e:
        path = Path(path)
        kind = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".zip": "zip"}.get(
            path.suffix.lower(), "compressed"
        )
        check = {"gzip": "gzip -t", "bzip2": "bzip2 -t", "xz": "xz -t", "zip": "unzip -t"}
        where = f"{path}!{member}" if member else str(path)
        raise FormatError(
            f"{where}: not readable {kind} data, the file is truncated or corrupt "
            f"({type(e).__name__}: {e}); download or copy it again"
            + (f" (`{check[kind]}` checks it)" if kind in check else "")
        ) from None


class CheckedStream:
    """A decompressing binary stream whose reads raise :class:`FormatError` (naming the
    file) on truncated or corrupt data; the methods pandas and ``io`` read with are checked,
    everything else is the stream's own."""

    mode = "rb"  # ZipExtFile says "r", which pandas would take for text

    def __init__(self, path: Path, open_raw: Callable[[], object], member: str | None = None):
        self._path, self._member = path, member
        with reading_compressed(path, member):
            self._fh = open_raw()

    def _checked(self, method: str, *args):
        with reading_compressed(self._path, self._member):
            return getattr(self._fh, method)(*args)

    def read(self, *args):
        return self._checked("read", *args)

    def read1(self, *args):
        return self._checked("read1", *args)

    def readinto(self, *args):
        return self._checked("readinto", *args)

    def readline(self, *args):
        return self._checked("readline", *args)

    def __next__(self):
        return self._checked("__next__")

    def __iter__(self):
        return self

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()


def zip_member(path: Path, name: str) -> CheckedStream:
    """Member ``name`` of the zip ``path`` opened for reading bytes (closing it closes the
    zip too); a truncated or corrupt zip raises :class:`FormatError`."""
    return CheckedStream(path, lambda: ZipMember(path, name), member=name)


class ZipMember:
    """A zip member opened for reading bytes; closing it closes the zip too (use
    :func:`zip_member`, which checks for corrupt data)."""

    def __init__(self, path: Path, name: str):
        self._zip = zipfile.ZipFile(path)
        try:
            self._fh = self._zip.open(name)
        except BaseException:
            self._zip.close()
            raise

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def close(self) -> None:
        self._fh.close()
        self._zip.close()


def check_encoding(
    encoding: str, where: str, given_as: str = "encoding=", error: type = ConfigError
) -> None:
    """Raise ``error`` for an encoding name Python does not know."""
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise error(
            f"{where}: {given_as} {encoding!r} is not a text encoding Python knows; pass "
            f"encoding= with the file's real one, e.g. encoding='utf-8' or encoding='latin-1'"
        ) from None


def encoding_error(
    where: str, open_binary: Callable[[], object], encoding: str
) -> FileEncodingError:
    """The error for a file that is not valid ``encoding``, naming the first bad byte."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset, line = 0, 1
    with open_binary() as fh:
        while block := fh.read(_SCAN_BLOCK):
            pending = len(decoder.getstate()[0])
            try:
                decoder.decode(block)
            except UnicodeDecodeError as e:
                start = offset - pending + e.start
                local = max(e.start - pending, 0)
                line += block[:local].count(b"\n")
                bad = block[local : local + 4]
                context = block[max(local - 30, 0) : local + 10].decode("latin-1")
                return FileEncodingError(
                    f"{where}: not valid {_label(encoding)} text: byte {start} (line {line}) "
                    f"is {bad[:1]!r} ({e.reason}), near {context!r}. Pass the file's encoding, "
                    f"e.g. encoding='latin-1' or encoding='cp1252'."
                )
            offset += len(block)
            line += block.count(b"\n")
    return FileEncodingError(f"{where}: not valid {_label(encoding)} text; pass encoding=")


def _label(encoding: str) -> str:
    return "UTF-8" if codecs.lookup(encoding).name in ("utf-8", "utf-8-sig") else encoding


def first_line(where: str, open_binary: Callable[[], object], encoding: str) -> str:
    """The first line of a text file (the header), decoded."""
    with open_binary() as fh:
        raw = fh.readline(_SCAN_BLOCK)
    try:
        return codecs.decode(raw, encoding).rstrip("\r\n")
    except UnicodeDecodeError:
        raise encoding_error(where, open_binary, encoding) from None


def sniff_sep(header: str, suffix: str) -> str:
    """The delimiter of a header line: tab if it has one, else the commonest of , ; |."""
    if "\t" in header or suffix in (".tsv", ".tab"):
        return "\t"
    counts = {sep: header.count(sep) for sep in (",", ";", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def csv_table(
    where: str,
    open_binary: Callable[[], object],
    *,
    encoding: str,
    chunksize: int,
    sep: str | None = None,
    quoting: int | None = csv.QUOTE_MINIMAL,
    quotechar: str = '"',
    header_lines: int = 1,
    names: Sequence[str] | None = None,
    suffix: str = "",
) -> Table:
    """A delimited text table read with ``pandas.read_csv(chunksize=..., usecols=...)``.

    With ``names`` (positional column names, ``None`` for unnamed columns) the first
    ``header_lines`` lines are skipped; otherwise the first line is the header.
    ``quoting=None``: fields are unquoted when tab-separated (GBIF, eBird), quoted otherwise.

    Columns are read by position, so a name the header gives twice yields every copy; a
    row whose copies differ, and a row with a non-empty field beyond the header's (or
    ``names``') last column, is marked in the :data:`PROBLEM` column of its chunk.
    """
    header = None
    if header_lines > 0:
        header = first_line(where, open_binary, encoding)
        if not header.strip():
            raise EmptyDataError(f"{where} is empty: no header line (expected column names)")
        sep = sep or sniff_sep(header, suffix)
    sep = sep or ","
    if quoting is None:
        quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL

    def fields(line: str) -> list[str]:
        return next(csv.reader([line], delimiter=sep, quotechar=quotechar, quoting=quoting))

    if names is None:
        names = fields(header)
        header_lines = 1
    n_fields = len(names) if header is None else max(len(names), len(fields(header)))
    columns = tuple(dict.fromkeys(n for n in names if n is not None))

    # pandas reads under a header of our own, "c0,c1,...": every column by position (so each
    # copy of a name), and one more, whose non-empty values are extra fields.
    label = [f"c{i}" for i in range(n_fields + 1)]
    own_header = (sep.join(label) + "\n").encode(encoding)

    def chunks(usecols: list[str], strings: Collection[str]) -> Iterator[pd.DataFrame]:
        wanted = set(usecols)
        positions = [i for i, n in enumerate(names) if n in wanted]
        kwargs = dict(
            sep=sep,
            encoding=encoding,
            chunksize=chunksize,
            quoting=quoting,
            index_col=False,
            skiprows=range(1, header_lines),
            usecols=[label[i] for i in positions] + [label[n_fields]],
            dtype={
                label[i]: str
                for i in positions + [n_fields]
                if i == n_fields or names[i] in strings
            },
        )
        if quoting != csv.QUOTE_NONE:
            kwargs["quotechar"] = quotechar
        try:
            with (
                _reheaded(open_binary, own_header, header_lines) as fh,
                pd.read_csv(fh, **kwargs) as reader,
            ):
                for chunk in reader:
                    extra = chunk.pop(label[n_fields])
                    chunk.columns = [names[int(c[1:])] for c in chunk.columns]
                    yield _mark_extra_fields(_fold_copies(chunk), extra, n_fields)
        except UnicodeDecodeError:
            raise encoding_error(where, open_binary, encoding) from None
        except pd.errors.ParserError as e:
            raise FormatError(f"{where}: malformed delimited text (sep={sep!r}): {e}") from None

    return Table(where=where, columns=columns, chunks=chunks, chunksize=chunksize)


class _Reheaded(io.RawIOBase):
    """The bytes of ``fh`` with its first line replaced by ``header`` (or, with
    ``replace=False``, ``header`` put before them)."""

    def __init__(self, fh, header: bytes, replace: bool):
        self._fh = fh
        if replace:
            fh.readline()
        self._pending = header

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self._pending:
            n = min(len(buffer), len(self._pending))
            buffer[:n], self._pending = self._pending[:n], self._pending[n:]
            return n
        data = self._fh.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._fh.close()
        super().close()


def _reheaded(open_binary: Callable[[], object], header: bytes, header_lines: int):
    return io.BufferedReader(_Reheaded(open_binary(), header, header_lines > 0), 1 << 16)


def _mark(chunk: pd.DataFrame, rows: np.ndarray, problems: Sequence[tuple]) -> pd.DataFrame:
    """``chunk`` with ``problems[k]`` in its :data:`PROBLEM` column at row ``rows[k]`` (a row
    keeps the first problem found)."""
    if not len(rows):
        return chunk
    marks = (
        chunk[PROBLEM].to_numpy(dtype=object).copy()
        if PROBLEM in chunk.columns
        else np.full(len(chunk), None, dtype=object)
    )
    for row, problem in zip(rows, problems):
        if marks[row] is None:
            marks[row] = problem
    return chunk.assign(**{PROBLEM: marks})


def _mark_extra_fields(chunk: pd.DataFrame, extra: pd.Series, n_fields: int) -> pd.DataFrame:
    """Rows with a non-empty field after the last column marked in :data:`PROBLEM`."""
    rows = np.flatnonzero(extra.notna().to_numpy())
    what = f"have more fields than the header's {n_fields}"
    values = extra.to_numpy(dtype=object)
    problems = [("extra fields", what, f"field {n_fields + 1} = {values[i]!r}") for i in rows]
    return _mark(chunk, rows, problems)


def _fold_copies(chunk: pd.DataFrame) -> pd.DataFrame:
    """One column per name: copies of a column named more than once are compared and the
    first is kept; rows where a copy differs are marked in :data:`PROBLEM`."""
    labels = chunk.columns
    twice = labels.duplicated()
    if not twice.any():
        return chunk
    rows, problems = [], []
    for name in dict.fromkeys(labels[twice]):
        copies = chunk.loc[:, labels == name]
        first = copies.iloc[:, 0]
        what = f"differ between the {copies.shape[1]} columns named {name!r}"
        for k in range(1, copies.shape[1]):
            other = copies.iloc[:, k]
            differ = ~((first == other) | (first.isna() & other.isna())).to_numpy()
            for i in np.flatnonzero(differ):
                shown = f"{first.iloc[i]!r} in one, {other.iloc[i]!r} in another"
                rows.append(i)
                problems.append(("conflicting duplicate column", what, shown))
    return _mark(chunk.loc[:, ~twice], np.asarray(rows, dtype=np.int64), problems)


def frame_table(df: pd.DataFrame, where: str) -> Table:
    """An in-memory DataFrame as one chunk (GeoDataFrame points become ``lat``/``lon``)."""
    geopandas = sys.modules.get("geopandas")
    if geopandas is not None and isinstance(df, geopandas.GeoDataFrame):
        df = _points_frame(df, where)

    def chunks(usecols: list[str], strings: Collection[str]) -> Iterator[pd.DataFrame]:
        yield _fold_copies(df[usecols])

    columns = tuple(dict.fromkeys(str(c) for c in df.columns))
    return Table(where=where, columns=columns, chunks=chunks)


GEOMETRY_LAT, GEOMETRY_LON = "geometry.lat", "geometry.lon"


def _points_frame(gdf, where: str) -> pd.DataFrame:
    """A GeoDataFrame's point geometry as ``geometry.lat`` / ``geometry.lon`` in EPSG:4326."""
    geom = gdf.geometry
    kinds = geom.geom_type.to_numpy(dtype=object)
    bad = pd.notna(kinds) & (kinds != "Point")
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FormatError(
            f"{where}: {int(bad.sum())} of {bad.size} geometries are not points; "
            f"first: row {i} = {kinds[i]}. Use point geometries (e.g. gdf.centroid) "
            "or lat=/lon= columns."
        )
    if geom.crs is not None and geom.crs.to_epsg() != 4326:
        geom = geom.to_crs(4326)
    out = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    out[GEOMETRY_LAT] = geom.y.to_numpy()
    out[GEOMETRY_LON] = geom.x.to_numpy()
    return out


def parquet_table(path: Path, chunksize: int) -> Table:
    """A Parquet file read in record batches of ``chunksize`` rows."""
    import pyarrow.parquet as pq

    if path.stat().st_size == 0:
        raise EmptyDataError(f"{path} is empty: 0 bytes (expected a Parquet file)")
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises ArrowInvalid / OSError for non-Parquet bytes
        raise FormatError(f"{path}: not a readable Parquet file: {e}") from None

    def chunks(usecols: list[str], strings: Collection[str]) -> Iterator[pd.DataFrame]:
        for batch in pf.iter_batches(batch_size=chunksize, columns=usecols):
            yield batch.to_pandas()

    return Table(
        where=str(path), columns=tuple(pf.schema_arrow.names), chunks=chunks, chunksize=chunksize
    )


def open_table(
    source,
    *,
    encoding: str | None = None,
    chunksize: int = 1_000_000,
    sep: str | None = None,
    quoting: int | None = csv.QUOTE_MINIMAL,
) -> Table:
    """Open a DataFrame, GeoDataFrame, CSV / TSV (optionally .gz/.bz2/.xz or a one-file
    zip) or Parquet file as a :class:`Table`.

    Raises:
        EmptyDataError: an empty file (no header line, or a 0-byte Parquet file).
        ConfigError: an ``encoding`` Python does not know.
    """
    check_chunksize(chunksize)
    if isinstance(source, pd.DataFrame):
        return frame_table(source, "DataFrame")
    path = check_path(source)
    if real_suffix(path) in _PARQUET:
        return parquet_table(path, chunksize)
    if encoding is not None:
        check_encoding(encoding, str(path))
    return csv_table(
        str(path),
        binary_opener(path),
        encoding=encoding or _DEFAULT_ENCODING,
        chunksize=chunksize,
        sep=sep,
        quoting=quoting,
        suffix=real_suffix(path),
    )


def check_chunksize(chunksize: int) -> None:
    if not isinstance(chunksize, (int, np.integer)) or isinstance(chunksize, bool) or chunksize < 1:
        raise ConfigError(f"chunksize must be a positive integer, got {chunksize!r}")


# ---------------------------------------------------------------------------- building
def _strings(series: pd.Series) -> np.ndarray:
    """Values as an object array of str (missing stays missing)."""
    if not (pd.api.types.is_string_dtype(series) or series.dtype == object):
        series = series.astype("string")
    return series.to_numpy(dtype=object, na_value=None)


def _numbers(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    return series.to_numpy(dtype=object, na_value=None)


def _dates(series: pd.Series) -> np.ndarray:
    """Dates for :meth:`Observations.from_arrays`. Dates repeat a lot in real files, so in a
    chunk of :data:`FACTORIZE_MIN_ROWS` rows or more each distinct text is parsed once; if any
    of them is a problem (or needs a note), the raw text is passed on so that messages count
    and number the rows themselves. Missing dates (even all of them) are ``NaT``."""
    if pd.api.types.is_datetime64_any_dtype(series) or len(series) < FACTORIZE_MIN_ROWS:
        return series.to_numpy()
    codes, uniques = pd.factorize(series)
    if len(uniques) > len(series) // _DISTINCT_PER_DATE:
        return series.to_numpy()
    parsed, masks, _, counted = parse_dates(np.asarray(uniques, dtype=object))
    if masks or counted:
        return series.to_numpy()
    out = np.full(len(series), np.datetime64("NaT"), dtype="datetime64[D]")
    known = codes >= 0  # -1: a missing value, which factorize leaves out of uniques
    out[known] = parsed[codes[known]]
    return out


@dataclass(frozen=True)
class ReadPlan:
    """How a reader reads a table: the source, which column holds what, and what it does to
    each chunk.

    Each streaming reader makes its plan with one function (:func:`table_plan`,
    ``inat_csv_plan``, ``gbif_plan``, ``ebird_plan``), which whatever else reads the same
    files chunk by chunk (:func:`geoprior.convert_to_columns`) calls too.

    Attributes:
        table: the source.
        cols: which of its columns holds what.
        prepare: turns each chunk (with the ``cols`` and ``extra`` columns) into one with the
            ``cols`` columns (e.g. filling empty species from another column); ``None``: none.
        extra: columns read besides ``cols``, for ``prepare``.
        select: ``(column, allowed values)``: after validation, rows whose ``column`` is not
            allowed are removed by design (never an error), counted in the report's
            ``removed`` per value (reason ``"CATEGORY 'spuh'"``).

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"lat": [44.0], "lon": [-71.3], "species": ["Junco hyemalis"]})
        >>> table_plan(df).cols
        Columns(lat='lat', lon='lon', species='species', date=None, site=None, covariates=())
    """

    table: Table
    cols: Columns
    prepare: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    extra: tuple[str, ...] = ()
    select: tuple[str, tuple[str, ...]] | None = None


@dataclass(frozen=True)
class Chunk:
    """One chunk of a table, validated.

    Attributes:
        obs: its valid rows (those ``select`` allows), with their own ``report``: rows read
            = kept + dropped + removed.
        offset: the file row number of its first row.
        rows: how many rows it had as read.
    """

    obs: Observations
    offset: int
    rows: int


class ObservationChunks:
    """The rows of a :class:`ReadPlan`, read and validated one chunk at a time.

    Iterating reads the table once and yields a :class:`Chunk` per chunk of the source, each
    validated by :meth:`Observations.from_arrays` with file row numbers: messages name the
    source, and ``rows 1000..1999`` too unless the source is one chunk. ``report`` adds up
    the chunks' reports as they come (with the rows ``select`` removed, per value, in
    ``removed``). Warning once about the dropped rows is the caller's
    (:func:`geoprior.validation.warn_dropped`).

    Raises:
        GeopriorError: ``on_invalid`` is not ``"raise"`` or ``"drop"``.
        CoordinateError, DateError, SpeciesNameError: (while iterating) the first invalid row,
            when ``on_invalid="raise"``.

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"lat": [44.0, 95.0], "lon": [-71.3, 0.0],
        ...                    "species": ["Junco hyemalis", "Pica pica"]})
        >>> chunks = ObservationChunks(table_plan(df), on_invalid="drop")
        >>> [(len(c.obs), c.offset, c.rows) for c in chunks]
        [(1, 0, 2)]
        >>> chunks.report.rows_kept
        1
    """

    def __init__(self, plan: ReadPlan, *, on_invalid: str = "raise", lon_360: bool = False):
        check_on_invalid(on_invalid)
        self.plan, self.on_invalid, self.lon_360 = plan, on_invalid, lon_360
        self.report = InvalidRows()

    def __iter__(self) -> Iterator[Chunk]:
        table, cols, select = self.plan.table, self.plan.cols, self.plan.select
        self.report = InvalidRows()
        selected = [] if select is None else [select[0]]
        marked = [PROBLEM] if PROBLEM in table.columns else []
        usecols = list(dict.fromkeys([*cols.needed(), *self.plan.extra, *selected, *marked]))
        strings = {cols.species, cols.date, cols.site, *self.plan.extra, *selected}
        offset = 0
        for chunk in table.chunks(usecols, strings):
            n = len(chunk)
            if self.plan.prepare is not None:
                chunk = self.plan.prepare(chunk)
            alone = table.chunksize is None or (offset == 0 and n < table.chunksize)
            where = table.where if alone else f"{table.where}, rows {offset}..{offset + n - 1}"
            obs = _validate_chunk(chunk, cols, where, offset, self.on_invalid, self.lon_360, select)
            self.report.merge(obs.report)
            yield Chunk(obs=obs, offset=offset, rows=n)
            offset += n


def observations_from_table(
    plan: ReadPlan, *, on_invalid: str = "raise", lon_360: bool = False, merge_case: bool = False
) -> Observations:
    """Read a plan's table whole: its :class:`ObservationChunks` joined, dropped rows warned,
    species names that differ only by case reported (see :func:`check_case`).

    Raises:
        EmptyDataError: no rows are left.

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"lat": [44.0], "lon": [-71.3], "species": ["Junco hyemalis"]})
        >>> observations_from_table(table_plan(df))
        Observations(1 rows, 1 species, 0 dated)
    """
    chunks = ObservationChunks(plan, on_invalid=on_invalid, lon_360=lon_360)
    parts = [chunk.obs for chunk in chunks]
    where = plan.table.where
    if not parts:
        raise EmptyDataError(f"{where}: no data rows")
    obs = Observations.concat(parts) if len(parts) > 1 else parts[0]
    obs = replace(obs, report=chunks.report)
    if len(obs) == 0:
        raise EmptyDataError(f"{where}: no usable rows ({obs.report.summary()})")
    warn_dropped(obs.report, where)
    return check_case(obs, where, merge_case)


def check_case(obs: Observations, where: str, merge_case: bool = False) -> Observations:
    """Species names that differ only by case: noted in the report and warned about, or,
    with ``merge_case``, merged into each one's commonest spelling (and noted).

    Example:
        >>> obs = Observations.from_arrays([1.0, 2.0, 3.0], [1.0, 2.0, 3.0],
        ...                                ["Pica pica", "Pica pica", "pica pica"])
        >>> check_case(obs, "sightings", merge_case=True).species
        ('Pica pica',)
    """
    groups = case_variants(obs.species)
    if not groups:
        return obs
    counts = dict(zip(obs.species, obs.species_counts().tolist()))
    shown = "; ".join(" / ".join(f"{s!r} ({counts[s]} rows)" for s in g) for g in groups[:5])
    shown += " ..." if len(groups) > 5 else ""
    if merge_case:
        obs = obs.merge_case_variants()
        note = (
            f"merged {len(groups)} species whose names differ only by case, each into its "
            f"commonest spelling: {shown}"
        )
    else:
        note = (
            f"{len(groups)} species have names that differ only by case, kept apart: {shown}; "
            f"pass merge_case=True to merge each into its commonest spelling"
        )
        warnings.warn(f"{where}: {note}", UserWarning, stacklevel=3)
    obs.report.note(note)
    return obs


def _validate_chunk(
    chunk: pd.DataFrame,
    cols: Columns,
    where: str,
    offset: int,
    on_invalid: str,
    lon_360: bool,
    select: tuple[str, Collection[str]] | None,
) -> Observations:
    n = len(chunk)
    problems = _problems(chunk, offset) if PROBLEM in chunk.columns else None
    site = None if cols.site is None else _strings(chunk[cols.site])
    covariates = None
    if cols.covariates:
        covariates = np.column_stack(
            [
                pd.to_numeric(chunk[c], errors="coerce").to_numpy(np.float64, na_value=np.nan)
                for c in cols.covariates
            ]
        )
    rows = np.arange(offset, offset + n)
    with warnings.catch_warnings():  # one summary warning for the whole source instead
        warnings.filterwarnings(
            "ignore", message=re.escape(where) + ": read ", category=UserWarning
        )
        obs = Observations.from_arrays(
            _numbers(chunk[cols.lat]),
            _numbers(chunk[cols.lon]),
            _strings(chunk[cols.species]),
            None if cols.date is None else _dates(chunk[cols.date]),
            covariates=covariates,
            covariate_names=cols.covariates or None,
            site=rows.astype(object) if select is not None else site,
            on_invalid=on_invalid,
            lon_360=lon_360,
            where=where,
            row_offset=offset,
            problems=problems,
        )
    if select is None:
        return obs
    kept = obs.site.astype(np.int64) - offset  # the carried row numbers of valid rows
    values = _strings(chunk[select[0]])[kept]
    allowed = np.isin(values.astype(str), np.asarray(list(select[1]), dtype=str))
    allowed &= pd.notna(values)
    present = np.unique(obs.species_index[allowed])
    out = replace(obs[allowed], site=None if site is None else site[kept][allowed])
    for value, count in pd.Series(values[~allowed], dtype=object).value_counts(dropna=False).items():
        shown = "empty" if pd.isna(value) else repr(str(value))
        out.report.remove(f"{select[0]} {shown}", count)
    out.report.rows_kept -= int((~allowed).sum())
    return out.with_vocabulary([obs.species[i] for i in present])


def _problems(chunk: pd.DataFrame, offset: int) -> dict[str, tuple[np.ndarray, str]]:
    """The rows marked in a chunk's :data:`PROBLEM` column: a mask and a message per reason,
    for :meth:`Observations.from_arrays`'s ``problems``."""
    marks = chunk[PROBLEM].to_numpy(dtype=object)
    n = len(marks)
    masks: dict[str, np.ndarray] = {}
    firsts: dict[str, tuple[int, str, str]] = {}
    for i in np.flatnonzero(pd.notna(marks)):
        reason, what, shown = marks[i]
        masks.setdefault(reason, np.zeros(n, bool))[i] = True
        firsts.setdefault(reason, (i, what, shown))
    return {
        reason: (mask, f"{int(mask.sum())} of {n} rows {what}; first: row {i + offset}: {shown}")
        for (reason, mask), (i, what, shown) in zip(masks.items(), firsts.values())
    }


def read_table(
    source,
    *,
    on_invalid: str = "raise",
    lon_360: bool = False,
    chunksize: int = 1_000_000,
    encoding: str | None = None,
    merge_case: bool = False,
    lat: str | None = None,
    lon: str | None = None,
    species: str | None = None,
    date: str | None = None,
    site: str | None = None,
    covariates: Sequence[str] | None = None,
    sep: str | None = None,
) -> Observations:
    """Read any table with named or guessed columns.

    Args:
        source: a CSV / TSV / Parquet path (``.gz``, ``.bz2``, ``.xz`` and one-file zips
            are decompressed), a pandas DataFrame or a GeoDataFrame of points (reprojected
            to EPSG:4326; its geometry gives lat and lon).
        lat, lon, species, date, site: column names; left out, they are guessed from
            common names (``latitude``, ``lat``, ``decimalLatitude``, ``y`` ... compared
            without case or punctuation). ``date`` and ``site`` are optional.
        covariates: columns of numbers kept as ``Observations.covariates``.
        sep: the delimiter of a text file (default: sniffed from the header line).
        merge_case: merge species whose names differ only by case into the commonest
            spelling (default: keep them apart; the report and a warning name them).

    Raises:
        FormatError: columns that cannot be found or guessed (the message lists the
            columns found and the names expected).

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"Latitude": [44.0], "Longitude": [-71.3],
        ...                    "taxon": ["Setophaga virens"], "when": ["2021-06-14"]})
        >>> obs = read_table(df, date="when")
        >>> obs.lat, obs.date
        (array([44.]), array(['2021-06-14'], dtype='datetime64[D]'))
    """
    plan = table_plan(
        source,
        encoding=encoding,
        chunksize=chunksize,
        lat=lat,
        lon=lon,
        species=species,
        date=date,
        site=site,
        covariates=covariates,
        sep=sep,
    )
    return observations_from_table(
        plan, on_invalid=on_invalid, lon_360=lon_360, merge_case=merge_case
    )


def table_plan(
    source,
    *,
    encoding: str | None = None,
    chunksize: int = 1_000_000,
    sep: str | None = None,
    **column_mapping,
) -> ReadPlan:
    """How :func:`read_table` reads ``source`` (the arguments are its): the source opened,
    its columns named by ``column_mapping`` (``lat=, lon=, species=, date=, site=,
    covariates=``) or guessed.

    Raises:
        FormatError: columns that cannot be found or guessed.

    Example:
        >>> import pandas as pd
        >>> df = pd.DataFrame({"Latitude": [44.0], "Longitude": [-71.3],
        ...                    "taxon": ["Setophaga virens"], "when": ["2021-06-14"]})
        >>> plan = table_plan(df, date="when")
        >>> plan.cols.lat, plan.cols.date
        ('Latitude', 'when')
    """
    table = open_table(source, encoding=encoding, chunksize=chunksize, sep=sep)
    defaults = {}
    named = column_mapping.get("lat") is not None or column_mapping.get("lon") is not None
    if GEOMETRY_LAT in table.columns and not named:
        defaults = {"lat": GEOMETRY_LAT, "lon": GEOMETRY_LON}
    cols = guess_columns(table.columns, table.where, defaults=defaults, **column_mapping)
    return ReadPlan(table=table, cols=cols)
