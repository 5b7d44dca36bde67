"""Training: :func:`train_prior`, a thin loop over the pieces of this package.

``train_prior(observations, config, workdir)`` is the one entry point (the CLI only parses
flags and calls it): it resolves the config (:mod:`.config`), chooses the length on
held-out places where validation runs (:mod:`.validate`), runs the jitted step
(:mod:`.step`) over the batches (:mod:`.batches`) on every device (:mod:`.distributed`),
checkpoints (:mod:`.checkpoint`), and fits the range thresholds.

Determinism: the batch at step ``t`` is drawn from a permutation seeded by
``(seed, epoch)``, and the step's random key is ``fold_in(key(seed), t)``; a run resumed
from a checkpoint therefore continues exactly as if it had never stopped.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ..columnstore import ColumnStore
from ..core.model import GeoNet
from ..errors import ConfigError, EmptyDataError, OutputExistsError, TrainingDivergedError
from ..maps.thresholds import compute_thresholds
from ..observations import Observations
from ..priors.header import PriorHeader
from .backgrounds import Background, raster_background, support_places
from .batches import BlockPlan, MemoryRows, PermutationPlan, StoreRows, capped_rows
from .checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from .config import Resolved, TrainConfig, data_places, resolve_config
from .distributed import (
    is_main_process,
    make_mesh,
    put_batch,
    put_global,
    replicated,
    shard_range,
    to_host,
)
from .step import (
    init_state,
    is_head,
    make_features,
    make_log_presence,
    make_loss_fn,
    make_optimizer,
    make_train_step,
    state_shardings,
)
from .validate import (
    AVERAGED_SHARE,
    Monitor,
    choose_steps,
    ranking_losses,
    validates,
    validation_network,
)

__all__ = ["train_prior", "fit_thresholds"]

THRESHOLD_ROWS = 500  # presences per species (a random sample) for the LPT thresholds


def _standardise(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = cov.mean(0)
    std = cov.std(0)
    return mean.astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32)


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
    if config.cap_per_species is not None:
        raise ConfigError(
            "training from a ColumnStore does not support cap_per_species; train in memory "
            "(or convert a capped sample)"
        )
    rows = StoreRows(
        data, lo, hi, use_date=res.use_date, cov_mean=mean, cov_std=std, extra=background
    )
    plan = BlockPlan(
        rows.n, config.seed, local_batch, process=jax.process_index(), n_extra=rows.n_extra
    )
    return rows, plan


def train_prior(
    observations: Observations | ColumnStore,
    config: TrainConfig | None = None,
    workdir: str | os.PathLike | None = None,
    *,
    background: Observations | None = None,
    rasters=None,
    progress: bool = True,
    resume: bool = False,
    thresholds: bool = True,
):
    """Train a :class:`~geoprior.GeoPrior` on presence-only observations.

    Training runs on every device JAX sees (all local accelerators, or every process's
    devices after :func:`geoprior.train.distributed.initialize`): each global batch is split
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
        rasters: covariate rasters (a :class:`~geoprior.io.rasters.RasterCovariates`, see
            :func:`~geoprior.io.rasters.open_rasters`): sampled at every observation
            (unless :func:`~geoprior.io.rasters.attach_covariates` already did) and at
            background places drawn where they have values
            (:func:`~geoprior.train.backgrounds.raster_background`); the prior records
            them (``header["covariate_source"]``) so maps sample the same rasters.
        progress: show a progress bar (stderr) with the loss and observations/second.
        resume: continue from the checkpoint in ``workdir`` (same result as not stopping).
        thresholds: fit the per-species range thresholds (:func:`fit_thresholds`); with
            ``False`` the prior has none (``prior.thresholds`` is ``None``).

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
    if rasters is None and isinstance(data, ColumnStore) and data.covariate_source is not None:
        rasters = _store_rasters(data)  # a store converted from rasters trains with them
    if rasters is not None:
        data, background = _with_rasters(data, rasters, background, config)
    mesh = make_mesh(config.model_parallel)
    res = resolve_config(config, data, data_parallel=mesh.shape["data"])
    source = None
    if rasters is not None:
        extra, about = raster_background(
            rasters, res.background, data, res.bbox, res.far_km, config.seed
        )
        if extra is not None:
            background = extra if background is None else Observations.concat([background, extra])
        source = rasters.record(data.lat, data.lon, background=about)
    validation = None
    if validates(config, data):

        one = validation_network(config, data)

        def fit_part(part, part_res, monitor):
            _fit(
                part,
                one,
                part_res,
                mesh,
                workdir=None,
                background=background,
                progress=progress,  # a "validate" bar: the held-out run before the real one
                resume=False,
                monitor=monitor,
                covariate_source=source,
            )

        validation = choose_steps(data, config, res.batch_size, mesh.shape["data"], fit_part)
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
        covariate_source=source,
    )
    if thresholds:
        prior.thresholds = fit_thresholds(prior, data, seed=config.seed)
    return prior


