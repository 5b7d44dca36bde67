"""The validation of ``(lat, lon, date)`` queries and species names every prior shares
(the :class:`~geoprior.priors.protocol.Prior` protocol itself lives with the priors)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import ClassMismatchError, DateError
from .names import normalize_name
from .validation import check_lat_lon, parse_dates

__all__ = ["prepare_query", "species_indices"]


def prepare_query(lat, lon, date=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate a query: returns float64 ``lat, lon`` and ``datetime64[D]`` dates (``NaT``
    for undated), all of length n. Raises CoordinateError / DateError naming the row.

    >>> prepare_query([44.0], [-71.3], "2021-06-14")[2]
    array(['2021-06-14'], dtype='datetime64[D]')
    """
    lat, lon = check_lat_lon(lat, lon)
    n = lat.size
    if date is None:
        return lat, lon, np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
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
    return lat, lon, dates


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


def _is_datetime(value) -> bool:
    return np.issubdtype(np.asarray(value).dtype, np.datetime64)
