"""Models that ship with Osprey, found next to the source tree or in the install prefix."""

from __future__ import annotations

import sys
from pathlib import Path

from edge_agent.core.errors import ModelError

EDGE_FP32 = "osprey_edge_ssdlite.onnx"
EDGE_INT8 = "osprey_edge_ssdlite_int8.onnx"
EDGE_REAL_FP32 = "osprey_edge_real.onnx"
EDGE_REAL_INT8 = "osprey_edge_real_int8.onnx"
CLOUD = "osprey_cloud_ssdlite.onnx"


def model_dirs(kind: str = "edge") -> list[Path]:
    """Where the bundled models may be: the checkout (editable installs) and
    <prefix>/share/osprey/models/<kind> (wheels, see pyproject's data-files)."""
    return [Path(__file__).resolve().parents[2] / "models" / kind,
            Path(sys.prefix) / "share" / "osprey" / "models" / kind]


def _find(kind: str, name: str) -> Path:
    for folder in model_dirs(kind):
        if (folder / name).is_file():
            return folder / name
    raise ModelError(f"the bundled model {name} is not installed (looked in "
                     f"{', '.join(map(str, model_dirs(kind)))}): reinstall Osprey or set "
                     "the model path in the config")


def bundled_edge_model(precision: str = "fp32", domain: str = "synthetic") -> Path:
    """The bundled edge detector for `domain` (`synthetic`: the demo's world; `real`: real
    cameras): the INT8 (Q/DQ) model when `precision` is int8 (TensorRT builds it as an INT8
    engine), otherwise the FP32 one (faster than INT8 on a CPU)."""
    if domain == "real":
        return _find("edge", EDGE_REAL_INT8 if precision == "int8" else EDGE_REAL_FP32)
    return _find("edge", EDGE_INT8 if precision == "int8" else EDGE_FP32)


def bundled_cloud_model() -> Path:
    """The bundled cloud detector (MobileNetV2-SSDLite at full resolution)."""
    return _find("cloud", CLOUD)


def bundled_text_model() -> Path:
    """The folder of the bundled image-text model (the cloud's second opinion and queries)."""
    return _find("textimage", "textimage.json").parent
