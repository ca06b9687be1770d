"""YOLO layouts: YOLOX, YOLOv5, YOLOv8 (no NMS in the graph) and YOLOv10 (end to end).

- yolox (Megvii-BaseDetection/YOLOX, `yolox/data/data_augment.py` preproc and
  `demo/ONNXRuntime/onnx_inference.py`): `images` [1,3,S,S] float32, BGR, raw 0-255; letterbox
  r = min(S/h, S/w), size floored (`int(w * r)`), pasted at the top-left of a 114 canvas;
  boxes / r. `output` [1,A,5+C] of raw grid offsets tx,ty,tw,th with sigmoided objectness and
  class scores, one anchor per cell over strides 8, 16, 32.
- yolov5: [1,A,5+C] of cx,cy,w,h in input pixels, objectness, class scores; 3 anchors a cell.
- yolov8: [1,4+C,A] of cx,cy,w,h in input pixels and class scores (no objectness).
- yolov10 (ultralytics/ultralytics, `nn/modules/head.py` v10Detect end2end, `Detect.postprocess`):
  `output0` [1,K,6] (K = max_det, 300): x1,y1,x2,y2 in input pixels, score, class index;
  already top-K over anchors x classes, no NMS: rows with score > threshold are kept
  (`ops.non_max_suppression`'s end-to-end branch).
v5/v8/v10 take RGB / 255 in Ultralytics' `LetterBox` (`data/augment.py`): size rounded
(`round(w * r)`), centred at round(dw / 2 - 0.1), 114; boxes back by `ops.scale_boxes`: one gain
and the pad round((S - w * gain) / 2 - 0.1).
"""

from __future__ import annotations

import numpy as np

from edge_agent.core.detector.adapters.base import Adapter, cxcywh_to_xyxy, input_size
from edge_agent.core.detector.detections import Detections
from edge_agent.core.detector.preprocess import Preprocess, Transform
from edge_agent.core.detector.tensors import TensorSpec

STRIDES = (8, 16, 32)


def cells(size: tuple[int, int], strides: tuple[int, ...] = STRIDES) -> int:
    w, h = size
    return sum((w // s) * (h // s) for s in strides)


def ultralytics_letterbox(size: tuple[int, int]) -> Preprocess:
    """Ultralytics' LetterBox + scale_boxes, RGB / 255."""
    return Preprocess(size, resize="letterbox", pad="center", rounding="round",
                      pad_back="ultralytics", rgb=True, scale=1 / 255)


def _output(outputs: tuple[TensorSpec, ...]) -> TensorSpec | None:
    return outputs[0] if len(outputs) == 1 and len(outputs[0].shape) == 3 else None


class _Yolo(Adapter):
    def __init__(self, inputs, outputs, class_names, options) -> None:
        super().__init__(inputs, outputs, class_names, options)
        self._out = outputs[0].name

    def _preprocess(self) -> Preprocess:
        return ultralytics_letterbox(input_size(self.input, "NCHW"))

    def _pick(self, xyxy, obj, cls_scores, t: Transform) -> Detections:
        """Score = objectness x class score; candidates above the threshold, then NMS."""
        thr = self.options.score_threshold
        first = obj > thr if obj is not None else cls_scores.max(axis=1) > thr
        scores = cls_scores[first] * (obj[first, None] if obj is not None else 1.0)
        anchor, cls = np.nonzero(scores > thr)
        return self._finish(xyxy[first][anchor], scores[anchor, cls], cls, t, run_nms=True)


class YoloxAdapter(_Yolo):
    layout = "yolox"
    description = "output [1,A,5+C], A = grid cells over strides 8/16/32 (raw offsets)"

    @staticmethod
    def matches(inputs, outputs) -> bool:
        out = _output(outputs)
        if out is None or len(inputs) != 1 or (out.dim(2) or 0) < 6:
            return False
        if inputs[0].key == "data":  # NanoDet's export: the same cell count, another layout
            return False
        return out.dim(1) == cells(input_size(inputs[0], "NCHW"))

    def __init__(self, inputs, outputs, class_names, options) -> None:
        super().__init__(inputs, outputs, class_names, options)
        grids, strides = [], []
        w, h = self.preprocess.size
        for s in STRIDES:
            gy, gx = np.mgrid[0:h // s, 0:w // s]
            grids.append(np.stack([gx.ravel(), gy.ravel()], 1))
            strides.append(np.full(gx.size, s))
        self._grid = np.concatenate(grids).astype(np.float32)
        self._stride = np.concatenate(strides).astype(np.float32)[:, None]

    def _preprocess(self) -> Preprocess:
        return Preprocess(input_size(self.input, "NCHW", 416), resize="letterbox",
                          pad="top-left", rounding="floor", rgb=False, scale=1.0)

    def decode(self, outputs: dict[str, np.ndarray], t: Transform) -> Detections:
        p = outputs[self._out][0]
        first = p[:, 4] > self.options.score_threshold
        p, grid, stride = p[first], self._grid[first], self._stride[first]
        centre = (p[:, :2] + grid) * stride
        wh = np.exp(np.minimum(p[:, 2:4], 20.0)) * stride
        xyxy = cxcywh_to_xyxy(np.concatenate([centre, wh], axis=1))
        return self._pick(xyxy, p[:, 4], p[:, 5:], t)


class Yolov5Adapter(_Yolo):
    layout = "yolov5"
    description = "output [1,A,5+C], A = 3 anchors x grid cells, boxes cx,cy,w,h in pixels"

    @staticmethod
    def matches(inputs, outputs) -> bool:
        out = _output(outputs)
        if out is None or len(inputs) != 1 or (out.dim(2) or 0) < 6:
            return False
        return out.dim(1) == 3 * cells(input_size(inputs[0], "NCHW"))

    def decode(self, outputs: dict[str, np.ndarray], t: Transform) -> Detections:
        p = outputs[self._out][0]
        return self._pick(cxcywh_to_xyxy(p[:, :4]), p[:, 4], p[:, 5:], t)


class Yolov8Adapter(_Yolo):
    layout = "yolov8"
    description = "output [1,4+C,A] (channels first), boxes cx,cy,w,h in pixels"

    @staticmethod
    def matches(inputs, outputs) -> bool:
        out = _output(outputs)
        if out is None or len(inputs) != 1:
            return False
        c, a = out.dim(1) or 0, out.dim(2) or 0
        return 4 < c < a and a == cells(input_size(inputs[0], "NCHW"))

    def decode(self, outputs: dict[str, np.ndarray], t: Transform) -> Detections:
        p = outputs[self._out][0].T
        return self._pick(cxcywh_to_xyxy(p[:, :4]), None, p[:, 4:], t)


class Yolov10Adapter(_Yolo):
    layout = "yolov10"
    description = ("output [1,K,6] (end to end, K not a grid count): x1,y1,x2,y2 pixels, "
                   "score, class")

    @staticmethod
    def matches(inputs, outputs) -> bool:
        out = _output(outputs)
        if out is None or len(inputs) != 1 or out.dim(2) != 6 or not out.dim(1):
            return False
        n = cells(input_size(inputs[0], "NCHW"))
        return out.dim(1) not in (n, 3 * n)

    def decode(self, outputs: dict[str, np.ndarray], t: Transform) -> Detections:
        p = outputs[self._out][0]
        p = p[p[:, 4] > self.options.score_threshold]
        return self._finish(p[:, :4].astype(np.float32), p[:, 4].astype(np.float32),
                            p[:, 5].astype(np.int64), t, run_nms=False)
