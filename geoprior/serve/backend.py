"""What the server asks of a prior, the same for a saved GeoPrior (JAX) and an ONNX export
(:mod:`geoprior.runtime`): every output at validated places, for all or chosen species.

A GeoPrior compiles once per number of rows, so :class:`Served` pads a query to the next
power of two (repeating its last row) before it reaches the prior and drops the padding
after: a server sees a handful of shapes, not one compilation per request size.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..priors.protocol import predict_columns
from ..query import Query

__all__ = ["Served", "Answer", "load_served"]


class Answer(NamedTuple):
    """Both scores (``(n, k)`` float32, ``None`` for an output the prior lacks) of the
    ``k`` species asked for, and ``distance_km``, ``outside`` per place."""

    observation: np.ndarray | None
    presence: np.ndarray | None
    distance_km: np.ndarray
    outside: np.ndarray


def _bucket(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


class Served:
    """A prior behind the server. ``backend`` is ``"jax"`` (a GeoPrior or another saved
    prior, asked through the :class:`~geoprior.priors.protocol.Prior` contract) or
    ``"onnx"`` (an :class:`~geoprior.runtime.OnnxPrior`)."""

    def __init__(self, prior, source: str | os.PathLike | None = None):
        from ..runtime import OnnxPrior

        self.prior = prior
        self.source = None if source is None else str(source)
        self.backend = "onnx" if isinstance(prior, OnnxPrior) else "jax"
        self.outputs = tuple(getattr(prior, "outputs", ("observation",)))
        self.species = tuple(prior.species)
        self.index = {s: i for i, s in enumerate(self.species)}

    @property
    def uses_date(self) -> bool:
        return bool(getattr(self.prior, "uses_date", False))

    @property
    def covariate_names(self) -> tuple[str, ...]:
        return tuple(getattr(self.prior, "covariate_names", ()))

    @property
    def far_km(self) -> float | None:
        far = getattr(self.prior, "far_km", None)
        return None if far is None else float(far)

    def answer(self, query: Query, cols: np.ndarray | None, covariates=None) -> Answer:
        """Every output at the places of a valid ``query`` (``covariates`` as the prior
        takes them), columns ``cols`` (``None``: every species)."""
        n = query.lat.size
        if self.backend == "onnx":
            s = self.prior.scores_query(query, covariates=covariates)
            pick = (lambda a: a) if cols is None else (lambda a: a[:, cols])
            return Answer(
                None if s.observation is None else pick(s.observation),
                None if s.presence is None else pick(s.presence),
                s.distance_km,
                s.outside,
            )
        m = _bucket(n)
        padded = Query(*(np.concatenate([a, np.repeat(a[-1:], m - n)]) for a in query))
        cov = None
        if covariates is not None:
            cov = np.asarray(covariates, np.float64)
            cov = np.concatenate([cov, np.repeat(cov[-1:], m - n, 0)])
        every = np.arange(len(self.species)) if cols is None else cols
        scores = {}
        for output in ("observation", "presence"):
            if output in self.outputs:
                probs = predict_columns(
                    self.prior, *padded, every, covariates=cov, output=output
                )
                scores[output] = probs[:n]
        if hasattr(self.prior, "distance_km"):
            km = self.prior.distance_km(padded.lat, padded.lon)[:n]
            outside = self.prior.outside(padded.lat, padded.lon)[:n]
        else:  # a baseline: no extent
            km, outside = np.full(n, np.nan, np.float32), np.zeros(n, bool)
        return Answer(scores.get("observation"), scores.get("presence"), km, outside)


def load_served(path: str | os.PathLike, *, threads: int | None = None) -> Served:
    """A saved prior folder (JAX) or an ``.onnx`` export (onnxruntime; ``threads`` bounds
    its threads) behind the server."""
    path = Path(path)
    if path.suffix.lower() == ".onnx" and path.is_file():
        from ..runtime import load_export

        return Served(load_export(path, threads=threads), path)
    from ..persistence import load_prior

    return Served(load_prior(path), path)
