"""Validation of coordinates, dates and species names where user data enters.

Readers call these with ``on_invalid="raise"`` or ``"drop"``; public functions that take
``lat, lon`` call :func:`check_lat_lon`. The jitted core assumes clean input.
"""

from __future__ import annotations

import datetime as _dt
import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from .errors import (
    ClassMismatchError,
    ConfigError,
    CoordinateError,
    DateError,
    GeopriorError,
    NonFiniteError,
    SpeciesNameError,
    describe_bad,
    show,
)

__all__ = [
    "YEAR_ONLY",
    "InvalidRows",
    "ParsedDates",
    "check_covariates",
    "check_lat_lon",
    "check_positive_int",
    "coordinate_array",
    "coordinate_problems",
    "parse_dates",
]

ON_INVALID = ("raise", "drop")
_MIN_YEAR = 1600


@dataclass
class InvalidRows:
    """What a reader read, kept, dropped and removed, and why.

    Every row read is kept, dropped or removed: ``rows_read == rows_kept + n_dropped +
    n_removed``. Counts are kept per reason, so the reports of chunks and files add up
    (:meth:`merge`).

    Attributes:
        rows_read, rows_kept: rows as read, and rows kept.
        dropped: invalid rows dropped under ``on_invalid="drop"``, ``{reason: rows}``.
        removed: valid rows that the reader filters out by design (eBird rows of another
            ``CATEGORY``), ``{reason: rows}``; never an error, whatever ``on_invalid``.
        counted: kept rows worth a note, ``{what they are: rows}``, shown in :attr:`notes`
            as ``"N of rows_read <what>"`` (e.g. dates that give only a year).
        remarks: other notes, as text (species names that differ only by case ...).

    Example:
        >>> a = InvalidRows(10, 10, counted={"dates give only a year": 6})
        >>> a.merge(InvalidRows(10, 9, removed={"CATEGORY 'spuh'": 1}))
        >>> a.notes
        ['6 of 20 dates give only a year', "removed 1 of 20 rows filtered out by design (not errors): 1 with CATEGORY 'spuh'"]
    """

    rows_read: int = 0
    rows_kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)
    counted: dict[str, int] = field(default_factory=dict)
    remarks: list[str] = field(default_factory=list)

    @property
    def n_dropped(self) -> int:
        return int(sum(self.dropped.values()))

    @property
    def n_removed(self) -> int:
        return int(sum(self.removed.values()))

    @property
    def notes(self) -> list[str]:
        """Everything noted, as text: the counted rows, the removed rows, the remarks."""
        notes = [f"{count} of {self.rows_read} {what}" for what, count in self.counted.items()]
        if self.removed:
            notes.append(
                f"removed {self.n_removed} of {self.rows_read} rows filtered out by design "
                f"(not errors): {_per_reason(self.removed, ', ', 'with ')}"
            )
        return notes + list(self.remarks)

    def add(self, reason: str, count: int) -> None:
        """Count ``count`` rows dropped as invalid for ``reason``."""
        _add(self.dropped, reason, count)

    def remove(self, reason: str, count: int) -> None:
        """Count ``count`` valid rows removed by design for ``reason`` (not kept)."""
        _add(self.removed, reason, count)

    def count(self, what: str, count: int) -> None:
        """Count ``count`` rows that are ``what`` (a note, e.g. "dates give only a year")."""
        _add(self.counted, what, count)

    def note(self, text: str) -> None:
        """Add a remark (once)."""
        if text not in self.remarks:
            self.remarks.append(text)

    def merge(self, other: InvalidRows) -> None:
        """Add ``other``'s rows and counts to these."""
        self.rows_read += other.rows_read
        self.rows_kept += other.rows_kept
        for mine, theirs in (
            (self.dropped, other.dropped),
            (self.removed, other.removed),
            (self.counted, other.counted),
        ):
            for reason, count in theirs.items():
                _add(mine, reason, count)
        for text in other.remarks:
            self.note(text)

    def copy(self) -> InvalidRows:
        return InvalidRows.from_dict(self.as_dict())

    def as_dict(self) -> dict:
        """The report as JSON-ready values (with the :attr:`notes` as text, for people)."""
        return {
            "rows_read": int(self.rows_read),
            "rows_kept": int(self.rows_kept),
            "dropped": dict(self.dropped),
            "removed": dict(self.removed),
            "counted": dict(self.counted),
            "remarks": list(self.remarks),
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, data: dict) -> InvalidRows:
        """Read :meth:`as_dict` back; a report saved before ``counted`` and ``remarks``
        existed keeps its ``notes`` as remarks."""
        remarks = data["remarks"] if "remarks" in data else data.get("notes", [])
        return cls(
            rows_read=int(data.get("rows_read", 0)),
            rows_kept=int(data.get("rows_kept", 0)),
            dropped=dict(data.get("dropped", {})),
            removed=dict(data.get("removed", {})),
            counted=dict(data.get("counted", {})),
            remarks=list(remarks),
        )

    def summary(self) -> str:
        if not self.dropped and not self.removed:
            return f"read {self.rows_read} rows, kept all"
        out = f"read {self.rows_read} rows, kept {self.rows_kept}"
        if self.dropped:
            out += f", dropped {self.n_dropped}: {_per_reason(self.dropped, '; ')}"
        if self.removed:
            out += f", removed {self.n_removed} by design: {_per_reason(self.removed, '; ')}"
        return out


