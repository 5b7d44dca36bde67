"""``geoprior export``: a prior in a form that runs without JAX (ONNX, or a range table)."""

from __future__ import annotations

import click

from ..outputs import check_output
from .options import (
    Command,
    encoding_option,
    load_observations,
    output_option,
    overwrite_option,
    prior_argument,
    threshold_option,
)

FORMATS = ("onnx", "range-table")


@click.command("export", cls=Command)
@prior_argument
@output_option("OUT.onnx (--format onnx) or OUT.parquet (--format range-table).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="onnx",
    show_default=True,
    help="onnx: the network, run by onnxruntime (geoprior.runtime); range-table: every "
    "species' in-range H3 cells as Parquet.",
)
@click.option(
    "--weights",
    type=click.Choice(["float32", "float16", "int8"]),
    default="float32",
    show_default=True,
    help="ONNX: how the weight matrices are stored (float16 halves the file, int8 quarters "
    "it; arithmetic is float32 either way).",
)
@click.option("--res", default=4, show_default=True, help="Range table: H3 resolution.")
@click.option(
    "--month",
    "months",
    type=click.IntRange(0, 12),
    multiple=True,
    help="Range table: a month 1..12 (its 15th) or 0 (year-round); repeat for several. "
    "Default: year-round, plus every month for a prior that uses dates.",
)
@click.option(
    "--threshold",
    default=None,
    metavar="FLOAT|lpt|f1",
    help="Range table: in-range threshold (default: the thresholds stored in the prior).",
)
@click.option("--observations", default=None, help="Presences for --threshold lpt/f1.")
@click.option("--score-bits", type=click.Choice(["8", "16"]), default="8", show_default=True,
              help="Range table: bits of each quantised score (16: no ties, a larger file).")
@encoding_option
@click.option("--bbox", default=None, metavar="W,S,E,N", help="Range table: only cells inside.")
@click.option("--include-sea", is_flag=True, help="Range table: keep cells that touch no land.")
@overwrite_option
def export(
    prior, output, fmt, weights, res, months, threshold, observations, score_bits, encoding,
    bbox, include_sea, overwrite,
):
    """Export PRIOR (a saved prior; an .onnx export for --format range-table too) so it
    runs without JAX.

    \b
    ONNX: input points [lat, lon, day_of_year or NaN] (n, 3) (+ covariates), outputs
    observation, presence, distance_km, outside; load with geoprior.runtime.load_export.
    Range table: rows month, h3_cell, species, score (uint8 presence x 255, or uint16
    x 65535 with --score-bits 16)."""
    check_output(output, overwrite)
    suffix = {"onnx": ".onnx", "range-table": ".parquet"}[fmt]
    if output.suffix.lower() != suffix:
        raise click.UsageError(f"--format {fmt} writes a {suffix} file, got {output}")
    loaded = _load(prior)
    if fmt == "onnx":
        if months or threshold or observations or bbox or include_sea or score_bits != "8":
            raise click.UsageError("--month, --threshold, --observations, --score-bits, "
                                   "--bbox and --include-sea apply to --format range-table")
        from ..export import export_onnx

        path = export_onnx(loaded, output, weights=weights, overwrite=overwrite)
        click.echo(f"{loaded.n_species} species, outputs {', '.join(loaded.outputs)}, "
                   f"{weights} weights, {path.stat().st_size / 1e6:.2f} MB; wrote {path}",
                   err=True)
        return
    if weights != "float32":
        raise click.UsageError("--weights applies to --format onnx")
    thresh = threshold_option(threshold)
    if isinstance(thresh, str) and observations is None:
        raise click.UsageError(f"--threshold {thresh} needs --observations")
    from ..export import write_range_table

    obs = None if observations is None else load_observations(observations, encoding=encoding)
    summary = write_range_table(
        loaded, output, res=res, months=list(months) or None, threshold=thresh,
        land_only=not include_sea, bbox=bbox, observations=obs, score_bits=int(score_bits),
        overwrite=overwrite,
    )
    size = output.stat().st_size / 1e6
    click.echo(f"{summary['rows']} in-range rows of {summary['species']} species on "
               f"{summary['cells']} cells, months {summary['months']}, {size:.2f} MB; "
               f"wrote {output}", err=True)


def _load(prior):
    """A saved prior folder, or an ONNX export (for range tables from the runtime)."""
    if prior.suffix.lower() == ".onnx" and prior.is_file():
        from ..runtime import load_export

        return load_export(prior)
    from ..persistence import load_prior

    return load_prior(prior)