def _store_rasters(store: ColumnStore):
    """The rasters a column store's covariates were sampled from, reopened and checked
    (moved or changed rasters raise, naming the store)."""
    from ..io.rasters import RasterCovariates

    return RasterCovariates.from_record(
        store.covariate_source, owner=f"the store {store.path}", made="converted from"
    )


def _with_rasters(data, rasters, background, config: TrainConfig):
    """The observations (and extra background places) with the rasters' covariates: sampled
    here for observations in memory; a column store must have been converted from the same
    rasters (``convert_to_columns(..., rasters=)``), which cannot be sampled again there."""
    from ..io.rasters import attach_covariates

    if not config.use_covariates:
        raise ConfigError("covariate rasters were given, but the config has use_covariates=False")
    if isinstance(data, ColumnStore):
        source = data.covariate_source
        if source is None:
            raise ConfigError(
                f"the store {data.path} was not converted from covariate rasters; convert "
                "with them (CLI: geoprior convert SOURCES -o STORE --covariates A.tif ...; "
                "Python: convert_to_columns(..., rasters=open_rasters([...])))"
            )
        changed = rasters.changes(source) if len(rasters) == len(source["layers"]) else []
        if rasters.method != source.get("method", rasters.method):
            changed.append(f"sampled {source['method']}, these {rasters.method}")
        if data.covariate_names != rasters.names or changed:
            raise ConfigError(
                f"the store {data.path} was converted from rasters {list(data.covariate_names)}"
                f" and these are {list(rasters.names)}"
                + (f" ({'; '.join(changed)})" if changed else "")
                + "; a store's covariates are sampled once, at conversion: convert again "
                "with these rasters, or train without passing rasters (the store's own)"
            )
    elif data.covariate_names != rasters.names:
        data = attach_covariates(data, rasters)
    if background is not None and background.covariate_names != rasters.names:
        background = attach_covariates(background, rasters, what="background places")
    return data, background


