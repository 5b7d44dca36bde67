"""Training: :class:`TrainConfig`, :func:`train_prior`, the jitted step and checkpoints.

``train_prior(observations, config, workdir)`` is the one entry point (the CLI only parses
flags and calls it). Defaults marked ``"auto"`` are resolved from the data by
:func:`resolve_config` — the encoder's scales from the spacing and extent of the places,
the batch size and the number of steps from the number of records, the background from
the extent — and the resolved values are saved with the prior, so a run is reproducible
from its header alone.

Determinism: the batch at step ``t`` is drawn from a permutation seeded by
``(seed, epoch)``, and the step's random key is ``fold_in(key(seed), t)``; a run resumed
from a checkpoint therefore continues exactly as if it had never stopped.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from h3.api import basic_int as h3
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from .batches import BlockPlan, MemoryRows, PermutationPlan, StoreRows, capped_rows
from .distributed import (
    is_main_process,
    make_mesh,
    put_batch,
    put_global,
    replicated,
    shard_range,
    to_host,
)
from .encoding import (
    EncoderSpec,
    anchor_table,
    encode_inputs,
    encoder_spec_for,
    place_scales_km,
)
from .errors import (
    ConfigError,
    EmptyDataError,
    OutputExistsError,
    PriorFileError,
    TrainingDivergedError,
)
from .geo import EARTH_RADIUS_KM, unit_xyz
from .losses import LOSSES, an_full, an_ssdl, joint, maxent
from .maps.land import land_cells
from .maps.thresholds import compute_thresholds
from .model import GeoNet, ModelConfig
from .observations import Observations
from .store import atomic_file

if TYPE_CHECKING:
    from .columnstore import ColumnStore

__all__ = ["TrainConfig", "train_prior", "resolve_config", "held_out_rows", "support_places"]

BACKGROUNDS = ("auto", "target", "uniform", "land", "extent", "far", "target+extent", "target+far")
CHECKPOINT = "checkpoint.npz"
CHECKPOINT_META = "checkpoint.json"
PLACE_SAMPLE = 200_000  # rows of a ColumnStore whose places set the encoder scales and extent
THRESHOLD_ROWS = 500  # presences per species (a random sample) for the LPT thresholds
VALIDATIONS = ("auto", "places", "blocks", "none")
#: Spatial-block validation holds out this share of the occupied cells...
VALIDATION_FRACTION = 0.2
#: ...of the coarsest H3 resolution at which the data occupy at least this many cells.
VALIDATION_MIN_BLOCKS = 20
#: Held-out rows scored at each validation (a fixed random sample).
VALIDATION_ROWS = 4096
#: Places kept to tell how far a query is from the training data.
SUPPORT_PLACES = 8000


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a trained prior. ``"auto"`` values adapt to the data.

    Attributes:
        loss: ``"joint"`` (default: a presence head trained assume-negative beside an
            observation head trained maxent), ``"an_full"``, ``"an_ssdl"`` or ``"maxent"``;
            see :mod:`geoprior.losses`.
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
        encoder: a location encoder kind (see :mod:`geoprior.encoding`; default
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
            its distinct places, score the held-out places every ``eval_every`` steps (the
            observation head's log-loss; the whole loss for one-head priors), stop
            ``patience`` scores after the shortest run within one standard error of the
            best, and train on all the data for that length (scaled to the full data's
            size). ``"blocks"`` holds out whole regions instead (see
            :func:`held_out_rows`); ``"none"``: the ``steps`` rule. ``"auto"``:
            ``"places"`` when the network takes covariates (free inputs it can memorise:
            measured, held-out places stop it before it does), ``"none"`` on location and
            date alone (the anchors encoder and scale dropout regularise by construction,
            and held-out log-loss stops such a network before its ranking is best:
            measured in docs/model.md). Validation needs in-memory data on one process.
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
        for name in ("epochs", "learning_rate"):
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
    lat, lon = _places(obs)
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


def _places(data: Observations | ColumnStore) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes and longitudes that stand for the data's places (a ColumnStore: a
    deterministic random sample of ``PLACE_SAMPLE`` rows)."""
    if isinstance(data, Observations):
        return data.lat, data.lon
    rows = np.sort(data.sample_rows(min(PLACE_SAMPLE, len(data)), seed=0))
    return np.asarray(data.lat[rows], np.float64), np.asarray(data.lon[rows], np.float64)


def _dated_fraction(data: Observations | ColumnStore) -> float:
    return float(data.has_date.mean()) if isinstance(data, Observations) else data.dated_fraction


class TrainState(NamedTuple):
    params: Any
    opt_state: Any
    step: jnp.ndarray