def _add(counts: dict[str, int], reason: str, count: int) -> None:
    if count:
        counts[reason] = counts.get(reason, 0) + int(count)


def _per_reason(counts: dict[str, int], sep: str, prefix: str = "") -> str:
    return sep.join(f"{v} {prefix}{k}" for k, v in sorted(counts.items()))


def check_on_invalid(on_invalid: str) -> None:
    if on_invalid not in ON_INVALID:
        raise GeopriorError(f"on_invalid must be 'raise' or 'drop', got {on_invalid!r}")


def _as_float(values) -> tuple[np.ndarray, np.ndarray]:
    """Numbers as float64, and a mask of entries present but not numeric (e.g. "52.1N")."""
    raw = np.asarray(values)
    if raw.dtype.kind in "biuf":
        return raw.astype(float).ravel(), np.zeros(raw.size, bool)
    raw = np.asarray(values, dtype=object).ravel()
    num = pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy(dtype=float)
    text = pd.Series(raw).astype(str).str.strip()
    present = ~pd.isna(raw) & ~text.isin(["", "NA", "NaN", "nan", "None"]).to_numpy()
    return num, np.isnan(num) & present


def coordinate_problems(
    lat, lon, *, lon_360: bool = False, offset: int = 0
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict[str, str]]:
    """Find invalid coordinates.

    Returns ``(lat, lon, masks, messages)``: float64 arrays (longitudes in 0..360 already
    shifted to -180..180 when ``lon_360``), a boolean mask per reason and a message per
    reason in the standard form. ``offset`` is added to row numbers in messages.
    """
    lat_raw, lon_raw = lat, lon
    lat, lat_text = _as_float(lat)
    lon, lon_text = _as_float(lon)
    if lat.shape != lon.shape:
        raise CoordinateError(f"got {lat.size} latitudes but {lon.size} longitudes")
    rows = np.arange(lat.size) + offset
    masks: dict[str, np.ndarray] = {}
    messages: dict[str, str] = {}

    def note(reason: str, what: str, values: np.ndarray, bad: np.ndarray, expected: str):
        if bad.any():
            masks[reason] = bad
            i = int(np.flatnonzero(bad)[0])
            messages[reason] = (
                f"{int(bad.sum())} of {bad.size} {what} {expected}; "
                f"first: row {rows[i]} = {show(values[i])}"
            )

    raw_lat, raw_lon = (
        np.asarray(lat_raw, dtype=object).ravel(),
        np.asarray(lon_raw, dtype=object).ravel(),
    )
    note("non-numeric latitude", "latitudes", raw_lat, lat_text, "are not numbers")
    note("non-numeric longitude", "longitudes", raw_lon, lon_text, "are not numbers")
    note(
        "missing latitude",
        "latitudes",
        lat,
        np.isnan(lat) & ~lat_text,
        "are missing (NaN or empty)",
    )
    note(
        "missing longitude",
        "longitudes",
        lon,
        np.isnan(lon) & ~lon_text,
        "are missing (NaN or empty)",
    )
    note("infinite latitude", "latitudes", lat, np.isinf(lat), "are infinite")
    note("infinite longitude", "longitudes", lon, np.isinf(lon), "are infinite")
    with np.errstate(invalid="ignore"):
        fin_lat, fin_lon = np.isfinite(lat), np.isfinite(lon)
        note(
            "latitude out of range",
            "latitudes",
            lat,
            fin_lat & (np.abs(lat) > 90),
            "outside [-90, 90]",
        )
        if lon_360:
            bad = fin_lon & ((lon < 0) | (lon > 360))
            note("longitude out of range", "longitudes", lon, bad, "outside [0, 360]")
            lon = np.where(lon > 180, lon - 360, lon)
        else:
            bad = fin_lon & (np.abs(lon) > 180)
            hint = " (for 0..360 longitudes pass lon_360=True)" if (lon[bad] <= 360).all() else ""
            note("longitude out of range", "longitudes", lon, bad, "outside [-180, 180]" + hint)
    return lat, lon, masks, messages