def fit_thresholds(
    prior, data: Observations | ColumnStore, *, seed: int = 0, rows: int = THRESHOLD_ROWS
) -> np.ndarray:
    """Per-species range thresholds of ``prior`` on its training ``data``: the lowest
    presence threshold (LPT, 5th percentile) over at most ``rows`` random presences of each
    species. Range maps and rerank's "outside range" flag use them unless the caller
    chooses another rule (see :func:`geoprior.compute_thresholds`); :func:`train_prior`
    fits them unless told not to.

    Example:
        >>> prior.thresholds = fit_thresholds(prior, observations)  # doctest: +SKIP
    """
    if isinstance(data, Observations):
        presences = data[capped_rows(data.species_index, data.n_species, rows, seed)]
    else:
        presences = data.take(data.per_species_sample(rows, seed=seed))
    return compute_thresholds(prior, presences, "lpt", 5.0)


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
    monitor: Monitor | None = None,
    covariate_source: dict | None = None,
):
    """One training run of ``res.steps`` steps (fewer when ``monitor`` says stop); the
    prior without thresholds."""
    from ..priors.geoprior import GeoPrior  # the shell returns the prior object

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
    members = config.members
    mp = config.model_parallel
    padded = -(-n_species // mp) * mp  # the head splits evenly over "model"
    model = GeoNet(padded, config.model, observation_head=config.loss == "joint")
    enc_tables = res.tables if res.encoder.kind == "anchors" else res.encoder.frequencies()
    place_lat, place_lon = data_places(data)
    bg = Background(
        "target" if use_cov else res.background, res.bbox, place_lat, place_lon, res.far_km
    )
    tx = make_optimizer(
        config.learning_rate,
        config.weight_decay,
        config.warmup_fraction,
        res.steps,
        config.members,
        config.lr_spread,
    )
    init_key, key = jax.random.split(jax.random.key(config.seed))
    in_dim = (
        res.encoder.dim()
        + (3 if res.use_date else 0)
        + (len(data.covariate_names) if use_cov else 0)
    )
    batch = res.batch_size
    features = make_features(res.encoder, enc_tables, config.scale_dropout)
    loss_fn = make_loss_fn(
        model,
        features,
        bg,
        loss=config.loss,
        n_species=n_species,
        pos_weight=res.pos_weight,
        date_dropout=config.date_dropout,
        members=members,
    )
    first_state = functools.partial(init_state, init_key, model, n_species, in_dim, members, tx)
    state_sharding = state_shardings(jax.eval_shape(first_state), mesh, mp)
    repl = replicated(mesh)
    batch_sharding = NamedSharding(mesh, P("data"))
    tables = put_global(bg.tables, {k: repl for k in bg.tables})
    need_bg_rows = config.loss != "maxent" and (bg.use_target or bg.uniform is None)
    train_step = jax.jit(
        make_train_step(loss_fn, tx, key, members),
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
        if monitor.score == "ranking":
            val_labels = monitor.obs.species_index
            val_cols = jnp.asarray(np.unique(val_labels))
            log_presence = make_log_presence(model, features, members)
            eval_loss = jax.jit(lambda p, b, t: log_presence(p, b, val_cols))
        else:
            eval_loss = jax.jit(lambda p, b, t: loss_fn(p, b, t, eval_key, train=False))

    # the record a checkpoint must match: the validation run (with its wall time) is
    # not part of it; a resumed run repeats it, deterministically, and gets the same steps
    run = _run_header(config, res, data, use_cov, covariate_source)
    header = run.to_dict()
    start = 0
    if workdir is not None:
        workdir = Path(workdir)
        if resume:
            state, start, saved_losses = load_checkpoint(
                workdir, jax.eval_shape(first_state), state_sharding, header
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
        state = jax.jit(first_state, out_shardings=state_sharding)()

    losses = np.zeros(res.steps, np.float32)
    if start:
        losses[:start] = saved_losses[:start]
    bar = _progress(
        res.steps, start, progress and is_main_process(), "validate" if monitor else "train"
    )
    t0, seen = time.perf_counter(), 0
    t_first = None  # wall time after the first step (which includes compilation)
    recent = []
    averaged = None  # ranking validation scores the running average of the weights
    if monitor is not None and monitor.score == "ranking":
        horizon = max(monitor.every, AVERAGED_SHARE * res.steps)
        average = jax.jit(
            lambda a, p, w: jax.tree_util.tree_map(lambda x, y: x + (y - x) * w, a, p)
        )
    for step in range(start, res.steps):
        state, loss = train_step(state, host_batch(step), tables)
        if monitor is not None and monitor.score == "ranking":
            if averaged is None:
                averaged = jax.tree_util.tree_map(jnp.copy, state.params)
            else:
                w = np.float32(max(1.0 / horizon, 1.0 / (step + 1 - start)))
                averaged = average(averaged, state.params, w)
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
            save_checkpoint(workdir, state, header, losses[: step + 1])
        if monitor is not None and (step + 1) % monitor.every == 0:
            if recent:
                vals = np.asarray(to_host(recent), np.float32)
                losses[step + 1 - len(vals) : step + 1] = vals
                recent = []
            if monitor.score == "ranking":
                scores = [np.asarray(eval_loss(averaged, b, tables)) for b in val_batches]
                held_out = ranking_losses(np.concatenate(scores)[:n_val], val_labels)
            else:
                scores = [np.ravel(np.asarray(eval_loss(state.params, b, tables))) for b in val_batches]
                held_out = np.concatenate(scores)[:n_val]  # no row twice
            if monitor.record(step + 1, held_out):
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
            lambda path, x: x[..., :n_species] if is_head(path) else x, params
        )
    return GeoPrior(
        species=data.species,
        params=params,
        header=dataclasses.replace(run, validation=validation, training=timing).to_dict(),
        cov_mean=cov_mean,
        cov_std=cov_std,
        loss_curve=losses,
        anchors=res.tables,
        support=support_places(place_lat, place_lon, res.far_km),
    )


def _run_header(
    config: TrainConfig, res: Resolved, obs, use_cov: bool, covariate_source: dict | None = None
) -> PriorHeader:
    return PriorHeader(
        config=config.to_dict(),
        resolved={
            **{f.name: getattr(res, f.name) for f in dataclasses.fields(res) if f.name != "tables"},
            "bbox": list(res.bbox),
            "encoder": res.encoder.to_dict(),
        },
        n_species=obs.n_species,
        n_observations=len(obs),
        covariates=list(obs.covariate_names) if use_cov else [],
        covariate_source=covariate_source if use_cov else None,
        extent={
            "bbox": list(res.bbox),
            "spacing_km": res.spacing_km,
            "extent_km": res.extent_km,
        },
    )


def _progress(total: int, start: int, enabled: bool, desc: str = "train"):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc=desc, unit="step", dynamic_ncols=True)
