"""Counts per H3 cell, shrunk toward neighbours, parents and the global frequency:
:class:`CountGridPrior` (and :func:`auto_resolution`, its automatic cell size)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ...errors import ClassMismatchError, ConfigError
from ...geo import cell_neighbours, cell_parents, check_res, latlng_to_cells
from ...observations import Observations
from ...persistence import ArraySpec, Schema, field, register_kind, save_folder
from ...query import Query, prepare_query
from .common import (
    NON_NEGATIVE,
    check_observations,
    check_positive,
    check_species,
    frequencies,
    header_species,
    months_of,
    rows_per_chunk,
    saved_array,
    species_header,
)
from .counts import Counts, counts_arrays, counts_from, counts_load, counts_specs, gather

__all__ = ["CountGridPrior", "auto_resolution", "AUTO_MAX_RES", "AUTO_MIN_MEDIAN"]

#: ``CountGridPrior`` with ``res=None`` uses the finest resolution up to this one...
AUTO_MAX_RES = 10
#: ...at which the median occupied cell still holds at least this many observations.
AUTO_MIN_MEDIAN = 20
_AUTO_RES = " (or None for automatic)"


def auto_resolution(
    lat, lon, *, min_median: int = AUTO_MIN_MEDIAN, max_res: int = AUTO_MAX_RES
) -> int:
    """The finest H3 resolution (up to ``max_res``) at which the median occupied cell holds
    at least ``min_median`` of the points; 0 if none does.

    Global data gets coarse cells, a regional survey fine ones.

    Example:
        >>> auto_resolution([44.0] * 30, [-71.3] * 30)
        10
    """
    lat, lon = prepare_query(lat, lon)[:2]
    cells = latlng_to_cells(lat, lon, check_res(max_res, note=_AUTO_RES))
    for res in range(max_res, -1, -1):
        if res < max_res:
            cells = cell_parents(cells, res)
        if np.median(np.unique(cells, return_counts=True)[1]) >= min_median:
            return res
    return 0



class CountGridPrior:
    """Species counts per H3 cell, smoothed hierarchically; build it with :meth:`fit`.

    ``predict`` gives ``p(species | cell)``: which species an observation made in the
    query's cell is of (rows sum to 1). The rule is a chain of Dirichlet shrinkages, each
    level's distribution being the prior of the next with ``alpha`` pseudo-observations::

        p_0      = global frequency, additive smoothing ``smoothing`` per species
        p_l      = (n_l + alpha * p_(l-1)) / (N_l + alpha)   for the cell's parents at
                   resolutions 0, 1, ..., res - 1 (n_l: species counts in the parent,
                   N_l their sum)
        p_ring   = (n_ring + alpha * p_(res-1)) / (N_ring + alpha)   the 6 neighbours
                   (``grid_disk`` k=1 without the cell)
        p_cell   = (n_cell + alpha * p_ring) / (N_cell + alpha)

    A cell with many observations trusts itself; an empty cell takes its neighbours', then
    its parents', and far from any data the global frequency. With ``by_month=True`` a
    dated query goes two steps further, within the cell::

        p_window = (n_(m-1, m, m+1) + alpha * p_cell) / (N_window + alpha)
        p_month  = (n_m + alpha * p_window) / (N_m + alpha)

    (months wrap: December neighbours January); undated queries get ``p_cell``, which counts
    every observation, dated or not.

    Example:
        >>> obs = Observations.from_arrays([44.0] * 20 + [-33.9] * 20, [-71.3] * 20 + [18.4] * 20,
        ...                                ["a"] * 20 + ["b"] * 20)
        >>> prior = CountGridPrior.fit(obs, res=4)
        >>> prior.predict([44.0, -33.9], [-71.3, 18.4]).argmax(axis=1)
        array([0, 1])
    """

    def __init__(
        self,
        species: Sequence[str],
        res: int,
        global_counts,
        cells: Counts,
        months: Counts | None = None,
        *,
        alpha: float = 5.0,
        smoothing: float = 1.0,
    ):
        self._species = check_species(species)
        self.res = check_res(res, note=_AUTO_RES)
        self.alpha = check_positive("alpha", alpha)
        self.smoothing = check_positive("smoothing", smoothing)
        self.global_counts = np.asarray(global_counts, dtype=np.float64)
        if self.global_counts.shape != (len(self._species),):
            raise ClassMismatchError(
                f"got {self.global_counts.size} counts for {len(self._species)} species"
            )
        self._cells = cells
        self._months = months
        self._global = frequencies(self.global_counts, self.smoothing)
        self._levels = self._parent_levels()

    @property
    def species(self) -> tuple[str, ...]:
        return self._species

    @property
    def by_month(self) -> bool:
        return self._months is not None

    @property
    def uses_date(self) -> bool:
        """Whether a query's date changes the answer: fitted ``by_month``."""
        return self.by_month

    @property
    def n_cells(self) -> int:
        """Number of occupied cells at ``res``."""
        return int(self._cells.keys.size)

    def __repr__(self) -> str:
        month = ", by month" if self.by_month else ""
        return (
            f"CountGridPrior({len(self.species)} species, res {self.res}, {self.n_cells} "
            f"occupied cells{month}, alpha {self.alpha:g})"
        )

    @classmethod
    def fit(
        cls,
        observations: Observations,
        *,
        res: int | None = None,
        by_month: bool = False,
        alpha: float = 5.0,
        smoothing: float = 1.0,
    ) -> CountGridPrior:
        """Count the observations per H3 cell (and month).

        Args:
            observations: the training data.
            res: H3 resolution; ``None`` picks one with :func:`auto_resolution` (the finest
                resolution, up to 10, whose median occupied cell holds at least 20
                observations).
            by_month: also count per calendar month (undated rows count year-round only).
            alpha: pseudo-observations each level borrows from the level above.
            smoothing: additive smoothing of the global frequency, per species.

        Example:
            >>> from geoprior.io.samples import load_sample
            >>> CountGridPrior.fit(load_sample("neon_bird"), res=5).res
            5
        """
        obs = check_observations(observations, "CountGridPrior.fit")
        if not isinstance(by_month, bool):
            raise ConfigError(f"by_month must be True or False, got {by_month!r}")
        if res is None:
            res = auto_resolution(obs.lat, obs.lon)
        res = check_res(res, note=_AUTO_RES)
        s = obs.n_species
        cell = latlng_to_cells(obs.lat, obs.lon, res)
        ones = np.ones(len(obs))
        cells = counts_from(cell, obs.species_index, ones, s)
        months = None
        if by_month:
            month = months_of(obs.date)
            dated = month >= 0
            row = np.searchsorted(cells.keys, cell[dated])
            months = counts_from(row * 12 + month[dated], obs.species_index[dated], ones[dated], s)
        return cls(
            obs.species, res, obs.species_counts(), cells, months, alpha=alpha, smoothing=smoothing
        )

    def predict(self, lat, lon, date=None) -> np.ndarray:
        """``(n, S)`` float32 ``p(species | cell[, month])``; rows sum to 1.

        ``date`` is used only when fitted ``by_month``; ``NaT``/``None`` rows are year-round.
        """
        return self.predict_query(prepare_query(lat, lon, date))

    def predict_query(self, query: Query) -> np.ndarray:
        """:meth:`predict` of an already valid :class:`~geoprior.query.Query`."""
        lat, lon, dates = query
        s = len(self.species)
        out = np.empty((lat.size, s), dtype=np.float32)
        month = months_of(dates) if self.by_month else np.full(lat.size, -1)
        step = rows_per_chunk(s)
        for a in range(0, lat.size, step):
            b = min(lat.size, a + step)
            ucells, inverse = np.unique(latlng_to_cells(lat[a:b], lon[a:b], self.res), return_inverse=True)
            p_cell = self._cell_distribution(ucells)
            rows = p_cell[inverse]
            dated = month[a:b] >= 0
            if dated.any():
                pair, pinv = np.unique(inverse[dated] * 12 + month[a:b][dated], return_inverse=True)
                rows[dated] = self._month_distribution(
                    ucells[pair // 12], pair % 12, p_cell[pair // 12]
                )[pinv]
            out[a:b] = rows
        return out

    def _shrink(
        self, counts: Counts, keys: np.ndarray, group: np.ndarray, p: np.ndarray
    ) -> np.ndarray:
        """Update ``p`` in place: ``(n + alpha * p) / (N + alpha)`` on the rows whose keys
        hold counts (the others would come out unchanged)."""
        pos = np.minimum(np.searchsorted(counts.keys, keys), max(counts.keys.size - 1, 0))
        hit = counts.keys[pos] == keys if counts.keys.size else np.zeros(keys.size, bool)
        rows, local = np.unique(group[hit], return_inverse=True)
        if rows.size:
            n = gather(counts, keys[hit], local, rows.size, p.shape[1])
            p[rows] = (n + self.alpha * p[rows]) / (n.sum(axis=1, keepdims=True) + self.alpha)
        return p

    def _cell_distribution(self, cells: np.ndarray) -> np.ndarray:
        own = np.arange(cells.size)
        parents, cur = [], cells
        for level in range(self.res - 1, -1, -1):
            cur = cell_parents(cur, level)
            parents.append(cur)
        p = np.tile(self._global, (cells.size, 1))
        for counts, keys in zip(self._levels, reversed(parents), strict=True):
            p = self._shrink(counts, keys, own, p)
        neighbours, owner = cell_neighbours(cells)
        p = self._shrink(self._cells, neighbours, owner, p)
        return self._shrink(self._cells, cells, own, p)

    def _month_distribution(
        self, cells: np.ndarray, month: np.ndarray, p_cell: np.ndarray
    ) -> np.ndarray:
        pos = np.minimum(np.searchsorted(self._cells.keys, cells), self._cells.keys.size - 1)
        row = np.where(self._cells.keys[pos] == cells, pos, -1)  # -1: no counts in this cell
        keys = np.where(
            row[:, None] >= 0, row[:, None] * 12 + (month[:, None] + [-1, 0, 1]) % 12, -1
        )
        own = np.arange(cells.size)
        p = self._shrink(self._months, keys.ravel(), np.repeat(own, 3), p_cell)
        return self._shrink(self._months, keys[:, 1], own, p)

    def _parent_levels(self) -> list[Counts]:
        """Counts of the parents at resolutions 0 .. res-1, from the counts at ``res``."""
        c = self._cells
        entry_row = np.repeat(np.arange(c.keys.size), np.diff(c.indptr))
        levels, cur = [], c.keys
        for level in range(self.res - 1, -1, -1):
            cur = cell_parents(cur, level)
            levels.append(counts_from(cur[entry_row], c.species, c.counts, len(self.species)))
        return levels[::-1]

    def save(self, path: str | os.PathLike, *, overwrite: bool = True):
        """Save to folder ``path``; load with :func:`geoprior.persistence.load_prior`."""
        header = {
            **species_header(self.species),
            "res": self.res,
            "by_month": self.by_month,
            "alpha": self.alpha,
            "smoothing": self.smoothing,
        }
        arrays = {"global_counts": self.global_counts, **counts_arrays("cells", self._cells)}
        if self._months is not None:
            arrays.update(counts_arrays("months", self._months))
        return save_folder(path, "CountGridPrior", header, arrays, overwrite=overwrite)


@register_kind(
    "CountGridPrior",
    Schema(
        {"res": field(int, min=0), "by_month": field(bool), "alpha": NON_NEGATIVE,
         "smoothing": NON_NEGATIVE},
        lambda header: {
            "global_counts": ArraySpec((len(header["species"]),), min=0),
            **counts_specs("cells"),
            **(counts_specs("months") if header["by_month"] else {}),
        },
    ),
)
def _load_count_grid(header: dict, arrays: dict) -> CountGridPrior:
    species = header_species(header)
    s = len(species)
    months = counts_load("months", arrays, s) if header["by_month"] else None
    return CountGridPrior(
        species,
        header["res"],
        saved_array(arrays, "global_counts", s),
        counts_load("cells", arrays, s),
        months,
        alpha=header["alpha"],
        smoothing=header["smoothing"],
    )
