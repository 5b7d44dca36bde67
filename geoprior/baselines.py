"""Baseline priors: the simple things a learned prior has to beat.

Every baseline follows the :class:`~geoprior.query.Prior` protocol (``.species`` and
``.predict(lat, lon, date=None) -> (n, S)`` float32 probabilities) and answers
"which species is observed here?": each row is a distribution over the species and sums
to 1. Queries are validated with :func:`~geoprior.query.prepare_query` and processed in
chunks, so millions of points need only the memory of the ``(n, S)`` answer itself.

- :class:`UniformPrior` — ``1/S`` everywhere, no information.
- :class:`FrequencyPrior` — global species frequencies with additive smoothing.
- :class:`CountGridPrior` — counts per H3 cell (optionally per month), shrunk toward the
  cell's neighbours, its coarser parents and the global frequency (hierarchical Dirichlet).
- :class:`NearestNeighborPrior` — a Gaussian kernel on great-circle distance with a
  cross-validated bandwidth, shrunk toward the global frequency.

All save to a folder with ``.save(path)`` and load with :func:`geoprior.store.load_prior`;
a reloaded prior predicts bit-identical values. See ``docs/baselines.md``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from .errors import (
    ClassMismatchError,
    ConfigError,
    EmptyDataError,
    PriorFileError,
    SpeciesNameError,
)
from .geo import (
    EARTH_RADIUS_KM,
    cell_neighbours,
    cell_parents,
    check_res,
    latlng_to_cells,
    unit_xyz,
)
from .observations import Observations
from .query import prepare_query
from .store import ArraySpec, Schema, field, register_kind, save_folder
from .validation import check_species_names

__all__ = [
    "UniformPrior",
    "FrequencyPrior",
    "CountGridPrior",
    "NearestNeighborPrior",
    "auto_resolution",
]

#: Values per working array when predicting in chunks (about 16 MB of float64).
_CHUNK_VALUES = 1 << 21
#: ``CountGridPrior`` with ``res=None`` uses the finest resolution up to this one...
AUTO_MAX_RES = 10
#: ...at which the median occupied cell still holds at least this many observations.
AUTO_MIN_MEDIAN = 20
#: Bandwidths (km) tried by ``NearestNeighborPrior.fit(bandwidth="auto")``.
AUTO_BANDWIDTHS_KM = np.geomspace(0.1, 10_000.0, 21)
#: Kernel weights beyond this many bandwidths (below 1.5e-8) are taken as 0.
KERNEL_CUTOFF = 6.0
#: Held-out locations scored for each bandwidth tried: at most ``AUTO_HELD_OUT``, fewer
#: (down to a fifth) when ``held-out x training locations`` would exceed ``AUTO_WORK``.
AUTO_HELD_OUT = 500
AUTO_WORK = 20_000_000
#: The nearest-neighbour prior keeps a dense ``locations x species`` table up to this size.
_DENSE_TABLE_VALUES = 1 << 22


# ---------------------------------------------------------------------------- shared helpers
def _rows_per_chunk(width: int) -> int:
    return max(1, _CHUNK_VALUES // max(1, width))


def _check_positive(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a positive number, got {value!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise ConfigError(f"{name} must be a positive finite number, got {value!r}")
    return v


def _check_observations(observations, where: str) -> Observations:
    if not isinstance(observations, Observations):
        raise ConfigError(
            f"{where} expects an Observations (build one with Observations.from_arrays or "
            f"geoprior.read_observations), got {type(observations).__name__}"
        )
    if len(observations) == 0:
        raise EmptyDataError(f"{where} got 0 observations; it needs at least one")
    return observations


def _check_species(species: Sequence[str]) -> tuple[str, ...]:
    if isinstance(species, str):
        raise SpeciesNameError(
            f"species must be a sequence of names, got the single string {species!r}"
        )
    names, masks, messages = check_species_names(list(species))
    if masks:
        raise SpeciesNameError("; ".join(messages.values()))
    if names.size == 0:
        raise EmptyDataError("a prior needs at least one species, got none")
    uniq, counts = np.unique(names.astype(str), return_counts=True)
    if (counts > 1).any():
        dupes = uniq[counts > 1]
        raise ClassMismatchError(
            f"{dupes.size} species names appear more than once; first: {str(dupes[0])!r}"
        )
    return tuple(str(s) for s in names)


def _frequencies(counts: np.ndarray, smoothing: float) -> np.ndarray:
    """Additive (Laplace / Dirichlet) smoothing: ``(n_s + a) / (N + S a)``."""
    return (counts + smoothing) / (counts.sum() + smoothing * counts.size)


def _months(dates: np.ndarray) -> np.ndarray:
    """Month 0..11 of ``datetime64[D]`` dates, -1 for ``NaT``."""
    out = np.full(dates.shape, -1, dtype=np.int64)
    ok = ~np.isnat(dates)
    out[ok] = dates[ok].astype("datetime64[M]").astype(np.int64) % 12
    return out


def _fill_rows(out: np.ndarray, distribution: np.ndarray) -> np.ndarray:
    step = _rows_per_chunk(distribution.size)
    for a in range(0, out.shape[0], step):
        out[a : a + step] = distribution
    return out


def _species_header(species: tuple[str, ...]) -> dict:
    return {"species": list(species)}


def _header_species(header: dict) -> tuple[str, ...]:
    species = header["species"]
    if not isinstance(species, list):
        raise PriorFileError(
            f"the saved species list is a {type(species).__name__}, expected a list"
        )
    return tuple(species)


def _array(arrays: dict, name: str, length: int | None = None) -> np.ndarray:
    a = arrays[name]
    if length is not None and a.shape[0] != length:
        raise PriorFileError(f"saved array {name!r} has {a.shape[0]} rows, expected {length}")
    return a


# ---------------------------------------------------------------------------- sparse counts
class _Counts(NamedTuple):
    """Species counts per key, compressed rows: row ``i`` (key ``keys[i]``, sorted) holds
    ``counts[indptr[i]:indptr[i+1]]`` of species ``species[indptr[i]:indptr[i+1]]``."""

    keys: np.ndarray  # int64, sorted, unique
    indptr: np.ndarray  # int64, len(keys) + 1
    species: np.ndarray  # int32
    counts: np.ndarray  # float64


def _counts_from(
    keys: np.ndarray, species: np.ndarray, weights: np.ndarray, n_species: int
) -> _Counts:
    """Sum ``weights`` per ``(key, species)`` into a :class:`_Counts`."""
    ukeys, row = np.unique(keys, return_inverse=True)
    pair = row.astype(np.int64) * n_species + species
    upair, inverse = np.unique(pair, return_inverse=True)
    counts = np.bincount(inverse, weights=weights, minlength=upair.size)
    indptr = np.searchsorted(upair // n_species, np.arange(ukeys.size + 1))
    return _Counts(
        ukeys.astype(np.int64),
        indptr.astype(np.int64),
        (upair % n_species).astype(np.int32),
        counts.astype(np.float64),
    )


def _counts_arrays(prefix: str, c: _Counts) -> dict[str, np.ndarray]:
    return {
        f"{prefix}_keys": c.keys,
        f"{prefix}_indptr": c.indptr,
        f"{prefix}_species": c.species,
        f"{prefix}_counts": c.counts,
    }


def _counts_load(prefix: str, arrays: dict, n_species: int) -> _Counts:
    c = _Counts(*(arrays[f"{prefix}_{f}"] for f in _Counts._fields))
    if (
        c.indptr.size != c.keys.size + 1
        or c.species.size != c.counts.size
        or (c.indptr.size and c.indptr[-1] != c.species.size)
        or (c.species.size and not 0 <= c.species.min() <= c.species.max() < n_species)
    ):
        raise PriorFileError(f"saved counts {prefix!r} are inconsistent (corrupt file)")
    return c


def _counts_specs(prefix: str) -> dict[str, ArraySpec]:
    """The saved arrays of a :class:`_Counts` (see :class:`geoprior.store.Schema`)."""
    entries = f"{prefix} entries"
    return {
        f"{prefix}_keys": ArraySpec((None,), "i"),
        f"{prefix}_indptr": ArraySpec((None,), "i", min=0),
        f"{prefix}_species": ArraySpec((entries,), "i", min=0),
        f"{prefix}_counts": ArraySpec((entries,), min=0),
    }


_NON_NEGATIVE = field(float, min=0)


def _gather(
    c: _Counts,
    keys: np.ndarray,
    group: np.ndarray,
    n_groups: int,
    n_species: int,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Dense ``(n_groups, S)`` sums of the count rows of ``keys``, each times its weight
    (default 1) and added to row ``group`` of the result; keys without counts add nothing."""
    out_size = n_groups * n_species
    if c.keys.size == 0 or keys.size == 0:
        return np.zeros((n_groups, n_species))
    pos = np.minimum(np.searchsorted(c.keys, keys), c.keys.size - 1)
    found = c.keys[pos] == keys
    pos, group = pos[found], group[found]
    start = c.indptr[pos]
    lengths = c.indptr[pos + 1] - start
    entry = np.repeat(start - (np.cumsum(lengths) - lengths), lengths) + np.arange(lengths.sum())
    flat = np.repeat(group.astype(np.int64), lengths) * n_species + c.species[entry]
    value = c.counts[entry]
    if weights is not None:
        value = value * np.repeat(weights[found], lengths)
    return np.bincount(flat, weights=value, minlength=out_size).reshape(n_groups, n_species)


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


