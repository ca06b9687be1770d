"""Checks of the machine both doctors run: Python, OpenCV, ONNX Runtime, TensorRT, pycuda, the
GPU, the model file and its engine cache."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from edge_agent.core.config.common import RuntimeConfig
from edge_agent.core.detector.backends.tensorrt import ENGINE_SUFFIXES
from edge_agent.core.doctor import platform
from edge_agent.core.doctor.model import check_engine_cache
from edge_agent.core.doctor.report import Check, fail
from edge_agent.core.errors import ModelError


def uses_tensorrt(runtime: RuntimeConfig) -> bool:
    if runtime.backend == "tensorrt" or "tensorrt" in runtime.providers:
        return True
    if runtime.providers != ["auto"]:
        return False
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "TensorrtExecutionProvider" in ort.get_available_providers()


def machine_checks(runtime: RuntimeConfig, model_path: Path | None, camera_kinds: set[str],
                   section: str = "detector") -> tuple[list[Check], tuple[object, object]]:
    """Python, OpenCV, ONNX Runtime, TensorRT, pycuda, GPU; (trt, cuda) modules or None.
    `section`: where the runtime sits in the config, for the messages."""
    jetson = platform.l4t_release() is not None
    engine = model_path is not None and model_path.suffix.lower() in ENGINE_SUFFIXES
    required = runtime.backend == "tensorrt" or engine
    why = ("the model path is a TensorRT engine" if engine else
           f"{section}.backend is tensorrt (without it, ONNX Runtime runs the model)")
    trt_check, trt = platform.check_tensorrt(required, why, jetson)
    cuda_check, cuda = platform.check_pycuda(required, why, jetson)
    checks = [platform.check_python(), platform.check_opencv(camera_kinds, jetson),
              platform.check_onnxruntime(runtime, jetson), trt_check, cuda_check,
              platform.check_gpu(trt, cuda, runtime.precision, required)]
    return checks, (trt, cuda)


def resolve_model(path: Path | None, bundled: Callable[[], Path]
                  ) -> tuple[Path | None, Check | None]:
    """The configured model, else the bundled one; or a FAIL when the bundled one is gone."""
    try:
        return (Path(path) if path else bundled()).expanduser(), None
    except ModelError as exc:
        return None, fail("model", str(exc), "reinstall Osprey or set the model path")


def engine_check(runtime: RuntimeConfig, model: Path, trt, cuda) -> Check:
    gpu = None
    if trt is not None and cuda is not None:
        from edge_agent.core.detector.backends.tensorrt import gpu_name

        with contextlib.suppress(Exception):  # the gpu line already says why CUDA fails
            gpu = gpu_name(cuda)
    return check_engine_cache(runtime, model, uses_tensorrt=uses_tensorrt(runtime),
                              trt_version=getattr(trt, "__version__", None), gpu=gpu)
