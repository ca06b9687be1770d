"""ONNX Runtime backend: provider choice, errors for missing and broken models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx_graphs import make_model

from edge_agent.core.config.common import RuntimeConfig
from edge_agent.core.detector.backends.onnxruntime import (
    OnnxRuntimeBackend,
    available_cores,
    intra_op_threads,
    resolve_providers,
)
from edge_agent.core.errors import ModelError

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
    with pytest.raises(ModelError, match=r"broken.onnx \(11 bytes\) is not a usable ONNX "
                                         r"model: Protobuf parsing failed\. .*copy or export "
                                         r"it again"):
        OnnxRuntimeBackend.from_config(broken)


def test_damaged_models_are_named_with_what_to_do(tmp_path):
    """Files that are not whole models: cut short, and a flipped byte in the metadata (the
    graph still parses; ONNX Runtime's metadata call then fails with a bare codec error)."""
    good = make_model(tmp_path / "m.onnx", "images", [1, 3, 64, 64], np.float32,
                      {"output": np.zeros((1, 84, 7), np.float32)})
    import onnx

    m = onnx.load(str(good))
    m.metadata_props.append(onnx.StringStringEntryProto(key="domain", value="synthetic"))
    onnx.save(m, str(good))
    data = good.read_bytes()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 3])
    flipped = tmp_path / "flipped.onnx"
    at = data.index(b"synthetic")
    flipped.write_bytes(data[:at] + b"\x9a" + data[at + 1:])
    for path in (cut, flipped):
        with pytest.raises(ModelError) as info:
            OnnxRuntimeBackend.from_config(path)
        text = str(info.value)
        assert f"{path} (" in text and "is not a usable ONNX model" in text
        assert "copy or export it again" in text and "codec" not in text
    assert "metadata is not text" in str(info.value)


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
    from edge_agent.runtime.config import EdgeConfig

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


def _fake_sys(root, cores: list[tuple[int, int]], cpu_max: str | None = None,
              v1: tuple[int, int] | None = None):
    """A /sys with each CPU of this process's affinity on the given (package, core)."""
    import os

    for cpu, (package, core) in zip(sorted(os.sched_getaffinity(0)), cores, strict=False):
        topo = root / f"devices/system/cpu/cpu{cpu}/topology"
        topo.mkdir(parents=True)
        (topo / "physical_package_id").write_text(f"{package}\n")
        (topo / "core_id").write_text(f"{core}\n")
    if cpu_max is not None:
        (root / "fs/cgroup").mkdir(parents=True, exist_ok=True)
        (root / "fs/cgroup/cpu.max").write_text(cpu_max)
    if v1 is not None:
        (root / "fs/cgroup/cpu").mkdir(parents=True, exist_ok=True)
        (root / "fs/cgroup/cpu/cpu.cfs_quota_us").write_text(str(v1[0]))
        (root / "fs/cgroup/cpu/cpu.cfs_period_us").write_text(str(v1[1]))
    return root


@pytest.mark.skipif(not hasattr(__import__("os"), "sched_getaffinity"), reason="not Linux")
def test_available_cores_counts_physical_cores_within_the_quota(tmp_path):
    import os

    n = len(os.sched_getaffinity(0))
    if n < 2:
        pytest.skip(f"this process may use {n} CPU; the cases need two")
    distinct = [(0, i) for i in range(n)]
    assert available_cores(_fake_sys(tmp_path / "a", distinct)) == n
    # Two hyperthreads of one core are one core.
    assert available_cores(_fake_sys(tmp_path / "b", [(0, 0)] * n)) == 1
    # A cgroup quota of 1.5 CPUs (v2) or 1 CPU (v1) caps it; "max" does not.
    assert available_cores(_fake_sys(tmp_path / "c", distinct, "150000 100000\n")) == min(n, 2)
    assert available_cores(_fake_sys(tmp_path / "d", distinct, "max 100000\n")) == n
    assert available_cores(_fake_sys(tmp_path / "e", distinct, v1=(100000, 100000))) == 1
    assert available_cores(_fake_sys(tmp_path / "f", distinct, v1=(-1, 100000))) == n
    # No topology at all: one core per CPU.
    assert available_cores(tmp_path / "none") == n
