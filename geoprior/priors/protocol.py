"""The Prior contract: what every prior offers its callers (range maps, thresholds,
rerank), and the functions that serve any prior through it."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from ..validation import check_positive_int

__all__ = ["Prior", "predict_columns", "ranking_frame", "scores_columns", "top_k_frame"]


@runtime_checkable
class Prior(Protocol):
    """Anything that says how likely each species is at a place and date.

    ``predict`` returns an ``(n, S)`` float array of probabilities in [0, 1], columns
    aligned with ``species``. ``date`` is ``None`` (year-round), one date for every row, or
    one date per row (``NaT``/``None`` rows are year-round).
    """

    @property
    def species(self) -> Sequence[str]: ...

    def predict(self, lat, lon, date=None) -> np.ndarray: ...



def scores_columns(prior) -> bool:
    """Whether ``prior.predict`` takes ``species=`` and computes only those columns (as a
    :class:`GeoPrior` does), so callers can size their chunks by the columns they ask for.

    >>> scores_columns(UniformPrior(["a", "b"]))  # doctest: +SKIP
    False
    """
    return "species" in inspect.signature(prior.predict).parameters


def predict_columns(
    prior, lat, lon, date, columns, *, covariates=None, output: str | None = None
) -> np.ndarray:
    """Probabilities of chosen columns of any :class:`Prior`, float32.

    ``columns`` are int indices into ``prior.species``: ``(k,)`` the same for every row
    (returns ``(n, k)``) or ``(n, k)`` each row's own. A prior whose ``predict`` takes
    ``species=`` (a :class:`GeoPrior`) scores only those columns; any other predicts every
    species and keeps them. ``output`` is asked of a prior that has it (range maps and
    thresholds ask for ``"presence"``); other priors answer with their one output.

    >>> predict_columns(prior, [44.0], [-71.3], None, np.array([0, 2])).shape  # doctest: +SKIP
    (1, 2)
    """
    cols = np.asarray(columns)
    extra = {} if covariates is None else {"covariates": covariates}
    if output is not None and output in getattr(prior, "outputs", ()):
        extra["output"] = output
    if scores_columns(prior):
        return np.asarray(prior.predict(lat, lon, date, species=cols, **extra), np.float32)
    probs = np.asarray(prior.predict(lat, lon, date, **extra), np.float32)
    return probs[:, cols] if cols.ndim == 1 else np.take_along_axis(probs, cols, 1)


def top_k_frame(probs: np.ndarray, names: Sequence[str], k: int) -> pd.DataFrame:
    """Long DataFrame ``row, rank, species, prob`` of the top ``k`` columns of each row
    (ties keep the column order).

    >>> top_k_frame(np.array([[0.2, 0.5]]), ["a", "b"], 1)["species"].tolist()
    ['b']
    """
    k = min(check_positive_int("k", k), probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return ranking_frame(np.take_along_axis(probs, top, 1), top, names)


def ranking_frame(probs: np.ndarray, top: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    """The long frame of ``(n, k)`` ranked probabilities and their column indices."""
    n, k = top.shape
    return pd.DataFrame(
        {
            "row": np.repeat(np.arange(n), k),
            "rank": np.tile(np.arange(1, k + 1), n),
            "species": np.asarray(names, dtype=object)[top.ravel()],
            "prob": probs.ravel(),
        }
    )