# ---------------------------------------------------------------------------- Uniform
class UniformPrior:
    """``1/S`` for every species everywhere: the no-information baseline.

    Example:
        >>> UniformPrior(["a", "b"]).predict([44.0], [-71.3])
        array([[0.5, 0.5]], dtype=float32)
    """

    def __init__(self, species: Sequence[str]):
        self._species = _check_species(species)

    @property
    def species(self) -> tuple[str, ...]:
        return self._species

    def __repr__(self) -> str:
        return f"UniformPrior({len(self.species)} species)"

    def predict(self, lat, lon, date=None) -> np.ndarray:
        """``(n, S)`` float32, every value ``1/S`` (queries are still validated)."""
        lat, _, _ = prepare_query(lat, lon, date)
        s = len(self.species)
        return np.full((lat.size, s), 1.0 / s, dtype=np.float32)

    def save(self, path: str | os.PathLike, *, overwrite: bool = True):
        """Save to folder ``path``; load with :func:`geoprior.store.load_prior`."""
        return save_folder(
            path, "UniformPrior", _species_header(self.species), {}, overwrite=overwrite
        )


@register_kind("UniformPrior", Schema())
def _load_uniform(header: dict, arrays: dict) -> UniformPrior:
    return UniformPrior(_header_species(header))


