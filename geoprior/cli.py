"""The ``geoprior`` command line: one thin function per command.

Data go to stdout; logs and progress bars to stderr. Exit codes: 0 success, 1 a
:class:`~geoprior.GeopriorError` (one clear line; the traceback with ``-v``), 2 usage errors.
Outputs are never overwritten without ``--overwrite``, and are checked (see
:func:`geoprior.outputs.check_output`) before any work starts.
"""

from __future__ import annotations

import codecs
import errno
import json
import os
from pathlib import Path

import click

from .errors import (
    ClassMismatchError,
    ConfigError,
    FileEncodingError,
    GeopriorError,
    OutputExistsError,
    PathError,
)
from .outputs import check_output

SAMPLE_PREFIX = "sample:"

# what to do about an OSError on a path the user gave
_PATH_HINTS = {
    errno.ENOENT: "check the path (an output's folder must exist)",
    errno.ENOTDIR: "check the path: a part of it is a file, not a folder",
    errno.EISDIR: "it is a folder: give a file name",
    errno.EACCES: "check its permissions or choose another path",
    errno.EPERM: "check its permissions or choose another path",
    errno.EROFS: "the file system is read-only: choose another path",
    errno.ENOSPC: "free some space or write elsewhere",
    errno.ENAMETOOLONG: "choose a shorter name",
}


class _Command(click.Command):
    """A command whose OSError about one of its own path arguments (no permission, a
    folder where a file belongs, a missing folder) becomes a one-line PathError. Any
    other exception, an OSError about some other path included, keeps its traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GeopriorError:
            raise
        except OSError as e:
            given = _user_path(e, ctx.params)
            if given is None:
                raise
            same = os.path.abspath(given) == os.path.abspath(e.filename)
            where = "" if same else f" ({e.filename})"
            raise PathError(f"{given}: {e.strerror}{where}; {_PATH_HINTS[e.errno]}") from e


def _user_path(e: OSError, params: dict) -> str | None:
    """The path argument ``e`` is about: the path itself, a file inside it, or a temporary
    file written beside it; ``None`` when ``e`` is no such error."""
    if e.errno not in _PATH_HINTS or not isinstance(e.filename, str | os.PathLike):
        return None
    failed = Path(os.path.abspath(e.filename))
    for value in params.values():
        for given in value if isinstance(value, tuple) else (value,):
            if not isinstance(given, str | os.PathLike):
                continue
            path = Path(os.path.abspath(given))
            if (
                failed == path
                or path in failed.parents
                or (failed.parent == path.parent and failed.name.startswith(f".{path.stem}"))
            ):
                return str(given)
    return None


class _Group(click.Group):
    """Turns GeopriorError into exit code 1 with one line on stderr."""

    command_class = _Command

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except GeopriorError as e:
            if ctx.obj and ctx.obj.get("verbose"):
                raise
            message = str(e)
            if isinstance(e, FileEncodingError):
                message = message.rstrip(".") + " (CLI: --encoding)"
            click.echo(f"error: {message}", err=True)
            ctx.exit(1)


def _check_encoding(ctx, param, value: str | None) -> str | None:
    if value is not None:
        try:
            codecs.lookup(value)
        except LookupError:
            raise click.BadParameter(
                f"unknown encoding {value!r}; e.g. utf-8, latin-1, cp1252"
            ) from None
    return value


_encoding_option = click.option(
    "--encoding",
    default=None,
    callback=_check_encoding,
    help="Text encoding of the input files, e.g. latin-1 or cp1252 (default UTF-8; a "
    "Darwin Core Archive's meta.xml gives its own).",
)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks of errors.")
@click.version_option(package_name="geoprior")
@click.pass_context
def main(ctx, verbose):
    """geoprior: learned where-and-when species priors, and their fusion with classifiers."""
    ctx.obj = {"verbose": verbose}


def load_observations(
    source: str, fmt: str = "auto", on_invalid: str = "raise", encoding: str | None = None
):
    """``sample:NAME`` loads an embedded sample; a folder written by ``geoprior convert``
    opens as a memory-mapped ColumnStore; anything else goes to read_observations."""
    if source.startswith(SAMPLE_PREFIX):
        from .io.samples import load_sample

        return load_sample(source[len(SAMPLE_PREFIX) :])
    if (Path(source) / "manifest.json").is_file():
        from .columnstore import ColumnStore

        return ColumnStore.open(source)
    from .io import read_observations

    return read_observations(source, format=fmt, on_invalid=on_invalid, encoding=encoding)


def parse_set(pairs: tuple[str, ...]) -> dict:
    """``key=value`` pairs; values parsed as JSON when they can be (numbers, true, null)."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise click.UsageError(f"--set expects key=value, got {pair!r}")
        key, raw = pair.split("=", 1)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out[key.strip()] = value
    return out


