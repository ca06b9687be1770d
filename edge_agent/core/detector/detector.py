"""A detector: a backend plus the adapter of its model's layout. Image in, Detections out."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from edge_agent.core.config.common import DetectorModelConfig, RuntimeConfig
from edge_agent.core.detector.adapters import (
    ADAPTERS,
    Adapter,
    DecodeOptions,
    build_adapter,
    detect_layout,
)
from edge_agent.core.detector.adapters.base import Transform
from edge_agent.core.detector.backends import DetectorBackend, make_backend
from edge_agent.core.detector.classes import resolve_classes
from edge_agent.core.detector.detections import Detections
from edge_agent.core.errors import ModelError

Feeds = dict[str, np.ndarray]
"""A model's input tensors by name."""
Outputs = dict[str, np.ndarray]
"""A model's raw output tensors by name."""


@runtime_checkable
class FrameDetector(Protocol):
    """Image in, detections in frame pixels out: every detector (a plain one, a tiled one)."""

    @property
    def class_names(self) -> tuple[str, ...]: ...

    def __call__(self, image: np.ndarray) -> Detections: ...


@runtime_checkable
class StagedDetector(FrameDetector, Protocol):
    """A detector whose call splits into three stages that may run in different threads:
    `prepare` (resize, normalise: CPU), `run` (the model alone) and `finish` (decode, clip).
    A detector that prepares its own input per call (tiles, say) is only a FrameDetector."""

    def prepare(self, image: np.ndarray) -> tuple[Feeds, Transform]: ...

    def run(self, feeds: Feeds) -> Outputs: ...

    def finish(self, outputs: Outputs, transform: Transform, shape: tuple[int, ...]
               ) -> Detections: ...


@dataclass
class Timings:
    """Milliseconds of the last call, by stage."""

    preprocess: float = 0.0
    infer: float = 0.0
    decode: float = 0.0

    @property
    def total(self) -> float:
        return self.preprocess + self.infer + self.decode


class Detector:
    def __init__(self, backend: DetectorBackend, adapter: Adapter) -> None:
        self.backend = backend
        self.adapter = adapter
        self.timings = Timings()

    @classmethod
    def from_config(cls, model: DetectorModelConfig, runtime: RuntimeConfig | None = None,
                    default_path: Path | None = None) -> Detector:
        path = model.path or default_path
        if path is None:
            raise ModelError("no model configured: set model.path (or --model)")
        backend = make_backend(Path(path), runtime or RuntimeConfig())
        layout = model.layout
        if layout == "auto":
            layout = detect_layout(backend.inputs, backend.outputs, str(path))
        num = _num_classes(backend, layout)
        names = resolve_classes(model.classes, model.classes_file, backend.metadata, num)
        options = DecodeOptions(model.score_threshold, model.nms_iou, model.max_detections)
        adapter = build_adapter(layout, backend.inputs, backend.outputs, names, options,
                                source=str(path))
        return cls(backend, adapter)

    @property
    def layout(self) -> str:
        return self.adapter.layout

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.adapter.class_names

    @property
    def domain(self) -> str | None:
        """What the model was trained for, from its metadata: `synthetic` (Osprey's synthetic
        world only), `real`, or None (not said: a model brought by the user)."""
        return self.backend.metadata.get("domain")

    def __call__(self, image: np.ndarray) -> Detections:
        t0 = time.perf_counter()
        feeds, transform = self.adapter.prepare(image)
        t1 = time.perf_counter()
        outputs = self.backend.run(feeds)
        t2 = time.perf_counter()
        dets = self.finish(outputs, transform, image.shape)
        self.timings = Timings((t1 - t0) * 1e3, (t2 - t1) * 1e3,
                               (time.perf_counter() - t2) * 1e3)
        return dets

    def prepare(self, image: np.ndarray) -> tuple[Feeds, Transform]:
        """The model's input for `image`, and the transform back to frame pixels."""
        return self.adapter.prepare(image)

    def run(self, feeds: Feeds) -> Outputs:
        """The model alone on prepared input."""
        return self.backend.run(feeds)

    def finish(self, outputs: Outputs, transform: Transform, shape: tuple[int, ...]
               ) -> Detections:
        """Decode raw outputs into frame-pixel detections, clipped to the frame. With
        `prepare` and `run`, the three stages of a call, for callers that run them in
        different threads (StagedDetector)."""
        dets = self.adapter.decode(outputs, transform)
        h, w = shape[:2]
        np.clip(dets.xyxy[:, 0::2], 0, w, out=dets.xyxy[:, 0::2])
        np.clip(dets.xyxy[:, 1::2], 0, h, out=dets.xyxy[:, 1::2])
        return dets


def _num_classes(backend: DetectorBackend, layout: str) -> int | None:
    """Class count from the output shapes where the layout shows it (its adapter's
    `class_count`; for SSD and the YOLO grids: C+1 scores, 5+C or 4+C channels)."""
    adapter = ADAPTERS.get(layout)
    if adapter is not None and (n := adapter.class_count(backend.outputs)) is not None:
        return n
    if layout not in ("ssd", "yolox", "yolov5", "yolov8"):
        return None
    for spec in backend.outputs:
        if spec.key == "scores" and spec.dim(2):
            return spec.dim(2) - 1
    if len(backend.outputs) == 1 and len(backend.outputs[0].shape) == 3:
        a, b = backend.outputs[0].dim(1) or 0, backend.outputs[0].dim(2) or 0
        return max(b - 5, 0) if b < a else a - 4
    return None
