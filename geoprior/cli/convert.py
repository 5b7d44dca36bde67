"""``geoprior convert``: observation files once into a memory-mapped column store."""

from __future__ import annotations

import click

from ..outputs import check_output
from .covariates import covariates_option, sampling_option
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
    "--covariate", "columns", multiple=True, help="A covariate column to keep (repeatable)."
)
@covariates_option(
    "Covariate rasters sampled at every row instead of columns (rows where a raster has no "
    "value follow --on-invalid); the store records them, and `geoprior train STORE` trains "
    "a prior that maps and predicts with them."
)
@sampling_option
@on_invalid_option
@click.option(
    "--chunk-rows", default=500_000, show_default=True, help="Rows read and shuffled at a time."
)
@click.option("--seed", default=0, show_default=True, help="Seed of the one-time shuffle.")
@encoding_option
@overwrite_option
@quiet_option
def convert(
    sources, output, columns, covariates, sampling, on_invalid, chunk_rows, seed, encoding,
    overwrite, quiet,
):
    """Convert SOURCES (files or folders: Parquet, CSV, GBIF, eBird, ...) once into shuffled
    memory-mapped columns that `geoprior train` streams, for data larger than memory."""
    from ..columnstore import MANIFEST, convert_to_columns

    check_output(output, overwrite, marker=MANIFEST, kind="column store")
    if columns and covariates:
        raise click.UsageError(
            "give covariate columns (--covariate NAME) or rasters (--covariates A.tif ...), "
            "not both"
        )
    rasters = None
    if covariates:
        from ..io.rasters import open_rasters

        rasters = open_rasters(covariates, method=sampling)
        click.echo(f"covariates from rasters ({sampling}):\n{rasters.describe()}", err=True)
    store = convert_to_columns(
        list(sources),
        output,
        covariates=columns,
        rasters=rasters,
        on_invalid=on_invalid,
        chunk_rows=chunk_rows,
        seed=seed,
        encoding=encoding,
        overwrite=overwrite,
        progress=not quiet,
    )
    dropped = store.report.dropped
    if dropped:
        shown = ", ".join(f"{n:,} {why}" for why, n in dropped.items())
        click.echo(f"left out {sum(dropped.values()):,} rows: {shown}", err=True)
    click.echo(f"wrote {len(store):,} rows of {store.n_species:,} species to {output}", err=True)
