"""Batches: which rows each training step reads, on which process, from memory or disk.

Training reads its rows through a *row source* — :class:`MemoryRows` for in-memory
:class:`~geoprior.Observations`, :class:`StoreRows` for a memory-mapped
:class:`~geoprior.ColumnStore` — and a *plan* that names the rows of every step as a pure
function of ``(seed, step, process)``, so a resumed run reads exactly what an
uninterrupted one would have.

- :class:`PermutationPlan` (in memory): each epoch is a fresh random permutation of the
  process's rows (or, with ``cap``, of at most ``cap`` rows per species).
- :class:`BlockPlan` (on disk): the store was shuffled once when it was written, so a
  contiguous block of rows is already a random sample; each epoch visits the blocks in a
  new random order, with block boundaries shifted by a random offset. Reads are
  sequential runs of ``block`` rows and the plan's memory is ``O(rows / block)``.

Target-group background rows are drawn the same way from the process's own rows (plus
any extra background places), so nothing ever needs all rows in memory.
"""

from __future__ import annotations

import numpy as np

from ..errors import EmptyDataError
from ..observations import Observations, day_of_year

__all__ = ["MemoryRows", "StoreRows", "PermutationPlan", "BlockPlan", "capped_rows"]


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in key])


def _columns(o: Observations, sl, use_date: bool, cov_mean, cov_std) -> dict[str, np.ndarray]:
    """Rows ``sl`` of ``o`` as a batch's columns: float32 places, int32 species, day of the
    year (``use_date``), covariates standardised (``cov_mean`` given)."""
    cols = {
        "lat": o.lat[sl].astype(np.float32),
        "lon": o.lon[sl].astype(np.float32),
        "species": o.species_index[sl].astype(np.int32),
    }
    if use_date:
        cols["doy"] = day_of_year(o.date[sl]).astype(np.float32)
    if cov_mean is not None:
        cols["cov"] = ((o.covariates[sl] - cov_mean) / cov_std).astype(np.float32)
    return cols


def _extra_columns(extra: Observations | None, use_date: bool, cov_mean, cov_std) -> dict:
    """Extra background places as batch columns (no species; undated, as they are
    year-round); ``{}`` for none."""
    if extra is None or not len(extra):
        return {}
    cols = _columns(extra, slice(None), use_date, cov_mean, cov_std)
    del cols["species"]
    if use_date:
        cols["doy"][:] = np.nan
    return cols


class MemoryRows:
    """Rows ``[start, stop)`` of in-memory observations (+ optional extra background
    places, which only background draws reach), with dates as day of year and covariates
    standardised."""

    def __init__(
        self,
        obs: Observations,
        start: int,
        stop: int,
        *,
        use_date: bool,
        cov_mean=None,
        cov_std=None,
        extra: Observations | None = None,
    ):
        self.cols = _columns(obs, slice(start, stop), use_date, cov_mean, cov_std)
        self.n = stop - start
        self.species = self.cols["species"]
        more = _extra_columns(extra, use_date, cov_mean, cov_std)
        if more:
            self.pool = {k: np.concatenate([v, more[k]]) for k, v in self.cols.items() if k in more}
        else:
            self.pool = self.cols
        self.n_pool = len(self.pool["lat"])

    def take(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v[rows] for k, v in self.cols.items()}

    def take_background(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v[rows] for k, v in self.pool.items() if k != "species"}


