"""``geoprior species-list``: the species to expect at a place and date or week, BirdNET-style."""

from __future__ import annotations

from pathlib import Path

import click

from .options import (
    Command,
    encoding_option,
    format_option,
    output_option,
    overwrite_option,
    prior_argument,
    table_output,
)


@click.command("species-list", cls=Command)
@prior_argument
@click.option("--lat", type=float, default=None, help="Latitude, degrees.")
@click.option("--lon", type=float, default=None, help="Longitude, degrees.")
@click.option("--date", default=None, help="YYYY-MM-DD (omit both --date and --week: year-round).")
@click.option(
    "--week",
    type=click.IntRange(-1, 48),
    default=None,
    help="BirdNET week 1-48 (four per month: days 1-7, 8-14, 15-21, 22-end); -1 year-round.",
)
@click.option(
    "--points",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="CSV/TSV/Parquet of places: latitude and longitude columns, optional date or week; "
    "every column is copied to the output.",
)
@click.option("-k", "k", type=int, default=None, help="At most K species per place (default 10 "
              "without --min-prob / --in-range).")
@click.option(
    "--min-prob",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Species whose presence is at least P (BirdNET's filter uses 0.03).",
)
@click.option(
    "--in-range",
    is_flag=True,
    help="Species whose presence reaches the prior's own threshold (as its range map).",
)
@click.option(
    "--taxonomy",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Taxonomy table (eBird, GBIF, iNaturalist) for common names.",
)
@output_option("Write the list to FILE (.csv, .tsv, .json, .parquet).", required=False,
               stdout=True)
@format_option()
@encoding_option
@overwrite_option
def species_list(
    prior, lat, lon, date, week, points, k, min_prob, in_range, taxonomy, output, fmt,
    encoding, overwrite,
):  # fmt: skip
    """The species to expect at a place (--lat, --lon) or at each place of --points, on a
    --date or BirdNET --week, as BirdNET's location filter lists them.

    With -k the list is the K likeliest by `prob`: the probability that an observation
    made there is of the species (rows sum to 1). With --min-prob or --in-range it is the
    species whose `presence` (the probability that the species occurs there at all)
    passes the cut, ranked by it. A prior with one output ranks and cuts on it.
    `outside_extent` is true beyond the prior's training extent (a warning says how far).
    Common names come from --taxonomy or the prior. What the numbers mean is printed to
    stderr."""
    from ..fusion import species_list as make_list
    from ..outputs import is_stdout, write_table
    from ..persistence import load_prior

    if points is None and (lat is None or lon is None):
        raise click.UsageError("give --lat and --lon, or --points FILE")
    if points is not None and (lat is not None or lon is not None):
        raise click.UsageError("give --lat/--lon or --points, not both")
    if date is not None and week is not None:
        raise click.UsageError("give --date or --week, not both")
    if min_prob is not None and in_range:
        raise click.UsageError("give --min-prob or --in-range, not both")
    output, fmt = table_output(output, fmt, overwrite)
    table = None
    if points is not None:
        table, lat, lon, date, week = _read_points(points, encoding, date, week)
    loaded = load_prior(prior)
    frame = make_list(
        loaded, lat, lon, date, week=week, k=k, min_prob=min_prob, in_range=in_range,
        taxonomy=taxonomy,
    )  # fmt: skip
    meaning, empty = frame.attrs["meaning"], frame.attrs["empty_places"]
    if table is not None:
        clash = [c for c in frame.columns if c != "row" and c in table.columns]
        if clash:
            from ..errors import FormatError

            raise FormatError(
                f"{points} has column(s) {', '.join(map(repr, clash))}, which the list adds; "
                "rename them"
            )
        rows = frame.pop("row").to_numpy()
        frame = table.iloc[rows].reset_index(drop=True).join(frame)
    else:
        frame = frame.drop(columns="row")
    click.echo(meaning, err=True)
    if empty:
        what = "place lists" if table is None else f"of {len(table)} places list"
        click.echo(f"{empty} {what} no species", err=True)
    write_table(frame, output, fmt=fmt)
    if not is_stdout(output):
        click.echo(f"wrote {len(frame):,} rows to {output}", err=True)


def _read_points(path: Path, encoding, date, week):
    """The points table (every column as read; text kept as text) and its lat, lon, date
    and week columns (``--date`` / ``--week`` apply to rows without their own)."""
    import numpy as np
    import pandas as pd

    from ..errors import EmptyDataError, FormatError
    from ..io.table import CANDIDATES, find_column, open_table

    source = open_table(path, encoding=encoding)
    columns = list(source.columns)
    lat_col = find_column(columns, *CANDIDATES["lat"])
    lon_col = find_column(columns, *CANDIDATES["lon"])
    if lat_col is None or lon_col is None:
        raise FormatError(
            f"{source.where} needs latitude and longitude columns (e.g. lat, lon); found "
            f"{', '.join(columns)}"
        )
    date_col, week_col = find_column(columns, *CANDIDATES["date"]), find_column(columns, "week")
    if date_col is not None and week_col is not None:
        raise FormatError(f"{source.where} has both a date ({date_col!r}) and a week "
                          f"({week_col!r}) column; keep one")
    numbers = {lat_col, lon_col} | ({week_col} if week_col else set())
    chunks = list(source.chunks(columns, set(columns) - numbers))
    table = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(columns=columns)
    table = table[columns]  # not the reader's problem marks
    if table.empty:
        raise EmptyDataError(f"{source.where} has no rows")
    lat, lon = table[lat_col].to_numpy(), table[lon_col].to_numpy()
    if date_col is not None:
        if week is not None:
            raise click.UsageError(f"{path} has dates ({date_col!r}); --week would not apply")
        values = table[date_col].to_numpy(dtype=object)
        empty = pd.isna(table[date_col]).to_numpy() | (table[date_col].astype(str).str.strip() == "")
        if date is not None:
            values = np.where(empty, date, values)
        return table, lat, lon, values, None
    if week_col is not None:
        if date is not None:
            raise click.UsageError(f"{path} has weeks ({week_col!r}); --date would not apply")
        values = table[week_col].to_numpy(dtype=object)
        if week is not None:
            values = np.where(pd.isna(table[week_col]).to_numpy(), week, values)
        return table, lat, lon, None, values
    return table, lat, lon, date, week