# ---------------------------------------------------------------------------- Frequency
class FrequencyPrior:
    """Global species frequencies: the same distribution at every place and date.

    ``p(s) = (n_s + smoothing) / (N + S * smoothing)`` (additive smoothing, so species of
    the vocabulary never seen in training are not 0).

    Example:
        >>> obs = Observations.from_arrays([44.0, 44.1, 45.0], [-71.3, -71.2, -70.0],
        ...                                ["a", "a", "b"])
        >>> FrequencyPrior.fit(obs, smoothing=1.0).predict([0.0], [0.0]).round(2)
        array([[0.6, 0.4]], dtype=float32)
    """

    def __init__(self, species: Sequence[str], counts, *, smoothing: float = 1.0):
        self._species = _check_species(species)
        self.counts = np.asarray(counts, dtype=np.float64)
        if self.counts.shape != (len(self._species),):
            raise ClassMismatchError(
                f"got {self.counts.size} counts for {len(self._species)} species"
            )
        self.smoothing = _check_positive("smoothing", smoothing)
        self.frequencies = _frequencies(self.counts, self.smoothing)

    @classmethod
    def fit(cls, observations: Observations, *, smoothing: float = 1.0) -> FrequencyPrior:
        """Count each species of ``observations`` (all rows, dated or not)."""
        obs = _check_observations(observations, "FrequencyPrior.fit")
        return cls(obs.species, obs.species_counts(), smoothing=smoothing)

    @property
    def species(self) -> tuple[str, ...]:
        return self._species

    def __repr__(self) -> str:
        return f"FrequencyPrior({len(self.species)} species, {int(self.counts.sum())} observations)"

    def predict(self, lat, lon, date=None) -> np.ndarray:
        """``(n, S)`` float32: the global frequencies on every row (queries are validated)."""
        lat, _, _ = prepare_query(lat, lon, date)
        out = np.empty((lat.size, len(self.species)), dtype=np.float32)
        return _fill_rows(out, self.frequencies.astype(np.float32))

    def save(self, path: str | os.PathLike, *, overwrite: bool = True):
        """Save to folder ``path``; load with :func:`geoprior.store.load_prior`."""
        header = {**_species_header(self.species), "smoothing": self.smoothing}
        return save_folder(
            path, "FrequencyPrior", header, {"counts": self.counts}, overwrite=overwrite
        )


