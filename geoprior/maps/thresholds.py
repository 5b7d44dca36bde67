"""Per-species thresholds that turn a prior's probabilities into in/out-of-range maps.

Two rules, for any :class:`~geoprior.priors.protocol.Prior`:

- ``"lpt"`` (lowest presence threshold, the rule iNaturalist uses for its range maps): the
  ``percentile``-th percentile (default 5) of the prior over the species' training presences,
  taken as a presence's own value (numpy's ``method="lower"``), so at least
  ``100 - percentile`` percent of the presences score at or above it. Each presence is
  evaluated at its own date (and covariates, if the prior uses them); undated presences
  year-round.
- ``"f1"``: the threshold that maximises the F1 score of *presence cells* (H3 cells at
  resolution ``res`` holding at least one presence of the species) against *pseudo-absence
  cells* (cells where other species were seen but not this one, plus ``n_background``
  random land cells), the prior evaluated year-round at cell centres. Candidates are the
  presence cells' own values; ties go to the highest threshold (the tighter map).

A cell is in range when ``prob >= threshold``. Species with no presences get ``NaN``.
Both rules stream over the data in chunks: memory is ``chunk x species``, never
``presences x species``. A prior that scores chosen columns (a GeoPrior, see
:func:`~geoprior.priors.protocol.scores_columns`) computes only what a rule needs: ``"lpt"`` each
presence's own species, ``"f1"`` the species asked for.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError, EmptyDataError
from ..geo import cell_centres, latlng_to_cells
from ..observations import Observations
from ..priors.protocol import predict_columns, scores_columns
from ..query import species_indices
from .grid import CellGrid
from .land import land_cells

__all__ = ["compute_thresholds", "RULES"]

RULES = ("lpt", "f1")
#: Probabilities computed per predict call (rows x species).
_CHUNK_VALUES = 1 << 22


def compute_thresholds(
    prior,
    observations: Observations,
    rule: str = "lpt",
    percentile: float = 5.0,
    *,
    species: Sequence[str] | None = None,
    res: int = 4,
    n_background: int = 1000,
    seed: int = 0,
    progress: bool = False,
) -> np.ndarray:
    """Per-species probability thresholds of ``prior`` from presence ``observations``.

    Args:
        prior: any :class:`~geoprior.priors.protocol.Prior`.
        observations: presences (typically the prior's training data); species the prior
            does not know raise :class:`~geoprior.UnknownSpeciesError`.
        rule: ``"lpt"`` or ``"f1"`` (see the module docstring).
        percentile: for ``"lpt"``, in [0, 100).
        species: compute only these species (default: all of ``prior.species``).
        res: for ``"f1"``, the H3 resolution of presence and pseudo-absence cells.
        n_background: for ``"f1"``, random land places added as pseudo-absences.
        seed: for ``"f1"``, the seed of the random land places.
        progress: show a progress bar on stderr (tqdm): the presences scored (``"lpt"``),
            or the cells, twice (``"f1"``).

    Returns:
        float32 thresholds aligned with ``species`` (or ``prior.species``); ``NaN`` for
        species without presences.

    Example:
        >>> import geoprior
        >>> obs = geoprior.Observations.from_arrays(
        ...     [44.0, 44.1, 30.0], [-71.3, -71.2, -90.0],
        ...     ["Setophaga virens", "Setophaga virens", "Zenaida macroura"])
        >>> prior = geoprior.FrequencyPrior.fit(obs)
        >>> t = compute_thresholds(prior, obs, "lpt", 5.0)
        >>> t
        array([0.6, 0.4], dtype=float32)
        >>> prior.thresholds = t  # a GeoPrior keeps them: stored by prior.save()  # doctest: +SKIP
    """
    if not isinstance(observations, Observations):
        raise ConfigError(
            f"compute_thresholds expects an Observations, got {type(observations).__name__}"
        )
    rule_name = str(rule).lower()
    if rule_name not in RULES:
        raise ConfigError(f"rule must be one of {RULES}, got {rule!r}")
    obs = observations.with_vocabulary(tuple(prior.species))
    cols = (
        np.arange(len(prior.species))
        if species is None
        else species_indices(list(species), prior.species)
    )
    # position of each prior column among the requested species (-1: not requested)
    where = np.full(len(prior.species), -1, np.int64)
    where[cols] = np.arange(cols.size)
    obs = obs[where[obs.species_index] >= 0]
    if len(obs) == 0:
        raise EmptyDataError(
            f"none of the {len(observations)} observations is of the {cols.size} species asked for"
        )
    target = where[obs.species_index]
    if rule_name == "lpt":
        p = float(percentile)
        if not 0.0 <= p < 100.0:
            raise ConfigError(f"percentile must be in [0, 100), got {percentile!r}")
        return _lpt(prior, obs, cols, target, p, progress)
    if n_background < 0:
        raise ConfigError(f"n_background must be >= 0, got {n_background}")
    return _f1(prior, obs, cols, target, int(res), int(n_background), seed, progress)


def _bar(total: int, desc: str, enabled: bool, unit: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True)


def _predict_chunks(prior, lat, lon, date, covariates, columns: np.ndarray, bar=None):
    """Yield ``(slice, probs)`` over rows: float32 probabilities of ``columns`` (``(k,)``
    for every row or ``(n, k)`` each row's own), about ``_CHUNK_VALUES`` computed a call;
    ``bar`` (a tqdm bar) advances by the rows of each chunk once it is used."""
    scores = scores_columns(prior)
    width = columns.shape[-1] if scores else len(prior.species)
    step = max(1, _CHUNK_VALUES // max(1, width))
    for a in range(0, lat.size, step):
        sl = slice(a, min(lat.size, a + step))
        d = None if date is None else date[sl]
        cov = None if covariates is None else covariates[sl]
        cols = columns if columns.ndim == 1 else columns[sl]
        yield (
            sl,
            predict_columns(
                prior, lat[sl], lon[sl], d, cols, covariates=cov, output="presence", scores=scores
            ),
        )
        if bar is not None:
            bar.update(sl.stop - sl.start)


def _covariates(prior, obs: Observations):
    names = tuple(getattr(prior, "covariate_names", ()) or ())
    if not names:
        return None
    if obs.covariates is None or tuple(obs.covariate_names) != names:
        raise ConfigError(
            f"the prior uses covariates {list(names)}; the observations have "
            f"{list(obs.covariate_names)}"
        )
    return obs.covariates


def _lpt(prior, obs: Observations, cols, target, percentile: float, progress=False) -> np.ndarray:
    values = np.empty(len(obs), np.float32)
    cov = _covariates(prior, obs)
    own = obs.species_index[:, None]  # each presence: its own species only
    with _bar(len(obs), "thresholds (lpt)", progress, "presence") as bar:
        for sl, probs in _predict_chunks(prior, obs.lat, obs.lon, obs.date, cov, own, bar):
            values[sl] = probs[:, 0]
    order = np.lexsort((values, target))
    counts = np.bincount(target, minlength=cols.size)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = np.full(cols.size, np.nan, np.float32)
    has = counts > 0
    pick = starts[has] + np.floor((counts[has] - 1) * percentile / 100.0).astype(np.int64)
    out[has] = values[order][pick]
    return out


def _background_cells(n: int, res: int, seed: int) -> np.ndarray:
    if n == 0:
        return np.empty(0, np.int64)
    south, west, step, weights = land_cells()
    rng = np.random.default_rng(seed)
    pick = rng.choice(south.size, size=n, p=weights)
    lat = south[pick] + step * rng.random(n)
    lon = west[pick] + step * rng.random(n)
    return latlng_to_cells(lat, lon, res)


def _keys(species: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Exact sort keys of (species, prob) pairs: species in the high 32 bits, the float32
    bit pattern (monotonic for non-negative floats) in the low ones."""
    bits = np.asarray(probs, np.float32).view(np.uint32).astype(np.uint64)
    return (species.astype(np.uint64) << np.uint64(32)) | bits


def _pair_probs(prior, grid: CellGrid, pair_cell: np.ndarray, pair_col: np.ndarray) -> np.ndarray:
    """Presence of prior column ``pair_col[i]`` at cell ``pair_cell[i]`` (pairs sorted by
    cell): one row per cell holding pairs, its columns padded with its first one."""
    first = np.flatnonzero(np.r_[True, np.diff(pair_cell) != 0])
    rank = np.arange(pair_cell.size) - np.repeat(first, np.diff(np.r_[first, pair_cell.size]))
    at = np.cumsum(rank == 0) - 1
    table = np.repeat(pair_col[first][:, None], int(rank.max(initial=0)) + 1, 1)
    table[at, rank] = pair_col
    cells = pair_cell[first]
    out = np.empty(pair_cell.size, np.float32)
    for a in range(0, cells.size, 4096):
        sel = slice(a, a + 4096)
        probs = predict_columns(
            prior, grid.lat[cells[sel]], grid.lon[cells[sel]], None, table[sel], output="presence"
        )
        inside = (at >= a) & (at < a + 4096)
        out[inside] = probs[at[inside] - a, rank[inside]]
    return out


def _device_false_positives(prior, grid, cols, pos, pos_prob, pos_sp, keys, start, diff, bar):
    """Add, into ``diff``, each negative (cell, species) pair's false positives: the device
    compares every cell with each species' lowest candidate threshold, so only the pairs
    that could count leave it."""
    s = cols.size
    low = np.full(len(prior.species), np.nan, np.float32)
    lowest = np.full(s, np.inf, np.float32)
    np.minimum.at(lowest, pos_sp, pos_prob)
    low[cols] = np.where(np.isfinite(lowest), lowest, np.nan)
    position = np.full(len(prior.species), -1, np.int64)
    position[cols] = np.arange(s)
    for first, m, r, c, v in prior.iter_above(
        grid.lat, grid.lon, None, thresholds=low, output="presence"
    ):
        sp = position[c]
        code = (first + r) * s + sp
        found = np.searchsorted(pos, code)
        negative = (sp >= 0) & ~((found < pos.size) & (pos[np.minimum(found, pos.size - 1)] == code))
        sp, v = sp[negative], v[negative]
        upto = np.searchsorted(keys, _keys(sp, v), side="right")
        diff += np.bincount(start[sp], minlength=diff.size)
        diff -= np.bincount(upto, minlength=diff.size)
        bar.update(m)


def _f1(
    prior, obs: Observations, cols, target, res: int, n_background: int, seed, progress=False
) -> np.ndarray:
    if getattr(prior, "covariate_names", ()):
        raise ConfigError(
            "the F1 rule evaluates the prior at cell centres, which have no covariates; "
            "use rule='lpt' for a prior with covariates"
        )
    s = cols.size
    occupied = latlng_to_cells(obs.lat, obs.lon, res)
    cells = np.unique(np.concatenate([occupied, _background_cells(n_background, res, seed)]))
    grid = CellGrid(cells, *cell_centres(cells))
    # presence pairs: code = cell position * S + species position, unique and sorted
    pos = np.unique(np.searchsorted(cells, occupied) * s + target)
    pos_cell, pos_sp = pos // s, pos % s
    pos_prob = np.empty(pos.size, np.float32)
    # the cells are scored twice: the presence cells' values, then the false positives
    bar = _bar(2 * len(grid), "thresholds (f1)", progress, "cell")
    device = callable(getattr(prior, "iter_above", None))
    if device:  # only the presence pairs' own columns, a row per occupied cell
        pos_prob[:] = _pair_probs(prior, grid, pos_cell, cols[pos_sp])
        bar.update(len(grid))
    else:
        for sl, probs in _predict_chunks(prior, grid.lat, grid.lon, None, None, cols, bar):
            inside = (pos_cell >= sl.start) & (pos_cell < sl.stop)
            pos_prob[inside] = probs[pos_cell[inside] - sl.start, pos_sp[inside]]
    keys = _keys(pos_sp, pos_prob)
    order = np.argsort(keys, kind="stable")
    keys, cand_sp, cand_prob = keys[order], pos_sp[order], pos_prob[order]
    n_pos = np.bincount(cand_sp, minlength=s)
    start = np.concatenate([[0], np.cumsum(n_pos)[:-1]])
    # false positives per candidate threshold, accumulated as a difference array
    diff = np.zeros(keys.size + 1, np.int64)
    if device:
        # a negative counts only from its species' lowest candidate up: the device hands
        # over just those, never the cells x species matrix
        _device_false_positives(prior, grid, cols, pos, pos_prob, pos_sp, keys, start, diff, bar)
    chunks = () if device else _predict_chunks(prior, grid.lat, grid.lon, None, None, cols, bar)
    for sl, sub in chunks:
        negative = np.ones(sub.shape, bool)
        inside = (pos_cell >= sl.start) & (pos_cell < sl.stop)
        negative[pos_cell[inside] - sl.start, pos_sp[inside]] = False
        _, sp = np.nonzero(negative)
        # a negative with prob p is a false positive for every candidate t <= p
        upto = np.searchsorted(keys, _keys(sp, sub[negative]), side="right")
        diff += np.bincount(start[sp], minlength=diff.size)
        diff -= np.bincount(upto, minlength=diff.size)
    bar.close()
    fp = np.cumsum(diff)[:-1]
    # true positives: the species' positives at or above the candidate (ties included)
    first_equal = np.searchsorted(keys, keys, side="left")
    tp = n_pos[cand_sp] - (first_equal - start[cand_sp])
    f1 = 2.0 * tp / (2.0 * tp + fp + (n_pos[cand_sp] - tp))
    best = np.lexsort((np.arange(keys.size), f1, cand_sp))
    last = np.flatnonzero(np.diff(np.append(cand_sp[best], s)) != 0)
    out = np.full(s, np.nan, np.float32)
    out[cand_sp[best[last]]] = cand_prob[best[last]]
    return out
