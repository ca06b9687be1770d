"""Inference runtimes behind one small interface, and the choice between them."""

from __future__ import annotations

import logging
from pathlib import Path

from edge_agent.core.config.common import RuntimeConfig
from edge_agent.core.detector.backends.base import DetectorBackend
from edge_agent.core.detector.backends.onnxruntime import OnnxRuntimeBackend
from edge_agent.core.detector.backends.tensorrt import (
    ENGINE_SUFFIXES,
    EngineBuildError,
    TensorRTBackend,
    TensorRTUnavailable,
    build_engine,
)
from edge_agent.core.errors import ModelError

log = logging.getLogger("osprey.detector")


def make_backend(model: Path, runtime: RuntimeConfig) -> DetectorBackend:
    """The configured backend. TensorRT that cannot run here (no library, no INT8 on this GPU)
    or cannot build this model (parse or build failure) falls back to ONNX Runtime with one
    warning, and the backend says so (`fallback`); an engine file has no such fallback."""
    model = Path(model)
    if model.suffix.lower() in ENGINE_SUFFIXES:
        if not model.is_file():
            raise ModelError(f"engine file {model} not found: check model.path (or --model)")
        return TensorRTBackend(model)
    if runtime.backend == "triton":
        from edge_agent.core.detector.backends.triton import TritonBackend, local_metadata

        return TritonBackend(getattr(runtime, "triton_url", "localhost:8001"),
                             getattr(runtime, "triton_model", None) or model.stem,
                             local_metadata(model))
    fallback = None
    if runtime.backend == "tensorrt":
        try:
            return TensorRTBackend(build_engine(
                model, runtime.precision, runtime.engine_cache_dir,
                profile_batch=runtime.profile_batch, profile_hw=runtime.profile_hw))
        except (TensorRTUnavailable, EngineBuildError) as exc:
            fallback = f"TensorRT: {exc}"
            log.warning("TensorRT backend not used for %s, falling back to onnxruntime "
                        "(ONNX Runtime, providers %s): %s", model.name,
                        ",".join(runtime.providers), exc)
    backend = OnnxRuntimeBackend.from_config(model, runtime)
    backend.fallback = fallback
    return backend


__all__ = ["DetectorBackend", "EngineBuildError", "OnnxRuntimeBackend", "TensorRTBackend",
           "TensorRTUnavailable", "make_backend"]