def coordinate_array(values, what: str) -> np.ndarray:
    """Query coordinates as a 1-D array (one number becomes a length-1 array). Anything but
    real numbers (or missing values) in one dimension raises :class:`CoordinateError`:
    booleans, complex numbers, dates, 2-D arrays, ragged lists.

    >>> coordinate_array(44.0, "latitudes")
    array([44.])
    """
    expected = f"{what} must be a 1-D array of real numbers (or one number)"
    try:
        a = np.atleast_1d(np.asarray(values))
    except ValueError as e:  # ragged nesting
        raise CoordinateError(f"{expected}, got a ragged sequence ({e})") from None
    if a.ndim != 1 or a.dtype.kind in "bcmMV":
        raise CoordinateError(f"{expected}, got a {a.dtype} array of shape {a.shape}")
    if a.dtype.kind == "O":
        odd = np.array([isinstance(v, (bool, np.bool_, complex, np.complexfloating)) for v in a])
        if odd.any():
            raise CoordinateError(
                f"{expected}; " + describe_bad(what, a, odd, "are booleans or complex numbers")
            )
    return a


def check_lat_lon(lat, lon, *, lon_360: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Validate query coordinates for a public function; raise on any problem.

    Returns float64 1-d arrays (scalars become length-1 arrays).

    >>> check_lat_lon(44.0, -71.3)
    (array([44.]), array([-71.3]))
    """
    lat, lon, _, messages = coordinate_problems(
        coordinate_array(lat, "latitudes"), coordinate_array(lon, "longitudes"), lon_360=lon_360
    )
    if messages:
        raise CoordinateError("; ".join(messages.values()))
    return lat, lon


_ISO = r"^\s*(\d{1,5})(?:[-/](\d{1,2})(?:[-/](\d{1,2}))?)?(?:[T ].*)?\s*$"
_INTERVAL = r"\d/\d{4}"  # a GBIF eventDate interval: "2010-05-01/2010-05-09"
#: What :func:`parse_dates` counts (not a problem: such dates are kept as undated).
YEAR_ONLY = "dates give only a year; they are kept as undated"


class ParsedDates(NamedTuple):
    """What :func:`parse_dates` returns.

    Attributes:
        dates: ``datetime64[D]``, ``NaT`` where missing, invalid or only a year.
        masks: ``{reason: mask}`` of invalid dates (``"unparsable date"``,
            ``"impossible date"``), like :func:`coordinate_problems`.
        messages: ``{reason: message}`` for each mask, in the standard form.
        counted: ``{what: rows}`` of valid dates worth a note (:data:`YEAR_ONLY`), for
            :meth:`InvalidRows.count`.
    """

    dates: np.ndarray
    masks: dict[str, np.ndarray]
    messages: dict[str, str]
    counted: dict[str, int]


def parse_dates(values, *, offset: int = 0) -> ParsedDates:
    """Parse dates to ``datetime64[D]`` with ``NaT`` where the date is missing.

    Accepts datetime-like arrays, ISO strings (``2021-06-14``, ``2021-06-14T09:23:00Z``,
    ``2021-06-14 09:23``, ``2021/06/14``), GBIF intervals (``2010-05-01/2010-05-09``: the
    middle day), month precision (``2021-06`` -> the 15th) and year precision (``2021`` ->
    undated, counted). An interval is as good as its worse end: one whose start or end is
    unparsable or impossible (``2021-02-30/2021-13-45``, ``2021-06-01/2999-01-01``) is an
    unparsable or impossible date (the start's problem first), named by the whole
    interval; one whose start or end gives only a year (``2010/2012``) is undated, counted.
    ``offset`` is added to row numbers in messages.

    Example:
        >>> dates, masks, messages, counted = parse_dates(["2021-06-14", "2021-06-01/2999-01-01"])
        >>> dates, list(masks)
        (array(['2021-06-14',        'NaT'], dtype='datetime64[D]'), ['impossible date'])
    """
    arr = np.asarray(values)
    n = arr.size
    masks: dict[str, np.ndarray] = {}
    messages: dict[str, str] = {}
    counted: dict[str, int] = {}
    if np.issubdtype(arr.dtype, np.datetime64):
        return ParsedDates(arr.astype("datetime64[D]").ravel(), masks, messages, counted)
    s = pd.Series(arr.ravel(), dtype=object)
    if len(s) and s.map(lambda v: isinstance(v, (_dt.date, pd.Timestamp))).any():
        s = s.map(lambda v: v.isoformat() if isinstance(v, (_dt.date, pd.Timestamp)) else v)
    missing = (
        s.isna().to_numpy()
        | s.astype(str).str.strip().isin(["", "NA", "NaN", "nan", "NaT", "None"]).to_numpy()
    )
    text = s.where(~missing, "").astype(str)
    interval = (
        text.str.contains(_INTERVAL, regex=True) & text.str.count("/").eq(1)
    ).to_numpy() & ~missing
    out, flags = _parse_text(text.where(~interval, ""), ~missing & ~interval)
    if interval.any():
        at = np.flatnonzero(interval)
        ends = text[interval].str.split("/", n=1, expand=True)
        start, a = _parse_text(ends[0], np.ones(at.size, bool))
        end, b = _parse_text(ends[1], np.ones(at.size, bool))
        out[at] = start + (end - start) // 2  # NaT when either end is
        a_bad = a["unparsable date"] | a["impossible date"]
        b_bad = b["unparsable date"] | b["impossible date"]
        for reason in ("unparsable date", "impossible date"):
            flags[reason][at] = a[reason] | (b[reason] & ~a_bad)
        flags[YEAR_ONLY][at] = (a[YEAR_ONLY] | b[YEAR_ONLY]) & ~a_bad & ~b_bad
    raw = arr.ravel()
    this_year = _dt.date.today().year
    expected = {
        "unparsable date": "could not be parsed (expected YYYY-MM-DD or ISO 8601)",
        "impossible date": (
            f"are impossible (year outside {_MIN_YEAR}..{this_year + 1}, month or day out "
            f"of range)"
        ),
    }
    for reason, what in expected.items():
        bad = flags[reason]
        if bad.any():
            masks[reason] = bad
            i = int(np.flatnonzero(bad)[0])
            messages[reason] = (
                f"{int(bad.sum())} of {n} dates {what}; first: row {i + offset} = {show(raw[i])}"
            )
    if flags[YEAR_ONLY].any():
        counted[YEAR_ONLY] = int(flags[YEAR_ONLY].sum())
    return ParsedDates(out, masks, messages, counted)


def _parse_text(text: pd.Series, todo: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Dates of the ``todo`` rows of ``text`` (no intervals), ``NaT`` elsewhere, and masks of
    the rows that are an ``"unparsable date"``, an ``"impossible date"`` or :data:`YEAR_ONLY`."""
    n = len(text)
    m = text.str.extract(_ISO)
    y = pd.to_numeric(m[0], errors="coerce").to_numpy()
    mo = pd.to_numeric(m[1], errors="coerce").to_numpy()
    d = pd.to_numeric(m[2], errors="coerce").to_numpy()
    unparsable = todo & np.isnan(y)
    year_only = todo & ~np.isnan(y) & np.isnan(mo)
    month_only = todo & ~np.isnan(mo) & np.isnan(d)
    d = np.where(month_only, 15, d)
    full = todo & ~np.isnan(y) & ~np.isnan(mo)
    this_year = _dt.date.today().year
    with np.errstate(invalid="ignore"):
        bad_year = full & ((y < _MIN_YEAR) | (y > this_year + 1))
        bad_month = full & ~bad_year & ((mo < 1) | (mo > 12))
        ok = full & ~bad_year & ~bad_month
        month_start = np.zeros(n, dtype="datetime64[D]")
        month_start[ok] = (
            ((y[ok].astype(int) - 1970) * 12 + (mo[ok].astype(int) - 1))
            .astype("datetime64[M]")
            .astype("datetime64[D]")
        )
        next_month = np.zeros(n, dtype="datetime64[D]")
        next_month[ok] = (month_start[ok].astype("datetime64[M]") + 1).astype("datetime64[D]")
        days_in_month = (next_month - month_start).astype(int)
        bad_day = ok & ((d < 1) | (d > days_in_month))
    good = ok & ~bad_day
    out = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    out[good] = month_start[good] + (d[good].astype(int) - 1)
    flags = {
        "unparsable date": unparsable,
        "impossible date": bad_year | bad_month | bad_day,
        YEAR_ONLY: year_only,
    }
    return out, flags


def check_species_names(
    names, *, offset: int = 0
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, str]]:
    """Strip species names; flag empty or missing ones."""
    s = pd.Series(np.asarray(names, dtype=object).ravel(), dtype=object)
    missing = s.isna().to_numpy()
    text = s.where(~missing, "").astype(str).str.strip().str.replace(r"\s+", " ", regex=True)
    bad = missing | text.eq("").to_numpy() | text.str.lower().isin(["nan", "na", "none"]).to_numpy()
    masks, messages = {}, {}
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        masks["empty species name"] = bad
        messages["empty species name"] = (
            f"{int(bad.sum())} of {bad.size} species names are empty or missing; "
            f"first: row {i + offset} = {show(s.iloc[i])}"
        )
    return text.to_numpy(dtype=object), masks, messages


def resolve(
    masks: dict[str, np.ndarray],
    messages: dict[str, str],
    on_invalid: str,
    report: InvalidRows,
    errors: dict[str, type[GeopriorError]],
    where: str = "",
) -> np.ndarray | None:
    """Apply ``on_invalid`` to collected problems: raise the first, or return a keep-mask.

    ``errors`` maps each reason to the error class to raise. Returns ``None`` when nothing
    is invalid.
    """
    if not masks:
        return None
    if on_invalid == "raise":
        reason = next(iter(masks))
        prefix = f"{where}: " if where else ""
        raise errors.get(reason, GeopriorError)(
            prefix + messages[reason] + " (pass on_invalid='drop' to drop such rows)"
        )
    n = next(iter(masks.values())).size
    drop = np.zeros(n, bool)
    for reason, mask in masks.items():
        report.add(reason, int((mask & ~drop).sum()))
        drop |= mask
    return ~drop


ERROR_FOR_REASON: dict[str, type[GeopriorError]] = {
    "non-numeric latitude": CoordinateError,
    "non-numeric longitude": CoordinateError,
    "missing latitude": CoordinateError,
    "missing longitude": CoordinateError,
    "infinite latitude": CoordinateError,
    "infinite longitude": CoordinateError,
    "latitude out of range": CoordinateError,
    "longitude out of range": CoordinateError,
    "unparsable date": DateError,
    "impossible date": DateError,
    "empty species name": SpeciesNameError,
}


def warn_dropped(report: InvalidRows, where: str) -> None:
    if report.dropped:
        warnings.warn(f"{where}: {report.summary()}", stacklevel=3)


def check_positive_int(name: str, value) -> int:
    """``value`` as an ``int`` when it is an integer >= 1 (never a bool); else ConfigError
    naming ``name``.

    >>> check_positive_int("k", 3)
    3
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(
            f"{name} must be >= 1 (a positive integer), got {value!r} ({type(value).__name__})"
        )
    return int(value)


def check_covariates(covariates, names, n: int) -> np.ndarray | None:
    """A prior's ``covariates=`` argument for ``n`` places as a float64 ``(n, c)`` array
    (``c = len(names)``, the covariate columns the prior was trained with, in order), as
    given (not standardised); ``None`` for a prior without covariates. One value per place
    is accepted for a single covariate, and ``c`` values for a single place.

    >>> check_covariates([1.0, 2.0], ["elevation"], 2).tolist()
    [[1.0], [2.0]]
    """
    names = tuple(names)
    if not names:
        if covariates is not None:
            raise ClassMismatchError("this prior was trained without covariates; do not pass any")
        return None
    if covariates is None:
        raise ClassMismatchError(f"this prior needs covariates {list(names)} for every query")
    cov = np.asarray(covariates, np.float64)
    c = len(names)
    if cov.ndim <= 1:
        cov = cov.reshape(-1)
        if c == 1:  # one value per place
            if cov.size != n:
                raise ClassMismatchError(
                    f"got {cov.size} values of covariate {names[0]!r} for {n} places "
                    "(give one per place)"
                )
            cov = cov[:, None]
        elif n == 1:  # one place, its c covariates
            if cov.size != c:
                raise ClassMismatchError(
                    f"got {cov.size} covariate values for one place, expected {c} "
                    f"for columns {list(names)}"
                )
            cov = cov[None, :]
        else:
            raise ClassMismatchError(
                f"covariates are 1-D (length {cov.size}), which is ambiguous for {n} "
                f"places and {c} columns {list(names)}: give a ({n}, {c}) array"
            )
    if cov.shape != (n, c):
        raise ClassMismatchError(
            f"covariates have shape {cov.shape}, expected ({n}, {c}) for columns {list(names)}"
        )
    bad = ~np.isfinite(cov).all(1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise NonFiniteError(
            f"{int(bad.sum())} of {n} covariate rows are not finite; first: row {i}"
        )
    return cov
