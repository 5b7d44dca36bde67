"""What the baseline priors share: argument checks, frequencies, months, chunked rows and
the species list of their saved headers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ...errors import (
    ClassMismatchError,
    ConfigError,
    EmptyDataError,
    PriorFileError,
    SpeciesNameError,
)
from ...observations import Observations
from ...persistence import field
from ...validation import check_species_names

#: Values per working array when predicting in chunks (about 16 MB of float64).
_CHUNK_VALUES = 1 << 21
#: A non-negative number in a saved header.
NON_NEGATIVE = field(float, min=0)


def rows_per_chunk(width: int) -> int:
    return max(1, _CHUNK_VALUES // max(1, width))


def check_positive(name: str, value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a positive number, got {value!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise ConfigError(f"{name} must be a positive finite number, got {value!r}")
    return v


def check_observations(observations, where: str) -> Observations:
    if not isinstance(observations, Observations):
        raise ConfigError(
            f"{where} expects an Observations (build one with Observations.from_arrays or "
            f"geoprior.read_observations), got {type(observations).__name__}"
        )
    if len(observations) == 0:
        raise EmptyDataError(f"{where} got 0 observations; it needs at least one")
    return observations


def check_species(species: Sequence[str]) -> tuple[str, ...]:
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


def frequencies(counts: np.ndarray, smoothing: float) -> np.ndarray:
    """Additive (Laplace / Dirichlet) smoothing: ``(n_s + a) / (N + S a)``."""
    return (counts + smoothing) / (counts.sum() + smoothing * counts.size)


def months_of(dates: np.ndarray) -> np.ndarray:
    """Month 0..11 of ``datetime64[D]`` dates, -1 for ``NaT``."""
    out = np.full(dates.shape, -1, dtype=np.int64)
    ok = ~np.isnat(dates)
    out[ok] = dates[ok].astype("datetime64[M]").astype(np.int64) % 12
    return out


def fill_rows(out: np.ndarray, distribution: np.ndarray) -> np.ndarray:
    step = rows_per_chunk(distribution.size)
    for a in range(0, out.shape[0], step):
        out[a : a + step] = distribution
    return out


def species_header(species: tuple[str, ...]) -> dict:
    return {"species": list(species)}


def header_species(header: dict) -> tuple[str, ...]:
    species = header["species"]
    if not isinstance(species, list):
        raise PriorFileError(
            f"the saved species list is a {type(species).__name__}, expected a list"
        )
    return tuple(species)


def saved_array(arrays: dict, name: str, length: int | None = None) -> np.ndarray:
    a = arrays[name]
    if length is not None and a.shape[0] != length:
        raise PriorFileError(f"saved array {name!r} has {a.shape[0]} rows, expected {length}")
    return a
