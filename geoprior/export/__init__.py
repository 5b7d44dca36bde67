"""Exports of a trained prior that run without JAX: an ONNX graph (:func:`export_onnx`,
run by :mod:`geoprior.runtime`) and a range table on H3 cells
(:func:`write_range_table`, a Parquet file pyarrow alone reads)."""

from .graph import prior_function
from .onnx_export import export_onnx, to_onnx_model
from .range_table import write_range_table

__all__ = ["export_onnx", "prior_function", "to_onnx_model", "write_range_table"]
