"""The eBird Basic Dataset (EBD): tab-separated, unquoted, upper-case column names.

Columns used: ``LATITUDE, LONGITUDE, OBSERVATION DATE, SCIENTIFIC NAME, CATEGORY,
SAMPLING EVENT IDENTIFIER``. The site id is the checklist (``SAMPLING EVENT IDENTIFIER``).
Only rows whose ``CATEGORY`` is in ``categories`` (default: ``"species"``) are kept; the
others (``issf``, ``spuh``, ``slash``, ``hybrid``, ``domestic`` ...) are removed by design:
never an error, counted per category in ``report.removed`` (reason ``"CATEGORY 'spuh'"``),
so rows read = kept + dropped + removed, and shown in ``report.notes`` and the summary.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import ConfigError
from ..observations import Observations
from .table import ReadPlan, find_column, guess_columns, observations_from_table, open_table

__all__ = ["EBIRD_CATEGORIES", "ebird_plan", "read_ebird"]

EBIRD_CATEGORIES = (
    "species",
    "issf",
    "spuh",
    "slash",
    "hybrid",
    "intergrade",
    "domestic",
    "form",
)


def read_ebird(
    source,
    *,
    on_invalid: str = "raise",
    lon_360: bool = False,
    chunksize: int = 1_000_000,
    encoding: str | None = None,
    categories: Sequence[str] | None = ("species",),
    merge_case: bool = False,
    **column_mapping,
) -> Observations:
    """Read an eBird Basic Dataset file (``ebd_*.txt``, optionally ``.gz``) or DataFrame.

    Args:
        categories: the ``CATEGORY`` values to keep (``None``: keep every row). Rows are
            validated first, then filtered; the rows removed are counted per category in
            ``report.removed`` (not an error, whatever ``on_invalid``).
        merge_case: merge species whose names differ only by case (see
            :func:`geoprior.io.read_table`).
        column_mapping: ``lat=, lon=, species=, date=, site=, covariates=`` override the
            EBD columns (e.g. ``site="OBSERVER ID"``).

    Example:
        >>> import pandas as pd
        >>> ebd = pd.DataFrame({"LATITUDE": [44.0, 44.1, 44.2], "LONGITUDE": [-71.3] * 3,
        ...                     "SCIENTIFIC NAME": ["Setophaga virens", "Setophaga sp.",
        ...                                         "Empidonax sp."],
        ...                     "OBSERVATION DATE": ["2021-06-14"] * 3,
        ...                     "CATEGORY": ["species", "spuh", "spuh"]})
        >>> obs = read_ebird(ebd)  # or a path: "ebd_US-NH_202101_202112_relJan-2022.txt"
        >>> obs
        Observations(1 rows, 1 species, 1 dated)
        >>> obs.report.removed
        {"CATEGORY 'spuh'": 2}
    """
    plan = ebird_plan(
        source, encoding=encoding, chunksize=chunksize, categories=categories, **column_mapping
    )
    return observations_from_table(
        plan, on_invalid=on_invalid, lon_360=lon_360, merge_case=merge_case
    )


def ebird_plan(
    source,
    *,
    encoding: str | None = None,
    chunksize: int = 1_000_000,
    categories: Sequence[str] | None = ("species",),
    **column_mapping,
) -> ReadPlan:
    """How :func:`read_ebird` reads ``source`` (the arguments are its): the EBD columns,
    unless ``column_mapping`` names others, and rows kept where ``CATEGORY`` is in
    ``categories``.

    Raises:
        ConfigError: ``categories`` is not a sequence of strings, or the file has no
            ``CATEGORY`` column to filter on.

    Example:
        >>> import pandas as pd
        >>> ebd = pd.DataFrame({"LATITUDE": [44.0], "LONGITUDE": [-71.3],
        ...                     "SCIENTIFIC NAME": ["Setophaga virens"],
        ...                     "OBSERVATION DATE": ["2021-06-14"], "CATEGORY": ["species"]})
        >>> ebird_plan(ebd).select
        ('CATEGORY', ('species',))
    """
    if categories is not None:
        if isinstance(categories, str):
            categories = (categories,)
        categories = tuple(categories)
        if not categories or not all(isinstance(c, str) for c in categories):
            raise ConfigError(
                f"categories must be a non-empty sequence of CATEGORY values such as "
                f"{EBIRD_CATEGORIES}, or None; got {categories!r}"
            )
    table = open_table(source, encoding=encoding, chunksize=chunksize, quoting=None)
    defaults = {
        "lat": find_column(table.columns, "LATITUDE"),
        "lon": find_column(table.columns, "LONGITUDE"),
        "species": find_column(table.columns, "SCIENTIFIC NAME"),
        "date": find_column(table.columns, "OBSERVATION DATE"),
        "site": find_column(table.columns, "SAMPLING EVENT IDENTIFIER"),
    }
    cols = guess_columns(
        table.columns,
        table.where,
        defaults={k: v for k, v in defaults.items() if v is not None},
        **column_mapping,
    )
    select = None
    if categories is not None:
        category = find_column(table.columns, "CATEGORY")
        if category is None:
            raise ConfigError(
                f"{table.where}: no CATEGORY column to filter on; pass categories=None "
                f"to keep every row"
            )
        select = (category, categories)
    return ReadPlan(table=table, cols=cols, select=select)
