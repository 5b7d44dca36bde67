"""Run an exported prior without JAX: numpy and onnxruntime only (pandas for the tables
it returns). What an app or a server imports.

- :func:`load_export` / :class:`OnnxPrior`: an ONNX export (``geoprior export --format
  onnx``), with ``predict``, ``top_k``, ``scores`` (every output of one run),
  ``distance_km`` and ``outside``, validated as :class:`~geoprior.GeoPrior` validates.
- :func:`read_range_table` / :class:`RangeTable`: a range table (``--format range-table``),
  queried by H3 cell id.
- :func:`load`: either, by the file's suffix.

Example:
    >>> from geoprior.runtime import load_export
    >>> prior = load_export("birds.onnx")  # doctest: +SKIP
    >>> prior.top_k([44.06], [-71.31], "2021-06-14", k=3)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError
from .onnx_prior import OnnxPrior, Scores, load_export
from .range_table import RangeTable, read_range_table

__all__ = ["OnnxPrior", "RangeTable", "Scores", "load", "load_export", "read_range_table"]


def load(path: str | os.PathLike) -> OnnxPrior | RangeTable:
    """An ``.onnx`` export as an :class:`OnnxPrior`, a ``.parquet`` range table as a
    :class:`RangeTable`."""
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        return load_export(path)
    if suffix == ".parquet":
        return read_range_table(path)
    raise ConfigError(f"expected an .onnx export or a .parquet range table, got {path}")
