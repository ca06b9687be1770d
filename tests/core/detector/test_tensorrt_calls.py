"""The TensorRT backend's call sequence, against stand-ins of tensorrt and pycuda (they cannot
run without an NVIDIA GPU). Real TensorRT behaviour is not claimed here."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from fake_tensorrt import DEVICE, Context, make_pycuda, make_tensorrt

from edge_agent.core.detector.backends.tensorrt import (
    EngineBuildError,
    TensorRTBackend,
    build_engine,
)
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


def test_a_failed_build_is_remembered_and_not_retried(fake_trt, tmp_path):
    model = tmp_path / "bad.onnx"
    model.write_bytes(b"garbage")
    with pytest.raises(EngineBuildError):
        build_engine(model, "fp16", tmp_path)
    [marker] = tmp_path.glob("bad.fp16.*.failed.json")
    assert "bad graph" in marker.read_text()
    with pytest.raises(EngineBuildError, match=r"failed before .*delete .*failed.json"):
        build_engine(model, "fp16", tmp_path)
    marker.unlink()
    model.write_bytes(b"ONNX fixed graph")
    assert build_engine(model, "fp16", tmp_path).is_file()


def test_a_dynamic_batch_gets_an_optimization_profile(fake_trt, tmp_path):
    """Real TensorRT refuses to build a network with a dynamic input and no profile; the
    stand-in does too, so this fails if the profile is not added."""
    model = tmp_path / "yolo_dynamic.onnx"
    model.write_bytes(b"ONNX dynamic-batch graph")
    assert build_engine(model, "fp16", tmp_path).is_file()
    assert fake_trt == [["FP16"]]


def test_a_dynamic_input_size_needs_profile_hw(fake_trt, tmp_path):
    model = tmp_path / "tfod.onnx"
    model.write_bytes(b"ONNX dynamic-hw-nhwc uint8 graph")
    with pytest.raises(EngineBuildError, match="profile_hw"):
        build_engine(model, "fp16", tmp_path)
    next(tmp_path.glob("*.failed.json")).unlink()
    assert build_engine(model, "fp16", tmp_path, profile_hw=(300, 300)).is_file()


def test_without_a_profile_the_stand_in_refuses_like_tensorrt(fake_trt, tmp_path):
    """The stand-in's strictness itself: a dynamic network built with no profile fails."""
    trt = sys.modules["tensorrt"]
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    network = builder.create_network(0)
    assert trt.OnnxParser(network, None).parse(b"ONNX dynamic-batch")
    assert builder.build_serialized_network(network, builder.create_builder_config()) is None
    assert "no optimization profile" in trt.errors[-1]


def test_plugins_are_registered_before_an_engine_is_loaded(fake_trt, tmp_path):
    """An engine with EfficientNMS_TRT deserialises in a fresh process only after
    init_libnvinfer_plugins; the stand-in refuses otherwise."""
    model = tmp_path / "nms.onnx"
    model.write_bytes(b"ONNX graph with EfficientNMS_TRT")
    path = build_engine(model, "fp16", tmp_path)
    trt = sys.modules["tensorrt"]
    trt.registered.clear()  # a later start: a new process has registered nothing
    backend = TensorRTBackend(path)
    assert trt.registered == [""] and backend.engine is not None
    backend.close()
    trt.registered.clear()
    assert trt.Runtime(None).deserialize_cuda_engine(path.read_bytes()) is None


def test_tensorrt_11_has_no_precision_flags(monkeypatch, tmp_path, caplog):
    built: list = []
    pkg, driver = make_pycuda()
    monkeypatch.setitem(sys.modules, "tensorrt", make_tensorrt(built, version="11.1.0"))
    monkeypatch.setitem(sys.modules, "pycuda", pkg)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    qdq = tmp_path / "det_int8.onnx"
    qdq.write_bytes(b"ONNX ... QuantizeLinear DequantizeLinear ...")
    assert ".int8." in build_engine(qdq, "int8", tmp_path).name
    plain = tmp_path / "det.onnx"
    plain.write_bytes(b"ONNX plain graph")
    build_engine(plain, "fp16", tmp_path)
    assert built == [[], []]
    assert "strongly typed" in caplog.text


def test_a_parse_failure_falls_back_to_onnxruntime(fake_trt, tmp_path, caplog):
    """With backend tensorrt, a model TensorRT cannot parse runs on ONNX Runtime, with one
    warning saying why, instead of failing (a supervisor would restart it forever)."""
    from edge_agent.core.bundled import bundled_edge_model
    from edge_agent.core.config.common import RuntimeConfig
    from edge_agent.core.detector.backends import OnnxRuntimeBackend, make_backend

    runtime = RuntimeConfig(backend="tensorrt", providers=["cpu"], engine_cache_dir=tmp_path)
    backend = make_backend(bundled_edge_model(), runtime)  # real ONNX: the stand-in refuses it
    assert isinstance(backend, OnnxRuntimeBackend)
    assert backend.fallback is not None and "cannot parse" in backend.fallback
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "ONNX Runtime" in warnings[0].getMessage()


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