class _Background:
    """Where uniform background places are drawn: tables (numpy, passed to the jitted step
    as replicated arrays) and a pure sampler. Target-group places come with the batch."""

    def __init__(self, kind: str, bbox, place_lat, place_lon, far_km=None):
        parts = kind.split("+")
        self.use_target = "target" in parts
        self.uniform = next((p for p in parts if p != "target"), None)
        self.bbox, self.res = bbox, 0.0
        self.tables: dict[str, np.ndarray] = {}
        if self.uniform in ("land", "extent", "far"):
            box = bbox if self.uniform == "extent" else (-180.0, -90.0, 180.0, 90.0)
            south, west, res, w = land_cells(box[0], box[1], box[2], box[3])
            if self.uniform == "far":
                far = _far_from(south + res / 2, west + res / 2, place_lat, place_lon, far_km)
                south, west, w = south[far], west[far], w[far] / max(w[far].sum(), 1e-30)
            if len(w):
                self.res = float(res)
                self.tables = {
                    "south": south.astype(np.float32),
                    "west": west.astype(np.float32),
                    "cdf": np.cumsum(w).astype(np.float32),
                }

    def sample(self, tables, key, n: int, target=None):
        """``(lat, lon, from_target)`` of n background places; ``target`` holds the batch's
        target-group places (``bg_lat``, ``bg_lon``), used for about half of them."""
        k1, k2 = jax.random.split(key)
        if self.uniform is None:
            return target["bg_lat"], target["bg_lon"], jnp.ones((n,), bool)
        lat_u, lon_u = self._uniform(tables, k2, n)
        if not self.use_target:
            return lat_u, lon_u, jnp.zeros((n,), bool)
        take = jax.random.bernoulli(k1, 0.5, (n,))
        return (
            jnp.where(take, target["bg_lat"], lat_u),
            jnp.where(take, target["bg_lon"], lon_u),
            take,
        )

    def _uniform(self, tables, key, n):
        k1, k2, k3 = jax.random.split(key, 3)
        if self.uniform == "uniform" or (not tables and self.uniform == "land"):
            z = jax.random.uniform(k1, (n,), minval=-1.0, maxval=1.0)
            return jnp.degrees(jnp.arcsin(z)), jax.random.uniform(
                k2, (n,), minval=-180.0, maxval=180.0
            )
        if not tables:  # extent without land cells (e.g. small islands): the box
            w, s, e, nn = self.bbox
            span = (e - w) % 360 if w > e else e - w
            zs, zn = math.sin(math.radians(s)), math.sin(math.radians(nn))
            z = jax.random.uniform(k1, (n,), minval=zs, maxval=zn)
            lon = w + jax.random.uniform(k2, (n,), minval=0.0, maxval=span)
            return jnp.degrees(jnp.arcsin(z)), (lon + 180.0) % 360.0 - 180.0
        cdf = tables["cdf"]
        i = jnp.clip(
            jnp.searchsorted(cdf, jax.random.uniform(k1, (n,)) * cdf[-1]), 0, cdf.shape[0] - 1
        )
        jitter = jax.random.uniform(k3, (n, 2)) * self.res
        return tables["south"][i] + jitter[:, 0], tables["west"][i] + jitter[:, 1]


def support_places(place_lat, place_lon, km: float, max_places: int = SUPPORT_PLACES) -> np.ndarray:
    """``(m, 2)`` lat/lon standing for the training places: places merged on a grid of
    ``km / 20`` (none moves by more than 4% of ``km``), the grid doubled until at most
    ``max_places`` remain, so every training place stays near a kept one. Used to tell how
    far a place is from the data."""
    cell = max(km / 20.0 / 111.0, 1e-3)  # degrees
    pts = np.stack([place_lat, place_lon], 1)
    while True:
        places = np.unique(np.round(pts / cell), axis=0) * cell
        if len(places) <= max_places:
            return places.astype(np.float32)
        cell *= 2.0


