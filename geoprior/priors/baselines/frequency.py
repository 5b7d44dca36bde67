"""Global species frequencies: :class:`FrequencyPrior`."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ...errors import ClassMismatchError
from ...observations import Observations
from ...persistence import ArraySpec, Schema, register_kind, save_folder
from ...query import Query, prepare_query
from .common import (
    NON_NEGATIVE,
    check_observations,
    check_positive,
    check_species,
    fill_rows,
    frequencies,
    header_species,
    species_header,
)

__all__ = ["FrequencyPrior"]


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

    #: the same answer at every date
    uses_date = False

    def __init__(self, species: Sequence[str], counts, *, smoothing: float = 1.0):
        self._species = check_species(species)
        self.counts = np.asarray(counts, dtype=np.float64)
        if self.counts.shape != (len(self._species),):
            raise ClassMismatchError(
                f"got {self.counts.size} counts for {len(self._species)} species"
            )
        self.smoothing = check_positive("smoothing", smoothing)
        self.frequencies = frequencies(self.counts, self.smoothing)

    @classmethod
    def fit(cls, observations: Observations, *, smoothing: float = 1.0) -> FrequencyPrior:
        """Count each species of ``observations`` (all rows, dated or not)."""
        obs = check_observations(observations, "FrequencyPrior.fit")
        return cls(obs.species, obs.species_counts(), smoothing=smoothing)

    @property
    def species(self) -> tuple[str, ...]:
        return self._species

    def __repr__(self) -> str:
        return f"FrequencyPrior({len(self.species)} species, {int(self.counts.sum())} observations)"

    def predict(self, lat, lon, date=None) -> np.ndarray:
        """``(n, S)`` float32: the global frequencies on every row (queries are validated)."""
        return self.predict_query(prepare_query(lat, lon, date))

    def predict_query(self, query: Query) -> np.ndarray:
        """:meth:`predict` of an already valid :class:`~geoprior.query.Query`."""
        out = np.empty((query.lat.size, len(self.species)), dtype=np.float32)
        return fill_rows(out, self.frequencies.astype(np.float32))

    def save(self, path: str | os.PathLike, *, overwrite: bool = True):
        """Save to folder ``path``; load with :func:`geoprior.persistence.load_prior`."""
        header = {**species_header(self.species), "smoothing": self.smoothing}
        return save_folder(
            path, "FrequencyPrior", header, {"counts": self.counts}, overwrite=overwrite
        )


@register_kind(
    "FrequencyPrior",
    Schema(
        {"smoothing": NON_NEGATIVE},
        lambda header: {"counts": ArraySpec((len(header["species"]),), min=0)},
    ),
)
def _load_frequency(header: dict, arrays: dict) -> FrequencyPrior:
    return FrequencyPrior(header_species(header), arrays["counts"], smoothing=header["smoothing"])
