"""Checks of the model: the TensorRT engine cache, and one frame through the detector."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from edge_agent.core.config.common import DetectorModelConfig, RuntimeConfig
from edge_agent.core.detector.backends.tensorrt import ENGINE_SUFFIXES, file_sha256, is_qdq
from edge_agent.core.doctor.report import Check, fail, ok, skip, warn
from edge_agent.core.errors import OspreyError

NAME = "engine cache"


def _engine_keys(cache: Path) -> tuple[list[dict], int]:
    """The keys of Osprey's engines (their .json sidecars), and the count of other engine
    files (ONNX Runtime's TensorRT provider caches there too)."""
    keys, others = [], 0
    for engine in sorted(cache.glob("*.engine")):
        try:
            keys.append(json.loads(engine.with_suffix(".json").read_text(encoding="utf-8")))
        except (OSError, ValueError):
            others += 1
    return keys, others


def _failed_builds(cache: Path, sha: str | None) -> list[dict]:
    """Builds of this model that TensorRT failed (EngineBuildError markers), oldest first."""
    out = []
    for marker in sorted(cache.glob("*.failed.json"), key=lambda p: p.stat().st_mtime):
        try:
            info = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if sha is not None and info.get("model_sha256") == sha:
            out.append(info)
    return out


def _qdq_problems(model: Path) -> list[str]:
    """What TensorRT's parser would refuse in a Q/DQ model; nothing when `onnx` is missing."""
    if not model.is_file() or not is_qdq(model):
        return []
    try:
        from edge_agent.core.detector.qdq import qdq_problems

        return qdq_problems(model)
    except ImportError:
        return []


def check_engine_cache(runtime: RuntimeConfig, model: Path, *, uses_tensorrt: bool,
                       trt_version: str | None, gpu: str | None = None) -> Check:
    cache = runtime.engine_cache_dir.expanduser()
    if model.suffix.lower() in ENGINE_SUFFIXES:
        return skip(NAME, f"model.path is an engine file ({model.name}); nothing is built")
    if not uses_tensorrt:
        return skip(NAME, f"{cache}: not used (no TensorRT backend or provider here)")
    sha = file_sha256(model) if model.is_file() else None
    failed = _failed_builds(cache, sha)
    if failed:
        reason = failed[-1].get("reason", "unknown")
        return warn(NAME, f"TensorRT {failed[-1].get('tensorrt_version')} could not build "
                    f"{model.name} ({reason}): the agent runs it with ONNX Runtime instead",
                    f"fix the model (`edge-agent quantize` output passes TensorRT's parser), "
                    f"then delete {cache}/{model.stem}.*.failed.json to try again")
    qdq = _qdq_problems(model)
    if qdq:
        return fail(NAME, f"{model.name} has Q/DQ nodes TensorRT's parser refuses "
                    f"({len(qdq)}; first: {qdq[0]}): the agent would run it with ONNX Runtime",
                    "quantize it again with `edge-agent quantize` (biases stay float)")
    build = (f"edge-agent build-engine {model} --precision {runtime.precision} "
             f"--cache-dir {cache}")
    if not cache.exists():
        parent = next((p for p in cache.parents if p.exists()), Path("/"))
        if not os.access(parent, os.W_OK | os.X_OK):
            return fail(NAME, f"{cache} does not exist and {parent} is not writable by this "
                        "user", f"sudo install -d -o $USER {cache} (the service's unit makes "
                        "/var/cache/osprey for its user)")
        return warn(NAME, f"{cache} does not exist yet: the first start creates it and builds "
                    "an engine (minutes)", build)
    if not os.access(cache, os.W_OK | os.X_OK):
        return fail(NAME, f"{cache} is not writable by this user",
                    f"sudo chown -R $USER {cache}")
    keys, others = _engine_keys(cache)
    text = f"{cache}: {len(keys)} Osprey engine(s)" + (
        f", {others} other engine file(s)" if others else "")
    if not model.is_file():
        return warn(NAME, f"{text}; model {model} not found, so none can match")
    mine = [k for k in keys if k.get("model_sha256") == sha]
    if not mine:
        return warn(NAME, f"{text}; none for {model.name} (sha256 {sha[:12]}): the first start "
                    "builds one (minutes)", build)
    if trt_version is None:
        return ok(NAME, f"{text}; {len(mine)} for {model.name} (TensorRT not importable here "
                  "to compare versions)")
    current = [k for k in mine if k.get("tensorrt_version") == trt_version
               and (gpu is None or k.get("gpu") == gpu)]
    if not current:
        built = sorted({f"TensorRT {k.get('tensorrt_version')} on {k.get('gpu')}" for k in mine})
        return warn(NAME, f"{text}; those for {model.name} were built by {', '.join(built)}, "
                    f"not TensorRT {trt_version}{f' on {gpu}' if gpu else ''}: the next start "
                    "rebuilds (after a JetPack upgrade, expected)", build)
    precisions = ", ".join(sorted({k.get("precision", "?") for k in current}))
    return ok(NAME, f"{text}; ready for {model.name}: {precisions}, TensorRT {trt_version}")


def cpu_runtime(runtime: RuntimeConfig) -> RuntimeConfig:
    """The runtime the doctor loads an ONNX model with: ONNX Runtime on CUDA or the CPU, so
    a check never spends minutes building a TensorRT engine."""
    try:
        import onnxruntime as ort

        cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    except ImportError:
        cuda = False
    return runtime.model_copy(update={"backend": "onnxruntime",
                                      "providers": ["cuda", "cpu"] if cuda else ["cpu"]})


def check_model(model: DetectorModelConfig, runtime: RuntimeConfig, path: Path,
                image: np.ndarray | None, seen_on: str) -> Check:
    """Load the model as the agent would (engine files through TensorRT, ONNX files through
    ONNX Runtime) and run it on one frame."""
    from edge_agent.core.detector import Detector

    fix = ("set model.path to an existing .onnx or .engine file, or leave it unset for the "
           "bundled model")
    if not path.is_file():
        return fail("model", f"{path} not found", fix)
    engine = path.suffix.lower() in ENGINE_SUFFIXES
    try:
        detector = Detector.from_config(model, runtime if engine else cpu_runtime(runtime),
                                        default_path=path)
        frame = image if image is not None else np.full((480, 640, 3), 114, np.uint8)
        t0 = time.perf_counter()
        dets = detector(frame)
        ms = (time.perf_counter() - t0) * 1e3
    except OspreyError as exc:
        return fail("model", str(exc), fix)
    except Exception as exc:  # a broken file can raise anything from the runtime
        return fail("model", f"{path.name}: {type(exc).__name__}: {exc}", fix)
    where = seen_on if image is not None else "a blank frame"
    text = (f"{path.name}: layout {detector.layout}, {len(detector.class_names)} classes, "
            f"{len(dets)} detection(s) on {where} in {ms:.0f} ms ({detector.backend.name})")
    blank = len(detector(np.full((480, 640, 3), 114, np.uint8))) if image is not None \
        else len(dets)
    if blank:
        return warn("model", f"{text}; {blank} detection(s) on a blank grey frame, where there "
                    "is nothing to find: it invents objects",
                    "use a model trained for this kind of camera (docs/models.md)")
    if detector.domain == "synthetic":
        return ok("model", f"{text}; trained on Osprey's synthetic world only (for the demo "
                  "and tests, not for real cameras)")
    return ok("model", text)
