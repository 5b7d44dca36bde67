"""Reading a range table (written by :func:`geoprior.export.write_range_table`): which
species are in range in an H3 cell, and which cells a species' range holds.

The file is plain Parquet (see :mod:`geoprior.runtime.format`), so pyarrow alone reads it::

    import pyarrow.parquet as pq, pyarrow.compute as pc
    t = pq.read_table("birds_range.parquet", filters=[("h3_cell", "=", 0x842a107ffffffff)])

:class:`RangeTable` loads it once into sorted numpy columns and answers lookups by binary
search. Cells are H3 indices as integers or their hexadecimal strings; placing a latitude
and longitude in a cell (:meth:`RangeTable.at`) needs the ``h3`` package.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, MissingFileError, PriorFileError, unknown_species
from ..query import species_indices
from .format import METADATA_KEY, TABLE_COLUMNS, YEAR_ROUND, read_table_header

__all__ = ["RangeTable", "read_range_table"]


def _cells(cells) -> np.ndarray:
    """H3 cells given as ints or hexadecimal strings, as uint64; ConfigError naming the
    first one that is neither."""
    arr = np.atleast_1d(np.asarray(cells, dtype=object))
    out = np.empty(arr.size, np.uint64)
    for i, c in enumerate(arr.ravel()):
        try:
            value = int(c, 16) if isinstance(c, str) else int(c)
        except (TypeError, ValueError):
            value = -1
        if isinstance(c, bool | float) or not 0 <= value < 1 << 64:
            where = f" at position {i}" if arr.size > 1 else ""
            raise ConfigError(
                "H3 cells must be integers or hexadecimal strings such as "
                f"'842a107ffffffff', got {c!r}{where}"
            )
        out[i] = value
    return out


_LOW56 = np.uint64((1 << 56) - 1)


def _keys(month: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """One sortable uint64 per (month, cell): the month in the top byte, which holds only
    H3's reserved and mode bits (the same for every cell), so keys sort as (month, cell)."""
    return (month.astype(np.uint64) << np.uint64(56)) | (cell & _LOW56)


class RangeTable:
    """A range table in memory: ``species``, ``res``, ``months``, ``thresholds`` and the
    sorted columns, queried by cell id.

    Example:
        >>> from geoprior.runtime import read_range_table
        >>> table = read_range_table("birds_range.parquet")  # doctest: +SKIP
        >>> table.species_in("842a107ffffffff", month=6).head(3)  # doctest: +SKIP
    """

    def __init__(self, header: dict, month, cell, species, score, path: Path | None = None):
        self.header = header
        self.path = path
        self.species = tuple(header["species"])
        self.res = int(header["res"])
        self.months = tuple(int(m) for m in header["months"])
        self.score_levels = int(header["score_levels"])
        t = header.get("thresholds")
        self.thresholds = None if t is None else np.array(
            [np.nan if v is None else v for v in t], np.float32
        )
        self._month, self._cell = month, cell
        self._species_idx, self._score = species, score
        self._key = _keys(month, cell)

    @classmethod
    def open(cls, path: str | os.PathLike) -> RangeTable:
        import pyarrow.parquet as pq

        path = Path(path)
        if not path.is_file():
            raise MissingFileError(f"{path} does not exist (expected a range table .parquet)")
        try:
            table = pq.read_table(path)
        except Exception as e:  # pyarrow's ArrowInvalid and friends
            raise PriorFileError(f"{path} is not a readable Parquet file: {e}") from None
        meta = table.schema.metadata or {}
        header = read_table_header(meta.get(METADATA_KEY.encode()), str(path))
        missing = [c for c in TABLE_COLUMNS if c not in table.column_names]
        if missing:
            raise PriorFileError(f"{path}: the range table lacks columns {missing}")
        species = table.column("species").combine_chunks()
        names = species.dictionary.to_pylist() if hasattr(species, "dictionary") else None
        if names is not None and names != list(header["species"]):
            idx = species_indices(names, header["species"])[species.indices.to_numpy()]
        elif names is not None:
            idx = species.indices.to_numpy()
        else:
            idx = species_indices(species.to_pylist(), header["species"])
        month = table.column("month").to_numpy().astype(np.uint8)
        cell = table.column("h3_cell").to_numpy().astype(np.uint64)
        score = table.column("score").to_numpy()
        key = _keys(month, cell)
        if key.size > 1 and not (key[1:] >= key[:-1]).all():  # a table sorted otherwise
            order = np.lexsort((-score.astype(np.int32), key))
            month, cell, idx, score = month[order], cell[order], idx[order], score[order]
        return cls(header, month, cell, np.asarray(idx, np.int32), score, path)

    def __len__(self) -> int:
        return int(self._cell.size)

    def __repr__(self) -> str:
        return (
            f"RangeTable({len(self.species)} species, res {self.res}, months {list(self.months)}, "
            f"{len(self)} in-range rows)"
        )

    def _month_code(self, month) -> int:
        m = YEAR_ROUND if month is None else month
        if isinstance(m, bool) or not isinstance(m, int | np.integer):
            raise ConfigError(f"month must be an integer 1..12 (or None: year-round), got {month!r}")
        if int(m) not in self.months:
            shown = ["year-round" if v == YEAR_ROUND else v for v in self.months]
            raise ConfigError(
                f"this range table holds months {shown}, not "
                f"{'year-round' if m == YEAR_ROUND else m}"
            )
        return int(m)

    def species_in(self, cells, month: int | None = None) -> pd.DataFrame:
        """The species in range in each cell: a DataFrame ``row, h3_cell, species, score``
        (``row`` the position of the cell asked for; best first within a cell; a cell
        with none in range has no rows). ``month`` None: the year-round map."""
        m = self._month_code(month)
        asked = _cells(cells)
        keys = _keys(np.full(asked.size, m, np.uint8), asked)
        lo = np.searchsorted(self._key, keys, "left")
        hi = np.searchsorted(self._key, keys, "right")
        counts = hi - lo
        rows = np.repeat(np.arange(asked.size), counts)
        take = (np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)]) if rows.size
                else np.zeros(0, np.int64))
        return pd.DataFrame(
            {
                "row": rows,
                "h3_cell": [f"{int(c):x}" for c in asked[rows]],
                "species": np.asarray(self.species, dtype=object)[self._species_idx[take]],
                "score": self._score[take].astype(np.float32) / self.score_levels,
            }
        )

    def cells_of(self, species: str, month: int | None = None) -> np.ndarray:
        """The cells (uint64 H3 indices, sorted) in range of ``species`` in ``month``."""
        if not isinstance(species, str):
            raise ConfigError(f"species must be one name, got {species!r}")
        if species not in self.species:
            raise unknown_species([species], list(self.species))
        m = self._month_code(month)
        i = self.species.index(species)
        keep = (self._month == m) & (self._species_idx == i)
        return self._cell[keep]

    def at(self, lat, lon, month: int | None = None) -> pd.DataFrame:
        """:meth:`species_in` the cells of the table's resolution holding these places
        (validated as every query is; needs the ``h3`` package)."""
        from ..geo import latlng_to_cells
        from ..validation import check_lat_lon

        lat, lon = check_lat_lon(lat, lon)
        return self.species_in(latlng_to_cells(lat, lon, self.res).astype(np.uint64), month)


def read_range_table(path: str | os.PathLike) -> RangeTable:
    """Open a range table (see :class:`RangeTable`)."""
    return RangeTable.open(path)
