"""``geoprior predict``: the most likely species at a place and date."""

from __future__ import annotations

import click

from .covariates import covariates_option, rasters_for
from .options import Command, prior_argument


@click.command(cls=Command)
@prior_argument
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
@covariates_option(
    "For a prior trained with covariates: the rasters to sample at the place (default: "
    "those the prior records)."
)
def predict(prior, lat, lon, date, k, fmt, covariates):
    """The K most likely species at a place (and date).

    ``prob`` is the probability that an observation made there (then) is of the species:
    the species' share of what is recorded there, summing to 1 over all species. A prior
    with a presence output adds ``presence``, the probability that the species occurs
    there at all, and ``outside_extent``, true beyond the training data's extent (a
    warning on stderr says how far)."""
    from ..persistence import load_prior

    loaded = load_prior(prior)
    rasters = rasters_for(loaded, covariates)
    cov = {} if rasters is None else {"covariates": rasters.sample(lat, lon, what="query places")}
    frame = loaded.top_k(lat, lon, date, k=k, **cov).drop(columns="row")
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
    if fmt == "csv":
        click.echo(frame.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(frame.to_json(orient="records"))
    else:
        click.echo(frame.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
