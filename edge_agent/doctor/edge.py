"""The edge agent's doctor: every check, in the order a person fixes things."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from edge_agent.bundled import bundled_edge_model
from edge_agent.config.common import DetectorModelConfig, RuntimeConfig
from edge_agent.config.edge import EdgeConfig
from edge_agent.detector.backends.tensorrt import ENGINE_SUFFIXES
from edge_agent.doctor import platform
from edge_agent.doctor.cameras import check_cameras
from edge_agent.doctor.model import check_engine_cache, check_model
from edge_agent.doctor.report import Check, fail, skip, warn
from edge_agent.doctor.services import check_broker
from edge_agent.errors import ModelError


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


def machine_checks(runtime: RuntimeConfig, model_path: Path | None, camera_urls: list[str],
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
    checks = [platform.check_python(), platform.check_opencv(camera_urls, jetson),
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
        from edge_agent.detector.backends.tensorrt import gpu_name

        with contextlib.suppress(Exception):  # the gpu line already says why CUDA fails
            gpu = gpu_name(cuda)
    return check_engine_cache(runtime, model, uses_tensorrt=uses_tensorrt(runtime),
                              trt_version=getattr(trt, "__version__", None), gpu=gpu)


def edge_checks(config: EdgeConfig | None, timeout: float = 10.0) -> list[Check]:
    """Every check for `config` (or, without one, of this machine and the bundled model)."""
    runtime = config.detector if config else RuntimeConfig()
    cameras = config.cameras if config else []
    model_path, missing = resolve_model(config.model.path if config else None,
                                        lambda: bundled_edge_model(runtime.precision))
    checks, (trt, cuda) = machine_checks(runtime, model_path, [c.url for c in cameras])
    if model_path is not None:
        checks.append(engine_check(runtime, model_path, trt, cuda))
    camera_checks, first = check_cameras(cameras, timeout)
    if missing is not None:
        checks.append(missing)
    else:
        checks.append(check_model(config.model if config else DetectorModelConfig(), runtime,
                                  model_path, first[1] if first else None,
                                  f"a frame of camera {first[0]}" if first else ""))
    checks.append(_broker(config, timeout))
    return checks + (camera_checks or [skip("cameras", "no config given (--config FILE)")])


def _broker(config: EdgeConfig | None, timeout: float) -> Check:
    if config is None:
        return skip("broker", "no config given (--config FILE)")
    if config.mqtt.host is None:
        return warn("broker", "mqtt.host is not set: `edge-agent demo` starts its own broker, "
                    "`edge-agent run` needs one", "set mqtt.host to the broker's address")
    return check_broker(config.mqtt, timeout=min(timeout, 5.0), device_id=config.device_id)
