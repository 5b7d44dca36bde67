"""iNaturalist: competition metadata (COCO-style JSON) and observation CSV exports.

* Competition JSON (iNat 2017-2021): ``images``, ``annotations`` (``image_id`` ->
  ``category_id``) and ``categories``. Locations are on each image (2021: ``latitude``,
  ``longitude``, ``date``) or in a separate locations file (2017/2018: a JSON list of
  ``{id, lat, lon, date}`` keyed by image id, passed as ``locations=``). One row per
  image (per annotation if an image has several), in the order of the image records; then
  one row per annotation of an image id that no image has, which is invalid, as are the
  second and later records of an image id (``on_invalid`` applies).
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
    PROBLEM,
    ReadPlan,
    binary_opener,
    check_encoding,
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
_ANN_PROBLEM = "\x00annotation problem"


def read_inat_csv(
    source,
    *,
    on_invalid: str = "raise",
    lon_360: bool = False,
    chunksize: int = 1_000_000,
    encoding: str | None = None,
    merge_case: bool = False,
    **column_mapping,
) -> Observations:
    """Read an iNaturalist observation export (CSV) or a DataFrame of one.

    Args:
        merge_case: merge species whose names differ only by case (see
            :func:`geoprior.io.read_table`).
        column_mapping: ``lat=, lon=, species=, date=, site=, covariates=`` override the
            export's columns.

    Example:
        >>> obs = read_inat_csv("observations-123456.csv")  # doctest: +SKIP
    """
    plan = inat_csv_plan(source, encoding=encoding, chunksize=chunksize, **column_mapping)
    return observations_from_table(
        plan, on_invalid=on_invalid, lon_360=lon_360, merge_case=merge_case
    )


def inat_csv_plan(
    source, *, encoding: str | None = None, chunksize: int = 1_000_000, **column_mapping
) -> ReadPlan:
    """How :func:`read_inat_csv` reads ``source`` (the arguments are its): the export's
    columns, unless ``column_mapping`` names others.

    Example:
        >>> df = pd.DataFrame({"latitude": [44.0], "longitude": [-71.3],
        ...                    "scientific_name": ["Setophaga virens"],
        ...                    "observed_on": ["2021-06-14"]})
        >>> inat_csv_plan(df).cols.date  # or a path: "observations-123456.csv"
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
    """A JSON file (``.gz``, ``.bz2``, ``.xz`` decompressed) parsed, and its name."""
    if not isinstance(source, (str, os.PathLike)):
        return source, f"the {what}"
    path = check_path(source)
    encoding = encoding or "utf-8-sig"
    check_encoding(encoding, str(path))
    open_binary = binary_opener(path)
    with open_binary() as fh:
        raw = fh.read()
    try:
        return json.loads(raw.decode(encoding)), str(path)
    except UnicodeDecodeError:
        raise encoding_error(str(path), open_binary, encoding) from None
    except json.JSONDecodeError as e:
        raise FormatError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except RecursionError:
        raise FormatError(
            f"{path}: JSON nested too deeply to read (iNaturalist metadata is a few levels "
            f"deep); is this the {what} file?"
        ) from None


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
    merge_case: bool = False,
) -> Observations:
    """Read iNaturalist competition metadata (``train2018.json``, ``train.json`` ...).

    Args:
        source: the COCO-style JSON file (or its parsed dict).
        locations: 2017/2018 style: the locations file (``train2018_locations.json``) or
            its parsed list of ``{id, lat, lon, date}``. Not needed when images carry
            ``latitude``/``longitude`` (2021 style).
        merge_case: merge species whose names differ only by case (see
            :func:`geoprior.io.read_table`).

    Images without an annotation have no species, and images without a location no
    coordinates: both are invalid rows (``on_invalid`` applies). So are an annotation of an
    image id that no image has, an annotation of a ``category_id`` that no category has
    (reason ``"unknown category"``), and the second and later records of an image id
    (whose annotations apply to the first only).

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
    ann["species"] = ann["category_id"].map(names)
    rows = _image_rows(images, ann, names)
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
        ReadPlan(table=table, cols=cols),
        on_invalid=on_invalid,
        lon_360=lon_360,
        merge_case=merge_case,
    )


def _image_rows(images: pd.DataFrame, ann: pd.DataFrame, names: dict) -> pd.DataFrame:
    """One row per image and annotation, in image order; then the annotations of image ids
    no image has. Those, repeated image records and annotations of a category_id that is not
    in ``names`` are marked in :data:`PROBLEM`."""
    marks = np.full(len(ann), None, dtype=object)
    category = ann["category_id"].tolist()
    for i in np.flatnonzero(~ann["category_id"].isin(list(names)).to_numpy()):
        marks[i] = (
            "unknown category",
            "are annotations of a category_id not in categories",
            f"annotation {i} names category_id {category[i]!r}",
        )
    ann = ann.assign(**{_ANN_PROBLEM: marks})
    images = images.assign(**{PROBLEM: None})
    again = images["id"].duplicated().to_numpy()
    if again.any():
        first = dict(zip(images["id"][~again].tolist(), np.flatnonzero(~again).tolist()))
        images.loc[again, PROBLEM] = pd.Series(
            [
                (
                    "duplicate image id",
                    "repeat the id of an earlier image record",
                    f"id {v!r} (first at row {first[v]})",
                )
                for v in images["id"][again]
            ],
            index=images.index[again],
            dtype=object,
        )
    order = "\x00record"
    images[order] = np.arange(len(images))
    rows = images[~again].merge(
        ann[["image_id", "species", _ANN_PROBLEM]],
        how="left",
        left_on="id",
        right_on="image_id",
        sort=False,
    )
    rows[PROBLEM] = rows[PROBLEM].where(rows[PROBLEM].notna(), rows.pop(_ANN_PROBLEM))
    orphan = ~ann["image_id"].isin(images["id"]).to_numpy()
    orphans = pd.DataFrame(
        {
            "id": ann["image_id"][orphan].to_numpy(),
            "species": ann["species"][orphan].to_numpy(),
            PROBLEM: pd.Series(
                [
                    (
                        "annotation of a missing image",
                        "are annotations of an image id no image has",
                        f"annotation {i} names image_id {v!r}",
                    )
                    for i, v in zip(np.flatnonzero(orphan), ann["image_id"][orphan])
                ],
                dtype=object,
            ),
            order: len(images),
        }
    )
    parts = [rows, *(p for p in (images[again], orphans) if len(p))]
    rows = pd.concat(parts, ignore_index=True, sort=False)
    rows = rows.sort_values(order, kind="stable").drop(columns=[order, "image_id"], errors="ignore")
    return rows.reset_index(drop=True)
