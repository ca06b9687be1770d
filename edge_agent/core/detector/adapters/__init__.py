"""Model adapters, one per ONNX output layout, and the detection of which one a model uses."""

from __future__ import annotations

from edge_agent.core.detector.adapters.base import Adapter, DecodeOptions, ModelAdapter
from edge_agent.core.detector.adapters.detr import (
    RfDetrAdapter,
    RtDetrAdapter,
    RtDetrPostprocessedAdapter,
)
from edge_agent.core.detector.adapters.nanodet import NanoDetAdapter, NanoDetPlusAdapter
from edge_agent.core.detector.adapters.nms_in_graph import EfficientNmsAdapter, TfOdAdapter
from edge_agent.core.detector.adapters.ssd import SsdAdapter
from edge_agent.core.detector.adapters.yolo import (
    Yolov5Adapter,
    Yolov8Adapter,
    Yolov10Adapter,
    YoloxAdapter,
)
from edge_agent.core.detector.adapters.yolo_nas import YoloNasAdapter, YoloNasFlatAdapter
from edge_agent.core.detector.tensors import TensorSpec
from edge_agent.core.errors import ModelError

ADAPTERS: dict[str, type[Adapter]] = {
    a.layout: a for a in (SsdAdapter, TfOdAdapter, YoloxAdapter, Yolov5Adapter, Yolov8Adapter,
                          EfficientNmsAdapter, Yolov10Adapter, RtDetrAdapter, RfDetrAdapter,
                          RtDetrPostprocessedAdapter, YoloNasAdapter, YoloNasFlatAdapter,
                          NanoDetAdapter, NanoDetPlusAdapter)
}


def supported() -> str:
    return "; ".join(f"{name}: {a.description}" for name, a in ADAPTERS.items())


def detect_layout(inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...],
                  source: str = "model") -> str:
    """The layout a model's inputs and outputs match; ModelError listing them when none does."""
    found = [name for name, a in ADAPTERS.items() if a.matches(inputs, outputs)]
    if len(found) == 1:
        return found[0]
    what = (f"inputs [{', '.join(map(str, inputs))}], outputs [{', '.join(map(str, outputs))}]")
    if not found:
        raise ModelError(f"cannot tell the output layout of {source}: {what}. Supported "
                         f"layouts: {supported()}. Force one with model.layout or --layout.")
    raise ModelError(f"{source} matches several layouts ({', '.join(found)}): {what}. "
                     "Choose one with model.layout or --layout.")


def build_adapter(layout: str, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...],
                  class_names: tuple[str, ...], options: DecodeOptions,
                  source: str = "model") -> Adapter:
    if layout == "auto":
        layout = detect_layout(inputs, outputs, source)
    if layout not in ADAPTERS:
        raise ValueError(f"unknown layout {layout!r}; valid: auto, {', '.join(ADAPTERS)}")
    try:
        return ADAPTERS[layout](inputs, outputs, class_names, options)
    except (AttributeError, IndexError, TypeError) as exc:
        raise ModelError(
            f"{source} does not fit the {layout} layout ({ADAPTERS[layout].description}): "
            f"inputs [{', '.join(map(str, inputs))}], outputs "
            f"[{', '.join(map(str, outputs))}] ({exc})") from None


__all__ = ["ADAPTERS", "Adapter", "DecodeOptions", "ModelAdapter", "build_adapter",
           "detect_layout", "supported"]
