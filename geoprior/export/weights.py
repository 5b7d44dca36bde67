"""Smaller weights for an ONNX export: float16 or int8 storage, float32 arithmetic.

Only the weight matrices of the network (the constant right-hand side of each ``Gemm`` or
``MatMul``) are stored smaller; everything else — the anchor centres, whose float16
rounding would move a fine anchor by kilometres, biases, the training support — stays
float32. Each stored matrix is turned back into float32 by one node in front of its use
(``Cast`` from float16; from int8, ``Cast`` and ``Mul`` by one symmetric scale per output
column), so the graph computes as the float32 export does, on the rounded weights. Those
nodes read only constants, so onnxruntime folds them when it loads the file: the saving
is on disk and in transfer, the speed that of float32.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import ConfigError
from ..runtime.format import WEIGHTS

__all__ = ["store_weights"]

#: Matrices smaller than this stay float32 (no gain, one more node).
MIN_ELEMENTS = 256


def _weight_inputs(graph: onnx.GraphProto) -> dict[str, tuple[onnx.NodeProto, int]]:
    """Initializer name -> (the Gemm/MatMul using it as its weight matrix, the axis of that
    matrix's output columns)."""
    found: dict[str, tuple[onnx.NodeProto, int]] = {}
    for node in graph.node:
        if node.op_type not in ("Gemm", "MatMul") or len(node.input) < 2:
            continue
        axis = 1
        if node.op_type == "Gemm":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            axis = 0 if attrs.get("transB", 0) else 1
        found.setdefault(node.input[1], (node, axis))
    return found


def store_weights(model: onnx.ModelProto, weights: str) -> onnx.ModelProto:
    """``model`` (float32) with its weight matrices stored as ``weights`` (see
    :data:`~geoprior.runtime.format.WEIGHTS`); ``"float32"`` returns it as it is."""
    if weights not in WEIGHTS:
        raise ConfigError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    if weights == "float32":
        return model
    graph = model.graph
    uses = _weight_inputs(graph)
    kept, added = [], []
    for init in graph.initializer:
        use = uses.get(init.name)
        if (
            use is None
            or init.data_type != onnx.TensorProto.FLOAT
            or len(init.dims) != 2
            or int(np.prod(init.dims)) < MIN_ELEMENTS
        ):
            kept.append(init)
            continue
        w = numpy_helper.to_array(init)
        stored = f"{init.name}__{weights}"
        if weights == "float16":
            kept.append(numpy_helper.from_array(w.astype(np.float16), stored))
            added.append(
                helper.make_node("Cast", [stored], [init.name], to=onnx.TensorProto.FLOAT)
            )
            continue
        axis = use[1]
        peak = np.abs(w).max(axis=1 - axis, keepdims=True)
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
        kept += [
            numpy_helper.from_array(q, stored),
            numpy_helper.from_array(scale, f"{stored}__scale"),
        ]
        added += [
            helper.make_node("Cast", [stored], [f"{stored}__float"], to=onnx.TensorProto.FLOAT),
            helper.make_node("Mul", [f"{stored}__float", f"{stored}__scale"], [init.name]),
        ]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(added + nodes)  # the decoders first: the graph stays topologically sorted
    onnx.checker.check_model(model)
    return model
