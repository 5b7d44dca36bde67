"""Every error geoprior raises.

Each class derives from :class:`GeopriorError` *and* from the built-in error a caller
would expect, so ``except ValueError`` and ``except GeopriorError`` both work.

Messages say what was expected, what came, how many, and the first offending row:
``"3 of 10000 latitudes outside [-90, 90]; first: row 17 = 91.2"``.
"""

from __future__ import annotations

import difflib
import os
import sys
import warnings
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = [
    "GeopriorError",
    "CoordinateError",
    "DateError",
    "SpeciesNameError",
    "UnknownSpeciesError",
    "FormatError",
    "MissingFileError",
    "FileEncodingError",
    "NonFiniteError",
    "ClassMismatchError",
    "PriorFileError",
    "ConfigError",
    "OutputExistsError",
    "EmptyDataError",
    "MissingDependencyError",
    "RowIndexError",
    "PathError",
    "TrainingDivergedError",
    "RasterError",
    "CoverageError",
]
# the warnings (GeopriorWarning and its kinds) are public too, listed apart: __all__ is the
# error family
WARNINGS = ["GeopriorWarning", "ProbabilitiesAsLogitsWarning", "SwappedCoordinatesWarning",
            "OutsideExtentWarning"]


class GeopriorError(Exception):
    """Base class of every error raised by geoprior."""


class CoordinateError(GeopriorError, ValueError):
    """Latitudes or longitudes that are missing, non-finite or out of range."""


class DateError(GeopriorError, ValueError):
    """Dates that cannot be parsed or are impossible (e.g. 2021-02-30, year 20210)."""


class SpeciesNameError(GeopriorError, ValueError):
    """Species names that are empty or missing."""


class UnknownSpeciesError(GeopriorError, KeyError):
    """A species name that the prior or vocabulary does not know."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class MissingFileError(GeopriorError, FileNotFoundError):
    """An input file that does not exist."""


class FormatError(GeopriorError, ValueError):
    """A file or table whose format or columns are not what a reader expects."""


class FileEncodingError(GeopriorError, UnicodeError):
    """A text file that is not in the expected character encoding."""


class NonFiniteError(GeopriorError, ValueError):
    """NaN or infinite values where finite numbers are required (e.g. logits)."""


class ClassMismatchError(GeopriorError, ValueError):
    """Class lists or array shapes that do not line up."""


class PriorFileError(GeopriorError, ValueError):
    """A saved prior that is corrupt, incomplete or written by a newer version."""


class ConfigError(GeopriorError, ValueError):
    """A configuration value of the wrong type or outside its allowed range."""


class OutputExistsError(GeopriorError, FileExistsError):
    """An output file exists and overwriting was not asked for."""


class EmptyDataError(GeopriorError, ValueError):
    """No usable rows (e.g. everything was invalid, or a split came out empty)."""


class MissingDependencyError(GeopriorError, ImportError):
    """An optional dependency needed for this feature is not installed."""


class RowIndexError(GeopriorError, IndexError):
    """Row numbers outside a table or column store (e.g. ``ColumnStore.take``)."""


class PathError(GeopriorError, OSError):
    """A path that cannot be used: an output whose folder does not exist, a folder where a
    file is expected, a path without permission."""


class TrainingDivergedError(GeopriorError, FloatingPointError):
    """Training produced a non-finite loss (usually: the learning rate is too high)."""


class RasterError(GeopriorError, ValueError):
    """A covariate raster that cannot be used: no CRS, a band it lacks, or not the raster
    a prior was trained on (moved, changed)."""


class CoverageError(GeopriorError, ValueError):
    """Places where covariate rasters have no value: outside their bounds or on nodata."""


class GeopriorWarning(UserWarning):
    """Base class of every warning geoprior issues: input that works but is probably not
    what was meant. Silence one kind with ``warnings.simplefilter("ignore", Kind)``."""


class ProbabilitiesAsLogitsWarning(GeopriorWarning):
    """The "logits" given to fusion look like probabilities (rows in [0, 1] summing to 1,
    or sigmoid scores), which fusion would softmax a second time."""


class SwappedCoordinatesWarning(GeopriorWarning):
    """Most places make sense only with latitude and longitude exchanged."""


class OutsideExtentWarning(GeopriorWarning):
    """A query beyond the prior's training extent, where its answer is extrapolation."""


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str, category: type[Warning] = GeopriorWarning) -> None:
    """Issue a warning attributed to the first caller outside geoprior (so the file and line
    shown are the user's, however deep in the library it was found)."""
    level, frame = 2, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def show(value: object) -> str:
    """``repr`` of a value as a user wrote it (numpy scalars shown as plain Python)."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def first_offender(values: np.ndarray, bad: np.ndarray) -> tuple[int, object]:
    """Return ``(row, value)`` of the first ``True`` in ``bad``."""
    row = int(np.flatnonzero(bad)[0])
    return row, values[row]


def describe_bad(what: str, values: np.ndarray, bad: np.ndarray, expected: str) -> str:
    """Standard message: "3 of 10000 latitudes outside [-90, 90]; first: row 17 = 91.2"."""
    row, value = first_offender(values, bad)
    return f"{int(bad.sum())} of {bad.size} {what} {expected}; first: row {row} = {show(value)}"


def suggest(name: str, known: Iterable[str], n: int = 3) -> str:
    """A ' Did you mean ...?' suffix listing close matches of ``name`` in ``known``."""
    known = list(known)
    lowered = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + ", ".join(repr(lowered[c]) for c in close) + "?"


def unknown_species(names: Sequence[str], known: Sequence[str]) -> UnknownSpeciesError:
    """Build the error for species names not in ``known``, with close-match suggestions."""
    shown = ", ".join(repr(n) for n in names[:5]) + (" ..." if len(names) > 5 else "")
    hint = suggest(names[0], known) if names else ""
    return UnknownSpeciesError(
        f"{len(names)} unknown species name(s): {shown} (the prior knows {len(known)} species).{hint}"
    )
