"""iNaturalist: competition metadata (COCO-style JSON) and observation CSV exports.

* Competition JSON (iNat 2017-2021): ``images``, ``annotations`` (``image_id`` ->
  ``category_id``) and ``categories``. Locations are on each image (2021: ``latitude``,
  ``longitude``, ``date``) or in a separate locations file (2017/2018: a JSON list of
  ``{id, lat, lon, date}`` keyed by image id, passed as ``locations=``). One row per
  image (per annotation if an image has several); row N is the N-th image record.
* Observation CSV exports: ``latitude, longitude, observed_on, scientific_name``, with
  ``user_login`` (or ``user_id``) as the site/observer id.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import FormatError
from ..observations import Observations
from ..validation import check_on_invalid
from .table import (
    ReadPlan,
    check_path,
    encoding_error,
    find_column,
    frame_table,
    guess_columns,
    observations_from_table,
    open_table,
)

__all__ = ["inat_csv_plan", "read_inat_csv", "read_inat_json"]

_COCO_KEYS = ("images", "annotations", "categories")


def read_inat_csv(
    source,
    *,
    on_invalid: str = "raise",
    lon_360: bool = False,
    chunksize: int = 1_000_000,
    encoding: str | None = None,
    **column_mapping,
) -> Observations:
    """Read an iNaturalist observation export (CSV) or a DataFrame of one.

    Args:
        column_mapping: ``lat=, lon=, species=, date=, site=, covariates=`` override the
            export's columns.

    Example:
        >>> obs = read_inat_csv("observations-123456.csv")  # doctest: +SKIP
    """
    plan = inat_csv_plan(source, encoding=encoding, chunksize=chunksize, **column_mapping)
    return observations_from_table(plan, on_invalid=on_invalid, lon_360=lon_360)


def inat_csv_plan(
    source, *, encoding: str | None = None, chunksize: int = 1_000_000, **column_mapping
) -> ReadPlan:
    """How :func:`read_inat_csv` reads ``source`` (the arguments are its): the export's
    columns, unless ``column_mapping`` names others.

    Example:
        >>> inat_csv_plan("observations-123456.csv").cols.date  # doctest: +SKIP
        'observed_on'
    """
    table = open_table(source, encoding=encoding, chunksize=chunksize)
    defaults = {
        "lat": find_column(table.columns, "latitude"),
        "lon": find_column(table.columns, "longitude"),
        "species": find_column(table.columns, "scientific_name"),
        "date": find_column(table.columns, "observed_on"),
        "site": find_column(table.columns, "user_login", "user_id"),
    }
    cols = guess_columns(
        table.columns,
        table.where,
        defaults={k: v for k, v in defaults.items() if v is not None},
        **column_mapping,
    )
    return ReadPlan(table=table, cols=cols)


def _load_json(source, what: str, encoding: str | None):
    if not isinstance(source, (str, os.PathLike)):
        return source, f"the {what}"
    path = check_path(source)
    encoding = encoding or "utf-8-sig"
    try:
        with open(path, encoding=encoding) as fh:
            return json.load(fh), str(path)
    except UnicodeDecodeError:
        raise encoding_error(str(path), lambda: open(path, "rb"), encoding) from None
    except json.JSONDecodeError as e:
        raise FormatError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None


def _species_names(categories: Sequence[dict], where: str) -> dict:
    """Category id -> species name: ``genus specific_epithet`` (iNat 2021, whose ``name``
    is a long id such as ``00000_Animalia_..._Lumbricus_terrestris``), else ``name``."""
    names = {}
    for cat in categories:
        if "id" not in cat:
            raise FormatError(f"{where}: a category has no 'id': {cat!r}")
        genus, epithet = cat.get("genus"), cat.get("specific_epithet")
        names[cat["id"]] = f"{genus} {epithet}" if genus and epithet else cat.get("name")
    return names


def read_inat_json(
    source,
    *,
    locations=None,
    on_invalid: str = "raise",
    lon_360: bool = False,
    encoding: str | None = None,
) -> Observations:
    """Read iNaturalist competition metadata (``train2018.json``, ``train.json`` ...).

    Args:
        source: the COCO-style JSON file (or its parsed dict).
        locations: 2017/2018 style: the locations file (``train2018_locations.json``) or
            its parsed list of ``{id, lat, lon, date}``. Not needed when images carry
            ``latitude``/``longitude`` (2021 style).

    Images without an annotation have no species, and images without a location no
    coordinates: both are invalid rows (``on_invalid`` applies).

    Example:
        >>> obs = read_inat_json("train2018.json",
        ...                      locations="train2018_locations.json")  # doctest: +SKIP
    """
    check_on_invalid(on_invalid)
    meta, where = _load_json(source, "iNaturalist metadata", encoding)
    if isinstance(meta, list) and meta and isinstance(meta[0], dict) and "lat" in meta[0]:
        raise FormatError(
            f"{where}: this looks like a locations file (a list of {{id, lat, lon}}); pass "
            f"the metadata JSON as the source and this file as locations="
        )
    if not isinstance(meta, dict) or not all(k in meta for k in _COCO_KEYS):
        found = sorted(meta) if isinstance(meta, dict) else type(meta).__name__
        raise FormatError(
            f"{where}: expected iNaturalist metadata with keys {list(_COCO_KEYS)}; found {found}"
        )
    images = pd.DataFrame(meta["images"])
    if images.empty:
        images = pd.DataFrame(columns=["id"])
    if "id" not in images.columns:
        raise FormatError(f"{where}: image records have no 'id'")
    names = _species_names(meta["categories"], where)
    ann = pd.DataFrame(meta["annotations"], columns=["image_id", "category_id"])
    unknown = ~ann["category_id"].isin(list(names))
    if unknown.any():
        i = int(np.flatnonzero(unknown.to_numpy())[0])
        raise FormatError(
            f"{where}: {int(unknown.sum())} of {len(ann)} annotations name a category_id "
            f"not in categories; first: annotation {i} = {ann['category_id'].iloc[i]!r}"
        )
    ann["species"] = ann["category_id"].map(names)
    rows = images.merge(
        ann[["image_id", "species"]], how="left", left_on="id", right_on="image_id", sort=False
    )
    if "latitude" in images.columns or "longitude" in images.columns:
        lat, lon, date = "latitude", "longitude", "date"
    elif locations is None:
        raise FormatError(
            f"{where}: images have no latitude/longitude; pass the locations file "
            f"(e.g. train2018_locations.json) as locations="
        )
    else:
        locs, loc_where = _load_json(locations, "locations", encoding)
        if not isinstance(locs, list):
            raise FormatError(f"{loc_where}: expected a JSON list of {{id, lat, lon, date}}")
        locs = pd.DataFrame(locs, columns=["id", "lat", "lon", "date"])
        dup = locs["id"].duplicated()
        if dup.any():
            raise FormatError(
                f"{loc_where}: {int(dup.sum())} image ids appear more than once; first: "
                f"{locs['id'][dup].iloc[0]!r}"
            )
        rows = rows.drop(columns=[c for c in ("lat", "lon", "date") if c in rows.columns])
        rows = rows.merge(locs, how="left", on="id", sort=False)
        lat, lon, date = "lat", "lon", "date"
        where = f"{where} with {loc_where}"
    for col in (lat, lon, date):
        if col not in rows.columns:
            rows[col] = None
    table = frame_table(rows.reset_index(drop=True), where)
    cols = guess_columns(table.columns, where, lat=lat, lon=lon, species="species", date=date)
    return observations_from_table(
        ReadPlan(table=table, cols=cols), on_invalid=on_invalid, lon_360=lon_360
    )
