"""``geoprior convert``: observation files once into a memory-mapped column store."""

from __future__ import annotations

import click

from ..outputs import check_output
from .options import (
    Command,
    encoding_option,
    on_invalid_option,
    output_option,
    overwrite_option,
    quiet_option,
)


@click.command(cls=Command)
@click.argument("sources", nargs=-1, required=True)
@output_option("Folder to write (a folder: not '-', standard output).")
@click.option(
    "--covariate", "covariates", multiple=True, help="A covariate column to keep (repeatable)."
)
@on_invalid_option
@click.option(
    "--chunk-rows", default=500_000, show_default=True, help="Rows read and shuffled at a time."
)
@click.option("--seed", default=0, show_default=True, help="Seed of the one-time shuffle.")
@encoding_option
@overwrite_option
@quiet_option
def convert(sources, output, covariates, on_invalid, chunk_rows, seed, encoding, overwrite, quiet):
    """Convert SOURCES (files or folders: Parquet, CSV, GBIF, eBird, ...) once into shuffled
    memory-mapped columns that `geoprior train` streams, for data larger than memory."""
    from ..columnstore import MANIFEST, convert_to_columns

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
