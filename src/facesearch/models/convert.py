"""Deterministic rewrites of downloaded ONNX graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator


def fold_to_fp32(src: Path, dst: Path) -> None:
    """Evaluate every node whose inputs are all constants and store the result.

    For SFace int8bq this turns each DequantizeLinear (+ Reshape) of a weight
    into a float32 initializer, drops the raw weights that were declared as
    graph inputs, and makes the batch dimension dynamic so faces can be
    embedded many at a time.
    """
    model = onnx.load(str(src))
    graph = model.graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    kept = []
    for node in graph.node:
        inputs = [i for i in node.input if i]
        if node.op_type != "Constant" and inputs and all(i in constants for i in inputs):
            for name, value in zip(node.output, _evaluate(node, constants, model), strict=True):
                constants[name] = value
        else:
            kept.append(node)
    used = {i for n in kept for i in n.input} | {o.name for o in graph.output}
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(
        numpy_helper.from_array(v.astype(np.float32) if v.dtype.kind == "f" else v, k)
        for k, v in constants.items()
        if k in used
    )
    real_inputs = [i for i in graph.input if i.name in used and i.name not in constants]
    del graph.input[:]
    graph.input.extend(real_inputs)
    for value_info in (*graph.input, *graph.output):
        batch = value_info.type.tensor_type.shape.dim[0]
        batch.ClearField("dim_value")
        batch.dim_param = "batch"
    del graph.value_info[:]
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(dst))


def _evaluate(node, constants, model) -> list[np.ndarray]:
    inputs = [i for i in node.input if i]
    graph = helper.make_graph(
        [node],
        "fold",
        [],
        [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in node.output],
        initializer=[numpy_helper.from_array(constants[i], i) for i in inputs],
    )
    single = helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    return ReferenceEvaluator(single).run(None, {})


TRANSFORMS = {"fold_to_fp32": fold_to_fp32}
