"""A trained prior as one ONNX file, run anywhere onnxruntime runs (no JAX there).

:func:`to_onnx_model` traces :func:`~geoprior.export.graph.prior_function` with jax2onnx
(a dynamic batch axis ``n``), so the exported graph is the prior's own JAX code, encoder
included; :func:`~geoprior.export.weights.store_weights` optionally stores its weight
matrices as float16 or int8; the file carries its export header (see
:mod:`geoprior.runtime.format`) as ONNX metadata. :func:`export_onnx` writes it atomically.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

from ..errors import ConfigError, MissingDependencyError
from ..outputs import check_output
from ..persistence import atomic_file, json_header
from ..runtime.format import (
    DISTANCE,
    FORMAT,
    FORMAT_VERSION,
    INPUT_COVARIATES,
    INPUT_POINTS,
    METADATA_KEY,
    OUTSIDE,
    POINT_COLUMNS,
    WEIGHTS,
    thresholds_to_json,
)
from .graph import prior_function

__all__ = ["OPSET", "export_header", "export_onnx", "to_onnx_model"]

#: The ONNX opset the export targets: onnxruntime 1.14 (2023) and later run it.
OPSET = 18


def _need(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise MissingDependencyError(
            f"exporting to ONNX needs {module.split('.')[0]!r}: pip install 'geoprior[export]'"
        ) from e


def export_header(prior, weights: str) -> dict:
    """The export header of ``prior``: what a runtime needs beside the graph."""
    return json_header(
        FORMAT,
        FORMAT_VERSION,
        {
            "kind": type(prior).__name__,
            "species": list(prior.species),
            "outputs": list(prior.outputs),
            "inputs": {
                INPUT_POINTS: list(POINT_COLUMNS),
                INPUT_COVARIATES: list(prior.covariate_names),
            },
            "uses_date": bool(prior.uses_date),
            "covariates": list(prior.covariate_names),
            "far_km": None if prior.far_km is None else float(prior.far_km),
            "has_support": prior.support is not None,
            "thresholds": thresholds_to_json(prior.thresholds),
            "weights": weights,
            "members": int(prior.members),
            "extent": prior.extent,
            "prior": {k: v for k, v in prior.header.items() if k != "species"},
        },
    )


def to_onnx_model(prior, *, weights: str = "float32"):
    """The :class:`onnx.ModelProto` of a :class:`~geoprior.GeoPrior` (inputs ``points``
    and, with covariates, ``covariates``; outputs ``prior.outputs``, ``distance_km``,
    ``outside``), its weight matrices stored as ``weights``."""
    from .weights import store_weights  # needs onnx

    _need("onnx")
    jax2onnx = _need("jax2onnx")
    fn = prior_function(prior)
    inputs = [("n", 3)]
    names = [INPUT_POINTS]
    if prior.covariate_names:
        inputs.append(("n", len(prior.covariate_names)))
        names.append(INPUT_COVARIATES)
    quiet = logging.getLogger("onnx_ir")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # its notes on the dynamic batch axis' shapes
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = jax2onnx.to_onnx(
                fn,
                inputs,
                model_name="geoprior",
                opset=OPSET,
                input_names=names,
                output_names=[*prior.outputs, DISTANCE, OUTSIDE],
            )
    finally:
        quiet.setLevel(level)
    model = store_weights(model, weights)
    model.doc_string = (
        f"geoprior prior: {prior.n_species} species, outputs {list(prior.outputs)}; "
        "points = [lat, lon, day_of_year or NaN]"
    )
    header = export_header(prior, weights)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(header)
    model.producer_name = "geoprior"
    model.producer_version = header["geoprior_version"]
    return model


def export_onnx(
    prior, path: str | os.PathLike, *, weights: str = "float32", overwrite: bool = False
) -> Path:
    """Write ``prior`` (a :class:`~geoprior.GeoPrior`) to the ONNX file ``path``, weight
    matrices stored as ``weights`` (one of :data:`~geoprior.runtime.format.WEIGHTS`:
    float16 halves the file, int8 quarters it; the graph computes in float32 either way).
    Load it with :func:`geoprior.runtime.load_export`.

    Example:
        >>> export_onnx(prior, "birds.onnx", weights="float16")  # doctest: +SKIP
        PosixPath('birds.onnx')
    """
    if weights not in WEIGHTS:
        raise ConfigError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    path = check_output(path, overwrite)
    model = to_onnx_model(prior, weights=weights)
    with atomic_file(path, "wb") as f:
        f.write(model.SerializeToString())
    return path
