"""The ``geoprior`` command line: one thin function per command.

Data go to stdout; logs and progress bars to stderr. Exit codes: 0 success, 1 a
:class:`~geoprior.GeopriorError` (one clear line; the traceback with ``-v``), 2 usage errors.
Outputs are never overwritten without ``--overwrite``, and are checked (see
:func:`geoprior.outputs.check_output`) before any work starts.

One module per command (:mod:`~geoprior.cli.train`, ``convert``, ``predict``, ``species``,
``rerank``, ``range_map``), what they share in :mod:`~geoprior.cli.options`; this module
only assembles the group, as rasterio's ``rio`` does.
"""

from __future__ import annotations

import click

from . import convert, predict, range_map, rerank, species, train
from . import export as export_command
from . import serve as serve_command
from . import species_list as species_list_command
from .options import Group

__all__ = ["main"]


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks of errors.")
@click.version_option(package_name="geoprior")
@click.pass_context
def main(ctx, verbose):
    """geoprior: learned where-and-when species priors, and their fusion with classifiers."""
    ctx.obj = {"verbose": verbose}


for _command in (
    train.train,
    convert.convert,
    predict.predict,
    species.species,
    rerank.rerank,
    range_map.range_map,
    species_list_command.species_list,
    export_command.export,
    serve_command.serve,
):
    main.add_command(_command)
