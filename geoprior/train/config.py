"""The training config: :class:`TrainConfig`, and the values a run resolves from its data.

Defaults marked ``"auto"`` are resolved from the data by :func:`resolve_config` — the
encoder's scales from the spacing and extent of the places, the batch size and the number
of steps from the number of records, the background from the extent — and the resolved
values are saved with the prior, so a run is reproducible from its header alone.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.encoding import EncoderSpec, anchor_table, encoder_spec_for, place_scales_km
from ..core.losses import LOSSES
from ..core.model import ModelConfig
from ..errors import ConfigError
from ..observations import Observations

if TYPE_CHECKING:
    from ..columnstore import ColumnStore

__all__ = ["TrainConfig", "Resolved", "resolve_config", "data_places"]

BACKGROUNDS = ("auto", "target", "uniform", "land", "extent", "far", "target+extent", "target+far")
PLACE_SAMPLE = 200_000  # rows of a ColumnStore whose places set the encoder scales and extent
VALIDATIONS = ("auto", "places", "blocks", "none")
VALIDATION_SCORES = ("auto", "ranking", "loss")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a trained prior. ``"auto"`` values adapt to the data.

    Attributes:
        loss: ``"joint"`` (default: a presence head trained assume-negative beside an
            observation head trained maxent), ``"an_full"``, ``"an_ssdl"`` or ``"maxent"``;
            see :mod:`geoprior.core.losses`.
        pos_weight: weight of positives in the assume-negative losses; ``"auto"`` is
            ``min(2048, n_species)``: SINR's 2048 for tens of thousands of species, and for
            fewer species a positive weighs as much as all the negatives at its place.
        background: where negatives are drawn: ``"target"`` (places where any species was
            observed: corrects for where observers go), ``"uniform"`` (the sphere),
            ``"land"`` (land anywhere), ``"extent"`` (land within the data's padded
            bounding box), ``"far"`` (land farther than ``far_km`` — a tenth of the data's
            extent — from every observed place), or two joined by ``+`` (half each).
            ``"auto"`` is ``"target+far"``: near the data, absences are only assumed where
            other species were recorded; far from all data, everywhere.
        use_date: ``"auto"`` uses the date input when at least half the rows are dated.
        date_dropout: fraction of dated rows shown undated in training, so the same
            model answers undated queries with a year-round prior.
        encoder: a location encoder kind (see :mod:`geoprior.core.encoding`; default
            ``"anchors"``: localised multi-resolution features on the H3 cells that hold
            enough observations) or an :class:`EncoderSpec`; with a kind, scales (or
            anchors) come from the data.
        n_features: random Fourier features (``fourier``) of the encoder.
        scale_dropout: share of rows (and background places) shown in training with
            their anchors finer than a random resolution removed, so the network also
            answers from coarse features alone, as at a new place between surveys.
        batch_size: ``"auto"``: ``n/16`` rounded to a power of two in [128, 512].
        steps: ``"auto"``: chosen by ``validation`` where it runs; otherwise ``epochs``
            passes over the data, at least ``min_steps``, at most ``max_steps``.
        validation: ``"places"``: before the real run, train on the data less a fifth of
            its distinct places (at most the ``steps`` rule's length), score the held-out
            places every ``eval_every`` steps (see ``validation_score``), stop ``patience``
            scores after the best, and train on all the data for the chosen length (scaled
            to the full data's size). ``"blocks"`` holds out whole regions instead (see
            :func:`held_out_rows`); ``"none"``: the ``steps`` rule. ``"auto"``:
            ``"places"`` for in-memory data on one process (a column store or a
            multi-process run trains the ``steps`` rule). A place nobody recorded is the
            question the rule's fixed length cannot answer: how long a run still
            generalises there depends on the data (a few hundred steps on a region of
            scattered single records, the whole rule on dense repeated surveys: measured
            in docs/model.md). It costs a second, shorter run.
        validation_score: what the held-out places are scored on. ``"ranking"``: each
            species' ROC AUC of the presence output (its held-out records against the
            other species' held-out records), on a running average of the weights, the
            longest run as good as the best within the paired standard error (see
            :class:`~geoprior.train.validate.Monitor`). ``"loss"``: the observation head's
            log-loss (the whole loss for one-head priors), the shortest run within one
            standard error of the best. ``"auto"``: ``"loss"`` when the network takes
            covariates (free inputs it memorises fast: the log-loss stops it early, and
            the ranking rule's longer runs lost to MaxEnt on disdat AWT) or the loss is
            ``"maxent"``; ``"ranking"`` on location and date alone (where held-out
            log-loss stops before the ranking is best). Measured in docs/model.md.
        cap_per_species: class-balanced sampling, at most this many rows of a species per
            epoch (``None``: every row, the data's own frequencies).
        use_covariates: feed the observations' covariates to the network.
        model_parallel: devices that share one copy of the species head (its columns are
            split over them); the batch is split over the remaining factor of the devices.
            1 (default) replicates the parameters on every device.
        members: networks trained side by side (a deep ensemble): each from its own
            initialisation and dropout, all on the same batches and background places (the
            input features are computed once for all of them); the prior averages their
            probabilities. Two (default) remove part of the seed-to-seed variance at
            less than twice the cost (measured in docs/model.md); 1 is a single network.
        lr_spread: the members' learning rates run from ``learning_rate`` to
            ``learning_rate * lr_spread`` (log-spaced): one member fits smoothly, one
            sharply, and their mean hedges between answering at new places (where the
            smooth fit is better) and at surveyed ones (where the sharp fit is). Default
            3 (measured in docs/model.md); 1: every member at ``learning_rate``.
    """

    loss: str = "joint"
    pos_weight: float | str = "auto"
    background: str = "auto"
    use_date: bool | str = "auto"
    date_dropout: float = 0.25
    encoder: str | EncoderSpec = "anchors"
    n_features: int = 256
    scale_dropout: float = 0.5
    validation: str = "auto"
    validation_score: str = "auto"
    eval_every: int = 50
    patience: int = 4
    model: ModelConfig = field(default_factory=ModelConfig)
    batch_size: int | str = "auto"
    steps: int | str = "auto"
    epochs: float = 3.0
    min_steps: int = 1000
    max_steps: int = 30000
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05
    cap_per_species: int | None = None
    use_covariates: bool = True
    seed: int = 0
    checkpoint_every: int = 500
    model_parallel: int = 1
    members: int = 2
    lr_spread: float = 3.0

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.background not in BACKGROUNDS:
            raise ConfigError(f"background must be one of {BACKGROUNDS}, got {self.background!r}")
        _check_auto("pos_weight", self.pos_weight, lambda v: v > 0)
        _check_auto("batch_size", self.batch_size, lambda v: int(v) == v and v >= 1)
        _check_auto("steps", self.steps, lambda v: int(v) == v and v >= 1)
        if self.use_date not in (True, False, "auto"):
            raise ConfigError(f"use_date must be true, false or 'auto', got {self.use_date!r}")
        if not 0 <= self.date_dropout < 1:
            raise ConfigError(f"date_dropout must be in [0, 1), got {self.date_dropout}")
        if not 0 <= self.scale_dropout < 1:
            raise ConfigError(f"scale_dropout must be in [0, 1), got {self.scale_dropout}")
        if self.validation_score not in VALIDATION_SCORES:
            raise ConfigError(
                f"validation_score must be one of {VALIDATION_SCORES}, got "
                f"{self.validation_score!r}"
            )
        if self.validation not in VALIDATIONS:
            raise ConfigError(f"validation must be one of {VALIDATIONS}, got {self.validation!r}")
        for name in ("eval_every", "patience"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {v!r}")
        if self.cap_per_species is not None and self.cap_per_species < 1:
            raise ConfigError(f"cap_per_species must be >= 1 or None, got {self.cap_per_species}")
        for name in ("model_parallel", "members"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, int) and v >= 1):
                raise ConfigError(f"{name} must be an integer >= 1, got {v!r}")
        for name in ("epochs", "learning_rate", "lr_spread"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if isinstance(self.model, dict):
            object.__setattr__(self, "model", ModelConfig(**self.model))
        if isinstance(self.encoder, dict):
            object.__setattr__(self, "encoder", EncoderSpec(**self.encoder))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        if isinstance(self.encoder, EncoderSpec):
            d["encoder"] = self.encoder.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown TrainConfig keys {unknown}; known: {sorted(known)}")
        return cls(**d)

    def with_updates(self, updates: dict[str, Any]) -> TrainConfig:
        """A copy with ``{"key": value}`` or ``{"model.width": 512}`` updates applied."""
        d = self.to_dict()
        for key, value in updates.items():
            target, name = d, key
            if "." in key:
                head, name = key.split(".", 1)
                if not isinstance(d.get(head), dict):
                    raise ConfigError(f"{head!r} has no sub-keys (in {key!r})")
                target = d[head]
            if name not in target:
                raise ConfigError(f"unknown config key {key!r}; known: {sorted(d)}")
            target[name] = value
        return TrainConfig.from_dict(d)


def _check_auto(name, value, ok) -> None:
    if value == "auto":
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
        raise ConfigError(f"{name} must be 'auto' or a positive number, got {value!r}")


@dataclass(frozen=True)
class Resolved:
    """The concrete values a run used (saved in the prior's header)."""

    encoder: EncoderSpec
    use_date: bool
    batch_size: int
    steps: int
    pos_weight: float
    background: str
    bbox: tuple[float, float, float, float]
    spacing_km: float
    extent_km: float
    far_km: float
    #: the encoder's data-made tables (an :class:`AnchorTable`); not part of the header
    tables: Any = field(default=None, compare=False, repr=False)


def resolve_config(
    config: TrainConfig, obs: Observations | ColumnStore, data_parallel: int = 1
) -> Resolved:
    """Turn ``"auto"`` values into numbers for these observations.

    ``data_parallel`` is the number of devices a batch is split over: the batch size must
    be a multiple of it (``"auto"`` rounds up to one; a given size that is not raises).
    """
    n = len(obs)
    lat, lon = data_places(obs)
    spacing, extent = place_scales_km(lat, lon)
    tables = None
    if isinstance(config.encoder, EncoderSpec):
        enc = config.encoder
    elif config.encoder == "anchors":
        enc = EncoderSpec(kind="anchors")
    else:
        enc = encoder_spec_for(lat, lon, kind=config.encoder, n_features=config.n_features)
    if enc.kind == "anchors":
        tables = anchor_table(
            lat, lon, min_count=enc.min_count, max_res=enc.max_res, per_res=enc.per_res
        )
        widths = tables.sigma_km if tables.res.size else np.array([enc.min_km, enc.max_km])
        enc = dataclasses.replace(
            enc,
            n_features=int(tables.res.size),
            min_km=round(float(widths.min()), 3),
            max_km=round(float(widths.max()), 3),
        )
    dated = _dated_fraction(obs)
    use_date = bool(dated >= 0.5) if config.use_date == "auto" else bool(config.use_date)
    if use_date and not dated:
        raise ConfigError("use_date=True but no observation has a date")
    batch = config.batch_size
    if batch == "auto":
        batch = int(np.clip(2 ** round(math.log2(max(n / 16, 1))), 128, 512))
        batch = -(-batch // data_parallel) * data_parallel
    elif batch % data_parallel:
        raise ConfigError(
            f"batch_size {batch} must be a multiple of the {data_parallel} devices it is "
            f"split over; use {-(-int(batch) // data_parallel) * data_parallel} or 'auto'"
        )
    steps = config.steps
    if steps == "auto":
        steps = int(np.clip(round(config.epochs * n / batch), config.min_steps, config.max_steps))
    pos_weight = config.pos_weight
    if pos_weight == "auto":
        pos_weight = float(min(2048, obs.n_species))
    background = config.background
    if background == "auto":
        background = "target+far"
    e = obs.extent()
    pad_lat = max(0.1 * (e["north"] - e["south"]), 2 * spacing / 111.0, 0.5)
    span = (e["east"] - e["west"]) % 360 if e["west"] > e["east"] else e["east"] - e["west"]
    pad_lon = max(0.1 * span, 2 * spacing / 111.0, 0.5)
    if span + 2 * pad_lon >= 360:
        west, east = -180.0, 180.0
    else:
        west = (e["west"] - pad_lon + 180) % 360 - 180
        east = (e["east"] + pad_lon + 180) % 360 - 180
    bbox = (west, max(-90.0, e["south"] - pad_lat), east, min(90.0, e["north"] + pad_lat))
    far_km = max(extent / 10.0, 2.0 * spacing)
    return Resolved(
        enc,
        use_date,
        int(batch),
        int(steps),
        float(pos_weight),
        background,
        tuple(round(v, 6) for v in bbox),
        round(spacing, 4),
        round(extent, 4),
        round(far_km, 4),
        tables,
    )


def data_places(data: Observations | ColumnStore) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes and longitudes that stand for the data's places (a ColumnStore: a
    deterministic random sample of ``PLACE_SAMPLE`` rows)."""
    if isinstance(data, Observations):
        return data.lat, data.lon
    rows = np.sort(data.sample_rows(min(PLACE_SAMPLE, len(data)), seed=0))
    return np.asarray(data.lat[rows], np.float64), np.asarray(data.lon[rows], np.float64)


def _dated_fraction(data: Observations | ColumnStore) -> float:
    return float(data.has_date.mean()) if isinstance(data, Observations) else data.dated_fraction
