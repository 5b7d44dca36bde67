"""``geoprior range-map``: range maps of species as geodata or a picture."""

from __future__ import annotations

import click

from ..outputs import check_output
from .covariates import covariates_option, rasters_for
from .options import (
    Command,
    encoding_option,
    load_observations,
    output_option,
    overwrite_option,
    prior_argument,
    quiet_option,
    threshold_option,
)


@click.command("range-map", cls=Command)
@prior_argument
@click.argument("species", nargs=-1)
@output_option("OUT.geojson, .gpkg, .parquet, .csv or .png.")
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
@encoding_option
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
@covariates_option(
    "For a prior trained with covariates: the rasters to sample at the cell centres "
    "(default: those the prior records). Cells where a raster has no value are left out "
    "and counted; with --bbox, cells outside the rasters are an error."
)
@overwrite_option
@quiet_option
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
    covariates,
    overwrite,
    quiet,
):
    """Range maps of SPECIES from PRIOR on H3 cells, as geodata or a picture."""
    from ..maps import (
        FORMATS,
        monthly_range_maps,
        uses_dates,
        write_all_species,
        write_range_map,
    )
    from ..maps import range_map as make_range_map
    from ..persistence import load_prior

    check_output(output, overwrite)
    suffix = output.suffix.lower()
    if suffix not in FORMATS:
        raise click.UsageError(f"--output must end in one of {', '.join(FORMATS)}, got {output}")
    if all_species == bool(species):
        raise click.UsageError("give SPECIES names or --all-species (not both)")
    if month is not None and date is not None:
        raise click.UsageError("give --month or --date, not both")
    thresh = threshold_option(threshold)
    if isinstance(thresh, str) and observations is None:
        raise click.UsageError(f"--threshold {thresh} needs --observations")
    loaded = load_prior(prior)
    obs = None if observations is None else load_observations(observations, encoding=encoding)
    rasters = rasters_for(loaded, covariates)
    if rasters is not None and obs is not None:
        from ..io.rasters import attach_covariates, dropped_note

        before, obs = obs, attach_covariates(
            obs, rasters, on_invalid="drop", names=loaded.covariate_names, what="presences"
        )
        note = dropped_note(before, obs)
        if note:
            click.echo(f"--observations: {note} (no covariates there)", err=True)
    common = dict(res=res, threshold=thresh, land_only=not include_sea, bbox=bbox, observations=obs)
    if all_species:
        if rasters is not None:
            from ..errors import ConfigError

            raise ConfigError(
                "--all-species does not sample covariate rasters; map the species by name "
                "(range-map PRIOR NAME ... --covariates ...)"
            )
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
    if rasters is not None:
        common["covariates"] = rasters
    if monthly:
        frame = monthly_range_maps(loaded, list(species), dissolve=dissolve, **common)
    else:
        frame = make_range_map(
            loaded, list(species), date=date, month=month, dissolve=dissolve, **common
        )
    about = frame.attrs.get("covariates")
    if about and (about["outside"] or about["nodata"]):
        left = about["outside"] + about["nodata"]
        click.echo(
            f"left out {left:,} of {about['cells']:,} cells where a covariate raster has no "
            f"value ({about['outside']:,} outside the rasters, {about['nodata']:,} on nodata)",
            err=True,
        )
    options = {"color": color} if color else {}
    write_range_map(frame, output, overwrite=overwrite, **options)
    rows = frame[frame["in_range"]] if "in_range" in frame.columns else frame
    click.echo(f"{len(rows)} in-range rows of {len(frame)}; wrote {output}", err=True)
