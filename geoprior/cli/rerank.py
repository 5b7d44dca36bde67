"""``geoprior rerank``: a classifier's saved logits reranked with a prior."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import ClassMismatchError
from ..outputs import check_output, table_format
from .options import Command, encoding_option, output_option, overwrite_option, prior_argument


@click.command(cls=Command)
@prior_argument
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
@output_option("Output table (.csv, .tsv, .json, .parquet; CSV to standard output).",
               stdout=True)
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
@click.option(
    "--taxonomy",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Taxonomy table (eBird/Clements CSV, GBIF Taxon.tsv or backbone folder, iNaturalist "
    "taxa) to match classes named by common name, code or an older synonym.",
)
@encoding_option
@overwrite_option
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
    taxonomy,
    encoding,
    overwrite,
):
    """Rerank a classifier's LOGITS (.npy, .npz or .csv) with PRIOR at each row's place."""
    from ..fusion import FusionParams
    from ..fusion import rerank as rerank_rows
    from ..io.logits import read_classes, read_logits, read_points
    from ..outputs import is_stdout, write_table
    from ..persistence import load_prior

    check_output(output, overwrite, stdout=True)
    table_format(output)  # a suffix that is no table fails before the work
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
        taxonomy=taxonomy,
        **fusion,
    )
    write_table(result.to_frame(), output)
    done = "printed them" if is_stdout(output) else f"wrote {output}"
    click.echo(
        f"{int(result.changed.sum())} of {len(result)} top-1 predictions changed; {done}",
        err=True,
    )
