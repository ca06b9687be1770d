"""ONNX Runtime backend: provider choice, errors for missing and broken models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx_graphs import make_model

from edge_agent.config.common import RuntimeConfig
from edge_agent.detector.backends.onnxruntime import OnnxRuntimeBackend, resolve_providers
from edge_agent.errors import ModelError

ALL = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
CACHE = Path("/tmp/engines")


def names(providers):
    return [p if isinstance(p, str) else p[0] for p in providers]


@pytest.mark.parametrize("wanted,available,expected", [
    (["auto"], ALL, ALL),
    (["auto"], ["CUDAExecutionProvider", "CPUExecutionProvider"],
     ["CUDAExecutionProvider", "CPUExecutionProvider"]),
    (["auto"], ["CPUExecutionProvider"], ["CPUExecutionProvider"]),
    (["cuda"], ALL, ["CUDAExecutionProvider", "CPUExecutionProvider"]),
    (["tensorrt"], ["CPUExecutionProvider"], ["CPUExecutionProvider"]),
    (["cpu"], ALL, ["CPUExecutionProvider"]),
])
def test_provider_resolution(wanted, available, expected):
    assert names(resolve_providers(wanted, available, "fp16", CACHE)) == expected


@pytest.mark.parametrize("precision,fp16,int8", [("fp32", False, False), ("fp16", True, False),
                                                 ("int8", True, True)])
def test_tensorrt_ep_options_follow_precision(precision, fp16, int8):
    [(name, opts), *_] = resolve_providers(["auto"], ALL, precision, CACHE)
    assert name == "TensorrtExecutionProvider"
    assert (opts["trt_fp16_enable"], opts["trt_int8_enable"]) == (fp16, int8)
    assert opts["trt_engine_cache_enable"] and opts["trt_engine_cache_path"] == str(CACHE)


def test_missing_and_broken_models_say_so(tmp_path):
    with pytest.raises(ModelError, match=r"model file .*nope.onnx not found"):
        OnnxRuntimeBackend.from_config(tmp_path / "nope.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ModelError, match=r"ONNX Runtime cannot load .*broken.onnx"):
        OnnxRuntimeBackend.from_config(broken)


def test_cpu_session_reports_what_runs(tmp_path, caplog):
    import logging

    caplog.set_level(logging.INFO)
    path = make_model(tmp_path / "m.onnx", "images", [1, 3, 64, 64], np.float32,
                      {"output": np.zeros((1, 84, 7), np.float32)})
    backend = OnnxRuntimeBackend.from_config(path, RuntimeConfig(intra_op_threads=1))
    assert backend.name == "onnxruntime:CPUExecutionProvider"
    assert "runs on CPUExecutionProvider" in caplog.text
    out = backend.run({"images": np.zeros((1, 3, 64, 64), np.float32)})
    assert out["output"].shape == (1, 84, 7)