@register_kind(
    "FrequencyPrior",
    Schema(
        {"smoothing": _NON_NEGATIVE},
        lambda header: {"counts": ArraySpec((len(header["species"]),), min=0)},
    ),
)
def _load_frequency(header: dict, arrays: dict) -> FrequencyPrior:
    return FrequencyPrior(_header_species(header), arrays["counts"], smoothing=header["smoothing"])


# ---------------------------------------------------------------------------- CountGrid
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
        cells: _Counts,
        months: _Counts | None = None,
        *,
        alpha: float = 5.0,
        smoothing: float = 1.0,
    ):
        self._species = _check_species(species)
        self.res = check_res(res, note=_AUTO_RES)
        self.alpha = _check_positive("alpha", alpha)
        self.smoothing = _check_positive("smoothing", smoothing)
        self.global_counts = np.asarray(global_counts, dtype=np.float64)
        if self.global_counts.shape != (len(self._species),):
            raise ClassMismatchError(
                f"got {self.global_counts.size} counts for {len(self._species)} species"
            )
        self._cells = cells
        self._months = months
        self._global = _frequencies(self.global_counts, self.smoothing)
        self._levels = self._parent_levels()

    @property
    def species(self) -> tuple[str, ...]:
        return self._species

    @property
    def by_month(self) -> bool:
        return self._months is not None

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
        obs = _check_observations(observations, "CountGridPrior.fit")
        if not isinstance(by_month, bool):
            raise ConfigError(f"by_month must be True or False, got {by_month!r}")
        if res is None:
            res = auto_resolution(obs.lat, obs.lon)
        res = check_res(res, note=_AUTO_RES)
        s = obs.n_species
        cell = latlng_to_cells(obs.lat, obs.lon, res)
        ones = np.ones(len(obs))
        cells = _counts_from(cell, obs.species_index, ones, s)
        months = None
        if by_month:
            month = _months(obs.date)
            dated = month >= 0
            row = np.searchsorted(cells.keys, cell[dated])
            months = _counts_from(row * 12 + month[dated], obs.species_index[dated], ones[dated], s)
        return cls(
            obs.species, res, obs.species_counts(), cells, months, alpha=alpha, smoothing=smoothing
        )

    def predict(self, lat, lon, date=None) -> np.ndarray:
        """``(n, S)`` float32 ``p(species | cell[, month])``; rows sum to 1.

        ``date`` is used only when fitted ``by_month``; ``NaT``/``None`` rows are year-round.
        """
        lat, lon, dates = prepare_query(lat, lon, date)
        s = len(self.species)
        out = np.empty((lat.size, s), dtype=np.float32)
        month = _months(dates) if self.by_month else np.full(lat.size, -1)
        step = _rows_per_chunk(s)
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
        self, counts: _Counts, keys: np.ndarray, group: np.ndarray, p: np.ndarray
    ) -> np.ndarray:
        """Update ``p`` in place: ``(n + alpha * p) / (N + alpha)`` on the rows whose keys
        hold counts (the others would come out unchanged)."""
        pos = np.minimum(np.searchsorted(counts.keys, keys), max(counts.keys.size - 1, 0))
        hit = counts.keys[pos] == keys if counts.keys.size else np.zeros(keys.size, bool)
        rows, local = np.unique(group[hit], return_inverse=True)
        if rows.size:
            n = _gather(counts, keys[hit], local, rows.size, p.shape[1])
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

    def _parent_levels(self) -> list[_Counts]:
        """Counts of the parents at resolutions 0 .. res-1, from the counts at ``res``."""
        c = self._cells
        entry_row = np.repeat(np.arange(c.keys.size), np.diff(c.indptr))
        levels, cur = [], c.keys
        for level in range(self.res - 1, -1, -1):
            cur = cell_parents(cur, level)
            levels.append(_counts_from(cur[entry_row], c.species, c.counts, len(self.species)))
        return levels[::-1]

    def save(self, path: str | os.PathLike, *, overwrite: bool = True):
        """Save to folder ``path``; load with :func:`geoprior.store.load_prior`."""
        header = {
            **_species_header(self.species),
            "res": self.res,
            "by_month": self.by_month,
            "alpha": self.alpha,
            "smoothing": self.smoothing,
        }
        arrays = {"global_counts": self.global_counts, **_counts_arrays("cells", self._cells)}
        if self._months is not None:
            arrays.update(_counts_arrays("months", self._months))
        return save_folder(path, "CountGridPrior", header, arrays, overwrite=overwrite)


