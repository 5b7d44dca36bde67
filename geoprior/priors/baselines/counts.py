"""Sparse species counts per key (an H3 cell, a cell-month, a location), in compressed rows,
and how they are saved."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ...errors import PriorFileError
from ...persistence import ArraySpec

__all__ = ["Counts", "counts_arrays", "counts_from", "counts_load", "counts_specs", "gather"]


class Counts(NamedTuple):
    """Species counts per key, compressed rows: row ``i`` (key ``keys[i]``, sorted) holds
    ``counts[indptr[i]:indptr[i+1]]`` of species ``species[indptr[i]:indptr[i+1]]``."""

    keys: np.ndarray  # int64, sorted, unique
    indptr: np.ndarray  # int64, len(keys) + 1
    species: np.ndarray  # int32
    counts: np.ndarray  # float64


def counts_from(
    keys: np.ndarray, species: np.ndarray, weights: np.ndarray, n_species: int
) -> Counts:
    """Sum ``weights`` per ``(key, species)`` into a :class:`Counts`."""
    ukeys, row = np.unique(keys, return_inverse=True)
    pair = row.astype(np.int64) * n_species + species
    upair, inverse = np.unique(pair, return_inverse=True)
    counts = np.bincount(inverse, weights=weights, minlength=upair.size)
    indptr = np.searchsorted(upair // n_species, np.arange(ukeys.size + 1))
    return Counts(
        ukeys.astype(np.int64),
        indptr.astype(np.int64),
        (upair % n_species).astype(np.int32),
        counts.astype(np.float64),
    )


def counts_arrays(prefix: str, c: Counts) -> dict[str, np.ndarray]:
    return {
        f"{prefix}_keys": c.keys,
        f"{prefix}_indptr": c.indptr,
        f"{prefix}_species": c.species,
        f"{prefix}_counts": c.counts,
    }


def counts_load(prefix: str, arrays: dict, n_species: int) -> Counts:
    c = Counts(*(arrays[f"{prefix}_{f}"] for f in Counts._fields))
    if (
        c.indptr.size != c.keys.size + 1
        or c.species.size != c.counts.size
        or (c.indptr.size and c.indptr[-1] != c.species.size)
        or (c.species.size and not 0 <= c.species.min() <= c.species.max() < n_species)
    ):
        raise PriorFileError(f"saved counts {prefix!r} are inconsistent (corrupt file)")
    return c


def counts_specs(prefix: str) -> dict[str, ArraySpec]:
    """The saved arrays of a :class:`Counts` (see :class:`geoprior.persistence.Schema`)."""
    entries = f"{prefix} entries"
    return {
        f"{prefix}_keys": ArraySpec((None,), "i"),
        f"{prefix}_indptr": ArraySpec((None,), "i", min=0),
        f"{prefix}_species": ArraySpec((entries,), "i", min=0),
        f"{prefix}_counts": ArraySpec((entries,), min=0),
    }


def gather(
    c: Counts,
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