@main.command()
@click.argument("observations")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder to save the prior in.",
)
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
@click.option(
    "--on-invalid", type=click.Choice(["raise", "drop"]), default="raise", show_default=True
)
@_encoding_option
@click.option(
    "--workdir", type=click.Path(path_type=Path), help="Checkpoint folder (default: OUTPUT.work)."
)
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUTPUT.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
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
    on_invalid,
    encoding,
    workdir,
    resume,
    overwrite,
    quiet,
    distributed,
):
    """Train a prior on OBSERVATIONS (a file, a folder made by `geoprior convert`, or
    sample:neon_bird for the embedded sample)."""
    from .store import HEADER
    from .train import TrainConfig, train_prior

    main_process = True
    if distributed:
        from .distributed import initialize

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
    click.echo(f"{obs}", err=True)
    if not resume and (workdir / "checkpoint.npz").exists():
        if not overwrite:
            raise OutputExistsError(
                f"{workdir} holds a checkpoint; pass --resume to continue it or --overwrite"
            )
        (workdir / "checkpoint.npz").unlink()
    prior = train_prior(obs, config, workdir, progress=not quiet, resume=resume)
    if main_process:
        prior.save(output, overwrite=True)
        click.echo(f"saved {prior} to {output}", err=True)


@main.command()
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "-o", "--output", required=True, type=click.Path(path_type=Path), help="Folder to write."
)
@click.option(
    "--covariate", "covariates", multiple=True, help="A covariate column to keep (repeatable)."
)
@click.option(
    "--on-invalid", type=click.Choice(["raise", "drop"]), default="raise", show_default=True
)
@click.option(
    "--chunk-rows", default=500_000, show_default=True, help="Rows read and shuffled at a time."
)
@click.option("--seed", default=0, show_default=True, help="Seed of the one-time shuffle.")
@_encoding_option
@click.option("--overwrite", is_flag=True, help="Replace an existing OUTPUT.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def convert(sources, output, covariates, on_invalid, chunk_rows, seed, encoding, overwrite, quiet):
    """Convert SOURCES (files or folders: Parquet, CSV, GBIF, eBird, ...) once into shuffled
    memory-mapped columns that `geoprior train` streams, for data larger than memory."""
    from .columnstore import MANIFEST, convert_to_columns

    check_output(output, overwrite, marker=MANIFEST, kind="column store")
    store = convert_to_columns(
        list(sources),
        output,
        covariates=covariates,
        on_invalid=on_invalid,
        chunk_rows=chunk_rows,
        seed=seed,
        encoding=encoding,
        overwrite=overwrite,
        progress=not quiet,
    )
    click.echo(f"wrote {len(store):,} rows of {store.n_species:,} species to {output}", err=True)


@main.command()
@click.argument("prior", type=click.Path(exists=True, path_type=Path))
@click.option("--lat", type=float, required=True, help="Latitude, degrees.")
@click.option("--lon", type=float, required=True, help="Longitude, degrees.")
@click.option("--date", default=None, help="YYYY-MM-DD (omit for a year-round prior).")
@click.option("-k", "k", default=10, show_default=True, help="How many species.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
def predict(prior, lat, lon, date, k, fmt):
    """The K most likely species at a place (and date).

    ``prob`` is the probability that an observation made there (then) is of the species:
    the species' share of what is recorded there, summing to 1 over all species. A prior
    with a presence output adds ``presence``, the probability that the species occurs
    there at all, and ``outside_extent``, true beyond the training data's extent (a
    warning on stderr says how far)."""
    from .store import load_prior

    loaded = load_prior(prior)
    frame = loaded.top_k(lat, lon, date, k=k).drop(columns="row")
    when = f" on {date}" if date else " (any date)"
    meaning = f"prob: the probability that an observation made here{when} is of the species"
    outputs = getattr(loaded, "outputs", ("observation",))
    if outputs == ("presence",):  # a one-head assume-negative prior
        meaning = f"prob: the probability that the species occurs here{when}"
    if "presence" in outputs and "observation" in outputs:
        frame["presence"] = loaded.predict(
            lat, lon, date, species=frame["species"].tolist(), output="presence"
        )[0]
        meaning += "; presence: the probability that the species occurs here"
        outside = bool(loaded.outside(lat, lon)[0])
        frame["outside_extent"] = outside
        if outside:
            far, km = loaded.far_km, float(loaded.distance_km(lat, lon)[0])
            click.echo(
                f"warning: ({lat}, {lon}) is {km:,.0f} km from the nearest training place, "
                f"beyond the prior's extent of {far:,.0f} km: presence fades toward 0 and "
                "the ranking is extrapolation",
                err=True,
            )
    click.echo(meaning, err=True)
    if fmt == "csv":
        click.echo(frame.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(frame.to_json(orient="records"))
    else:
        click.echo(frame.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


@main.command()
@click.argument("prior", type=click.Path(exists=True, path_type=Path))
@click.option("--match", default=None, help="Only names containing this text (case-insensitive).")
def species(prior, match):
    """List the species a prior knows; with --match, those whose name contains TEXT (none is
    an unknown species, exit 1, with close matches suggested)."""
    from .errors import UnknownSpeciesError, suggest
    from .store import load_prior

    names = load_prior(prior).species
    shown = [n for n in names if match is None or match.lower() in n.lower()]
    if match is not None and not shown:
        raise UnknownSpeciesError(
            f"no species matches {match!r} (the prior knows {len(names)} species)."
            + suggest(match, names)
        )
    click.echo("\n".join(shown))


@main.command()
@click.argument("prior", type=click.Path(exists=True, path_type=Path))
@click.argument("logits", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--classes",
    "classes_file",
    type=click.Path(exists=True, path_type=Path),
    help="Text file, one class name per line in logit order (default: from LOGITS).",
)
@click.option(
    "--points",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="CSV with latitude, longitude (and date) per logits row; empty = no location.",
)
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="Output CSV.")
@click.option("-k", "k", default=5, show_default=True, help="Predictions kept per row.")
@click.option(
    "--mode",
    type=click.Choice(["product", "floor", "filter", "none"]),
    default=None,
    help="Fusion mode (default: from --params, else product).",
)
@click.option("--weight", type=float, default=None, help="Prior exponent.")
@click.option("--floor", type=float, default=None, help="Prior floor for --mode floor.")
@click.option("--threshold", type=float, default=None, help="Prior threshold for --mode filter.")
@click.option("--temperature", type=float, default=None, help="Classifier temperature.")
@click.option(
    "--params",
    "params_file",
    type=click.Path(exists=True, path_type=Path),
    help="Fusion parameters fitted by fit_fusion (JSON).",
)
@click.option(
    "--missing",
    type=click.Choice(["raise", "neutral"]),
    default="raise",
    show_default=True,
    help="Classes the prior does not know: fail, or give them a neutral prior.",
)
@_encoding_option
@click.option("--overwrite", is_flag=True, help="Replace an existing OUTPUT.")
def rerank(
    prior,
    logits,
    classes_file,
    points,
    output,
    k,
    mode,
    weight,
    floor,
    threshold,
    temperature,
    params_file,
    missing,
    encoding,
    overwrite,
):
    """Rerank a classifier's LOGITS (.npy, .npz or .csv) with PRIOR at each row's place."""
    from .fusion import FusionParams
    from .fusion import rerank as rerank_rows
    from .io.logits import read_classes, read_logits, read_points
    from .store import load_prior

    check_output(output, overwrite)
    values, names = read_logits(logits, encoding=encoding)
    if classes_file is not None:
        names = read_classes(classes_file, encoding=encoding)
    if names is None:
        raise click.UsageError(f"{logits} has no class names; pass --classes CLASSES.txt")
    lat, lon, date = read_points(points, encoding=encoding)
    if len(lat) != values.shape[0]:
        raise ClassMismatchError(f"{points} has {len(lat)} rows but {logits} has {values.shape[0]}")
    fusion = {
        key: value
        for key, value in dict(
            mode=mode, weight=weight, floor=floor, threshold=threshold, temperature=temperature
        ).items()
        if value is not None
    }
    params = FusionParams.load(params_file) if params_file else None
    result = rerank_rows(
        values,
        names,
        load_prior(prior),
        lat,  # rerank validates: text is an error, empty = no location
        lon,
        date,
        k=k,
        params=params,
        missing=missing,
        **fusion,
    )
    frame = result.to_frame()
    frame.to_csv(output, index=False)
    click.echo(
        f"{int(result.changed.sum())} of {len(result)} top-1 predictions changed; wrote {output}",
        err=True,
    )


def _threshold_option(value: str | None):
    """``--threshold``: a probability, ``lpt`` or ``f1`` (None: the prior's stored ones)."""
    if value is None or value.lower() in ("lpt", "f1"):
        return None if value is None else value.lower()
    try:
        return float(value)
    except ValueError:
        raise click.BadParameter(
            f"expected a probability, 'lpt' or 'f1', got {value!r}", param_hint="--threshold"
        ) from None


@main.command("range-map")
@click.argument("prior", type=click.Path(exists=True, path_type=Path))
@click.argument("species", nargs=-1)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="OUT.geojson, .gpkg, .parquet, .csv or .png.",
)
@click.option("--res", default=4, show_default=True, help="H3 resolution (global up to 5).")
@click.option(
    "--month", type=click.IntRange(1, 12), default=None, help="Map the 15th of this month."
)
@click.option("--date", default=None, help="Map this date, YYYY-MM-DD.")
@click.option(
    "--monthly/--no-monthly",
    default=None,
    help="Twelve monthly maps (PNG: twelve panels). Default: on for PNGs of priors that use "
    "dates when neither --month nor --date is given.",
)
@click.option(
    "--threshold",
    default=None,
    metavar="FLOAT|lpt|f1",
    help="In-range threshold (default: the thresholds stored in the prior).",
)
@click.option(
    "--observations",
    default=None,
    help="Presences for --threshold lpt/f1 (a file, or sample:neon_bird).",
)
@_encoding_option
@click.option("--bbox", default=None, metavar="W,S,E,N", help="Only cells whose centre is inside.")
@click.option("--include-sea", is_flag=True, help="Keep cells that do not touch land.")
@click.option("--dissolve", is_flag=True, help="One (multi)polygon per species.")
@click.option(
    "--color",
    type=click.Choice(["prob", "in_range"]),
    default=None,
    help="PNG: colour cells by probability (default) or show the cells in range.",
)
@click.option(
    "--all-species",
    is_flag=True,
    help="Every species of PRIOR to one GeoParquet (streamed in chunks; in-range cells).",
)
@click.option("--overwrite", is_flag=True, help="Replace an existing OUTPUT.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def range_map(
    prior,
    species,
    output,
    res,
    month,
    date,
    monthly,
    threshold,
    observations,
    encoding,
    bbox,
    include_sea,
    dissolve,
    color,
    all_species,
    overwrite,
    quiet,
):
    """Range maps of SPECIES from PRIOR on H3 cells, as geodata or a picture."""
    from .maps import (
        FORMATS,
        monthly_range_maps,
        uses_dates,
        write_all_species,
        write_range_map,
    )
    from .maps import range_map as make_range_map
    from .store import load_prior

    check_output(output, overwrite)
    suffix = output.suffix.lower()
    if suffix not in FORMATS:
        raise click.UsageError(f"--output must end in one of {', '.join(FORMATS)}, got {output}")
    if all_species == bool(species):
        raise click.UsageError("give SPECIES names or --all-species (not both)")
    if month is not None and date is not None:
        raise click.UsageError("give --month or --date, not both")
    thresh = _threshold_option(threshold)
    if isinstance(thresh, str) and observations is None:
        raise click.UsageError(f"--threshold {thresh} needs --observations")
    loaded = load_prior(prior)
    obs = None if observations is None else load_observations(observations, encoding=encoding)
    common = dict(res=res, threshold=thresh, land_only=not include_sea, bbox=bbox, observations=obs)
    if all_species:
        if suffix != ".parquet" or dissolve or monthly:
            raise click.UsageError("--all-species writes one .parquet (no --dissolve, --monthly)")
        summary = write_all_species(
            loaded,
            output,
            date=date,
            month=month,
            overwrite=overwrite,
            progress=not quiet,
            **common,
        )
        click.echo(
            f"{summary['rows']} in-range cells of {summary['species']} species "
            f"({summary['cells']} cells); wrote {output}",
            err=True,
        )
        return
    if monthly is None:
        monthly = suffix == ".png" and month is None and date is None and uses_dates(loaded)
    if monthly and (month is not None or date is not None):
        raise click.UsageError("--monthly maps every month: drop --month/--date")
    if color is not None and suffix != ".png":
        raise click.UsageError("--color applies only to .png outputs")
    if monthly:
        frame = monthly_range_maps(loaded, list(species), dissolve=dissolve, **common)
    else:
        frame = make_range_map(
            loaded, list(species), date=date, month=month, dissolve=dissolve, **common
        )
    options = {"color": color} if color else {}
    write_range_map(frame, output, overwrite=overwrite, **options)
    rows = frame[frame["in_range"]] if "in_range" in frame.columns else frame
    click.echo(f"{len(rows)} in-range rows of {len(frame)}; wrote {output}", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
