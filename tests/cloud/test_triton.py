"""The Triton backend against a real Triton Inference Server (the one the `nvidia-pytriton`
wheel ships, serving our ONNX model through ONNX Runtime with dynamic batching): the same
answers as the in-process backend, the worker's full recipe through it, server-side batching of
concurrent requests, and errors that say what to fix.

The server runs under an interpreter that matches the wheel's Python backend stub: a virtual
environment made from the system's python3 (`.venv-triton`, made by .ci/run), or the one
OSPREY_TRITON_PYTHON names."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from servers import free_port, wait_until

from edge_agent.core.bundled import bundled_cloud_model
from edge_agent.core.config.common import (
    CloudRuntimeConfig,
    DetectorModelConfig,
    RuntimeConfig,
)
from edge_agent.core.detector import Detector
from edge_agent.core.errors import ModelError
from edge_agent.tools.sim import SyntheticWorld, WorldOptions

pytest.importorskip("tritonclient.grpc", reason="the Triton backend needs tritonclient[grpc]")
pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SERVE = REPO / "deploy" / "triton" / "pytriton_onnx.py"
NAME = "osprey_cloud_ssdlite"


def _python() -> str:
    python = os.environ.get("OSPREY_TRITON_PYTHON") or str(REPO / ".venv-triton" / "bin" /
                                                            "python")
    if not Path(python).is_file():
        pytest.skip("no Triton server environment: make one with `/usr/bin/python3 -m venv "
                    ".venv-triton && .venv-triton/bin/pip install nvidia-pytriton onnxruntime` "
                    "(or set OSPREY_TRITON_PYTHON)")
    probe = subprocess.run([python, "-c", "import pytriton, onnxruntime"], capture_output=True)
    if probe.returncode:
        pytest.skip(f"{python} cannot import pytriton and onnxruntime: "
                    f"{probe.stderr.decode()[-300:]}")
    return python


@pytest.fixture(scope="module")
def triton(tmp_path_factory):
    python = _python()
    grpc, http, metrics = free_port(), free_port(), free_port()
    log = tmp_path_factory.mktemp("triton") / "triton.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [python, str(SERVE), "--model", str(bundled_cloud_model()), "--name", NAME,
             "--grpc-port", str(grpc), "--http-port", str(http), "--metrics-port",
             str(metrics), "--max-batch", "8", "--max-delay-us", "20000", "--threads", "1"],
            stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while "ready" not in log.read_text(errors="replace").split():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.skip(f"the Triton server did not start: {log.read_text()[-1500:]}")
        time.sleep(0.5)
    yield {"url": f"127.0.0.1:{grpc}", "metrics": f"http://127.0.0.1:{metrics}/metrics"}
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def frames():
    world = SyntheticWorld(WorldOptions.from_preset("normal", seed=1005))
    return [world.render(i)[0].image for i in (200, 260, 320)]


def _pair(url: str):
    model = DetectorModelConfig(path=bundled_cloud_model(), score_threshold=0.1)
    local = Detector.from_config(model, RuntimeConfig(providers=["cpu"]))
    remote = Detector.from_config(model, CloudRuntimeConfig(backend="triton", triton_url=url,
                                                       triton_model=NAME))
    return local, remote


def test_triton_answers_as_the_in_process_backend(triton, frames):
    local, remote = _pair(triton["url"])
    assert remote.backend.name == f"triton:{NAME}@{triton['url']}"
    assert remote.class_names == local.class_names and remote.layout == local.layout
    for image in frames:
        a, b = local(image), remote(image)
        assert len(a) == len(b) > 0
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)
        np.testing.assert_allclose(a.score, b.score, atol=1e-4)
        assert a.class_id.tolist() == b.class_id.tolist()


def test_the_workers_full_recipe_runs_through_triton(triton, frames):
    pytest.importorskip("ensemble_boxes")
    from cloud_fallback.config import CloudModelConfig
    from cloud_fallback.model import build_detector

    base = {"detector": {"path": str(bundled_cloud_model()), "score_threshold": 0.1},
            "merge": "wbf", "flip": True, "tiles": "2x2"}
    local = build_detector(CloudModelConfig.model_validate(base))
    remote = build_detector(CloudModelConfig.model_validate({**base, "runtime": {
        "backend": "triton", "triton_url": triton["url"], "triton_model": NAME}}))
    a, b = local(frames[0]), remote(frames[0])
    assert len(a) == len(b) > 0
    np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)


def _counter(url: str, name: str) -> float:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return sum(float(m.group(1)) for m in
               re.finditer(rf'^{name}{{[^}}]*model="{NAME}"[^}}]*}} ([0-9.e+]+)$', text, re.M))


def test_concurrent_requests_are_batched_on_the_server(triton, frames):
    requests_before = _counter(triton["metrics"], "nv_inference_request_success")
    runs_before = _counter(triton["metrics"], "nv_inference_exec_count")
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def client() -> None:
        try:
            _, remote = _pair(triton["url"])
            barrier.wait(10)
            for _ in range(3):
                remote(frames[0])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors

    def requests() -> float:
        return _counter(triton["metrics"], "nv_inference_request_success") - requests_before

    assert wait_until(lambda: requests() == 24, 15), requests()  # metrics refresh every 2 s
    runs = _counter(triton["metrics"], "nv_inference_exec_count") - runs_before
    assert runs < 24, "the dynamic batcher ran some requests together"


def test_a_wrong_model_name_or_address_says_what_to_fix(triton):
    model = DetectorModelConfig(path=bundled_cloud_model())
    with pytest.raises(ModelError, match=r"no ready model 'nope'.*runtime.triton_model"):
        Detector.from_config(model, CloudRuntimeConfig(backend="triton", triton_url=triton["url"],
                                                  triton_model="nope"))
    with pytest.raises(ModelError, match=r"does not answer.*runtime.triton_url"):
        Detector.from_config(model, CloudRuntimeConfig(backend="triton",
                                                  triton_url=f"127.0.0.1:{free_port()}"))


def test_doctor_checks_the_model_through_triton(triton, tmp_path):
    from cloud_fallback.config import CloudConfig
    from cloud_fallback.doctor import check_triton

    def config(url: str) -> CloudConfig:
        return CloudConfig.model_validate({"mqtt": {"host": "h"}, "model": {
            "detector": {"path": str(bundled_cloud_model())}, "tiles": None,
            "runtime": {"backend": "triton", "triton_url": url, "triton_model": NAME}}})

    good = check_triton(config(triton["url"]))
    assert good.verdict == "ok" and f"triton:{NAME}" in good.detail
    bad = check_triton(config(f"127.0.0.1:{free_port()}"))
    assert bad.verdict == "FAIL" and "does not answer" in bad.detail
