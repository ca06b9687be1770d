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


def _nil(nodes: list, name: str, dtype, tag: str) -> str:
    """Nodes making 0 x mean(input `name`) as float; returns its tensor name."""
    src = name
    if dtype != np.float32:
        nodes.append(helper.make_node("Cast", [src], [f"{tag}_f"], to=TensorProto.FLOAT))
        src = f"{tag}_f"
    nodes += [
        helper.make_node("ReduceMean", [src], [f"{tag}_mean"], keepdims=0),
        helper.make_node("Constant", [], [f"{tag}_zero"], value=numpy_helper.from_array(
            np.array(0, np.float32))),
        helper.make_node("Mul", [f"{tag}_mean", f"{tag}_zero"], [f"{tag}_nil"]),
    ]
    return f"{tag}_nil"


def _save(path: Path, nodes, inputs, outputs, metadata: dict[str, str] | None) -> Path:
    graph = helper.make_graph(nodes, "layout_test", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in (metadata or {}).items():
        model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_model(path: Path, input_name: str, input_shape: list, input_dtype,
               outputs: dict[str, np.ndarray], metadata: dict[str, str] | None = None,
               extra_inputs: dict[str, tuple[list, type]] | None = None) -> Path:
    """`extra_inputs`: more inputs by name, (shape, dtype), checked like the first."""
    nodes: list = []
    nil = _nil(nodes, input_name, input_dtype, "in")
    graph_inputs = [helper.make_tensor_value_info(input_name, _ELEM[input_dtype], input_shape)]
    for j, (name, (shape, dtype)) in enumerate((extra_inputs or {}).items()):
        extra = _nil(nodes, name, dtype, f"x{j}")
        nodes.append(helper.make_node("Add", [nil, extra], [f"x{j}_sum"]))
        nil = f"x{j}_sum"
        graph_inputs.append(helper.make_tensor_value_info(name, _ELEM[dtype], shape))
    graph_outputs = []
    for i, (name, value) in enumerate(outputs.items()):
        value = np.asarray(value)
        const = numpy_helper.from_array(value.astype(np.float32), name=f"c{i}")
        nodes.append(helper.make_node("Constant", [], [f"c{i}"], value=const))
        if value.dtype == np.float32:
            nodes.append(helper.make_node("Add", [f"c{i}", nil], [name]))
        else:
            nodes.append(helper.make_node("Add", [f"c{i}", nil], [f"s{i}"]))
            nodes.append(helper.make_node("Cast", [f"s{i}"], [name], to=_ELEM[value.dtype.type]))
        graph_outputs.append(helper.make_tensor_value_info(name, _ELEM[value.dtype.type],
                                                           list(value.shape)))
    return _save(path, nodes, graph_inputs, graph_outputs, metadata)


def make_rtdetr_postprocessed(path: Path, norm_xyxy: np.ndarray, scores: np.ndarray,
                              labels: np.ndarray, size: int = 640) -> Path:
    """The official RT-DETR / D-FINE export's interface, `images` [1,3,S,S] float and
    `orig_target_sizes` [1,2] int64 in, `labels`, `boxes`, `scores` out; boxes are computed as
    its postprocessor does: normalised x1,y1,x2,y2 x orig_target_sizes.repeat(1, 2)."""
    nodes: list = []
    nil = _nil(nodes, "images", np.float32, "in")
    nodes += [
        helper.make_node("Cast", ["orig_target_sizes"], ["sizes_f"], to=TensorProto.FLOAT),
        helper.make_node("Concat", ["sizes_f", "sizes_f"], ["wh_wh"], axis=1),  # [1,4]
        helper.make_node("Constant", [], ["axis1"], value=numpy_helper.from_array(
            np.array([1], np.int64))),
        helper.make_node("Unsqueeze", ["wh_wh", "axis1"], ["scale"]),  # [1,1,4]
        helper.make_node("Constant", [], ["norm"], value=numpy_helper.from_array(
            norm_xyxy.astype(np.float32))),
        helper.make_node("Mul", ["norm", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", nil], ["boxes"]),
        helper.make_node("Constant", [], ["sc"], value=numpy_helper.from_array(
            scores.astype(np.float32))),
        helper.make_node("Add", ["sc", nil], ["scores"]),
        helper.make_node("Constant", [], ["lb"], value=numpy_helper.from_array(
            labels.astype(np.int64))),
        helper.make_node("Identity", ["lb"], ["labels"]),
    ]
    inputs = [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size]),
              helper.make_tensor_value_info("orig_target_sizes", TensorProto.INT64, [1, 2])]
    k = scores.shape[1]
    outputs = [helper.make_tensor_value_info("labels", TensorProto.INT64, [1, k]),
               helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, k, 4]),
               helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, k])]
    return _save(path, nodes, inputs, outputs, None)
