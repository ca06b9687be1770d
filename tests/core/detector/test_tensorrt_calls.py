"""The TensorRT backend's call sequence, against stand-ins of tensorrt and pycuda (they cannot
run without an NVIDIA GPU). Real TensorRT behaviour is not claimed here."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from fake_tensorrt import DEVICE, Context, make_pycuda, make_tensorrt

from edge_agent.core.detector.backends.tensorrt import TensorRTBackend, build_engine
from edge_agent.core.errors import ModelError


@pytest.fixture
def fake_trt(monkeypatch):
    built: list = []
    pkg, driver = make_pycuda()
    monkeypatch.setitem(sys.modules, "tensorrt", make_tensorrt(built))
    monkeypatch.setitem(sys.modules, "pycuda", pkg)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    return built


def test_build_then_cache_hit_then_rebuild_on_new_model(fake_trt, tmp_path):
    model = tmp_path / "det.onnx"
    model.write_bytes(b"ONNX plain graph")
    cache = tmp_path / "engines"
    first = build_engine(model, "fp16", cache)
    assert first.read_bytes() == b"ENGINE FP16" and fake_trt == [["FP16"]]
    assert first.name.startswith("det.fp16.") and first.with_suffix(".json").is_file()
    assert build_engine(model, "fp16", cache) == first and len(fake_trt) == 1  # cache hit
    model.write_bytes(b"ONNX retrained graph")
    second = build_engine(model, "fp16", cache)
    assert second != first and len(fake_trt) == 2
    assert not first.exists(), "the stale engine of the old model is removed"


def test_qdq_model_builds_an_explicitly_quantized_engine(fake_trt, tmp_path):
    model = tmp_path / "det_int8.onnx"
    model.write_bytes(b"ONNX ... QuantizeLinear DequantizeLinear ...")
    path = build_engine(model, "fp16", tmp_path)
    assert ".int8." in path.name and fake_trt == [["FP16", "INT8"]]


def test_parse_failure_is_a_model_error(fake_trt, tmp_path):
    model = tmp_path / "bad.onnx"
    model.write_bytes(b"garbage")
    with pytest.raises(ModelError, match=r"TensorRT cannot parse .*bad graph"):
        build_engine(model, "fp16", tmp_path)


def test_backend_binds_every_tensor_and_runs_on_its_stream(fake_trt, tmp_path):
    model = tmp_path / "det.onnx"
    model.write_bytes(b"ONNX plain graph")
    backend = TensorRTBackend(build_engine(model, "fp16", tmp_path))
    assert [s.name for s in backend.inputs] == ["images"]
    assert backend.inputs[0].shape == (1, 3, 8, 8)  # dynamic batch resolved from the profile
    assert set(backend.context.addresses) == {"images", "output"}
    x = np.arange(3 * 64, dtype=np.float32).reshape(1, 3, 8, 8)
    out = backend.run({"images": x})
    assert np.allclose(out["output"], [[x.sum(), x.max()]])
    assert backend.context.executed_on == [77] and Context.depth == 0
    backend.close()
    assert not DEVICE