class StoreRows:
    """Rows ``[start, stop)`` of a memory-mapped column store, read on demand (+ optional
    extra background places in memory, which only background draws reach: rows from ``n``
    on, as :class:`MemoryRows` has them)."""

    def __init__(
        self,
        store,
        start: int,
        stop: int,
        *,
        use_date: bool,
        cov_mean=None,
        cov_std=None,
        extra: Observations | None = None,
    ):
        self.store, self.start, self.n = store, start, stop - start
        self.use_date, self.cov_mean, self.cov_std = use_date, cov_mean, cov_std
        self.extra = _extra_columns(extra, use_date, cov_mean, cov_std)
        self.n_extra = len(extra) if self.extra else 0

    def take(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        s, r = self.store, rows + self.start
        out = {
            "lat": np.asarray(s.lat[r], np.float32),
            "lon": np.asarray(s.lon[r], np.float32),
            "species": np.asarray(s.species_index[r], np.int32),
        }
        if self.use_date:
            out["doy"] = day_of_year(np.asarray(s.date[r])).astype(np.float32)
        if self.cov_mean is not None:
            out["cov"] = ((np.asarray(s.covariates[r]) - self.cov_mean) / self.cov_std).astype(
                np.float32
            )
        return out

    def take_background(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        inner = rows < self.n
        if inner.all():
            out = self.take(rows)
            del out["species"]
            return out
        read = self.take(rows[inner])
        del read["species"]
        out = {}
        for key, values in read.items():
            out[key] = np.empty((rows.size, *values.shape[1:]), values.dtype)
            out[key][inner] = values
            out[key][~inner] = self.extra[key][rows[~inner] - self.n]
        return out

    @property
    def n_pool(self) -> int:
        return self.n + self.n_extra


def capped_rows(species: np.ndarray, n_species: int, cap: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of a random ``cap`` rows of each species (all rows of rarer ones)."""
    return np.sort(_epoch_order(species, n_species, cap, _rng(seed)))


def _epoch_order(species: np.ndarray, n_species: int, cap: int | None, rng) -> np.ndarray:
    order = rng.permutation(species.size)
    if cap is None:
        return order
    sp = species[order]
    # rank of each row within its species in this random order; keep the first `cap`
    sort = np.argsort(sp, kind="stable")
    counts = np.bincount(sp, minlength=n_species)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty_like(sort)
    rank[sort] = np.arange(sort.size) - np.repeat(starts, counts)
    return order[rank < cap]


class PermutationPlan:
    """Rows of each step: consecutive slices of per-epoch permutations (the current
    epoch's permutation is cached, so a step costs ``O(batch)``)."""

    def __init__(
        self,
        species: np.ndarray,
        n_species: int,
        cap: int | None,
        seed: int,
        batch: int,
        process: int = 0,
        n_pool: int | None = None,
    ):
        self.species, self.n_species, self.cap = species, n_species, cap
        self.seed, self.batch, self.process = seed, batch, process
        self.n_pool = species.size if n_pool is None else n_pool
        self._epoch, self._order = -1, np.zeros(0, np.int64)
        self.epoch_len = self._order_of(0).size
        if self.epoch_len == 0:
            raise EmptyDataError("no rows to sample from")

    def _order_of(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            rng = _rng(self.seed, epoch, self.process)
            self._epoch = epoch
            self._order = _epoch_order(self.species, self.n_species, self.cap, rng)
        return self._order

    def rows(self, step: int) -> np.ndarray:
        start, parts, need = step * self.batch, [], self.batch
        while need:
            epoch, offset = divmod(start, self.epoch_len)
            take = self._order_of(epoch)[offset : offset + need]
            parts.append(take)
            need -= take.size
            start += take.size
        return np.concatenate(parts)

    def background_rows(self, step: int) -> np.ndarray:
        return _rng(self.seed, step, self.process, 1).integers(0, self.n_pool, self.batch)


class BlockPlan:
    """Rows of each step from random contiguous blocks of a pre-shuffled store.

    An epoch is ``ceil(n / block)`` blocks of ``block`` rows starting at a random offset
    (wrapping around the end, so up to ``block - 1`` rows appear twice in an epoch),
    visited in a random order.
    """

    def __init__(
        self, n: int, seed: int, batch: int, block: int = 256, process: int = 0, n_extra: int = 0
    ):
        if n == 0:
            raise EmptyDataError("no rows to sample from")
        self.n, self.seed, self.batch, self.process = n, seed, batch, process
        self.n_extra = int(n_extra)
        self.block = max(1, min(block, n))
        self.n_blocks = -(-n // self.block)
        self.epoch_len = self.n_blocks * self.block
        self._epoch, self._order, self._offset = -1, np.zeros(0, np.int64), 0

    def _epoch_of(self, epoch: int):
        if epoch != self._epoch:
            rng = _rng(self.seed, epoch, self.process)
            self._epoch = epoch
            self._offset = int(rng.integers(0, self.n))
            self._order = rng.permutation(self.n_blocks)
        return self._order, self._offset

    def rows(self, step: int) -> np.ndarray:
        pos = step * self.batch + np.arange(self.batch, dtype=np.int64)
        epochs, within = np.divmod(pos, self.epoch_len)
        out = np.empty(self.batch, np.int64)
        for epoch in np.unique(epochs):
            sel = epochs == epoch
            order, offset = self._epoch_of(int(epoch))
            q = within[sel]
            out[sel] = (offset + order[q // self.block] * self.block + q % self.block) % self.n
        return out

    def background_rows(self, step: int) -> np.ndarray:
        """Background rows of a step: blocks of the store's rows, and with ``n_extra``
        extra places (numbered from ``n``) a binomial share ``n_extra / (n + n_extra)`` of
        the batch drawn uniformly from them, as a uniform draw over the whole pool would."""
        extra = 0
        if self.n_extra:
            rng = _rng(self.seed, step, self.process, 2)
            extra = int(rng.binomial(self.batch, self.n_extra / (self.n + self.n_extra)))
        batch = self.batch - extra
        k = -(-batch // self.block)
        starts = _rng(self.seed, step, self.process, 1).integers(0, self.n, k)
        rows = (starts[:, None] + np.arange(self.block)[None, :]).ravel()[:batch] % self.n
        if not extra:
            return rows
        return np.concatenate([rows, self.n + rng.integers(0, self.n_extra, extra)])
