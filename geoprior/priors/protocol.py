"""The Prior contract: what every prior offers its callers (range maps, thresholds,
rerank, ranking), and the functions that serve any prior through it.

A prior needs two things, ``species`` and ``predict(lat, lon, date=None)``. The rest is
optional and read through the functions here, with a default for priors that say nothing:

- ``uses_date`` (default ``False``): whether the answer depends on the date
  (:func:`uses_date`).
- ``thresholds`` (default ``None``): per-species range thresholds, aligned with
  ``species``, that range maps and rerank's outside-range flag use.
- ``scores_columns`` (:class:`ColumnScoring`): ``predict(..., species=columns)`` computes
  only those columns, so callers size their chunks by the columns they ask for
  (:func:`scores_columns`).
- ``predict_query(query, ...)`` (:class:`QueryAnswering`): answers a
  :class:`~geoprior.query.Query` as it is, so places the caller made or checked itself are
  not validated twice.
- ``top_k(lat, lon, date=None, k=...)``: a ranking of its own (a GeoPrior ranks on the
  device); :func:`top_k` ranks ``predict`` for any other prior.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import ClassVar, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from ..query import Query, known_query
from ..validation import check_positive_int

__all__ = [
    "ColumnScoring",
    "Prior",
    "QueryAnswering",
    "predict_columns",
    "predict_known",
    "ranking_frame",
    "scores_columns",
    "top_k",
    "top_k_frame",
    "uses_date",
]


@runtime_checkable
class Prior(Protocol):
    """Anything that says how likely each species is at a place and date.

    ``predict`` returns an ``(n, S)`` float array of probabilities in [0, 1], columns
    aligned with ``species``. ``date`` is ``None`` (year-round), one date for every row, or
    one date per row (``NaT``/``None`` rows are year-round). Optional members (see the
    module docstring): ``uses_date``, ``thresholds``, ``scores_columns``,
    ``predict_query``, ``top_k``.
    """

    @property
    def species(self) -> Sequence[str]: ...

    def predict(self, lat, lon, date=None) -> np.ndarray: ...


@runtime_checkable
class ColumnScoring(Prior, Protocol):
    """A :class:`Prior` whose ``predict(..., species=columns)`` computes only those columns
    (``(k,)`` for every row or ``(n, k)`` each row's own); it says so with a class
    attribute ``scores_columns = True``."""

    scores_columns: ClassVar[bool]

    def predict(self, lat, lon, date=None, *, species=None) -> np.ndarray: ...


@runtime_checkable
class QueryAnswering(Prior, Protocol):
    """A :class:`Prior` that answers a validated :class:`~geoprior.query.Query` without
    checking it again (``predict`` validates, then calls this); ``species=`` as
    ``predict`` takes it, when the prior scores columns."""

    def predict_query(self, query: Query, **options) -> np.ndarray: ...


def uses_date(prior) -> bool:
    """Whether ``prior``'s answer depends on the date (its ``uses_date``; a prior that does
    not say is taken to ignore dates).

    >>> from geoprior import UniformPrior
    >>> uses_date(UniformPrior(["a", "b"]))
    False
    """
    return bool(getattr(prior, "uses_date", False))


def scores_columns(prior) -> bool:
    """Whether ``prior.predict`` takes ``species=`` and computes only those columns (a
    :class:`ColumnScoring` prior, such as a :class:`~geoprior.GeoPrior`). Callers ask once
    per call, not per chunk. A prior that does not declare ``scores_columns`` is asked
    through its signature (duck-typed priors written before the attribute).

    >>> from geoprior import UniformPrior
    >>> scores_columns(UniformPrior(["a", "b"]))
    False
    """
    declared = getattr(prior, "scores_columns", None)
    if declared is not None:
        return bool(declared)
    return "species" in inspect.signature(prior.predict).parameters


def predict_known(prior, lat, lon, date=None, **options) -> np.ndarray:
    """``prior.predict(lat, lon, date, **options)`` of places and dates the caller made or
    already checked (see :func:`~geoprior.query.known_query`): a :class:`QueryAnswering`
    prior is handed the query as it is, any other prior gets the arguments as given."""
    if isinstance(prior, QueryAnswering):
        return prior.predict_query(known_query(lat, lon, date), **options)
    return prior.predict(lat, lon, date, **options)


def predict_columns(
    prior,
    lat,
    lon,
    date,
    columns,
    *,
    covariates=None,
    output: str | None = None,
    scores: bool | None = None,
) -> np.ndarray:
    """Probabilities of chosen columns of any :class:`Prior`, float32, at places and dates
    the caller made or already checked (range-map cell centres, observations, the rows
    rerank validated: see :func:`predict_known`).

    ``columns`` are int indices into ``prior.species``: ``(k,)`` the same for every row
    (returns ``(n, k)``) or ``(n, k)`` each row's own. A :class:`ColumnScoring` prior (a
    :class:`~geoprior.GeoPrior`) scores only those columns; any other predicts every
    species and keeps them. ``scores`` is :func:`scores_columns` when the caller already
    asked. ``output`` is asked of a prior that has it (range maps and thresholds ask for
    ``"presence"``); other priors answer with their one output.

    >>> import geoprior
    >>> prior = geoprior.UniformPrior(["Setophaga virens", "Turdus migratorius", "Zenaida macroura"])
    >>> predict_columns(prior, [44.0], [-71.3], None, np.array([0, 2]))
    array([[0.33333334, 0.33333334]], dtype=float32)
    """
    cols = np.asarray(columns)
    extra = {} if covariates is None else {"covariates": covariates}
    if output is not None and output in getattr(prior, "outputs", ()):
        extra["output"] = output
    if scores_columns(prior) if scores is None else scores:
        return np.asarray(predict_known(prior, lat, lon, date, species=cols, **extra), np.float32)
    probs = np.asarray(predict_known(prior, lat, lon, date, **extra), np.float32)
    return probs[:, cols] if cols.ndim == 1 else np.take_along_axis(probs, cols, 1)


def top_k(prior, lat, lon, date=None, k: int = 10) -> pd.DataFrame:
    """The ``k`` most likely species of any :class:`Prior` at each place: a DataFrame with
    columns ``row, rank, species, prob`` (``rank`` 1 the most likely; ties keep the species
    order). A prior with a ``top_k`` of its own ranks itself (a GeoPrior on the device);
    any other has its ``predict`` ranked.

    >>> from geoprior import UniformPrior
    >>> top_k(UniformPrior(["a", "b"]), [44.0], [-71.3], k=1)["species"].tolist()
    ['a']
    """
    own = getattr(prior, "top_k", None)
    if callable(own):
        return own(lat, lon, date, k=k)
    return top_k_frame(np.asarray(prior.predict(lat, lon, date)), prior.species, k)


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
