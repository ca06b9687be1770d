"""INT8 quantization: real calibration frames in, a Q/DQ model out that runs and agrees with
the FP32 one; no calibration data, no model."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge_agent.cli import main
from edge_agent.core.config.common import DetectorModelConfig
from edge_agent.core.detector import Detector
from edge_agent.tools.quantize import QuantizeError, calibration_set, quantize


def tiny_ssd(path, size=(32, 16)) -> str:
    """input_0 -> Conv 3x3 (3->16) -> ReLU -> Conv 1x1 (16->7) -> per-cell [3 scores | 4 box]."""
    w, h = size
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(0, 0.3, (16, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.3, (7, 16, 1, 1)).astype(np.float32), "w2")
    shape = numpy_helper.from_array(np.array([1, w * h, 7], np.int64), "shape")
    split = numpy_helper.from_array(np.array([3, 4], np.int64), "split")
    nodes = [
        helper.make_node("Conv", ["input_0", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"]),
        helper.make_node("Transpose", ["c2"], ["t"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["t", "shape"], ["flat"]),
        helper.make_node("Split", ["flat", "split"], ["logits", "raw"], axis=2),
        helper.make_node("Softmax", ["logits"], ["scores"], axis=2),
        helper.make_node("Sigmoid", ["raw"], ["boxes"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_ssd",
        [helper.make_tensor_value_info("input_0", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, w * h, 3]),
         helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, w * h, 4])],
        [w1, w2, shape, split])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.metadata_props.append(onnx.StringStringEntryProto(key="classes",
                                                            value='["person", "car"]'))
    onnx.save(model, str(path))
    return path


def test_quantized_model_is_qdq_and_agrees_with_fp32(tmp_path):
    model = tiny_ssd(tmp_path / "tiny.onnx")
    calib = calibration_set(model, "synthetic://?seed=3&fps=10&seconds=6", frames=20,
                            stride=3, progress=False)
    assert len(calib.tensors) == 20 and calib.input_name == "input_0"
    out = quantize(model, calib, tmp_path / "tiny_int8.onnx")
    graph = onnx.load(str(out))
    ops = [n.op_type for n in graph.graph.node]
    assert ops.count("QuantizeLinear") >= 2 and ops.count("DequantizeLinear") >= 4
    for n in graph.graph.node:  # symmetric: TensorRT takes zero points of 0 only
        if n.op_type == "QuantizeLinear" and len(n.input) > 2:
            zp = next(i for i in graph.graph.initializer if i.name == n.input[2])
            assert not numpy_helper.to_array(zp).any()
    meta = {p.key: p.value for p in graph.metadata_props}
    assert meta["classes"] == '["person", "car"]' and "int8" in meta["quantization"]
    fp32 = Detector.from_config(DetectorModelConfig(path=model))
    int8 = Detector.from_config(DetectorModelConfig(path=out))
    assert int8.class_names == ("person", "car")
    feeds = {"input_0": calib.tensors[-1]}
    a, b = fp32.backend.run(feeds), int8.backend.run(feeds)
    assert np.abs(a["scores"] - b["scores"]).max() < 0.05
    assert np.abs(a["boxes"] - b["boxes"]).max() < 0.05


def test_refuses_without_calibration_data(tmp_path, capsys):
    model = tiny_ssd(tmp_path / "tiny.onnx")
    with pytest.raises(QuantizeError, match="no calibration data"):
        calibration_set(model, str(tmp_path / "missing.mp4"), progress=False)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(QuantizeError, match="no calibration data"):
        calibration_set(model, str(empty), progress=False)
    rc = main(["quantize", "--model", str(model), "--calib", str(tmp_path / "missing.mp4"),
               "--out", str(tmp_path / "x.onnx")])
    assert rc == 1 and "no calibration data" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
