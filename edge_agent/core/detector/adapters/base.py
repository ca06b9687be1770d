"""The seam between a runtime and a model's layout: prepare inputs, decode outputs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

from edge_agent.core.detector.classes import COCO80
from edge_agent.core.detector.detections import Detections
from edge_agent.core.detector.nms import nms
from edge_agent.core.detector.preprocess import Preprocess, Transform
from edge_agent.core.detector.tensors import TensorSpec
from edge_agent.core.errors import ModelError


@dataclass(frozen=True)
class DecodeOptions:
    score_threshold: float = 0.3
    nms_iou: float = 0.45
    max_detections: int = 100


class ModelAdapter(Protocol):
    layout: ClassVar[str]
    preprocess: Preprocess
    class_names: tuple[str, ...]

    def prepare(self, image: np.ndarray) -> tuple[dict[str, np.ndarray], Transform]: ...

    def decode(self, outputs: dict[str, np.ndarray], t: Transform) -> Detections: ...


def find(specs: tuple[TensorSpec, ...], *keys: str) -> TensorSpec | None:
    """The spec whose name (without `:0`, any case) is one of `keys`."""
    return next((s for s in specs if s.key in keys), None)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x) without overflow warnings."""
    return np.exp(-np.logaddexp(0, -x))


def cxcywh_to_xyxy(b: np.ndarray) -> np.ndarray:
    half = b[:, 2:4] / 2
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1)


def top(score: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first (torch.topk's order)."""
    if k >= score.size:
        return np.argsort(-score, kind="stable")
    part = np.argpartition(-score, k - 1)[:k]
    return part[np.argsort(-score[part], kind="stable")]


def input_size(spec: TensorSpec, layout: str, default: int = 640) -> tuple[int, int]:
    """(width, height) of an image input; a dynamic size falls back to `default`."""
    h_i, w_i = (2, 3) if layout == "NCHW" else (1, 2)
    return spec.dim(w_i) or default, spec.dim(h_i) or default


class Adapter:
    """Shared plumbing: the image input, thresholds, class names, host NMS. A layout whose
    model takes more than the image overrides `_image_input` and `prepare`."""

    layout: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...],
                 class_names: tuple[str, ...], options: DecodeOptions) -> None:
        self.input = self._image_input(inputs)
        self.outputs = outputs
        self.options = options
        if not class_names and self.class_count(outputs) == len(COCO80):
            class_names = COCO80  # resolve_classes' rule, for layouts it cannot size
        self.class_names = class_names
        self.preprocess = self._preprocess()

    @classmethod
    def class_count(cls, outputs: tuple[TensorSpec, ...]) -> int | None:
        """How many classes the outputs show, where this layout says; None: they do not."""
        return None

    def _image_input(self, inputs: tuple[TensorSpec, ...]) -> TensorSpec:
        """The image input; this default takes models with that one input only."""
        if len(inputs) != 1:
            raise ModelError(f"{self.layout} models take one image input, found "
                             f"{', '.join(map(str, inputs))}")
        return inputs[0]

    def _preprocess(self) -> Preprocess:
        raise NotImplementedError

    def prepare(self, image: np.ndarray) -> tuple[dict[str, np.ndarray], Transform]:
        x, t = self.preprocess(image)
        return {self.input.name: x}, t

    def _finish(self, xyxy: np.ndarray, score: np.ndarray, class_id: np.ndarray, t: Transform,
                run_nms: bool) -> Detections:
        if run_nms and len(score):
            keep = nms(xyxy, score, class_id, self.options.nms_iou, self.options.max_detections)
            xyxy, score, class_id = xyxy[keep], score[keep], class_id[keep]
        elif len(score) > self.options.max_detections:
            top = np.argsort(-score, kind="stable")[: self.options.max_detections]
            xyxy, score, class_id = xyxy[top], score[top], class_id[top]
        return Detections(t.to_frame(xyxy), score, class_id, self._names(class_id))

    def _names(self, class_id: np.ndarray) -> tuple[str, ...]:
        if len(class_id) and int(class_id.max()) >= len(self.class_names):
            n = int(class_id.max()) + 1
            return tuple(self.class_names) + tuple(
                f"class_{i}" for i in range(len(self.class_names), n))
        return self.class_names
