"""Species names as one spelling per species.

Files spell the same name in several ways that print alike: Unicode composed (NFC) or
decomposed (NFD) accents, a trailing space, a double space, a non-breaking space.
:func:`normalize_name` turns each into one spelling (NFC, whitespace trimmed and collapsed
to single spaces); readers apply it to every name they read, and class lists are aligned
with it. Names that differ only by case may be different taxa (or a typo), so they are not
merged here: :func:`case_variants` finds them for a report.

This module imports nothing from geoprior, so any module can use it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

import numpy as np
import pandas as pd

__all__ = ["case_variants", "normalize_name", "normalize_names"]


def normalize_name(name: str) -> str:
    """One spelling of a name: Unicode NFC, whitespace trimmed and runs of it made one space.

    Example:
        >>> normalize_name("  Turdus   merula\\u00a0")
        'Turdus merula'
        >>> normalize_name("Pic\\u0327a") == normalize_name("Pi\\u00e7a")
        True
    """
    return " ".join(unicodedata.normalize("NFC", name).split())


def normalize_names(values) -> np.ndarray:
    """:func:`normalize_name` of each string of ``values`` (an object array; anything that is
    not a string, such as ``None`` or NaN, is kept as it is). Each distinct text is
    normalised once.

    Example:
        >>> normalize_names(np.array(["Pica  pica", None, "Pica pica "], dtype=object))
        array(['Pica pica', None, 'Pica pica'], dtype=object)
    """
    values = np.asarray(values, dtype=object).ravel()
    codes, uniques = pd.factorize(values)
    fixed = np.array(
        [normalize_name(u) if isinstance(u, str) else u for u in uniques], dtype=object
    )
    out = values.copy()
    found = codes >= 0
    out[found] = fixed[codes[found]]
    return out


def case_variants(names: Iterable[str]) -> list[tuple[str, ...]]:
    """Groups of two or more distinct names that are equal when case is ignored, each group
    sorted, the groups in order of their first name.

    Example:
        >>> case_variants(["Pica pica", "Corvus corax", "pica Pica", "Pica pica"])
        [('Pica pica', 'pica Pica')]
    """
    groups: dict[str, set[str]] = {}
    for name in names:
        groups.setdefault(name.casefold(), set()).add(name)
    return sorted(tuple(sorted(g)) for g in groups.values() if len(g) > 1)
