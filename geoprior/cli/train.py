"""``geoprior train``: train a prior on observations."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import ConfigError, OutputExistsError, PathError
from ..outputs import check_output
from .covariates import covariates_option, sampling_option
from .options import (
    Command,
    encoding_option,
    load_observations,
    on_invalid_option,
    output_option,
    overwrite_option,
    parse_set,
    quiet_option,
)


@click.command(cls=Command)
@click.argument("observations")
@output_option("Folder to save the prior in.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, path_type=Path),
    help="JSON file of TrainConfig values.",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value, e.g. --set steps=2000 --set model.width=512.",
)
@click.option(
    "--format",
    "fmt",
    default="auto",
    show_default=True,
    help="Input format (see docs/data-formats.md).",
)
@covariates_option(
    "Environmental rasters sampled at every observation and background place as the "
    "network's covariates (the prior records them for range-map and predict)."
)
@sampling_option
@on_invalid_option
@encoding_option
@click.option(
    "--workdir", type=click.Path(path_type=Path), help="Checkpoint folder (default: OUTPUT.work)."
)
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its checkpoint.")
@overwrite_option
@quiet_option
@click.option(
    "--distributed",
    is_flag=True,
    help="Join a multi-process run (GEOPRIOR_COORDINATOR_ADDRESS, GEOPRIOR_NUM_PROCESSES, "
    "GEOPRIOR_PROCESS_ID, or the cluster's own variables); see docs/scaling.md.",
)
def train(
    observations,
    output,
    config_file,
    sets,
    fmt,
    covariates,
    sampling,
    on_invalid,
    encoding,
    workdir,
    resume,
    overwrite,
    quiet,
    distributed,
):
    """Train a prior on OBSERVATIONS (a file, a folder made by `geoprior convert`, or
    sample:neon_bird for the embedded sample).

    With --covariates, observations where a raster has no value (outside it, on nodata)
    are an error, or left out and counted with --on-invalid drop; background places are
    drawn where every raster has a value (docs/covariates.md)."""
    from ..persistence import HEADER
    from ..train import TrainConfig, train_prior

    main_process = True
    if distributed:
        from ..train.distributed import initialize

        process, count = initialize()
        main_process = process == 0
        click.echo(f"process {process} of {count}", err=True)
    if main_process:
        check_output(output, overwrite, marker=HEADER, kind="saved prior")
    workdir = workdir or output.with_name(output.name + ".work")
    if workdir.exists() and not workdir.is_dir():
        raise PathError(f"--workdir {workdir} is a file; checkpoints need a folder")
    config = TrainConfig()
    if config_file:
        try:
            config = TrainConfig.from_dict(json.loads(config_file.read_text()))
        except json.JSONDecodeError as e:
            raise ConfigError(f"{config_file} is not valid JSON: {e}") from None
    if sets:
        config = config.with_updates(parse_set(sets))
    obs = load_observations(observations, fmt, on_invalid, encoding)
    rasters = None
    if covariates:
        from ..io.rasters import attach_covariates, dropped_note, open_rasters
        from ..observations import Observations

        rasters = open_rasters(covariates, method=sampling)
        click.echo(f"covariates from rasters ({sampling}):\n{rasters.describe()}", err=True)
        if isinstance(obs, Observations):
            before, obs = obs, attach_covariates(obs, rasters, on_invalid=on_invalid)
            note = dropped_note(before, obs)
            if note:
                click.echo(note, err=True)
        # a column store was sampled at conversion: train_prior checks these are its rasters
    elif getattr(obs, "covariate_source", None) is not None:
        names = ", ".join(obs.covariate_names)
        click.echo(f"covariates from the rasters the store was converted from: {names}", err=True)
    click.echo(f"{obs}", err=True)
    if not resume and (workdir / "checkpoint.npz").exists():
        if not overwrite:
            raise OutputExistsError(
                f"{workdir} holds a checkpoint; pass --resume to continue it or --overwrite"
            )
        (workdir / "checkpoint.npz").unlink()
    prior = train_prior(
        obs, config, workdir, rasters=rasters, progress=not quiet, resume=resume
    )
    source = prior.header.get("covariate_source")
    if source and main_process:
        bg = source["background"]
        where = {"far": "far from the observations", "extent": "within the data's extent"}
        if bg.get("places"):
            click.echo(
                f"background: the observations' places and {bg['places']:,} places where "
                f"every raster has a value, {where[bg['kind']]}"
                + (f" ({bg['fallback']})" if bg.get("fallback") else ""),
                err=True,
            )
    if main_process:
        prior.save(output, overwrite=True)
        click.echo(f"saved {prior} to {output}", err=True)