@register_kind(
    "CountGridPrior",
    Schema(
        {"res": field(int, min=0), "by_month": field(bool), "alpha": _NON_NEGATIVE,
         "smoothing": _NON_NEGATIVE},
        lambda header: {
            "global_counts": ArraySpec((len(header["species"]),), min=0),
            **_counts_specs("cells"),
            **(_counts_specs("months") if header["by_month"] else {}),
        },
    ),
)
def _load_count_grid(header: dict, arrays: dict) -> CountGridPrior:
    species = _header_species(header)
    s = len(species)
    months = _counts_load("months", arrays, s) if header["by_month"] else None
    return CountGridPrior(
        species,
        header["res"],
        _array(arrays, "global_counts", s),
        _counts_load("cells", arrays, s),
        months,
        alpha=header["alpha"],
        smoothing=header["smoothing"],
    )


# ---------------------------------------------------------------------------- NearestNeighbor
def _chord2(a_xyz: np.ndarray, b_xyz_t: np.ndarray) -> np.ndarray:
    """``(len(a), L)`` squared chord lengths between unit vectors (``b`` given as ``(3, L)``)."""
    dot = a_xyz[:, :1] * b_xyz_t[0] + a_xyz[:, 1:2] * b_xyz_t[1] + a_xyz[:, 2:3] * b_xyz_t[2]
    return np.clip(2.0 - 2.0 * dot, 0.0, 4.0)


def _chord2_to_km(chord2: np.ndarray) -> np.ndarray:
    """Great-circle km from squared chord lengths on the unit sphere."""
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(chord2) / 2.0)


