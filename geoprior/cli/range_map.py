"""``geoprior range-map``: range maps of species as geodata, a picture or an interactive map."""

from __future__ import annotations

import sys

import click

from ..outputs import check_output
from .covariates import covariates_option, rasters_for
from .options import (
    Command,
    encoding_option,
    load_observations,
    overwrite_option,
    prior_argument,
    quiet_option,
    threshold_option,
)

#: Geodata files hold the range itself unless told otherwise; pictures draw the probability
#: around it (clipped to the view); an interactive map the prior's training extent.
DEFAULT_CELLS = {".png": "all", ".html": "extent"}
CELLS_HELP = (
    "Which cells to write: in-range (the rows at or above the species' threshold: the "
    "range itself), extent (the cells within the prior's training extent, far_km from "
    "every training place for a GeoPrior; every cell for a prior that states none) or all "
    "(every cell of the grid: 86,461 land cells a species at resolution 4). Default: "
    "in-range for geodata (.geojson, .gpkg, .parquet, .csv, -), all for .png (drawn within "
    "the view), extent for .html."
)


@click.command("range-map", cls=Command)
@prior_argument
@click.argument("species", nargs=-1)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(),
    help="OUT.geojson, .gpkg, .parquet, .csv, .png or .html; '-' writes GeoJSON (or "
    "--format csv) to stdout.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["geojson", "gpkg", "parquet", "csv", "png", "html"]),
    default=None,
    help="The output format (default: from OUTPUT's extension; geojson for '-').",
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
    help="Presences for --threshold lpt/f1 and --places (a file, or sample:neon_bird).",
)
@encoding_option
@click.option("--bbox", default=None, metavar="W,S,E,N", help="Only cells whose centre is inside.")
@click.option("--include-sea", is_flag=True, help="Keep cells that do not touch land.")
@click.option(
    "--cells",
    type=click.Choice(["in-range", "extent", "all"]),
    default=None,
    help=CELLS_HELP,
)
@click.option("--dissolve", is_flag=True, help="One (multi)polygon per species of its range.")
@click.option(
    "--color",
    type=click.Choice(["prob", "in_range"]),
    default=None,
    help="PNG: colour cells by probability (default) or show the cells in range.",
)
@click.option(
    "--places",
    "show_places",
    is_flag=True,
    help="PNG/HTML: draw the training places: the species' records in --observations (each "
    "month's in a monthly picture), else the places the prior keeps (a GeoPrior's).",
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
    fmt,
    res,
    month,
    date,
    monthly,
    threshold,
    observations,
    encoding,
    bbox,
    include_sea,
    cells,
    dissolve,
    color,
    show_places,
    all_species,
    covariates,
    overwrite,
    quiet,
):
    """Range maps of SPECIES from PRIOR on H3 cells, as geodata, a picture or a web map."""
    from ..errors import ConfigError
    from ..maps import monthly_range_maps, uses_dates, write_all_species, write_range_map
    from ..maps import range_map as make_range_map
    from ..maps.writers import FORMATS, STREAM_FORMATS, output_format
    from ..persistence import load_prior

    # everything about the request is checked before the prior is loaded or a cell computed
    to_stdout = output == "-"
    try:
        suffix = output_format(output, fmt or ("geojson" if to_stdout else None))
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    if to_stdout:
        if suffix not in STREAM_FORMATS:
            raise click.UsageError(
                f"-o - writes text (geojson or csv), not {FORMATS[suffix]}: give a file name"
            )
    else:
        output = check_output(output, overwrite)
    if all_species == bool(species):
        raise click.UsageError("give SPECIES names or --all-species (not both)")
    if month is not None and date is not None:
        raise click.UsageError("give --month or --date, not both")
    if dissolve and cells is not None:
        raise click.UsageError("--dissolve draws the cells in range: drop --cells")
    if dissolve and suffix == ".csv":
        raise click.UsageError(
            "CSV holds cells: write a dissolved map as .geojson, .gpkg or .parquet"
        )
    if color is not None and suffix != ".png":
        raise click.UsageError("--color applies only to .png outputs")
    if show_places and suffix not in (".png", ".html"):
        raise click.UsageError("--places applies only to .png and .html outputs")
    thresh = threshold_option(threshold)
    if isinstance(thresh, str) and observations is None:
        raise click.UsageError(f"--threshold {thresh} needs --observations")
    cells = cells or DEFAULT_CELLS.get(suffix, "in-range")
    if all_species and (suffix != ".parquet" or dissolve or monthly):
        raise click.UsageError("--all-species writes one .parquet (no --dissolve, --monthly)")
    loaded = load_prior(prior)
    rasters = rasters_for(loaded, covariates)
    if monthly is None:
        monthly = suffix == ".png" and month is None and date is None and uses_dates(loaded)
    if monthly and (month is not None or date is not None):
        raise click.UsageError("--monthly maps every month: drop --month/--date")
    if suffix == ".png":
        from ..maps.plot import check_request, require_pyplot

        require_pyplot()
        check_request(len(species), monthly=monthly, dissolved=dissolve, color=color)
    if suffix == ".html":
        from ..maps.html import require_folium

        require_folium()
    support = getattr(loaded, "support", None)
    if show_places and observations is None and support is None:
        raise click.UsageError(
            f"--places needs --observations: {type(loaded).__name__} keeps no training places"
        )
    obs = None if observations is None else load_observations(observations, encoding=encoding)
    if rasters is not None and obs is not None:
        from ..io.rasters import attach_covariates, dropped_note

        before, obs = obs, attach_covariates(
            obs, rasters, on_invalid="drop", names=loaded.covariate_names, what="presences"
        )
        note = dropped_note(before, obs)
        if note:
            click.echo(f"--observations: {note} (no covariates there)", err=True)
    common = dict(res=res, threshold=thresh, land_only=not include_sea, bbox=bbox, observations=obs)
    if rasters is not None:
        common["covariates"] = rasters
    if all_species:
        summary = write_all_species(
            loaded,
            output,
            date=date,
            month=month,
            cells=cells,
            overwrite=overwrite,
            progress=not quiet,
            metadata={"prior_file": str(prior)},
            **common,
        )
        _left_out(summary.get("covariates"))
        click.echo(
            f"{summary['rows']} rows of {summary['species']} species "
            f"({summary['cells']} cells); wrote {output}",
            err=True,
        )
        return
    options = dict(dissolve=dissolve, progress=not quiet, **common)
    if not dissolve:
        options["cells"] = cells
    if monthly:
        frame = monthly_range_maps(loaded, list(species), **options)
    else:
        frame = make_range_map(loaded, list(species), date=date, month=month, **options)
    _left_out(frame.attrs.get("covariates"))
    frame.attrs["prior_file"] = str(prior)
    plot = {"color": color} if color else {}
    if show_places:
        plot["places"] = obs if obs is not None else (support[:, 0], support[:, 1])
    target = sys.stdout.buffer if to_stdout else output
    write_range_map(frame, target, format=suffix, overwrite=overwrite, **plot)
    if to_stdout:
        sys.stdout.buffer.flush()
    click.echo(_summary(frame, "stdout" if to_stdout else output), err=True)