def _far_from(
    lat, lon, place_lat, place_lon, km: float, max_places: int = SUPPORT_PLACES
) -> np.ndarray:
    """Mask of points farther than ``km`` from every place (the places merged by
    :func:`support_places`, so the cost is bounded for millions of them); chunked dot
    products of unit vectors."""
    places = support_places(place_lat, place_lon, km, max_places)
    p = unit_xyz(places[:, 0], places[:, 1]).astype(np.float32)
    cos_limit = np.cos(km / EARTH_RADIUS_KM)
    out = np.empty(len(lat), bool)
    step = max(1, (1 << 25) // len(p))  # (step, places) products of at most 128 MB
    for start in range(0, len(lat), step):
        q = unit_xyz(lat[start : start + step], lon[start : start + step]).astype(np.float32)
        out[start : start + step] = (q @ p.T).max(1) < cos_limit
    return out


def _standardise(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = cov.mean(0)
    std = cov.std(0)
    return mean.astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32)


def _is_head(path) -> bool:
    """A species head's kernel (presence or observation), in the parameters and in the
    optimiser's moments."""
    return any(getattr(k, "key", None) in ("head_out", "head_obs") for k in path)


def _state_shardings(state_shapes, mesh, model_parallel: int):
    """Replicated, except the species head's columns split over ``"model"``."""

    def one(path, x):
        if model_parallel > 1 and _is_head(path):
            return NamedSharding(mesh, P(*([None] * (x.ndim - 1)), "model"))
        return NamedSharding(mesh, P())

    return jax.tree_util.tree_map_with_path(one, state_shapes)


def _rows_for(data, res: Resolved, config: TrainConfig, use_cov, cov_mean, cov_std, background):
    """The process's row source and batch plan (its own shard of the rows)."""
    lo, hi = shard_range(len(data))
    if hi <= lo:
        raise EmptyDataError(
            f"process {jax.process_index()} of {jax.process_count()} got no rows: "
            f"{len(data)} observations are fewer than the processes"
        )
    mean, std = (cov_mean, cov_std) if use_cov else (None, None)
    local_batch = res.batch_size // jax.process_count()
    if isinstance(data, Observations):
        rows = MemoryRows(
            data, lo, hi, use_date=res.use_date, cov_mean=mean, cov_std=std, extra=background
        )
        plan = PermutationPlan(
            rows.species,
            data.n_species,
            config.cap_per_species,
            config.seed,
            local_batch,
            jax.process_index(),
            rows.n_pool,
        )
        return rows, plan
    if background is not None or config.cap_per_species is not None:
        raise ConfigError(
            "training from a ColumnStore supports neither extra background places nor "
            "cap_per_species; convert them into the store or train in memory"
        )
    rows = StoreRows(data, lo, hi, use_date=res.use_date, cov_mean=mean, cov_std=std)
    return rows, BlockPlan(rows.n, config.seed, local_batch, process=jax.process_index())


def train_prior(
    observations: Observations | ColumnStore,
    config: TrainConfig | None = None,
    workdir: str | os.PathLike | None = None,
    *,
    background: Observations | None = None,
    progress: bool = True,
    resume: bool = False,
):
    """Train a :class:`~geoprior.GeoPrior` on presence-only observations.

    Training runs on every device JAX sees (all local accelerators, or every process's
    devices after :func:`geoprior.distributed.initialize`): each global batch is split
    over the devices, and each process reads only its own shard of the rows. The result
    does not depend on the number of devices (up to floating-point summation order).

    Args:
        observations: training records in memory (see :func:`geoprior.read_observations`),
            or a :class:`~geoprior.ColumnStore` on disk for data larger than memory.
        config: a :class:`TrainConfig`; ``None`` uses the defaults.
        workdir: folder for checkpoints (written every ``config.checkpoint_every`` steps,
            by process 0); ``None`` keeps nothing on disk.
        background: optional extra background places (e.g. a survey's background sites,
            with the same covariates as ``observations``); their species are ignored.
        progress: show a progress bar (stderr) with the loss and observations/second.
        resume: continue from the checkpoint in ``workdir`` (same result as not stopping).

    Returns:
        The trained :class:`~geoprior.GeoPrior`.

    Example:
        >>> from geoprior import load_sample, train_prior, TrainConfig
        >>> prior = train_prior(load_sample(), TrainConfig(steps=200), progress=False)  # doctest: +SKIP
    """
    config = config or TrainConfig()
    data = observations
    if len(data) == 0:
        raise EmptyDataError("no observations to train on")
    mesh = make_mesh(config.model_parallel)
    res = resolve_config(config, data, data_parallel=mesh.shape["data"])
    validation = None
    if _validates(config, data):
        validation = _choose_steps(data, config, mesh, background, res.batch_size)
        res = dataclasses.replace(res, steps=validation["steps"] or res.steps)
    prior = _fit(
        data,
        config,
        res,
        mesh,
        workdir=workdir,
        background=background,
        progress=progress,
        resume=resume,
        validation=validation,
    )
    # per-species range thresholds (LPT, 5th percentile over at most THRESHOLD_ROWS random
    # training presences of each species), used by range maps and rerank's "outside range"
    # flag unless the caller chooses another rule
    n_species = data.n_species
    if isinstance(data, Observations):
        presences = data[capped_rows(data.species_index, n_species, THRESHOLD_ROWS, config.seed)]
    else:
        presences = data.take(data.per_species_sample(THRESHOLD_ROWS, seed=config.seed))
    prior.thresholds = compute_thresholds(prior, presences, "lpt", 5.0)
    return prior


def _validates(config: TrainConfig, data) -> bool:
    """Whether the training length is chosen on held-out places (see ``validation``)."""
    if config.validation == "none":
        return False
    if config.steps != "auto":
        if config.validation != "auto":
            raise ConfigError(
                f"validation={config.validation!r} chooses the number of steps; it needs "
                f"steps='auto', got steps={config.steps}"
            )
        return False
    if config.validation == "auto" and not (config.use_covariates and data.covariate_names):
        return False
    if isinstance(data, Observations) and jax.process_count() == 1:
        return True
    if config.validation != "auto":
        raise ConfigError(
            f"validation={config.validation!r} needs in-memory observations on one process; a column "
            "store or a multi-process run trains for fixed steps (validation='none')"
        )
    return False


def held_out_rows(obs: Observations, how: str, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Held-out mask for ``validation=how`` and a description of it.

    ``"places"``: :data:`VALIDATION_FRACTION` of the distinct places with all their records
    (the question a prior answers at a place nobody has recorded: a new plot beside old
    ones, a new survey site, a test site of a presence-absence survey). ``"blocks"``: that
    share of the occupied H3 cells of the coarsest resolution at which the data occupy at
    least :data:`VALIDATION_MIN_BLOCKS` cells (new regions: a far stricter question).
    """
    places, inverse = np.unique(np.stack([obs.lat, obs.lon], 1), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    about: dict = {"how": how, "places": len(places), "held_out": VALIDATION_FRACTION}
    groups = np.arange(len(places))
    if how == "blocks":
        for r in range(16):
            cells = np.array([h3.latlng_to_cell(a, b, r) for a, b in places], dtype=np.uint64)
            uniq, groups = np.unique(cells, return_inverse=True)
            if uniq.size >= VALIDATION_MIN_BLOCKS:
                break
        about.update(h3_res=r, blocks=int(uniq.size))
    n_groups = int(groups.max()) + 1
    held = np.random.default_rng(seed).random(n_groups) < VALIDATION_FRACTION
    if n_groups < 2:
        held[:] = False
    elif not held.any() or held.all():
        held[:] = np.arange(n_groups) == 0
    return held[groups.ravel()][inverse], about


def _choose_steps(data: Observations, config: TrainConfig, mesh, background, batch: int) -> dict:
    """Train on the data less the held-out rows, score them every ``eval_every`` steps,
    and return the best length for the full data (scaled to its size), with the curve."""
    t0 = time.perf_counter()
    how = "places" if config.validation == "auto" else config.validation
    held, about = held_out_rows(data, how, config.seed)
    if not held.any():
        return {**about, "steps": None, "skipped": "one place only: nothing to hold out"}
    part, val = data[np.flatnonzero(~held)], data[np.flatnonzero(held)]
    # the final run's batch size, so a step of either run moves the weights alike
    res = dataclasses.replace(
        resolve_config(config, part, data_parallel=mesh.shape["data"]), batch_size=batch
    )
    monitor = _Monitor(val, config.eval_every, config.patience, config.seed)
    _fit(
        part,
        config,
        res,
        mesh,
        workdir=None,
        background=background,
        progress=False,
        resume=False,
        monitor=monitor,
    )
    best = monitor.best_step
    return {
        **about,
        # the same batch size and passes over the data as the best run on the part
        "steps": int(max(config.eval_every, round(best * len(data) / len(part)))),
        "held_out_rows": len(val),
        "best_step": int(best),
        "curve": [[int(t), round(v, 5), round(se, 5)] for t, v, se in monitor.curve],
        "seconds": round(time.perf_counter() - t0, 3),
    }


class _Monitor:
    """The held-out score of a run every ``every`` steps; chooses the length and says when
    to stop, by the one-standard-error rule (Breiman et al. 1984; glmnet's ``lambda.1se``):
    the shortest run whose mean held-out loss is within one standard error of the best
    one's, so a long plateau of gains smaller than their noise does not buy more steps."""

    def __init__(self, obs: Observations, every: int, patience: int, seed: int):
        rows = np.random.default_rng(seed).permutation(len(obs))[:VALIDATION_ROWS]
        self.obs = obs[np.sort(rows)]
        self.every, self.patience = every, patience
        self.curve: list[tuple[int, float, float]] = []  # step, mean, standard error

    @property
    def best_step(self) -> int:
        if not self.curve:
            return self.every
        _, low, se = min(self.curve, key=lambda c: c[1])
        return next(t for t, mean, _ in self.curve if mean <= low + se)

    def record(self, step: int, losses: np.ndarray) -> bool:
        """Add the held-out losses (per row, or one mean); ``True`` once ``patience``
        scores have passed since the chosen step."""
        losses = np.asarray(losses, np.float64)
        se = float(losses.std() / np.sqrt(losses.size)) if losses.size > 1 else 0.0
        self.curve.append((step, float(losses.mean()), se))
        return step - self.best_step >= self.patience * self.every


def _fit(
    data,
    config: TrainConfig,
    res: Resolved,
    mesh,
    *,
    workdir,
    background,
    progress: bool,
    resume: bool,
    validation: dict | None = None,
    monitor: _Monitor | None = None,
):
    """One training run of ``res.steps`` steps (fewer when ``monitor`` says stop); the
    prior without thresholds."""
    from .prior import GeoPrior  # the shell returns the prior object

    in_memory = isinstance(data, Observations)
    use_cov = config.use_covariates and bool(data.covariate_names)
    cov_mean = cov_std = None
    if use_cov:
        cov_mean, cov_std = _standardise(data.covariates) if in_memory else data.covariate_stats()
        if background is not None and background.covariate_names != data.covariate_names:
            raise ConfigError(
                f"background covariates {background.covariate_names} differ from the "
                f"observations' {data.covariate_names}"
            )
        if not res.background.startswith("target"):
            raise ConfigError("covariates need target-group background (places with covariates)")
    rows, plan = _rows_for(data, res, config, use_cov, cov_mean, cov_std, background)
    n_species = data.n_species
    mp = config.model_parallel
    padded = -(-n_species // mp) * mp  # the head splits evenly over "model"
    two_heads = config.loss == "joint"
    model = GeoNet(padded, config.model, observation_head=two_heads)
    enc_tables = res.tables if res.encoder.kind == "anchors" else res.encoder.frequencies()
    place_lat, place_lon = _places(data)
    bg = _Background(
        "target" if use_cov else res.background, res.bbox, place_lat, place_lon, res.far_km
    )
    # scale dropout: a row keeps the anchors of resolutions below its cutoff (all: top)
    anchored = res.encoder.kind == "anchors" and res.tables.res.size
    top = int(res.tables.res.max()) + 1 if anchored else 0
    scale_dropout = config.scale_dropout if top else 0.0

    def features(lat, lon, doy, c, key=None):
        cutoff = None
        if key is not None and scale_dropout:
            k1, k2 = jax.random.split(key)
            cut = jax.random.randint(k1, lat.shape, 0, top)
            cutoff = jnp.where(jax.random.bernoulli(k2, scale_dropout, lat.shape), cut, top)
        return encode_inputs(res.encoder, enc_tables, lat, lon, doy, c, cutoff)

    schedule = optax.warmup_cosine_decay_schedule(
        0.0,
        config.learning_rate,
        max(1, int(config.warmup_fraction * res.steps)),
        res.steps,
        end_value=config.learning_rate * 0.01,
    )
    tx = optax.adamw(schedule, weight_decay=config.weight_decay)
    init_key, key = jax.random.split(jax.random.key(config.seed))
    in_dim = (
        res.encoder.dim()
        + (3 if res.use_date else 0)
        + (len(data.covariate_names) if use_cov else 0)
    )
    batch = res.batch_size
    date_dropout = config.date_dropout
    loss_kind = config.loss
    pos_weight = res.pos_weight

    members = config.members

    def member_loss(params, b, tables, key, member_key=None, train: bool = True):
        """One network's loss; ``key`` draws what every member shares (background places,
        date and scale dropout, negatives), ``member_key`` the network's own dropout."""
        k_bg, k_drop, k_drop_bg, k_neg, k_do1, k_do2, k_bgd, k_sc1, k_sc2 = jax.random.split(key, 9)
        if member_key is not None:
            k_do1, k_do2 = jax.random.split(member_key)
        labels = b["species"]
        doy = b.get("doy")
        if doy is not None and train:
            doy = jnp.where(jax.random.bernoulli(k_drop, date_dropout, doy.shape), jnp.nan, doy)
        x = features(b["lat"], b["lon"], doy, b.get("cov"), k_sc1 if train else None)
        variables = {"params": params}
        emb = model.apply(variables, x, train, method=GeoNet.embed, rngs={"dropout": k_do1})
        if not train and loss_kind in ("maxent", "joint"):
            # validation scores the observation head: each held-out row's log-loss
            logits = model.apply(variables, emb, loss_kind == "joint", method=GeoNet.head)
            logp = jax.nn.log_softmax(jnp.where(jnp.arange(padded) < n_species, logits, -jnp.inf))
            return -jnp.take_along_axis(logp, labels[:, None], 1)[:, 0]
        if loss_kind == "maxent":
            return maxent(model.apply(variables, emb, method=GeoNet.head), labels, n_species)
        b_lat, b_lon, from_target = bg.sample(tables, k_bg, batch, b)
        b_doy = None
        if doy is not None:
            rand_doy = jax.random.uniform(k_bgd, b_lat.shape, minval=1.0, maxval=366.0)
            b_doy = jnp.where(from_target, b["bg_doy"], rand_doy) if "bg_doy" in b else rand_doy
            if train:
                b_doy = jnp.where(
                    jax.random.bernoulli(k_drop_bg, date_dropout, b_doy.shape), jnp.nan, b_doy
                )
        emb_bg = model.apply(
            variables,
            features(b_lat, b_lon, b_doy, b.get("bg_cov"), k_sc2 if train else None),
            train,
            method=GeoNet.embed,
            rngs={"dropout": k_do2},
        )
        if loss_kind in ("an_full", "joint"):
            presence = (
                model.apply(variables, emb, method=GeoNet.head),
                model.apply(variables, emb_bg, method=GeoNet.head),
            )
            if loss_kind == "an_full":
                return an_full(*presence, labels, pos_weight, n_species)
            observation = model.apply(variables, emb, True, method=GeoNet.head)
            return joint(*presence, observation, labels, pos_weight, n_species)
        neg = (labels + jax.random.randint(k_neg, labels.shape, 1, n_species)) % n_species
        cols = jnp.stack([labels, neg], 1)
        obs_logits = model.apply(variables, emb, cols, method=GeoNet.head_columns)
        bg_logit = model.apply(variables, emb_bg, labels[:, None], method=GeoNet.head_columns)[:, 0]
        return an_ssdl(obs_logits[:, 0], obs_logits[:, 1], bg_logit, pos_weight)

    def loss_fn(params, b, tables, key, train: bool = True):
        """The training loss: with several members, the sum of theirs (so each member's
        gradient is its own); in validation, each held-out row's loss under the members'
        averaged probabilities."""
        if members == 1:
            return member_loss(params, b, tables, key, None, train)
        member_keys = jax.random.split(jax.random.fold_in(key, 1), members)
        each = jax.vmap(member_loss, in_axes=(0, None, None, None, 0, None))(
            params, b, tables, key, member_keys, train
        )
        if not train and each.ndim == 2:  # per-row -log p: of the mean probability
            return -(jax.nn.logsumexp(-each, axis=0) - jnp.log(members))
        return jnp.sum(each) if train else jnp.mean(each)

    def init_state():
        # initialise the real head, then pad it with zero columns (which the losses
        # ignore), so the weights do not depend on how the head is split
        def init_one(k):
            net = GeoNet(n_species, config.model, observation_head=two_heads)
            return net.init(k, jnp.zeros((1, in_dim)))["params"]

        if members == 1:
            params = init_one(init_key)
        else:  # a leading member axis on every weight
            params = jax.vmap(init_one)(jax.random.split(init_key, members))
        params = jax.tree_util.tree_map_with_path(
            lambda path, x: (
                jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, padded - n_species)])
                if _is_head(path)
                else x
            ),
            params,
        )
        return TrainState(params, tx.init(params), jnp.asarray(0, jnp.int32))

    state_sharding = _state_shardings(jax.eval_shape(init_state), mesh, mp)
    repl = replicated(mesh)
    batch_sharding = NamedSharding(mesh, P("data"))
    tables = put_global(bg.tables, {k: repl for k in bg.tables})
    need_bg_rows = loss_kind != "maxent" and (bg.use_target or bg.uniform is None)

    def step_fn(state: TrainState, b, tables):
        step_key = jax.random.fold_in(key, state.step)
        loss, grads = jax.value_and_grad(loss_fn)(state.params, b, tables, step_key)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        return TrainState(
            optax.apply_updates(state.params, updates), opt_state, state.step + 1
        ), loss / members  # the members' mean

    train_step = jax.jit(
        step_fn,
        in_shardings=(state_sharding, batch_sharding, repl),
        out_shardings=(state_sharding, repl),
        donate_argnums=0,
    )

    def host_batch(step: int) -> dict:
        b = rows.take(plan.rows(step))
        if need_bg_rows:
            b.update(
                {"bg_" + k: v for k, v in rows.take_background(plan.background_rows(step)).items()}
            )
        return put_batch(b, batch_sharding, batch)

    val_batches, eval_loss = [], None
    if monitor is not None:
        val_rows = MemoryRows(
            monitor.obs,
            0,
            len(monitor.obs),
            use_date=res.use_date,
            cov_mean=cov_mean if use_cov else None,
            cov_std=cov_std if use_cov else None,
            extra=background,
        )
        val_plan = PermutationPlan(
            val_rows.species, n_species, None, config.seed + 1, batch, 0, val_rows.n_pool
        )
        n_val = len(monitor.obs)
        for i in range(-(-n_val // batch)):  # every held-out row once (the last batch wraps)
            b = val_rows.take((np.arange(batch) + i * batch) % n_val)
            if need_bg_rows:
                b.update(
                    {
                        "bg_" + k: v
                        for k, v in val_rows.take_background(val_plan.background_rows(i)).items()
                    }
                )
            val_batches.append(put_batch(b, batch_sharding, batch))
        eval_key = jax.random.fold_in(key, 2**31 - 1)  # no training step uses it
        eval_loss = jax.jit(lambda p, b, t: loss_fn(p, b, t, eval_key, train=False))

    # the record a checkpoint must match: the validation run (with its wall time) is
    # not part of it; a resumed run repeats it, deterministically, and gets the same steps
    header = _run_header(config, res, data, use_cov)
    start = 0
    if workdir is not None:
        workdir = Path(workdir)
        if resume:
            state, start, saved_losses = _load_checkpoint(
                workdir, jax.eval_shape(init_state), state_sharding, header
            )
        elif (workdir / CHECKPOINT).exists():
            raise OutputExistsError(
                f"{workdir} already holds a checkpoint; pass resume=True (CLI: --resume) to "
                f"continue it, or choose another workdir"
            )
        if is_main_process():
            workdir.mkdir(parents=True, exist_ok=True)
    elif resume:
        raise ConfigError("resume=True needs a workdir")
    if not start:
        state = jax.jit(init_state, out_shardings=state_sharding)()

    losses = np.zeros(res.steps, np.float32)
    if start:
        losses[:start] = saved_losses[:start]
    bar = _progress(res.steps, start, progress and is_main_process())
    t0, seen = time.perf_counter(), 0
    t_first = None  # wall time after the first step (which includes compilation)
    recent = []
    for step in range(start, res.steps):
        state, loss = train_step(state, host_batch(step), tables)
        if t_first is None:
            loss.block_until_ready()
            t_first = time.perf_counter()
        recent.append(loss)
        seen += batch
        checkpoint_due = workdir is not None and (
            (step + 1) % config.checkpoint_every == 0 or step + 1 == res.steps
        )
        if (step + 1) % 50 == 0 or step + 1 == res.steps or checkpoint_due:
            vals = np.asarray(to_host(recent), np.float32)
            losses[step + 1 - len(vals) : step + 1] = vals
            recent = []
            if not np.isfinite(vals).all():
                bad = int(np.argmin(np.isfinite(vals)))
                lr = config.learning_rate
                raise TrainingDivergedError(
                    f"training diverged: the loss is {vals[bad]} at step "
                    f"{step + 2 - len(vals) + bad} of {res.steps}; lower learning_rate "
                    f"(now {lr:g}; CLI: --set learning_rate={lr / 10:g})"
                )
            if bar is not None:
                rate = seen / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix(
                    loss=f"{float(vals[-1]):.4f}", obs_per_s=f"{rate:,.0f}", refresh=False
                )
                bar.update(step + 1 - bar.n)
        if checkpoint_due:
            _save_checkpoint(workdir, state, header, losses[: step + 1])
        if monitor is not None and (step + 1) % monitor.every == 0:
            if recent:
                vals = np.asarray(to_host(recent), np.float32)
                losses[step + 1 - len(vals) : step + 1] = vals
                recent = []
            scores = [np.ravel(np.asarray(eval_loss(state.params, b, tables))) for b in val_batches]
            if monitor.record(step + 1, np.concatenate(scores)[:n_val]):  # no row twice
                losses = losses[: step + 1]
                break
    params = to_host(state.params)
    if bar is not None:
        bar.close()
    timing = {
        "steps": len(losses) - start,
        "seconds": round(time.perf_counter() - t0, 3),
        "devices": int(mesh.size),
        "processes": jax.process_count(),
        "platform": jax.devices()[0].platform,
    }
    if t_first is not None and len(losses) - start > 1:
        timing["seconds_per_step"] = (time.perf_counter() - t_first) / (len(losses) - start - 1)
    if padded != n_species:  # drop the padding columns of the species head
        params = jax.tree_util.tree_map_with_path(
            lambda path, x: x[..., :n_species] if _is_head(path) else x, params
        )
    return GeoPrior(
        species=data.species,
        params=params,
        header={
            **header,
            **({"validation": validation} if validation is not None else {}),
            "training": timing,
        },
        cov_mean=cov_mean,
        cov_std=cov_std,
        loss_curve=losses,
        anchors=res.tables,
        support=support_places(place_lat, place_lon, res.far_km),
    )


def _run_header(config: TrainConfig, res: Resolved, obs, use_cov: bool) -> dict:
    return {
        "config": config.to_dict(),
        "resolved": {
            **{f.name: getattr(res, f.name) for f in dataclasses.fields(res) if f.name != "tables"},
            "bbox": list(res.bbox),
            "encoder": res.encoder.to_dict(),
        },
        "n_species": obs.n_species,
        "n_observations": len(obs),
        "covariates": list(obs.covariate_names) if use_cov else [],
        "extent": {
            "bbox": list(res.bbox),
            "spacing_km": res.spacing_km,
            "extent_km": res.extent_km,
        },
    }


def _progress(total: int, start: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True)


def _save_checkpoint(workdir: Path, state: TrainState, header: dict, losses: np.ndarray) -> None:
    """Write the state, the loss curve and the record of the run (step and header) as one
    file, atomically: a crash leaves the previous checkpoint or this one, never a mix.
    Every process gathers the state; process 0 writes. ``checkpoint.json`` repeats the
    record for people and tools; resuming never reads it."""
    host = to_host(state)
    if not is_main_process():
        return
    record = {"step": int(host.step), "header": header}
    arrays = {f"leaf_{i:05d}": np.asarray(v) for i, v in enumerate(jax.tree_util.tree_leaves(host))}
    arrays.update(losses=losses, record=np.array(json.dumps(record)))
    with atomic_file(workdir / CHECKPOINT) as f:
        np.savez(f, **arrays)
    with atomic_file(workdir / CHECKPOINT_META, "w") as f:
        json.dump(record, f)


def _broken_checkpoint(file: Path, problem: str) -> PriorFileError:
    return PriorFileError(
        f"{file} cannot be resumed: {problem}; delete it (and {CHECKPOINT_META} beside it) "
        f"to start the run again without --resume (resume=False)"
    )


def _load_checkpoint(
    workdir: Path, shapes: TrainState, shardings, header: dict
) -> tuple[TrainState, int, np.ndarray]:
    """The state, step and losses of ``workdir``'s checkpoint, after checking that it was
    written for this run and that its record and its state agree on the step."""
    file = workdir / CHECKPOINT
    if not file.exists():
        raise PriorFileError(f"nothing to resume: no {CHECKPOINT} in {workdir}")
    leaves, treedef = jax.tree_util.tree_flatten(shapes)
    try:
        with np.load(file, allow_pickle=False) as z:
            saved = [z[f"leaf_{i:05d}"] for i in range(len(leaves))]
            saved_losses = z["losses"]
            record = json.loads(str(z["record"])) if "record" in z.files else None
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise _broken_checkpoint(file, f"it is truncated or corrupt ({e})") from None
    if record is None:  # an older checkpoint: its record is the file beside it
        record = _legacy_record(workdir / CHECKPOINT_META, file)
    if json.loads(json.dumps(header)) != record.get("header"):
        raise ConfigError(
            f"the checkpoint in {workdir} was written for other data or another config; "
            f"resume with the same observations and config, or start a new workdir"
        )
    for i, (s, l) in enumerate(zip(saved, leaves)):
        if s.shape != l.shape:
            raise _broken_checkpoint(file, f"array {i} has shape {s.shape}, expected {l.shape}")
    host = jax.tree_util.tree_unflatten(treedef, [s.astype(l.dtype) for s, l in zip(saved, leaves)])
    step = int(host.step)
    if record.get("step") != step or saved_losses.shape != (step,):
        raise _broken_checkpoint(
            file,
            f"its state is at step {step} but its record says step {record.get('step')!r} "
            f"and it holds {saved_losses.size} losses (a crash between two writes?)",
        )
    return put_global(host, shardings), step, saved_losses


def _legacy_record(meta: Path, file: Path) -> dict:
    """The record of a checkpoint written as two files (checked against the state by the
    caller, so a crash between their writes is refused, not resumed)."""
    try:
        record = json.loads(meta.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _broken_checkpoint(file, f"it has no record inside and no {meta.name}") from None
    except (ValueError, OSError) as e:
        raise _broken_checkpoint(meta, f"it is truncated or corrupt ({e})") from None
    if not isinstance(record, dict):
        raise _broken_checkpoint(meta, f"expected a JSON object, got {type(record).__name__}")
    return record