class NearestNeighborPrior:
    """Kernel-weighted species frequencies of nearby observations; build it with :meth:`fit`.

    For a query place ``x``, each training location ``j`` (observations at identical
    coordinates are pooled) gets a Gaussian weight on great-circle distance,
    ``w_j = exp(-d(x, j)^2 / (2 h^2))`` (``h``: ``bandwidth_km``; with ``k`` set, only the
    ``k`` nearest locations count). With ``K_s = sum_j w_j n_js`` the weighted count of
    species ``s`` and ``K = sum_s K_s``::

        p(s | x) = (K_s + smoothing * g_s) / (K + smoothing)

    where ``g`` is the global frequency: a place far from every observation falls back to
    ``g``. Rows sum to 1. Dates are validated but not used (this is ``p(species | place)``).

    Example:
        >>> obs = Observations.from_arrays([44.0, 44.01, -33.9, -33.91], [-71.3, -71.3, 18.4, 18.4],
        ...                                ["a", "a", "b", "b"])
        >>> prior = NearestNeighborPrior.fit(obs, bandwidth=50.0)
        >>> prior.predict([44.0, -33.9], [-71.3, 18.4]).argmax(axis=1)
        array([0, 1])
    """

    def __init__(
        self,
        species: Sequence[str],
        location_lat,
        location_lon,
        counts: _Counts,
        global_counts,
        *,
        bandwidth_km: float,
        k: int | None = None,
        smoothing: float = 1.0,
    ):
        self._species = _check_species(species)
        self.location_lat = np.asarray(location_lat, dtype=np.float64)
        self.location_lon = np.asarray(location_lon, dtype=np.float64)
        self.bandwidth_km = _check_positive("bandwidth", bandwidth_km)
        self.k = _check_k(k)
        self.smoothing = _check_positive("smoothing", smoothing)
        self.global_counts = np.asarray(global_counts, dtype=np.float64)
        n_loc, s = self.location_lat.size, len(self._species)
        if (
            self.location_lon.size != n_loc
            or not np.array_equal(counts.keys, np.arange(n_loc))
            or self.global_counts.shape != (s,)
        ):
            raise ClassMismatchError(
                f"{n_loc} location latitudes, {self.location_lon.size} longitudes, "
                f"{counts.keys.size} count rows and {self.global_counts.size} global counts "
                f"for {s} species"
            )
        self._counts = counts
        self._global = _frequencies(self.global_counts, self.smoothing)
        self._xyz = unit_xyz(self.location_lat, self.location_lon)
        self._xyz_t = np.ascontiguousarray(self._xyz.T)
        self._dense = None
        if n_loc * s <= _DENSE_TABLE_VALUES:
            self._dense = _gather(counts, counts.keys, counts.keys, n_loc, s)

    @property
    def species(self) -> tuple[str, ...]:
        return self._species

    @property
    def n_locations(self) -> int:
        return int(self.location_lat.size)

    def __repr__(self) -> str:
        k = f", k {self.k}" if self.k else ""
        return (
            f"NearestNeighborPrior({len(self.species)} species, {self.n_locations} locations, "
            f"bandwidth {self.bandwidth_km:.3g} km{k})"
        )

    @classmethod
    def fit(
        cls,
        observations: Observations,
        *,
        bandwidth: str | float = "auto",
        k: int | None = None,
        smoothing: float = 1.0,
        seed: int = 0,
    ) -> NearestNeighborPrior:
        """Pool the observations by location and choose the bandwidth.

        Args:
            observations: the training data.
            bandwidth: kernel scale in km, or ``"auto"``: the bandwidth of
                ``AUTO_BANDWIDTHS_KM`` (0.1 to 10,000 km, log-spaced) with the highest
                leave-one-location-out log-likelihood, scored on up to 500 random
                locations (all of a held-out location's observations are removed, so
                the score is that of predicting a new place, not a revisit).
            k: use only the ``k`` nearest locations per query (``None``: all).
            smoothing: pseudo-observations of the global frequency in every prediction,
                and the additive smoothing of that frequency.
            seed: which locations are held out for ``"auto"``.

        Example:
            >>> from geoprior.io.samples import load_sample
            >>> NearestNeighborPrior.fit(load_sample("neon_bird")).bandwidth_km > 0
            True
        """
        obs = _check_observations(observations, "NearestNeighborPrior.fit")
        coords, loc = np.unique(np.stack([obs.lat, obs.lon], axis=1), axis=0, return_inverse=True)
        counts = _counts_from(loc.ravel(), obs.species_index, np.ones(len(obs)), obs.n_species)
        auto = isinstance(bandwidth, str)
        if auto and bandwidth != "auto":
            raise ConfigError(f"bandwidth must be 'auto' or a number of km, got {bandwidth!r}")
        prior = cls(
            obs.species,
            coords[:, 0],
            coords[:, 1],
            counts,
            obs.species_counts(),
            bandwidth_km=AUTO_BANDWIDTHS_KM[0] if auto else bandwidth,
            k=k,
            smoothing=smoothing,
        )
        if auto:
            prior.bandwidth_km = prior._cross_validate(AUTO_BANDWIDTHS_KM, seed)
        return prior

    def predict(self, lat, lon, date=None) -> np.ndarray:
        """``(n, S)`` float32 ``p(species | place)``; rows sum to 1."""
        lat, lon, _ = prepare_query(lat, lon, date)
        out = np.empty((lat.size, len(self.species)), dtype=np.float32)
        step = self._chunk_rows()
        for a in range(0, lat.size, step):
            b = min(lat.size, a + step)
            out[a:b] = self._smooth(
                self._kernel_sums(self._chord2(unit_xyz(lat[a:b], lon[a:b])), self.bandwidth_km)
            )
        return out

    def _smooth(self, sums: np.ndarray) -> np.ndarray:
        return (sums + self.smoothing * self._global) / (
            sums.sum(axis=1, keepdims=True) + self.smoothing
        )

    def _chord2(self, xyz: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
        """``(q, L)`` squared chords to the training locations; ``inf`` for location
        ``exclude[i]`` in row ``i`` and, with ``k``, for all but the ``k`` nearest."""
        c2 = _chord2(xyz, self._xyz_t)
        q = xyz.shape[0]
        if exclude is not None:
            c2[np.arange(q), exclude] = np.inf
        if self.k is not None and self.k < self.n_locations:
            near = np.argpartition(c2, self.k - 1, axis=1)[:, : self.k]
            far = np.ones_like(c2, dtype=bool)
            np.put_along_axis(far, near, False, axis=1)
            c2[far] = np.inf
        return c2

    def _kernel_sums(self, c2: np.ndarray, bandwidth: float) -> np.ndarray:
        """``(q, S)`` kernel-weighted species counts ``K_s`` from squared chords ``c2``."""
        half_angle = min(KERNEL_CUTOFF * bandwidth / (2.0 * EARTH_RADIUS_KM), np.pi / 2)
        near = c2 <= (2.0 * np.sin(half_angle)) ** 2
        if self._dense is not None:
            w = np.exp(-0.5 * (_chord2_to_km(np.where(near, c2, 0.0)) / bandwidth) ** 2)
            return np.where(near, w, 0.0) @ self._dense
        row, loc = np.nonzero(near)
        w = np.exp(-0.5 * (_chord2_to_km(c2[row, loc]) / bandwidth) ** 2)
        return _gather(self._counts, loc.astype(np.int64), row, c2.shape[0], len(self.species), w)

    def _chunk_rows(self) -> int:
        return _rows_per_chunk(max(self.n_locations, self._counts.species.size, len(self.species)))

    def _cross_validate(self, bandwidths: np.ndarray, seed: int) -> float:
        """The bandwidth with the best leave-one-location-out log-likelihood."""
        if self.n_locations < 2:
            raise ConfigError(
                "bandwidth='auto' needs observations at 2 or more distinct places, got 1; "
                "pass bandwidth=<km>"
            )
        rng = np.random.default_rng(seed)
        n_held = min(self.n_locations, max(AUTO_HELD_OUT // 5, AUTO_WORK // self.n_locations))
        held = np.sort(rng.choice(self.n_locations, min(AUTO_HELD_OUT, n_held), replace=False))
        step = self._chunk_rows()
        scores = np.zeros(len(bandwidths))
        for a in range(0, held.size, step):
            rows = held[a : a + step]
            n = _gather(self._counts, rows, np.arange(rows.size), rows.size, len(self.species))
            seen = n > 0
            c2 = self._chord2(self._xyz[rows], exclude=rows)
            for i, h in enumerate(bandwidths):
                p = self._smooth(self._kernel_sums(c2, float(h)))
                scores[i] += float((n[seen] * np.log(p[seen])).sum())
        return float(bandwidths[int(np.argmax(scores))])

    def save(self, path: str | os.PathLike, *, overwrite: bool = True):
        """Save to folder ``path``; load with :func:`geoprior.store.load_prior`."""
        header = {
            **_species_header(self.species),
            "bandwidth_km": self.bandwidth_km,
            "k": self.k,
            "smoothing": self.smoothing,
        }
        arrays = {
            "location_lat": self.location_lat,
            "location_lon": self.location_lon,
            "global_counts": self.global_counts,
            **_counts_arrays("locations", self._counts),
        }
        return save_folder(path, "NearestNeighborPrior", header, arrays, overwrite=overwrite)


def _check_k(k) -> int | None:
    if k is None:
        return None
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k must be a positive integer or None (all locations), got {k!r}")
    return int(k)


@register_kind(
    "NearestNeighborPrior",
    Schema(
        {"bandwidth_km": _NON_NEGATIVE, "k": field(int, type(None), min=1),
         "smoothing": _NON_NEGATIVE},
        lambda header: {
            "location_lat": ArraySpec(("locations",)),
            "location_lon": ArraySpec(("locations",)),
            "global_counts": ArraySpec((len(header["species"]),), min=0),
            **_counts_specs("locations"),
        },
    ),
)
def _load_nearest_neighbor(header: dict, arrays: dict) -> NearestNeighborPrior:
    species = _header_species(header)
    s = len(species)
    return NearestNeighborPrior(
        species,
        arrays["location_lat"],
        arrays["location_lon"],
        _counts_load("locations", arrays, s),
        _array(arrays, "global_counts", s),
        bandwidth_km=header["bandwidth_km"],
        k=header["k"],
        smoothing=header["smoothing"],
    )
