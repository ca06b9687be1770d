"""Inference runtimes behind one small interface, and the choice between them."""

from __future__ import annotations

import logging
from pathlib import Path

from edge_agent.core.config.common import RuntimeConfig
from edge_agent.core.detector.backends.base import DetectorBackend
from edge_agent.core.detector.backends.onnxruntime import OnnxRuntimeBackend
from edge_agent.core.detector.backends.tensorrt import (
    ENGINE_SUFFIXES,
    TensorRTBackend,
    TensorRTUnavailable,
    build_engine,
)
from edge_agent.core.errors import ModelError

log = logging.getLogger("osprey.detector")


def make_backend(model: Path, runtime: RuntimeConfig) -> DetectorBackend:
    """The configured backend. TensorRT that cannot run here (no library, no INT8 on this GPU)
    falls back to ONNX Runtime with a warning; an engine file has no such fallback."""
    model = Path(model)
    if model.suffix.lower() in ENGINE_SUFFIXES:
        if not model.is_file():
            raise ModelError(f"engine file {model} not found: check model.path (or --model)")
        return TensorRTBackend(model)
    if runtime.backend == "tensorrt":
        try:
            return TensorRTBackend(build_engine(model, runtime.precision,
                                                runtime.engine_cache_dir))
        except TensorRTUnavailable as exc:
            log.warning("TensorRT backend unavailable, falling back to onnxruntime: %s", exc)
    return OnnxRuntimeBackend.from_config(model, runtime)


__all__ = ["DetectorBackend", "OnnxRuntimeBackend", "TensorRTBackend", "TensorRTUnavailable",
           "make_backend"]
