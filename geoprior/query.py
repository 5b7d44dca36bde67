"""The validation of ``(lat, lon, date)`` queries and species names every prior shares
(the :class:`~geoprior.priors.protocol.Prior` protocol itself lives with the priors)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from .errors import ClassMismatchError, ConfigError, DateError, UnknownSpeciesError
from .names import normalize_name
from .validation import check_lat_lon, parse_dates

__all__ = ["Query", "known_query", "prepare_query", "species_columns", "species_indices"]


class Query(NamedTuple):
    """A validated query of ``n`` rows: float64 ``lat``, ``lon`` (degrees) and
    ``datetime64[D]`` ``dates`` (``NaT`` for undated rows). :func:`prepare_query` makes one
    from user input; a prior's ``predict_query`` takes it as it is, without checking again.
    Unpacks as ``lat, lon, dates``."""

    lat: np.ndarray
    lon: np.ndarray
    dates: np.ndarray


def known_query(lat, lon, date=None) -> Query:
    """A :class:`Query` of places and dates the caller made or already checked (H3 cell
    centres, an :class:`~geoprior.Observations`' columns, rows ``rerank`` validated):
    converted and broadcast, never re-validated. User input goes through
    :func:`prepare_query`.

    >>> known_query([44.0, 45.0], [-71.3, -70.0], np.datetime64("2021-06-14")).dates.size
    2
    """
    lat = np.asarray(lat, np.float64).reshape(-1)
    lon = np.asarray(lon, np.float64).reshape(-1)
    if date is None:
        return Query(lat, lon, np.full(lat.size, np.datetime64("NaT"), dtype="datetime64[D]"))
    dates = np.asarray(date, dtype="datetime64[D]").reshape(-1)
    return Query(lat, lon, np.broadcast_to(dates, lat.shape) if dates.size == 1 else dates)


def prepare_query(lat, lon, date=None) -> Query:
    """Validate a query: returns a :class:`Query` of float64 ``lat, lon`` and
    ``datetime64[D]`` dates (``NaT`` for undated), all of length n. Raises CoordinateError /
    DateError naming the row.

    >>> prepare_query([44.0], [-71.3], "2021-06-14")[2]
    array(['2021-06-14'], dtype='datetime64[D]')
    """
    lat, lon = check_lat_lon(lat, lon)
    n = lat.size
    if date is None:
        return Query(lat, lon, np.full(n, np.datetime64("NaT"), dtype="datetime64[D]"))
    d = np.atleast_1d(np.asarray(date, dtype=object if not _is_datetime(date) else None))
    dates, masks, messages, _ = parse_dates(d)
    if masks:
        raise DateError("; ".join(messages[k] for k in masks))
    if dates.size == 1 and n != 1:
        dates = np.repeat(dates, n)
    if dates.size != n:
        raise ClassMismatchError(
            f"got {n} locations but {dates.size} dates (give one date or one per row)"
        )
    return Query(lat, lon, dates)


def species_indices(names: Sequence[str] | str, species: Sequence[str]) -> np.ndarray:
    """Column indices of ``names`` in ``species``, matched exactly or else as the readers
    spell names (:func:`~geoprior.names.normalize_name`: NFC, single spaces); unknown names
    raise with suggestions."""
    from .errors import unknown_species

    if isinstance(names, str):
        names = [names]
    lookup = {s: i for i, s in enumerate(species)}
    for i, s in enumerate(species):
        lookup.setdefault(normalize_name(s), i)
    found = [
        lookup.get(n, lookup.get(normalize_name(n))) if isinstance(n, str) else None for n in names
    ]
    missing = [n for n, i in zip(names, found) if i is None]
    if missing:
        raise unknown_species(missing, list(species))
    return np.array(found, dtype=np.int64)


def species_columns(species, names: Sequence[str], n: int) -> np.ndarray | None:
    """A prior's ``species=`` argument as int32 column indices into ``names``: ``None``
    (every species), ``(k,)`` (the same for every row: names or indices) or ``(n, k)``
    (each of ``n`` rows its own). Unknown names raise with close matches, indices outside
    the list name the first one.

    >>> species_columns(["b", "a"], ["a", "b", "c"], 1).tolist()
    [1, 0]
    """
    if species is None:
        return None
    arr = np.asarray(species)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim > 2:
        raise ConfigError(
            f"species must be 1-D (the same for every row) or 2-D (n, k), got shape {arr.shape}"
        )
    if arr.ndim == 2 and arr.shape[0] != n:
        raise ClassMismatchError(
            f"per-row species have {arr.shape[0]} rows for {n} places; give (n, k) or a "
            "1-D list for every row"
        )
    if arr.size == 0:
        return np.zeros(arr.shape, np.int32)
    if arr.dtype.kind in "iu":
        bad = (arr < 0) | (arr >= len(names))
        if bad.any():
            i = int(np.flatnonzero(bad.ravel())[0])
            raise UnknownSpeciesError(
                f"{int(bad.sum())} of {arr.size} species indices outside [0, {len(names)}); "
                f"first: position {i} = {int(arr.ravel()[i])}"
            )
        return arr.astype(np.int32)
    flat = arr.ravel().tolist()
    if arr.dtype.kind not in "UO" or not all(isinstance(v, str) for v in flat):
        first = next(v for v in flat if not isinstance(v, str))
        raise ConfigError(
            f"species must be names or integer column indices, got {arr.dtype} values; "
            f"first: {first!r}"
        )
    return species_indices(flat, names).astype(np.int32).reshape(arr.shape)


def _is_datetime(value) -> bool:
    return np.issubdtype(np.asarray(value).dtype, np.datetime64)
