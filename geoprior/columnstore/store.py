"""Reading a column store: :class:`ColumnStore` opens the columns that
:func:`~geoprior.columnstore.convert.convert_to_columns` wrote with ``np.load(mmap_mode="r")``.

A store is a folder::

    STORE/
      manifest.json       {"format": "geoprior-columns", "format_version": 1, "n_rows": n,
                           "species": [sorted names], "species_counts": [...], "extent": {...},
                           "covariate_names", "covariate_mean", "covariate_std",
                           "dated_fraction", "sources", "report", "seed", "chunk_rows",
                           and "covariate_source" where the covariates were sampled from
                           rasters}
      lat.npy             float32 (n,)
      lon.npy             float32 (n,)
      date.npy            datetime64[D] (n,), NaT where undated
      species_index.npy   int32 (n,), index into the manifest's sorted species names
      covariates.npy      float32 (n, c), only when covariates were asked for

The rows are in a uniformly random order (fixed by the conversion's ``seed``), so any block
of consecutive rows is a random sample, and the first ``k`` rows of a species are a random
``k`` of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, FormatError, MissingFileError, RowIndexError
from ..observations import Observations
from ..persistence import read_json_header
from ..validation import InvalidRows

__all__ = ["ColumnStore", "FORMAT", "FORMAT_VERSION", "MANIFEST", "check_count", "layout"]

FORMAT = "geoprior-columns"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
#: Rows read a block at a time when scanning a store (``per_species_sample``).
_SCAN_ROWS = 1 << 20
_MANIFEST_KEYS = (
    "n_rows",
    "species",
    "species_counts",
    "covariate_names",
    "covariate_mean",
    "covariate_std",
    "dated_fraction",
    "extent",
    "report",
)


def layout(n: int, n_covariates: int) -> list[tuple[str, np.dtype, tuple[int, ...]]]:
    """``(name, dtype, shape)`` of each column file of a store."""
    out = [
        ("lat", np.dtype("<f4"), (n,)),
        ("lon", np.dtype("<f4"), (n,)),
        ("date", np.dtype("<M8[D]"), (n,)),
        ("species_index", np.dtype("<i4"), (n,)),
    ]
    if n_covariates:
        out.append(("covariates", np.dtype("<f4"), (n, n_covariates)))
    return out


@dataclass(frozen=True, eq=False)
class ColumnStore:
    """A converted, shuffled set of observations, its columns memory-mapped read-only.

    Open one with :meth:`open` (or get it from :func:`convert_to_columns`). The columns are
    ``np.memmap`` arrays: slicing reads only the rows asked for.

    Attributes:
        path: the store folder.
        species: the vocabulary, sorted names; ``species_index`` indexes it.
        covariate_names: names of the ``covariates`` columns.
        lat, lon: float32 degrees. date: ``datetime64[D]`` (``NaT`` undated).
        species_index: int32. covariates: float32 ``(n, c)`` or ``None``.
        manifest: the parsed ``manifest.json``.

    Example:
        >>> store = ColumnStore.open("birds.columns")  # doctest: +SKIP
        >>> obs = store.take(store.sample_rows(10_000))  # doctest: +SKIP
    """

    path: Path
    species: tuple[str, ...]
    covariate_names: tuple[str, ...]
    lat: np.ndarray
    lon: np.ndarray
    date: np.ndarray
    species_index: np.ndarray
    covariates: np.ndarray | None
    manifest: dict

    @classmethod
    def open(cls, path) -> ColumnStore:
        """Open a store folder, checking its manifest and the type and shape of each column.

        Raises:
            MissingFileError: ``path`` does not exist.
            FormatError: it is not a column store, or a file is missing, corrupt,
                truncated or of the wrong shape, or written by a newer geoprior.
        """
        path = Path(os.fspath(path)).expanduser()
        if not path.exists():
            raise MissingFileError(2, "No such column store", str(path))
        file = path / MANIFEST
        if not file.is_file():
            raise FormatError(
                f"{path} is not a column store: no {MANIFEST} inside (expected a folder "
                f"written by convert_to_columns)"
            )
        manifest = read_json_header(file, FORMAT, FORMAT_VERSION, FormatError)
        missing = [k for k in _MANIFEST_KEYS if k not in manifest]
        if missing:
            raise FormatError(f"{file} is incomplete: no {', '.join(missing)}")
        try:
            n = int(manifest["n_rows"])
            species = tuple(str(s) for s in manifest["species"])
            names = tuple(str(s) for s in manifest["covariate_names"])
            counts = [int(c) for c in manifest["species_counts"]]
        except (TypeError, ValueError) as e:
            raise FormatError(f"{file} is corrupt: {type(e).__name__}: {e}") from None
        if len(counts) != len(species) or sum(counts) != n:
            raise FormatError(
                f"{file} is inconsistent: {len(counts)} species counts summing to "
                f"{sum(counts)} for {len(species)} species and {n} rows"
            )
        arrays = {}
        for name, dtype, shape in layout(n, len(names)):
            column = path / f"{name}.npy"
            if not column.is_file():
                raise FormatError(f"{path} is incomplete: no {column.name} ({dtype} {shape})")
            try:
                a = np.load(column, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError, EOFError) as e:
                raise FormatError(f"{column} is corrupt or truncated: {e}") from None
            if a.dtype != dtype or a.shape != shape:
                raise FormatError(
                    f"{column}: expected {dtype} of shape {shape}, found {a.dtype} of shape "
                    f"{a.shape}"
                )
            arrays[name] = a
        return cls(
            path=path,
            species=species,
            covariate_names=names,
            covariates=arrays.pop("covariates", None),
            manifest=manifest,
            **arrays,
        )

    def __len__(self) -> int:
        return int(self.lat.shape[0])

    def __repr__(self) -> str:
        cov = f", {len(self.covariate_names)} covariates" if self.covariate_names else ""
        return (
            f"ColumnStore({str(self.path)!r}: {len(self)} rows, {self.n_species} species, "
            f"{self.dated_fraction:.0%} dated{cov})"
        )

    @property
    def n_species(self) -> int:
        return len(self.species)

    @property
    def species_counts(self) -> np.ndarray:
        """Rows of each species, aligned with ``species``."""
        return np.asarray(self.manifest["species_counts"], dtype=np.int64)

    @property
    def dated_fraction(self) -> float:
        return float(self.manifest["dated_fraction"])

    @property
    def covariate_source(self) -> dict | None:
        """The rasters the covariates were sampled from (their record, as a prior keeps it:
        :meth:`~geoprior.io.rasters.RasterCovariates.record`), or ``None`` (no covariates,
        or table columns)."""
        return self.manifest.get("covariate_source")

    @property
    def report(self) -> InvalidRows:
        """What the conversion read, kept and dropped, over all sources."""
        return InvalidRows.from_dict(self.manifest["report"])

    def extent(self) -> dict[str, float]:
        """Bounding box (``west, south, east, north``), as :meth:`Observations.extent`."""
        return dict(self.manifest["extent"])

    def covariate_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of each covariate (float32; a zero std is 1)."""
        mean = np.asarray(self.manifest["covariate_mean"], dtype=np.float32)
        std = np.asarray(self.manifest["covariate_std"], dtype=np.float32)
        return mean, np.where(std == 0, np.float32(1), std)

    def take(self, rows) -> Observations:
        """The rows ``rows`` (integer row numbers) as in-memory :class:`Observations`.

        Raises:
            RowIndexError: a row number outside ``[0, len(self))``.
        """
        rows = np.asarray(rows)
        if rows.size and rows.dtype.kind not in "iu":
            raise ConfigError(f"rows must be integer row numbers, got dtype {rows.dtype}")
        rows = rows.astype(np.int64).ravel()
        bad = (rows < 0) | (rows >= len(self))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise RowIndexError(
                f"{int(bad.sum())} of {rows.size} row numbers outside [0, {len(self)}); "
                f"first: rows[{i}] = {int(rows[i])}"
            )
        return self._observations(rows)

    def to_observations(self) -> Observations:
        """Every row as in-memory :class:`Observations` (for stores that fit in memory)."""
        return self._observations(slice(None))

    def _observations(self, key) -> Observations:
        return Observations(
            lat=np.array(self.lat[key], dtype=np.float64),
            lon=np.array(self.lon[key], dtype=np.float64),
            date=np.array(self.date[key]),
            species_index=np.array(self.species_index[key]),
            species=self.species,
            covariates=None if self.covariates is None else np.array(self.covariates[key]),
            covariate_names=self.covariate_names,
        )

    def per_species_sample(self, k: int, seed: int = 0) -> np.ndarray:
        """Sorted row numbers of at most ``k`` rows of each species (all rows of a species
        with fewer), a uniform random sample of each.

        The rows are shuffled, so the first ``k`` rows of each species met from a
        ``seed``-chosen start (wrapping round) are a random sample: one pass over
        ``species_index`` in blocks, stopping early once every species has its ``k``.
        Different seeds give different, not independent, samples.
        """
        check_count(k)
        n = len(self)
        start = int(np.random.default_rng(seed).integers(n))
        need = np.minimum(self.species_counts, k)
        seen = np.zeros(self.n_species, np.int64)
        picked = [np.empty(0, np.int64)]
        for lo, hi in _rotated_blocks(start, n):
            s = np.asarray(self.species_index[lo:hi])
            order = np.argsort(s, kind="stable")
            ranked = s[order]
            first = np.r_[True, ranked[1:] != ranked[:-1]]
            position = np.arange(ranked.size)
            rank = position - np.maximum.accumulate(np.where(first, position, 0))
            picked.append(lo + order[seen[ranked] + rank < k])
            seen += np.bincount(s, minlength=self.n_species)
            if (seen >= need).all():
                break
        return np.sort(np.concatenate(picked))

    def sample_rows(self, k: int, seed: int = 0) -> np.ndarray:
        """Sorted row numbers of ``min(k, len(self))`` rows drawn uniformly without replacement."""
        check_count(k)
        rng = np.random.default_rng(seed)
        return np.sort(rng.choice(len(self), size=min(k, len(self)), replace=False))


def check_count(k, name: str = "k", least: int = 0) -> None:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < least:
        raise ConfigError(f"{name} must be an integer >= {least}, got {k!r}")


def _rotated_blocks(start: int, n: int) -> Iterator[tuple[int, int]]:
    """``(lo, hi)`` blocks of at most :data:`_SCAN_ROWS` covering ``start..n`` then ``0..start``."""
    for a, b in ((start, n), (0, start)):
        for lo in range(a, b, _SCAN_ROWS):
            yield lo, min(lo + _SCAN_ROWS, b)
