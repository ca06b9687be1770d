"""TensorRT backend: what runs without a GPU is tested here; the rest needs TensorRT."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from onnx_graphs import make_model

from edge_agent.cli import main
from edge_agent.core.config.common import DetectorModelConfig, RuntimeConfig
from edge_agent.core.detector import Detector
from edge_agent.core.detector.backends import make_backend
from edge_agent.core.detector.backends.tensorrt import (
    EngineKey,
    TensorRTUnavailable,
    is_qdq,
    plan_buffers,
    select_precision,
)
from edge_agent.core.errors import ModelError

HAVE_TRT = importlib.util.find_spec("tensorrt") is not None
needs_trt = pytest.mark.skipif(not HAVE_TRT, reason="TensorRT is not installed here (no NVIDIA "
                               "GPU on this machine): engine build and inference not run")

KEY = EngineKey("ab" * 32, "10.3.0", "fp16", "Orin sm_87")


@pytest.mark.parametrize("field,value", [("model_sha256", "cd" * 32),
                                         ("tensorrt_version", "10.4.0"),
                                         ("precision", "int8"), ("gpu", "Xavier sm_72")])
def test_engine_key_changes_with_each_field(field, value):
    other = EngineKey(**{**KEY.__dict__, field: value})
    assert other.digest != KEY.digest
    assert other.engine_path(Path("/c"), Path("m.onnx")) != KEY.engine_path(Path("/c"),
                                                                            Path("m.onnx"))


def test_engine_key_is_stable_and_named_for_humans():
    assert EngineKey(**KEY.__dict__).digest == KEY.digest
    path = KEY.engine_path(Path("/var/lib/osprey/engines"), Path("models/edge.onnx"))
    assert path.parent == Path("/var/lib/osprey/engines")
    assert path.name == f"edge.fp16.{KEY.digest}.engine"


@pytest.mark.parametrize("requested,fp16,int8,qdq,expected,note", [
    ("fp16", True, True, False, "fp16", None),
    ("fp32", True, True, False, "fp32", None),
    ("int8", True, True, True, "int8", None),
    ("fp16", True, True, True, "int8", "the model is INT8"),
    ("int8", True, True, False, "fp16", "no Q/DQ nodes"),
    ("int8", True, False, False, "fp16", "no fast INT8 (Jetson Nano or TX2)"),
    ("fp16", False, False, False, "fp32", "no fast FP16"),
])
def test_precision_selection(requested, fp16, int8, qdq, expected, note):
    chosen, why = select_precision(requested, fast_fp16=fp16, fast_int8=int8, qdq=qdq)
    assert chosen == expected
    assert (why is None) if note is None else (note in why)


def test_int8_model_on_a_gpu_without_int8_falls_back():
    with pytest.raises(TensorRTUnavailable, match="Nano or TX2"):
        select_precision("int8", fast_fp16=True, fast_int8=False, qdq=True)


def test_buffer_plan_from_tensor_shapes():
    plan = plan_buffers([("images", True, (1, 3, 416, 416), np.float32),
                         ("output", False, (1, 3549, 85), np.float32),
                         ("num", False, (1, 1), np.int32)])
    assert [(p.name, p.is_input, p.nbytes) for p in plan] == [
        ("images", True, 1 * 3 * 416 * 416 * 4), ("output", False, 3549 * 85 * 4),
        ("num", False, 4)]


def test_buffer_plan_resolves_dynamic_inputs_from_the_profile():
    plan = plan_buffers([("images", True, (-1, 3, -1, -1), np.float16)],
                        {"images": (1, 3, 320, 320)})
    assert plan[0].shape == (1, 3, 320, 320) and plan[0].nbytes == 3 * 320 * 320 * 2
    with pytest.raises(ModelError, match=r"dynamic shape .* rebuild the engine"):
        plan_buffers([("images", True, (-1, 3, 320, 320), np.float32)])


def test_qdq_detection(tmp_path):
    plain = make_model(tmp_path / "plain.onnx", "images", [1, 3, 64, 64], np.float32,
                       {"output": np.zeros((1, 84, 7), np.float32)})
    assert not is_qdq(plain)


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed: the fallback is not exercised")
def test_tensorrt_backend_falls_back_to_onnxruntime_when_missing(tmp_path, caplog):
    path = make_model(tmp_path / "m.onnx", "images", [1, 3, 64, 64], np.float32,
                      {"output": np.zeros((1, 84, 7), np.float32)})
    backend = make_backend(path, RuntimeConfig(backend="tensorrt", precision="int8",
                                               engine_cache_dir=tmp_path / "engines"))
    assert backend.name.startswith("onnxruntime:")
    assert "falling back to onnxruntime" in caplog.text and "TensorRT is not installed" in \
        caplog.text
    det = Detector.from_config(DetectorModelConfig(path=path),
                               RuntimeConfig(backend="tensorrt"))
    assert det.layout == "yolox"


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed")
def test_engine_file_without_tensorrt_is_an_error_not_a_fallback(tmp_path):
    engine = tmp_path / "m.fp16.0123.engine"
    engine.write_bytes(b"\0")
    with pytest.raises(TensorRTUnavailable, match="TensorRT is not installed"):
        make_backend(engine, RuntimeConfig())


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed")
def test_build_engine_command_says_what_is_missing(tmp_path, capsys):
    path = make_model(tmp_path / "m.onnx", "images", [1, 3, 64, 64], np.float32,
                      {"output": np.zeros((1, 84, 7), np.float32)})
    assert main(["build-engine", str(path), "--cache-dir", str(tmp_path)]) == 1
    assert "TensorRT is not installed" in capsys.readouterr().err


@needs_trt
def test_tensorrt_engine_matches_onnxruntime(real_data, tmp_path):
    import cv2

    model = real_data / "yolox_nano_416.onnx"
    cap = cv2.VideoCapture(str(real_data / "vehicle_survaillance.mp4"))
    ok, image = cap.read()
    assert ok
    ort = Detector.from_config(DetectorModelConfig(path=model))(image)
    trt_det = Detector.from_config(
        DetectorModelConfig(path=model),
        RuntimeConfig(backend="tensorrt", precision="fp16", engine_cache_dir=tmp_path))
    assert trt_det.backend.name.startswith("tensorrt:")
    out = trt_det(image)
    assert len(out) == len(ort)
    assert np.abs(np.sort(out.score) - np.sort(ort.score)).max() < 0.05
