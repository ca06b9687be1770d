"""Tiny ONNX graphs with a real layout's names and shapes and known outputs.

Each output is a constant plus 0 x mean(input), so ONNX Runtime checks the fed tensor against
the declared input (dtype, rank, static sizes) and the decoder sees exactly the constant."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_ELEM = {np.float32: TensorProto.FLOAT, np.uint8: TensorProto.UINT8,
         np.int32: TensorProto.INT32, np.int64: TensorProto.INT64}


def make_model(path: Path, input_name: str, input_shape: list, input_dtype,
               outputs: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> Path:
    nodes = []
    src = input_name
    if input_dtype != np.float32:
        nodes.append(helper.make_node("Cast", [src], ["in_f"], to=TensorProto.FLOAT))
        src = "in_f"
    nodes += [
        helper.make_node("ReduceMean", [src], ["mean"], keepdims=0),
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(
            np.array(0, np.float32))),
        helper.make_node("Mul", ["mean", "zero"], ["nil"]),
    ]
    graph_outputs = []
    for i, (name, value) in enumerate(outputs.items()):
        value = np.asarray(value)
        const = numpy_helper.from_array(value.astype(np.float32), name=f"c{i}")
        nodes.append(helper.make_node("Constant", [], [f"c{i}"], value=const))
        if value.dtype == np.float32:
            nodes.append(helper.make_node("Add", [f"c{i}", "nil"], [name]))
        else:
            nodes.append(helper.make_node("Add", [f"c{i}", "nil"], [f"s{i}"]))
            nodes.append(helper.make_node("Cast", [f"s{i}"], [name], to=_ELEM[value.dtype.type]))
        graph_outputs.append(helper.make_tensor_value_info(name, _ELEM[value.dtype.type],
                                                           list(value.shape)))
    graph = helper.make_graph(
        nodes, "layout_test",
        [helper.make_tensor_value_info(input_name, _ELEM[input_dtype], input_shape)],
        graph_outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in (metadata or {}).items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
