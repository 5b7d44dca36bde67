"""Writing a column store: observation files of any size converted once to shuffled columns.

:func:`convert_to_columns` streams observation files (a Parquet dataset, a folder of CSVs,
GBIF or eBird downloads ...) in chunks, validates each chunk exactly as the readers of
:mod:`geoprior.io` do, shuffles the rows once and writes them as the raw columns of a store
(the layout: :mod:`geoprior.columnstore.store`), which :class:`ColumnStore` opens
memory-mapped.

The rows are in a uniformly random order (fixed by ``seed``), so any block of consecutive
rows is a random sample, and the first ``k`` rows of a species are a random ``k`` of them.

The shuffle is an external bucket shuffle. Pass 1 streams chunks of at most ``chunk_rows``
rows and appends each valid row to one of ``B`` temporary bucket files, chosen at random, with
``B`` about (estimated rows) / ``chunk_rows`` (Parquet metadata gives the rows exactly; text
files are estimated from their size and first MiB). Pass 2 loads one bucket at a time,
permutes it and appends it to the columns. A bucket that came out larger than
``2 * chunk_rows`` rows (the estimate was low) is split again the same way before it is loaded.

Memory: the peak is O(``chunk_rows`` + number of species), never O(rows): one chunk of a
source as pandas holds it, or one bucket of at most ``2 * chunk_rows`` records of
``20 + 4 * covariates`` bytes, plus the species vocabulary; in practice about 1 KB of
resident memory per chunk row (validation holds the species names as Python strings).
Columns are written with plain file writes, not through a mapping, so the output does not
count as resident memory. pyarrow decodes a Parquet file one row group at a time, so files
written with row groups larger than ``chunk_rows`` raise the bound to one row group.
Disk: the bucket files (``20 + 4 * covariates`` bytes a row) sit beside the new store until
pass 2 ends, so a conversion needs about twice the store's size free.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
from tqdm.auto import tqdm

from ..errors import ConfigError, CoverageError, EmptyDataError, FormatError, suggest
from ..io import PLANS
from ..io.detect import detect_format
from ..io.table import ObservationChunks, binary_opener, check_path, real_suffix
from ..names import case_variants
from ..observations import Observations
from ..outputs import check_output
from ..persistence import atomic_folder, write_json_header
from ..validation import InvalidRows, check_on_invalid, warn_dropped
from .store import FORMAT, FORMAT_VERSION, MANIFEST, ColumnStore, check_count, layout

__all__ = ["convert_to_columns", "STREAMED"]

STREAMED = tuple(PLANS)
_DATA_SUFFIXES = (".parquet", ".pq", ".csv", ".tsv", ".tab", ".txt", ".zip")
_COLUMN_KEYS = ("lat", "lon", "species", "date")
#: Kept places probed for the record of covariate rasters (what tells a changed raster).
_PROBE_ROWS = 4096
#: Bytes of a text file read to estimate its rows.
_HEAD_BYTES = 1 << 20


# ---------------------------------------------------------------------------- converting
def convert_to_columns(
    sources,
    out_dir,
    *,
    columns: Mapping[str, str] | None = None,
    covariates: Iterable[str] = (),
    rasters=None,
    on_invalid: str = "raise",
    lon_360: bool = False,
    encoding: str | None = None,
    categories: Sequence[str] | None = ("species",),
    chunk_rows: int = 500_000,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = False,
) -> ColumnStore:
    """Convert observation files of any size into a shuffled :class:`ColumnStore`.

    Args:
        sources: a file, a folder (every data file under it, recursively, in sorted order:
            ``.parquet``, ``.csv``, ``.tsv``, ``.txt``, ... optionally ``.gz``/``.bz2``/``.xz``;
            names starting with ``.`` or ``_`` are skipped) or a list of them. Each file's
            format is detected; tables, iNaturalist CSV exports, GBIF simple downloads and
            eBird EBD files stream (see :data:`STREAMED`).
        out_dir: the store folder to write (built beside it, then renamed into place).
        columns: column names, ``{"lat": ..., "lon": ..., "species": ..., "date": ...}``;
            left out, they are found as :func:`geoprior.read_observations` finds them.
        covariates: names of numeric columns to keep as ``covariates.npy``.
        rasters: covariate rasters (a :class:`~geoprior.io.rasters.RasterCovariates`, see
            :func:`~geoprior.io.rasters.open_rasters`) sampled at every row as its
            covariates instead, chunk by chunk; rows where a raster has no value follow
            ``on_invalid`` (``"drop"`` counts them in the report). The manifest records
            the rasters (``covariate_source``), so :func:`~geoprior.train_prior` on the
            store trains a prior that maps and predicts with them, as it would from the
            original file with ``rasters=``.
        on_invalid: ``"raise"``: the first bad row raises, naming the file and row.
            ``"drop"``: bad rows are dropped and counted in the manifest's ``report``.
        lon_360, encoding: as for :func:`geoprior.read_observations`.
        categories: eBird files keep the rows of these CATEGORY values, as
            :func:`geoprior.io.read_ebird` does (``None``: every row).
        chunk_rows: rows read, validated and held at a time; bounds the memory used.
        seed: fixes the row order (for the same sources and ``chunk_rows``).
        overwrite: replace an existing store at ``out_dir``.
        progress: show progress bars on stderr.

    Raises:
        OutputExistsError: ``out_dir`` exists and ``overwrite`` is False, or it is not a
            column store (checked by :func:`geoprior.outputs.check_output`, as the CLI does).
        PathError: the folder of ``out_dir`` is not writable.
        FormatError: a file in a format that does not stream, or columns not found.
        EmptyDataError: no valid rows in any source.

    Example:
        >>> store = convert_to_columns("gbif_parquet/", "birds.columns")  # doctest: +SKIP
        >>> store.take(store.per_species_sample(100))  # doctest: +SKIP
        Observations(987100 rows, 9871 species, 987100 dated)
    """
    check_on_invalid(on_invalid)
    check_count(chunk_rows, "chunk_rows", 1)
    check_count(seed, "seed", 0)
    mapping = dict(columns or {})
    for key in mapping:
        if key not in _COLUMN_KEYS:
            raise ConfigError(
                f"columns takes the keys {', '.join(_COLUMN_KEYS)}; got {key!r}."
                + suggest(str(key), _COLUMN_KEYS)
            )
    covariates = tuple(covariates)
    if rasters is not None:
        if covariates:
            raise ConfigError(
                f"a store takes its covariates from table columns or from rasters, not both; "
                f"got columns {list(covariates)} and rasters {list(rasters.names)}"
            )
        covariates = tuple(rasters.names)
    files = _source_files(sources)
    formats = [_streamed_format(path, encoding) for path in files]
    out = Path(os.fspath(out_dir)).expanduser()
    if not out.parent.exists():
        out.parent.mkdir(parents=True)
    check_output(out, overwrite, marker=MANIFEST, kind="column store")
    with atomic_folder(out) as tmp:
        rng = np.random.default_rng(seed)
        estimate = sum(_estimate_rows(path) for path in files)
        dtype = _record_dtype(len(covariates))
        reader = _Reader(
            mapping, covariates, on_invalid, lon_360, encoding, categories, chunk_rows, dtype,
            rasters,
        )
        (tmp / "buckets").mkdir()
        with tqdm(total=estimate, unit="row", desc="reading", disable=not progress) as bar:
            records = reader.records(files, formats, bar.update)
            n_buckets = max(1, math.ceil(estimate / chunk_rows))
            buckets = _scatter(records, str(tmp / "buckets" / "b"), n_buckets, rng)
        n = reader.report.rows_kept
        where = str(files[0]) if len(files) == 1 else f"{len(files)} files"
        if n == 0:
            raise EmptyDataError(f"{where}: no usable rows ({reader.report.summary()})")
        if groups := case_variants(reader.vocab):  # as the readers note them (not merged)
            shown = "; ".join(" / ".join(repr(s) for s in g) for g in groups[:5])
            note = f"{len(groups)} species have names that differ only by case, kept apart: {shown}"
            reader.report.note(note)
            warnings.warn(f"{where}: {note}", UserWarning, stacklevel=2)
        species = sorted(reader.vocab)
        to_sorted = np.empty(len(species), np.int32)
        to_sorted[[reader.vocab[s] for s in species]] = np.arange(len(species), dtype=np.int32)
        with tqdm(total=n, unit="row", desc="shuffling", disable=not progress) as bar:
            summary = _write_columns(
                tmp, buckets, n, to_sorted, len(covariates), chunk_rows, rng, bar
            )
        shutil.rmtree(tmp / "buckets")
        mean, std = summary.covariate_stats()
        manifest = {
            "n_rows": n,
            "species": species,
            "species_counts": summary.counts.tolist(),
            "covariate_names": list(covariates),
            "covariate_mean": mean.tolist(),
            "covariate_std": std.tolist(),
            "dated_fraction": summary.dated / n,
            "extent": summary.extent(),
            "sources": reader.sources,
            "report": reader.report.as_dict(),
            **({"covariate_source": reader.raster_record()} if rasters is not None else {}),
            "seed": int(seed),
            "chunk_rows": int(chunk_rows),
        }
        write_json_header(tmp / MANIFEST, FORMAT, FORMAT_VERSION, manifest, indent=1)
    return ColumnStore.open(out)


def _write_columns(tmp, buckets, n, to_sorted, n_covariates, chunk_rows, rng, bar) -> _Summary:
    """Pass 2: each bucket shuffled and appended to the column files; returns their summary."""
    dtype = _record_dtype(n_covariates)
    summary = _Summary(to_sorted.size, n_covariates)
    with ExitStack() as stack:
        out = {
            name: stack.enter_context(_column_file(tmp / f"{name}.npy", dt, shape))
            for name, dt, shape in layout(n, n_covariates)
        }
        for path, count in buckets:
            for rec in _shuffled(path, count, dtype, chunk_rows, rng):
                species = to_sorted[rec["species"]]
                values = {"lat": rec["lat"], "lon": rec["lon"], "date": rec["date"]}
                values["species_index"] = species
                if "covariates" in out:
                    values["covariates"] = rec["cov"]
                for name, column in values.items():
                    np.ascontiguousarray(column).tofile(out[name])
                summary.add(rec, species)
                bar.update(rec.size)
    return summary


def _source_files(sources) -> list[Path]:
    """The data files of ``sources``: files as given, folders expanded recursively, sorted."""
    items = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    if not items:
        raise ConfigError("sources is empty; give a file, a folder or a list of them")
    files = []
    for item in items:
        path = Path(os.fspath(item)).expanduser()
        if not path.is_dir():
            files.append(check_path(path))
            continue
        found = sorted(
            p
            for p in path.rglob("*")
            if p.is_file()
            and real_suffix(p) in _DATA_SUFFIXES
            and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
        )
        if not found:
            raise EmptyDataError(
                f"{path}: no data files in this folder (looked for {', '.join(_DATA_SUFFIXES)}, "
                f"optionally .gz/.bz2/.xz)"
            )
        files += found
    return files


def _streamed_format(path: Path, encoding: str | None) -> str:
    fmt = detect_format(path, encoding=encoding)
    if fmt not in STREAMED:
        raise FormatError(
            f"{path}: a {fmt!r} file is read whole, so it cannot be converted in chunks; "
            f"formats that stream: {', '.join(STREAMED)} (CSV/TSV/Parquet). Read it with "
            f"read_observations(), save obs.to_frame() as Parquet and convert that."
        )
    return fmt


def _estimate_rows(path: Path) -> int:
    """Rows in a file: exact for Parquet, else from its size and the lines of its first MiB."""
    if real_suffix(path) in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return pq.read_metadata(path).num_rows
    with binary_opener(path)() as fh:
        head = fh.read(_HEAD_BYTES)
    lines = head.count(b"\n")
    if len(head) < _HEAD_BYTES:
        return lines
    compressed = path.suffix.lower() in (".gz", ".bz2", ".xz", ".zip")
    return int(path.stat().st_size * (5 if compressed else 1) * max(lines, 1) / len(head))


def _record_dtype(n_covariates: int) -> np.dtype:
    fields = [("lat", "<f4"), ("lon", "<f4"), ("date", "<M8[D]"), ("species", "<i4")]
    if n_covariates:
        fields.append(("cov", "<f4", (n_covariates,)))
    return np.dtype(fields)


class _Reader:
    """Valid rows of the sources as records, with species as provisional ids in ``vocab``
    (name -> id, in order of first sight) and what was dropped in ``report``/``sources``.
    Each file is read by its reader's plan (:data:`geoprior.io.PLANS`), chunk by chunk."""

    def __init__(
        self, mapping, covariates, on_invalid, lon_360, encoding, categories, chunk_rows, dtype,
        rasters=None,
    ):
        self.mapping, self.covariates, self.rasters = mapping, covariates, rasters
        self.probes: list[np.ndarray] = []  # kept places, for the rasters' record
        self.on_invalid, self.lon_360, self.encoding = on_invalid, lon_360, encoding
        self.categories = categories
        self.chunk_rows, self.dtype = chunk_rows, dtype
        self.vocab: dict[str, int] = {}
        self.report = InvalidRows()
        self.sources: list[dict] = []

    def records(self, files, formats, tick: Callable[[int], object]) -> Iterator[np.ndarray]:
        for path, fmt in zip(files, formats):
            plan = PLANS[fmt](
                path,
                encoding=self.encoding,
                chunksize=self.chunk_rows,
                covariates=() if self.rasters is not None else self.covariates,
                **({"categories": self.categories} if fmt == "ebird" else {}),
                **self.mapping,
            )
            # a store keeps no site ids, so they are not read
            plan = dataclasses.replace(plan, cols=dataclasses.replace(plan.cols, site=None))
            chunks = ObservationChunks(plan, on_invalid=self.on_invalid, lon_360=self.lon_360)
            for chunk in chunks:
                obs = chunk.obs
                if self.rasters is not None:
                    obs = self._sample(obs, chunks.report, plan.table.where, chunk)
                    if obs is None:  # no row of the chunk has a value in every raster
                        tick(chunk.rows)
                        continue
                ids = np.array(
                    [self.vocab.setdefault(s, len(self.vocab)) for s in obs.species], np.int32
                )
                rec = np.empty(len(obs), self.dtype)
                rec["lat"], rec["lon"], rec["date"] = obs.lat, obs.lon, obs.date
                rec["species"] = ids[obs.species_index]
                if self.covariates:
                    rec["cov"] = obs.covariates
                tick(chunk.rows)
                yield rec
            warn_dropped(chunks.report, plan.table.where)
            self.report.merge(chunks.report)
            self.sources.append(
                {"path": str(path), "format": fmt, **chunks.report.as_dict()}
            )

    def _sample(self, obs: Observations, report: InvalidRows, where: str, chunk):
        """A chunk's observations with the rasters' values as covariates (``None`` when no
        row has a value in every raster); the rows where a raster has none raise, or are
        dropped and counted in the file's ``report``."""
        from ..io.rasters import attach_covariates

        try:
            sampled = attach_covariates(obs, self.rasters, on_invalid=self.on_invalid)
        except CoverageError as e:
            rows = f"rows {chunk.offset}..{chunk.offset + chunk.rows - 1}"
            raise CoverageError(f"{where}, {rows}: {e}") from None
        except EmptyDataError:  # no row of the chunk has a value in every raster
            found = self.rasters.lookup(obs.lat, obs.lon)
            outside = int(found.outside.any(1).sum())
            counts = {"outside the covariate rasters": outside, "on raster nodata": len(obs) - outside}
            report.merge(InvalidRows(0, -len(obs), {k: v for k, v in counts.items() if v}))
            return None
        dropped = {
            reason: count - obs.report.dropped.get(reason, 0)
            for reason, count in sampled.report.dropped.items()
        }
        dropped = {k: v for k, v in dropped.items() if v}
        if dropped:
            report.merge(InvalidRows(0, -sum(dropped.values()), dropped))
        if len(sampled) and sum(len(p) for p in self.probes) < _PROBE_ROWS:
            self.probes.append(np.stack([sampled.lat, sampled.lon], 1)[:_PROBE_ROWS])
        return sampled

    def raster_record(self) -> dict:
        """The rasters as a prior records them (:meth:`RasterCovariates.record`), probed at
        kept places of the first chunks."""
        places = np.concatenate(self.probes) if self.probes else np.zeros((0, 2))
        return self.rasters.record(places[:, 0], places[:, 1])


