"""An exported prior run by onnxruntime: what an app or a server imports, without JAX.

:class:`OnnxPrior` answers as :class:`~geoprior.GeoPrior` does — ``predict`` (either output),
``top_k``, ``distance_km``, ``outside``, the same validation and the same errors (it checks
places and dates with :func:`~geoprior.query.prepare_query`, species with
:func:`~geoprior.query.species_columns`, covariates with
:func:`~geoprior.validation.check_covariates`) — and :meth:`OnnxPrior.scores` gives every
output of one run at once. It follows the :class:`~geoprior.priors.protocol.Prior`
contract, so range maps, thresholds and rerank take it like any prior.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..errors import ConfigError, MissingDependencyError, MissingFileError, PriorFileError
from ..observations import day_of_year
from ..query import Query, prepare_query, species_columns, species_indices
from ..validation import check_covariates, check_positive_int
from .format import (
    DISTANCE,
    INPUT_COVARIATES,
    INPUT_POINTS,
    METADATA_KEY,
    OUTSIDE,
    read_header,
    thresholds_from_json,
)

__all__ = ["BATCH", "OnnxPrior", "Scores", "load_export"]

#: Rows per onnxruntime call (memory: ``BATCH x species`` floats per output).
BATCH = 4096


class Scores(NamedTuple):
    """Every output of an export at ``n`` places: ``observation`` and ``presence``
    ``(n, S)`` (``None`` when the prior lacks that output), ``distance_km`` ``(n,)`` (NaN
    when the prior keeps no training places) and ``outside`` ``(n,)`` bool."""

    observation: np.ndarray | None
    presence: np.ndarray | None
    distance_km: np.ndarray
    outside: np.ndarray


def _session(path: Path, threads: int | None):
    try:
        import onnxruntime as ort
    except ModuleNotFoundError as e:
        raise MissingDependencyError(
            "running an ONNX export needs onnxruntime: pip install 'geoprior[export]' "
            "(or just onnxruntime)"
        ) from e
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = check_positive_int("threads", threads)
        options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own Fail / InvalidProtobuf / ...
        raise PriorFileError(f"{path} is not a readable ONNX model: {e}") from None


class OnnxPrior:
    """A prior exported with :func:`geoprior.export.export_onnx`, run by onnxruntime.

    Open one with :func:`load_export` (or :meth:`open`).

    Example:
        >>> from geoprior.runtime import load_export
        >>> prior = load_export("birds.onnx")  # doctest: +SKIP
        >>> prior.top_k(44.06, -71.31, "2021-06-14", k=3)  # doctest: +SKIP
    """

    #: ``predict(..., species=)`` computes every species and keeps those asked for.
    scores_columns = False

    def __init__(self, session, header: dict, path: Path | None = None):
        self._session = session
        self.header = header
        self.path = path
        self._species = tuple(header["species"])
        thresholds = thresholds_from_json(header.get("thresholds"))
        self.thresholds = None if thresholds is None else np.asarray(thresholds, np.float32)
        self._names = [o.name for o in session.get_outputs()]
        expected = [*header["outputs"], DISTANCE, OUTSIDE]
        if self._names != expected:
            raise PriorFileError(
                f"{path}: the graph's outputs {self._names} do not match its header "
                f"({expected}); the file is corrupt"
            )

    @classmethod
    def open(cls, path: str | os.PathLike, *, threads: int | None = None) -> OnnxPrior:
        """Load the export ``path``; ``threads`` bounds onnxruntime's threads (default:
        its own choice, every core)."""
        path = Path(path)
        if not path.is_file():
            raise MissingFileError(f"{path} does not exist (expected an .onnx export)")
        session = _session(path, threads)
        meta = session.get_modelmeta().custom_metadata_map
        return cls(session, read_header(meta.get(METADATA_KEY), str(path)), path)

    # --------------------------------------------------------------- describe
    @property
    def species(self) -> tuple[str, ...]:
        return self._species

    @property
    def n_species(self) -> int:
        return len(self._species)

    @property
    def outputs(self) -> tuple[str, ...]:
        """As :attr:`GeoPrior.outputs <geoprior.GeoPrior.outputs>`: the first is the default."""
        return tuple(self.header["outputs"])

    @property
    def uses_date(self) -> bool:
        return bool(self.header["uses_date"])

    @property
    def covariate_names(self) -> tuple[str, ...]:
        return tuple(self.header["covariates"])

    @property
    def far_km(self) -> float | None:
        return self.header["far_km"] if self.header.get("has_support", True) else None

    @property
    def extent(self) -> dict:
        return self.header.get("extent", {})

    @property
    def weights(self) -> str:
        """How the file stores its weights: ``float32``, ``float16`` or ``int8``."""
        return self.header["weights"]

    def __repr__(self) -> str:
        return (
            f"OnnxPrior({self.n_species} species, outputs={list(self.outputs)}, "
            f"date={'yes' if self.uses_date else 'no'}, weights={self.weights})"
        )

    def _output(self, output: str | None) -> str:
        if output is None:
            return self.outputs[0]
        if output not in self.outputs:
            raise ConfigError(f"output must be one of {self.outputs} for this prior, got {output!r}")
        return output

    # --------------------------------------------------------------- run
    def _run(self, query: Query, covariates, batch_size: int) -> Scores:
        lat, lon, dates = query
        n = lat.size
        cov = check_covariates(covariates, self.covariate_names, n)
        bs = check_positive_int("batch_size", batch_size)
        points = np.stack([lat, lon, day_of_year(dates)], 1).astype(np.float32)
        got: dict[str, list[np.ndarray]] = {name: [] for name in self._names}
        for a in range(0, n, bs):
            feed = {INPUT_POINTS: points[a : a + bs]}
            if cov is not None:
                feed[INPUT_COVARIATES] = cov[a : a + bs].astype(np.float32)
            for name, value in zip(self._names, self._session.run(None, feed)):
                got[name].append(value)
        s = self.n_species
        empty = {DISTANCE: np.zeros(0, np.float32), OUTSIDE: np.zeros(0, bool)}
        joined = {
            k: np.concatenate(v) if v else empty.get(k, np.zeros((0, s), np.float32))
            for k, v in got.items()
        }
        return Scores(
            joined.get("observation"), joined.get("presence"), joined[DISTANCE], joined[OUTSIDE]
        )

    def scores_query(self, query: Query, *, covariates=None, batch_size: int = BATCH) -> Scores:
        """:meth:`scores` of a :class:`~geoprior.query.Query` that is already valid."""
        return self._run(query, covariates, batch_size)

    def scores(self, lat, lon, date=None, *, covariates=None, batch_size: int = BATCH) -> Scores:
        """Every output at once (one run of the graph): see :class:`Scores`."""
        return self._run(prepare_query(lat, lon, date), covariates, batch_size)

    def predict_query(
        self, query: Query, *, species=None, covariates=None, batch_size: int = BATCH,
        output: str | None = None,
    ) -> np.ndarray:
        """:meth:`predict` of a :class:`~geoprior.query.Query` that is already valid."""
        output = self._output(output)
        cols = species_columns(species, self.species, query.lat.size)
        probs = getattr(self._run(query, covariates, batch_size), output)
        if cols is None:
            return probs
        return probs[:, cols] if cols.ndim == 1 else np.take_along_axis(probs, cols, 1)

    def predict(
        self, lat, lon, date=None, *, species=None, covariates=None, batch_size: int = BATCH,
        output: str | None = None,
    ) -> np.ndarray:
        """Probabilities ``(n, S)`` of ``output`` (one of :attr:`outputs`; default the
        first), as :meth:`GeoPrior.predict <geoprior.GeoPrior.predict>`: ``date`` is None,
        one date or one per row; ``species`` names or indices (``(k,)`` or ``(n, k)``)
        choose columns; ``covariates`` as the prior was trained with (raw values)."""
        return self.predict_query(
            prepare_query(lat, lon, date), species=species, covariates=covariates,
            batch_size=batch_size, output=output,
        )

    def top_k(
        self, lat, lon, date=None, k: int = 10, *, species: Sequence[str] | None = None,
        covariates=None, batch_size: int = BATCH, output: str | None = None,
    ) -> pd.DataFrame:
        """The ``k`` most likely species at each place, as
        :meth:`GeoPrior.top_k <geoprior.GeoPrior.top_k>`: columns ``row, rank, species,
        prob`` (ties keep the species order)."""
        from ..priors.protocol import top_k_frame

        k = check_positive_int("k", k)
        names = self.species
        if species is not None:
            cols = species_indices(species, names)
            names = tuple(names[i] for i in cols)
            species = cols
        probs = self.predict(
            lat, lon, date, species=species, covariates=covariates, batch_size=batch_size,
            output=output,
        )
        return top_k_frame(probs, names, k)

    def distance_km(self, lat, lon) -> np.ndarray:
        """Great-circle km from each place to the nearest training place; NaN when the
        prior keeps none."""
        return self._run(prepare_query(lat, lon, None), self._any_covariates(lat), BATCH).distance_km

    def outside(self, lat, lon) -> np.ndarray:
        """``True`` where a place is farther than :attr:`far_km` from every training place."""
        return self._run(prepare_query(lat, lon, None), self._any_covariates(lat), BATCH).outside

    def _any_covariates(self, lat):
        """Placeholder covariates for the distance outputs, which do not read them."""
        if not self.covariate_names:
            return None
        return np.zeros((np.size(lat), len(self.covariate_names)))


def load_export(path: str | os.PathLike, *, threads: int | None = None) -> OnnxPrior:
    """Open an ONNX export (see :meth:`OnnxPrior.open`)."""
    return OnnxPrior.open(path, threads=threads)
