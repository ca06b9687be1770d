"""Models that ship with Osprey, found next to the source tree or in the install prefix."""

from __future__ import annotations

import sys
from pathlib import Path

from edge_agent.errors import ModelError

EDGE_FP32 = "osprey_edge_ssdlite.onnx"
EDGE_INT8 = "osprey_edge_ssdlite_int8.onnx"


def model_dirs() -> list[Path]:
    """Where the bundled edge models may be: the checkout (editable installs) and
    <prefix>/share/osprey/models/edge (wheels, see pyproject's data-files)."""
    return [Path(__file__).resolve().parents[1] / "models" / "edge",
            Path(sys.prefix) / "share" / "osprey" / "models" / "edge"]


def bundled_edge_model(precision: str = "fp32") -> Path:
    """The bundled edge detector: the INT8 (Q/DQ) model when `precision` is int8 (TensorRT
    builds it as an INT8 engine), otherwise the FP32 one (faster than INT8 on a CPU)."""
    name = EDGE_INT8 if precision == "int8" else EDGE_FP32
    for folder in model_dirs():
        if (folder / name).is_file():
            return folder / name
    raise ModelError(f"the bundled model {name} is not installed (looked in "
                     f"{', '.join(map(str, model_dirs()))}): reinstall Osprey or set model.path")