def _scatter(
    pieces: Iterable[np.ndarray], stem: str, n_buckets: int, rng: np.random.Generator
) -> list[tuple[str, int]]:
    """Append each record of ``pieces`` to one of ``n_buckets`` files ``stem.<i>``, chosen at
    random. Returns ``(path, rows)`` of the non-empty buckets, in order."""
    counts = np.zeros(n_buckets, np.int64)
    for rec in pieces:
        bucket = rng.integers(n_buckets, size=rec.size)
        sizes = np.bincount(bucket, minlength=n_buckets)
        rec = rec[np.argsort(bucket, kind="stable")]
        ends = np.cumsum(sizes)
        for i in np.flatnonzero(sizes):
            with open(f"{stem}.{i}", "ab") as f:
                rec[ends[i] - sizes[i] : ends[i]].tofile(f)
        counts += sizes
    return [(f"{stem}.{i}", int(c)) for i, c in enumerate(counts) if c]


def _shuffled(
    path: str, rows: int, dtype: np.dtype, chunk_rows: int, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """The ``dtype`` records of bucket file ``path`` in uniformly random order, in pieces of at
    most ``2 * chunk_rows`` rows (a larger bucket is split at random first); deletes the file."""
    if rows <= 2 * chunk_rows:
        rec = np.fromfile(path, dtype)
        os.remove(path)
        yield rec[rng.permutation(rec.size)]
        return

    def pieces():
        with open(path, "rb") as f:
            while (rec := np.fromfile(f, dtype, count=chunk_rows)).size:
                yield rec

    parts = _scatter(pieces(), path, max(2, math.ceil(rows / chunk_rows)), rng)
    os.remove(path)
    for part, count in parts:
        yield from _shuffled(part, count, dtype, chunk_rows, rng)


@contextmanager
def _column_file(path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> Iterator[BinaryIO]:
    """A new ``.npy`` file of ``dtype`` and ``shape``, open for writing its data in order."""
    header = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    offset = header.offset
    del header  # unmapped: the data is written through the file, not the mapping
    with open(path, "r+b") as fh:
        fh.seek(offset)
        yield fh


class _Summary:
    """Counts, dated rows, extent and covariate moments, accumulated bucket by bucket."""

    def __init__(self, n_species: int, n_covariates: int):
        self.counts = np.zeros(n_species, np.int64)
        self.dated = 0
        self.lat = np.empty(0)
        self.lon = np.empty(0)
        self.n = 0
        self.mean = np.zeros(n_covariates)
        self.m2 = np.zeros(n_covariates)

    def add(self, rec: np.ndarray, species: np.ndarray) -> None:
        self.counts += np.bincount(species, minlength=self.counts.size)
        self.dated += int((~np.isnat(rec["date"])).sum())
        lat = np.concatenate([self.lat, rec["lat"].astype(np.float64)])
        lon = np.concatenate([self.lon, rec["lon"].astype(np.float64)])
        shifted = np.mod(lon, 360.0)  # Observations.extent() needs only these extremes
        keep = [f(v) for v in (lat, lon, shifted) for f in (np.argmin, np.argmax)]
        self.lat, self.lon = lat[keep], lon[keep]
        if self.mean.size:  # Chan et al.'s pairwise update of mean and squared deviations
            cov = rec["cov"].astype(np.float64)
            m, mean = cov.shape[0], cov.mean(axis=0)
            delta, total = mean - self.mean, self.n + m
            self.m2 += ((cov - mean) ** 2).sum(axis=0) + delta**2 * self.n * m / total
            self.mean += delta * m / total
        self.n += rec.size

    def extent(self) -> dict[str, float]:
        k = self.lat.size
        return Observations(
            lat=self.lat,
            lon=self.lon,
            date=np.full(k, np.datetime64("NaT"), "datetime64[D]"),
            species_index=np.zeros(k, np.int32),
            species=("",),
        ).extent()

    def covariate_stats(self) -> tuple[np.ndarray, np.ndarray]:
        return self.mean, np.sqrt(self.m2 / max(self.n, 1))
