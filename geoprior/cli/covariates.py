"""``--covariates A.tif B.tif ...``: covariate rasters on the command line (train, predict,
range-map), and opening them for a prior with its warnings shown as one line each."""

from __future__ import annotations

import warnings

import click

from ..errors import GeopriorWarning

__all__ = ["covariates_option", "sampling_option", "rasters_for"]


class _Greedy(click.Option):
    """An option that takes every value up to the next option: ``--covariates a.tif
    b.tif -o out`` (repeating the option works too). Values are collected as with
    ``multiple=True``."""

    def add_to_parser(self, parser, ctx):
        super().add_to_parser(parser, ctx)
        for name in self.opts:
            option = getattr(parser, "_long_opt", {}).get(name) or getattr(
                parser, "_short_opt", {}
            ).get(name)
            if option is None or not hasattr(option, "process"):
                continue  # another click: the option still works when repeated
            one = option.process

            def process(value, state, one=one):
                one(value, state)
                while state.rargs and not state.rargs[0].startswith("-"):
                    one(state.rargs.pop(0), state)

            option.process = process


def covariates_option(what: str):
    """``--covariates`` raster paths (``path:2`` chooses a band), with help text ``what``."""
    return click.option(
        "--covariates",
        "covariates",
        cls=_Greedy,
        multiple=True,
        metavar="RASTER...",
        help=what
        + " GeoTIFFs (or any raster GDAL reads), one covariate per band; FILE:2 or "
        "FILE:1,3 chooses bands. Takes every path up to the next option.",
    )


sampling_option = click.option(
    "--covariate-sampling",
    "sampling",
    type=click.Choice(["nearest", "bilinear"]),
    default="nearest",
    show_default=True,
    help="How rasters are sampled at a place: the pixel it falls in, or bilinear "
    "interpolation between pixel centres (recorded in the prior; maps use the same).",
)


def rasters_for(prior, paths):
    """The rasters for ``prior``'s covariates (see
    :func:`geoprior.io.rasters.covariates_for`): ``paths`` when given, else those the
    prior records; ``None`` for a prior without covariates. Warnings go to stderr as
    ``warning: ...`` lines."""
    from ..io.rasters import covariates_for

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GeopriorWarning)
        rasters = covariates_for(prior, list(paths) or None)
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    if rasters is not None:
        click.echo(f"covariates from rasters ({rasters.method}):\n{rasters.describe()}", err=True)
    return rasters
