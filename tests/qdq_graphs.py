"""A tiny Conv graph in the Q/DQ form ONNX Runtime's quantizer writes, one knob per rule of
TensorRT's parser (tests/core/detector/test_qdq.py, tests/deploy/test_doctor.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def conv_qdq(path: Path, *, bias_int32: bool = False, weight_axis: int = 0,
              zero_point: int = 0, act_per_channel: bool = False) -> Path:
    """x -> Q -> DQ -> Conv(DQ(w), [DQ(b) | b]) -> y: the form ONNX Runtime's quantizer
    writes, with one knob per rule."""
    w = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.int8), "w_q")
    w_scale = numpy_helper.from_array(np.full(4 if weight_axis == 0 else 3, 0.1, np.float32),
                                      "w_scale")
    w_zp = numpy_helper.from_array(np.zeros(w_scale.dims[0], np.int8), "w_zp")
    a_scale = numpy_helper.from_array(np.full(3, 0.1, np.float32) if act_per_channel
                                      else np.array(0.1, np.float32), "a_scale")
    a_zp = numpy_helper.from_array(np.full(3, zero_point, np.int8) if act_per_channel
                                   else np.array(zero_point, np.int8), "a_zp")
    inits = [w, w_scale, w_zp, a_scale, a_zp]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "a_scale", "a_zp"], ["xq"], axis=1),
        helper.make_node("DequantizeLinear", ["xq", "a_scale", "a_zp"], ["xd"], axis=1),
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["wd"],
                         axis=weight_axis),
    ]
    if bias_int32:
        inits += [numpy_helper.from_array(np.zeros(4, np.int32), "b_q"),
                  numpy_helper.from_array(np.full(4, 0.01, np.float32), "b_scale"),
                  numpy_helper.from_array(np.zeros(4, np.int32), "b_zp")]
        nodes.append(helper.make_node("DequantizeLinear", ["b_q", "b_scale", "b_zp"], ["b"],
                                      axis=0))
    else:
        inits.append(numpy_helper.from_array(np.zeros(4, np.float32), "b"))
    nodes.append(helper.make_node("Conv", ["xd", "wd", "b"], ["y"]))
    graph = helper.make_graph(
        nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path
