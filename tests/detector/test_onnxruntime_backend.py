"""ONNX Runtime backend: provider choice, errors for missing and broken models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx_graphs import make_model

from edge_agent.config.common import RuntimeConfig
from edge_agent.detector.backends.onnxruntime import (
    OnnxRuntimeBackend,
    available_cores,
    intra_op_threads,
    resolve_providers,
)
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


@pytest.mark.parametrize(("threads", "leave", "first", "cores", "expected"), [
    (0, 1, "CPUExecutionProvider", 2, 1),      # the agent on two cores: one for the model
    (0, 1, "CPUExecutionProvider", 8, 7),
    (0, 1, "CPUExecutionProvider", 1, 1),      # never none
    (0, 2, "CPUExecutionProvider", 2, 1),
    (0, 0, "CPUExecutionProvider", 8, 0),      # the library default
    (3, 1, "CPUExecutionProvider", 8, 3),      # set by hand: kept
    (0, 1, "CUDAExecutionProvider", 8, 0),     # the model is on a GPU: nothing to leave
    (0, 1, ("TensorrtExecutionProvider", {}), 8, 0),
])
def test_intra_op_threads_leave_cores_to_the_pipeline(threads, leave, first, cores, expected):
    runtime = RuntimeConfig(intra_op_threads=threads, leave_cores=leave)
    assert intra_op_threads(runtime, [first, "CPUExecutionProvider"], cores) == expected


def test_the_agent_session_leaves_a_core(tmp_path):
    from edge_agent.config.edge import EdgeConfig

    path = make_model(tmp_path / "m.onnx", "images", [1, 3, 64, 64], np.float32,
                      {"output": np.zeros((1, 84, 7), np.float32)})
    runtime = EdgeConfig.model_validate({"cameras": [{"name": "c", "url": "x.mp4"}],
                                         "detector": {"providers": ["cpu"]}}).detector
    backend = OnnxRuntimeBackend.from_config(path, runtime)
    threads = backend.session.get_session_options().intra_op_num_threads
    assert threads == max(1, available_cores() - 1)
    # The cloud's (and any plain) runtime keeps the library's default.
    plain = OnnxRuntimeBackend.from_config(path, RuntimeConfig(providers=["cpu"]))
    assert plain.session.get_session_options().intra_op_num_threads == 0
