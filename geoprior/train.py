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
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .encoding import (
    EARTH_RADIUS_KM,
    EncoderSpec,
    encode_inputs,
    encoder_spec_for,
    place_scales_km,
    unit_xyz,
)
from .errors import ConfigError, EmptyDataError, OutputExistsError, PriorFileError
from .land import land_cells
from .losses import LOSSES, an_full, an_ssdl, maxent
from .model import GeoNet, ModelConfig
from .observations import Observations
from .thresholds import compute_thresholds

__all__ = ["TrainConfig", "train_prior", "resolve_config"]

BACKGROUNDS = ("auto", "target", "uniform", "land", "extent", "far", "target+extent", "target+far")
CHECKPOINT = "checkpoint.npz"
CHECKPOINT_META = "checkpoint.json"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a trained prior. ``"auto"`` values adapt to the data.

    Attributes:
        loss: ``"an_full"`` (assume-negative, default), ``"an_ssdl"`` or ``"maxent"``;
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
        encoder: a location encoder kind (see :mod:`geoprior.encoding`) or an
            :class:`EncoderSpec`; with a kind, scales come from the data.
        n_features: random Fourier features (``fourier``) of the encoder.
        batch_size: ``"auto"``: ``n/16`` rounded to a power of two in [128, 2048].
        steps: ``"auto"``: ``epochs`` passes over the data, at least ``min_steps``, at most
            ``max_steps``.
        cap_per_species: class-balanced sampling, at most this many rows of a species per
            epoch (``None``: every row, the data's own frequencies).
        use_covariates: feed the observations' covariates to the network.
    """

    loss: str = "an_full"
    pos_weight: float | str = "auto"
    background: str = "auto"
    use_date: bool | str = "auto"
    date_dropout: float = 0.25
    encoder: str | EncoderSpec = "fourier"
    n_features: int = 256
    model: ModelConfig = field(default_factory=ModelConfig)
    batch_size: int | str = "auto"
    steps: int | str = "auto"
    epochs: float = 30.0
    min_steps: int = 1000
    max_steps: int = 30000
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05
    cap_per_species: int | None = None
    use_covariates: bool = True
    seed: int = 0
    checkpoint_every: int = 500

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
        if self.cap_per_species is not None and self.cap_per_species < 1:
            raise ConfigError(f"cap_per_species must be >= 1 or None, got {self.cap_per_species}")
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


def resolve_config(config: TrainConfig, obs: Observations) -> Resolved:
    """Turn ``"auto"`` values into numbers for these observations."""
    n = len(obs)
    spacing, extent = place_scales_km(obs.lat, obs.lon)
    if isinstance(config.encoder, EncoderSpec):
        enc = config.encoder
    else:
        enc = encoder_spec_for(obs.lat, obs.lon, kind=config.encoder, n_features=config.n_features)
    use_date = (
        bool(obs.has_date.mean() >= 0.5) if config.use_date == "auto" else bool(config.use_date)
    )
    if use_date and not obs.has_date.any():
        raise ConfigError("use_date=True but no observation has a date")
    batch = config.batch_size
    if batch == "auto":
        batch = int(np.clip(2 ** round(math.log2(max(n / 16, 1))), 128, 2048))
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
    )


class TrainState(NamedTuple):
    params: Any
    opt_state: Any
    step: jnp.ndarray


class _Sampler:
    """Sampling of background places on device: a mixture of observed places
    (target-group) and uniform land cells, or uniform on the sphere."""

    def __init__(
        self, kind: str, bbox, obs_lat, obs_lon, extra_lat=None, extra_lon=None, far_km=None
    ):
        parts = kind.split("+")
        self.use_target = "target" in parts
        self.uniform = next((p for p in parts if p != "target"), None)
        self.pool_lat = jnp.asarray(
            obs_lat if extra_lat is None else np.concatenate([obs_lat, extra_lat]), jnp.float32
        )
        self.pool_lon = jnp.asarray(
            obs_lon if extra_lon is None else np.concatenate([obs_lon, extra_lon]), jnp.float32
        )
        self.cells = None
        if self.uniform in ("land", "extent", "far"):
            box = bbox if self.uniform == "extent" else (-180.0, -90.0, 180.0, 90.0)
            south, west, res, w = land_cells(box[0], box[1], box[2], box[3])
            if self.uniform == "far":
                far = _far_from(south + res / 2, west + res / 2, obs_lat, obs_lon, far_km)
                south, west, w = south[far], west[far], w[far] / max(w[far].sum(), 1e-30)
            if len(w):
                self.cells = (
                    jnp.asarray(south, jnp.float32),
                    jnp.asarray(west, jnp.float32),
                    float(res),
                    jnp.asarray(np.cumsum(w), jnp.float32),
                )
        self.bbox = bbox

    def sample(self, key, n: int):
        """``(lat, lon, pool_index)`` of n background places; ``pool_index`` is -1 for
        places not drawn from the observation pool."""
        k1, k2, k3, k4 = jax.random.split(key, 4)
        if self.uniform is None:
            idx = jax.random.randint(k1, (n,), 0, self.pool_lat.shape[0])
            return self.pool_lat[idx], self.pool_lon[idx], idx
        lat_u, lon_u = self._uniform(k2, n)
        if not self.use_target:
            return lat_u, lon_u, jnp.full((n,), -1)
        idx = jax.random.randint(k1, (n,), 0, self.pool_lat.shape[0])
        take_target = jax.random.bernoulli(k3, 0.5, (n,))
        lat = jnp.where(take_target, self.pool_lat[idx], lat_u)
        lon = jnp.where(take_target, self.pool_lon[idx], lon_u)
        return lat, lon, jnp.where(take_target, idx, -1)

    def _uniform(self, key, n):
        k1, k2, k3 = jax.random.split(key, 3)
        if self.uniform == "uniform" or (self.cells is None and self.uniform == "land"):
            z = jax.random.uniform(k1, (n,), minval=-1.0, maxval=1.0)
            return jnp.degrees(jnp.arcsin(z)), jax.random.uniform(
                k2, (n,), minval=-180.0, maxval=180.0
            )
        if self.cells is None:  # extent without land cells (e.g. small islands): the box
            w, s, e, nn = self.bbox
            span = (e - w) % 360 if w > e else e - w
            zs, zn = math.sin(math.radians(s)), math.sin(math.radians(nn))
            z = jax.random.uniform(k1, (n,), minval=zs, maxval=zn)
            lon = w + jax.random.uniform(k2, (n,), minval=0.0, maxval=span)
            return jnp.degrees(jnp.arcsin(z)), (lon + 180.0) % 360.0 - 180.0
        south, west, res, cdf = self.cells
        i = jnp.clip(
            jnp.searchsorted(cdf, jax.random.uniform(k1, (n,)) * cdf[-1]), 0, cdf.shape[0] - 1
        )
        jitter = jax.random.uniform(k3, (n, 2)) * res
        return south[i] + jitter[:, 0], west[i] + jitter[:, 1]


def _far_from(lat, lon, place_lat, place_lon, km: float, max_places: int = 20000) -> np.ndarray:
    """Mask of points farther than ``km`` from every place (a random subsample of at most
    ``max_places`` distinct places; chunked dot products of unit vectors)."""
    places = np.unique(np.round(np.stack([place_lat, place_lon], 1), 3), axis=0)
    if len(places) > max_places:
        places = places[np.random.default_rng(0).choice(len(places), max_places, replace=False)]

    p = unit_xyz(places[:, 0], places[:, 1]).astype(np.float32)
    cos_limit = np.cos(km / EARTH_RADIUS_KM)
    out = np.empty(len(lat), bool)
    for start in range(0, len(lat), 50_000):
        q = unit_xyz(lat[start : start + 50_000], lon[start : start + 50_000]).astype(np.float32)
        out[start : start + 50_000] = (q @ p.T).max(1) < cos_limit
    return out


def _standardise(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = cov.mean(0)
    std = cov.std(0)
    return mean.astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32)


def _epoch_order(
    obs_species: np.ndarray, n_species: int, cap: int | None, seed: int, epoch: int
) -> np.ndarray:
    rng = np.random.default_rng([seed, epoch])
    if cap is None:
        return rng.permutation(obs_species.size)
    order = rng.permutation(obs_species.size)
    sp = obs_species[order]
    # rank of each row within its species in this random order; keep the first `cap`
    sort = np.argsort(sp, kind="stable")
    counts = np.bincount(sp, minlength=n_species)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty_like(sort)
    rank[sort] = np.arange(sort.size) - np.repeat(starts, counts)
    return order[rank < cap]


class _BatchPlan:
    """Row indices of each step: consecutive slices of per-epoch permutations (the
    current epoch's permutation is cached, so a step costs O(batch))."""

    def __init__(self, species: np.ndarray, n_species: int, cap: int | None, seed: int, batch: int):
        self.species, self.n_species, self.cap, self.seed, self.batch = (
            species,
            n_species,
            cap,
            seed,
            batch,
        )
        self._epoch, self._order = -1, np.zeros(0, np.int64)
        self.epoch_len = self._order_of(0).size
        if self.epoch_len == 0:
            raise EmptyDataError("no rows to sample from")

    def _order_of(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            self._epoch = epoch
            self._order = _epoch_order(self.species, self.n_species, self.cap, self.seed, epoch)
        return self._order

    def indices(self, step: int) -> np.ndarray:
        start, parts, need = step * self.batch, [], self.batch
        while need:
            epoch, offset = divmod(start, self.epoch_len)
            take = self._order_of(epoch)[offset : offset + need]
            parts.append(take)
            need -= take.size
            start += take.size
        return np.concatenate(parts).astype(np.int32)


def train_prior(
    observations: Observations,
    config: TrainConfig | None = None,
    workdir: str | os.PathLike | None = None,
    *,
    background: Observations | None = None,
    progress: bool = True,
    resume: bool = False,
):
    """Train a :class:`~geoprior.GeoPrior` on presence-only observations.

    Args:
        observations: training records (see :func:`geoprior.read_observations`).
        config: a :class:`TrainConfig`; ``None`` uses the defaults.
        workdir: folder for checkpoints (written every ``config.checkpoint_every`` steps);
            ``None`` keeps nothing on disk.
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
    from .prior import GeoPrior  # the shell returns the prior object

    config = config or TrainConfig()
    obs = observations
    if len(obs) == 0:
        raise EmptyDataError("no observations to train on")
    res = resolve_config(config, obs)
    use_cov = config.use_covariates and obs.covariates is not None
    cov_mean = cov_std = None
    cov = extra_cov = None
    if use_cov:
        cov_mean, cov_std = _standardise(obs.covariates)
        cov = (obs.covariates - cov_mean) / cov_std
        if background is not None:
            if background.covariate_names != obs.covariate_names:
                raise ConfigError(
                    f"background covariates {background.covariate_names} differ from the "
                    f"observations' {obs.covariate_names}"
                )
            extra_cov = (background.covariates - cov_mean) / cov_std
        if not res.background.startswith("target"):
            raise ConfigError("covariates need target-group background (places with covariates)")
    n_species = obs.n_species
    model = GeoNet(n_species, config.model)
    freqs = res.encoder.frequencies()
    sampler = _Sampler(
        "target" if use_cov else res.background,
        res.bbox,
        obs.lat,
        obs.lon,
        None if background is None else background.lat,
        None if background is None else background.lon,
        far_km=res.far_km,
    )
    doy_all = obs.day_of_year() if res.use_date else None
    pool_doy = None
    if res.use_date:
        extra = np.full(len(background), np.nan) if background is not None else np.zeros(0)
        pool_doy = jnp.asarray(np.concatenate([doy_all, extra]), jnp.float32)
    pool_cov = None
    if use_cov:
        pool_cov = jnp.asarray(
            cov if extra_cov is None else np.concatenate([cov, extra_cov]), jnp.float32
        )

    d_lat, d_lon = jnp.asarray(obs.lat, jnp.float32), jnp.asarray(obs.lon, jnp.float32)
    d_sp = jnp.asarray(obs.species_index, jnp.int32)
    d_doy = None if doy_all is None else jnp.asarray(doy_all, jnp.float32)
    d_cov = None if cov is None else jnp.asarray(cov, jnp.float32)

    def features(lat, lon, doy, c):
        return encode_inputs(res.encoder, freqs, lat, lon, doy, c)

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
        + (len(obs.covariate_names) if use_cov else 0)
    )
    params = model.init(init_key, jnp.zeros((1, in_dim)))["params"]
    state = TrainState(params, tx.init(params), jnp.asarray(0, jnp.int32))
    batch = res.batch_size
    date_dropout = config.date_dropout
    loss_kind = config.loss
    pos_weight = res.pos_weight

    def loss_fn(params, idx, key):
        k_bg, k_drop, k_drop_bg, k_neg, k_do1, k_do2, k_bgd = jax.random.split(key, 7)
        lat, lon, labels = d_lat[idx], d_lon[idx], d_sp[idx]
        doy = None
        if d_doy is not None:
            doy = d_doy[idx]
            doy = jnp.where(jax.random.bernoulli(k_drop, date_dropout, doy.shape), jnp.nan, doy)
        c = None if d_cov is None else d_cov[idx]
        x = features(lat, lon, doy, c)
        variables = {"params": params}
        emb = model.apply(variables, x, True, method=GeoNet.embed, rngs={"dropout": k_do1})
        if loss_kind == "maxent":
            return maxent(model.apply(variables, emb, method=GeoNet.head), labels)
        b_lat, b_lon, b_idx = sampler.sample(k_bg, idx.shape[0])
        b_doy = None
        if pool_doy is not None:
            rand_doy = jax.random.uniform(k_bgd, b_lat.shape, minval=1.0, maxval=366.0)
            b_doy = jnp.where(b_idx >= 0, pool_doy[jnp.maximum(b_idx, 0)], rand_doy)
            b_doy = jnp.where(
                jax.random.bernoulli(k_drop_bg, date_dropout, b_doy.shape), jnp.nan, b_doy
            )
        b_c = None if pool_cov is None else pool_cov[jnp.maximum(b_idx, 0)]
        emb_bg = model.apply(
            variables,
            features(b_lat, b_lon, b_doy, b_c),
            True,
            method=GeoNet.embed,
            rngs={"dropout": k_do2},
        )
        if loss_kind == "an_full":
            return an_full(
                model.apply(variables, emb, method=GeoNet.head),
                model.apply(variables, emb_bg, method=GeoNet.head),
                labels,
                pos_weight,
            )
        neg = (labels + jax.random.randint(k_neg, labels.shape, 1, n_species)) % n_species
        cols = jnp.stack([labels, neg], 1)
        obs_logits = model.apply(variables, emb, cols, method=GeoNet.head_columns)
        bg_logit = model.apply(variables, emb_bg, labels[:, None], method=GeoNet.head_columns)[:, 0]
        return an_ssdl(obs_logits[:, 0], obs_logits[:, 1], bg_logit, pos_weight)

    @jax.jit
    def train_step(state: TrainState, idx):
        step_key = jax.random.fold_in(key, state.step)
        loss, grads = jax.value_and_grad(loss_fn)(state.params, idx, step_key)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        return TrainState(
            optax.apply_updates(state.params, updates), opt_state, state.step + 1
        ), loss

    header = _run_header(config, res, obs, use_cov)
    start = 0
    if workdir is not None:
        workdir = Path(workdir)
        if resume:
            state, start, saved_losses = _load_checkpoint(workdir, state, header)
        elif (workdir / CHECKPOINT).exists():
            raise OutputExistsError(
                f"{workdir} already holds a checkpoint; pass resume=True (CLI: --resume) to "
                f"continue it, or choose another workdir"
            )
        workdir.mkdir(parents=True, exist_ok=True)
    elif resume:
        raise ConfigError("resume=True needs a workdir")

    losses = np.zeros(res.steps, np.float32)
    if start:
        losses[:start] = saved_losses[:start]
    plan = _BatchPlan(obs.species_index, n_species, config.cap_per_species, config.seed, batch)
    bar = _progress(res.steps, start, progress)
    t0, seen = time.perf_counter(), 0
    t_first = None  # wall time after the first step (which includes compilation)
    recent = []
    for step in range(start, res.steps):
        idx = plan.indices(step)
        state, loss = train_step(state, jnp.asarray(idx))
        if t_first is None:
            loss.block_until_ready()
            t_first = time.perf_counter()
        recent.append(loss)
        seen += batch
        checkpoint_due = workdir is not None and (
            (step + 1) % config.checkpoint_every == 0 or step + 1 == res.steps
        )
        if (step + 1) % 50 == 0 or step + 1 == res.steps or checkpoint_due:
            vals = np.asarray(jax.device_get(recent), np.float32)
            losses[step + 1 - len(vals) : step + 1] = vals
            recent = []
            if not np.isfinite(vals).all():
                raise FloatingPointError(
                    f"training diverged: non-finite loss at step {step + 1}; "
                    f"lower learning_rate (now {config.learning_rate})"
                )
            if bar is not None:
                rate = seen / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix(
                    loss=f"{float(vals[-1]):.4f}", obs_per_s=f"{rate:,.0f}", refresh=False
                )
                bar.update(step + 1 - bar.n)
        if checkpoint_due:
            _save_checkpoint(workdir, state, header, losses[: step + 1])
    jax.block_until_ready(state.params)
    if bar is not None:
        bar.close()
    timing = {"steps": res.steps - start, "seconds": round(time.perf_counter() - t0, 3)}
    if t_first is not None and res.steps - start > 1:
        timing["seconds_per_step"] = (time.perf_counter() - t_first) / (res.steps - start - 1)
    prior = GeoPrior(
        species=obs.species,
        params=jax.device_get(state.params),
        header={**header, "training": timing},
        cov_mean=cov_mean,
        cov_std=cov_std,
        loss_curve=losses,
    )
    # per-species range thresholds (LPT, 5th percentile over the training presences), used
    # by range maps and rerank's "outside range" flag unless the caller chooses another rule
    prior.thresholds = compute_thresholds(prior, obs, "lpt", 5.0)
    return prior


def _run_header(config: TrainConfig, res: Resolved, obs: Observations, use_cov: bool) -> dict:
    return {
        "config": config.to_dict(),
        "resolved": {**dataclasses.asdict(res), "encoder": res.encoder.to_dict()},
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
    leaves = jax.tree_util.tree_leaves(jax.device_get(state))
    arrays = {f"leaf_{i:05d}": np.asarray(v) for i, v in enumerate(leaves)}
    arrays["losses"] = losses
    fd, tmp = tempfile.mkstemp(prefix=".checkpoint.", suffix=".npz", dir=workdir)
    os.close(fd)
    np.savez(tmp, **arrays)
    meta = {"step": int(state.step), "header": header}
    fd2, tmp2 = tempfile.mkstemp(prefix=".checkpoint.", suffix=".json", dir=workdir)
    with os.fdopen(fd2, "w") as f:
        json.dump(meta, f)
    os.replace(tmp, workdir / CHECKPOINT)
    os.replace(tmp2, workdir / CHECKPOINT_META)


def _load_checkpoint(
    workdir: Path, state: TrainState, header: dict
) -> tuple[TrainState, int, np.ndarray]:
    if not (workdir / CHECKPOINT).exists() or not (workdir / CHECKPOINT_META).exists():
        raise PriorFileError(f"nothing to resume: no {CHECKPOINT} in {workdir}")
    meta = json.loads((workdir / CHECKPOINT_META).read_text())
    if json.loads(json.dumps(header)) != meta.get("header"):
        raise ConfigError(
            f"the checkpoint in {workdir} was written for other data or another config; "
            f"resume with the same observations and config, or start a new workdir"
        )
    leaves, treedef = jax.tree_util.tree_flatten(state)
    with np.load(workdir / CHECKPOINT, allow_pickle=False) as z:
        saved = [z[f"leaf_{i:05d}"] for i in range(len(leaves))]
        saved_losses = z["losses"]
    restored = jax.tree_util.tree_unflatten(
        treedef, [jnp.asarray(s, dtype=l.dtype) for s, l in zip(saved, leaves)]
    )
    return restored, int(meta["step"]), saved_losses
