"""The no-information baseline: :class:`UniformPrior`."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from ...persistence import Schema, register_kind, save_folder
from ...query import Query, prepare_query
from .common import check_species, header_species, species_header

__all__ = ["UniformPrior"]


class UniformPrior:
    """``1/S`` for every species everywhere: the no-information baseline.

    Example:
        >>> UniformPrior(["a", "b"]).predict([44.0], [-71.3])
        array([[0.5, 0.5]], dtype=float32)
    """

    #: the same answer at every date
    uses_date = False

    def __init__(self, species: Sequence[str]):
        self._species = check_species(species)

    @property
    def species(self) -> tuple[str, ...]:
        return self._species

    def __repr__(self) -> str:
        return f"UniformPrior({len(self.species)} species)"

    def predict(self, lat, lon, date=None) -> np.ndarray:
        """``(n, S)`` float32, every value ``1/S`` (queries are still validated)."""
        return self.predict_query(prepare_query(lat, lon, date))

    def predict_query(self, query: Query) -> np.ndarray:
        """:meth:`predict` of an already valid :class:`~geoprior.query.Query`."""
        s = len(self.species)
        return np.full((query.lat.size, s), 1.0 / s, dtype=np.float32)

    def save(self, path: str | os.PathLike, *, overwrite: bool = True):
        """Save to folder ``path``; load with :func:`geoprior.persistence.load_prior`."""
        return save_folder(
            path, "UniformPrior", species_header(self.species), {}, overwrite=overwrite
        )


@register_kind("UniformPrior", Schema())
def _load_uniform(header: dict, arrays: dict) -> UniformPrior:
    return UniformPrior(header_species(header))
