"""``geoprior predict``: the most likely species at a place and date."""

from __future__ import annotations

import click

from .covariates import covariates_option, rasters_for
from .options import (
    Command,
    format_option,
    output_option,
    overwrite_option,
    prior_argument,
    table_output,
)


@click.command(cls=Command)
@prior_argument
@click.option("--lat", type=float, required=True, help="Latitude, degrees.")
@click.option("--lon", type=float, required=True, help="Longitude, degrees.")
@click.option("--date", default=None, help="YYYY-MM-DD (omit for a year-round prior).")
@click.option("-k", "k", default=10, show_default=True, help="How many species.")
@format_option()
@covariates_option(
    "For a prior trained with covariates: the rasters to sample at the place (default: "
    "those the prior records)."
)
@output_option("Write the table to FILE (.csv, .tsv, .json, .parquet) instead of printing it.",
               required=False, stdout=True)
@overwrite_option
def predict(prior, lat, lon, date, k, fmt, covariates, output, overwrite):
    """The K most likely species at a place (and date).

    ``prob`` is the probability that an observation made there (then) is of the species:
    the species' share of what is recorded there, summing to 1 over all species. A prior
    with a presence output adds ``presence``, the probability that the species occurs
    there at all, and ``outside_extent``, true beyond the training data's extent (a
    warning on stderr says how far)."""
    from ..errors import CoordinateError
    from ..fusion.checks import swap_hint, warn_if_swapped
    from ..outputs import is_stdout, write_table
    from ..persistence import load_prior

    output, fmt = table_output(output, fmt, overwrite)
    loaded = load_prior(prior)
    rasters = rasters_for(loaded, covariates)
    cov = {} if rasters is None else {"covariates": rasters.sample(lat, lon, what="query places")}
    try:
        frame = loaded.top_k(lat, lon, date, k=k, **cov).drop(columns="row")
    except CoordinateError as e:
        raise CoordinateError(str(e) + swap_hint(lat, lon)) from None
    warn_if_swapped(lat, lon, loaded)
    when = f" on {date}" if date else " (any date)"
    meaning = f"prob: the probability that an observation made here{when} is of the species"
    outputs = getattr(loaded, "outputs", ("observation",))
    if outputs == ("presence",):  # a one-head assume-negative prior
        meaning = f"prob: the probability that the species occurs here{when}"
    if "presence" in outputs and "observation" in outputs:
        frame["presence"] = loaded.predict(
            lat, lon, date, species=frame["species"].tolist(), output="presence", **cov
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
    write_table(frame, output, fmt=fmt)
    if not is_stdout(output):
        click.echo(f"wrote {len(frame)} rows to {output}", err=True)