def _left_out(about: dict | None) -> None:
    """Say how many cells a covariate prior's map left out, where a raster has no value."""
    if about and (about["outside"] or about["nodata"]):
        left = about["outside"] + about["nodata"]
        click.echo(
            f"left out {left:,} of {about['cells']:,} cells where a covariate raster has no "
            f"value ({about['outside']:,} outside the rasters, {about['nodata']:,} on nodata)",
            err=True,
        )


def _summary(frame, where) -> str:
    """What was written: rows, how many in range, and for each species with no cell in
    range, its highest probability beside its threshold."""
    if "in_range" not in frame.columns:
        return f"{int(frame['n_cells'].sum())} cells in range; wrote {where}"
    inside = int(frame["in_range"].sum())
    line = (
        f"{len(frame)} rows ({inside} in range; cells: {frame.attrs.get('cells')}); wrote {where}"
    )
    counts = frame.loc[frame["in_range"].to_numpy(bool), "species"].value_counts()
    thresholds, top = frame.attrs.get("thresholds", {}), frame.attrs.get("max_prob", {})
    for name, t in thresholds.items():
        if counts.get(name, 0) == 0:
            best = top.get(name)
            best = "?" if best is None else f"{best:.3g}"
            line += (
                f"\nno cell is in range for {name}: highest probability {best} < threshold {t:.3g}"
            )
    return line
