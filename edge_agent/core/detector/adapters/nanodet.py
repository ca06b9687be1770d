"""NanoDet and NanoDet-Plus (RangiLyu/nanodet) ONNX exports.

`tools/export_onnx.py`: input `data` [1,3,H,W], output `output` [1,N,C+4*(reg_max+1)]
(reg_max 7): per row C class scores already sigmoided (`_forward_onnx`), then 4 x 8 logits of
the distance distribution to the left, top, right, bottom sides. Rows are the cells of each
stride's feature map, ceil(H/s) x ceil(W/s) row-major, strides 8, 16, 32 (NanoDet,
`gfl_head.py`) or 8, 16, 32, 64 (NanoDet-Plus, `nanodet_plus_head.py`). Decoded as `get_bboxes`:
distance = softmax(8 logits) . [0..7] (`Integral`) x stride; the cell's prior is
(x + 0.5) * stride for NanoDet (`GFLHead.get_single_level_center_point`) and x * stride for
NanoDet-Plus (`get_single_level_center_priors`: no half-cell offset); `distance2bbox` with
max_shape clamps the box to the input; then `multiclass_nms`: every (cell, class) with
score > threshold, class-wise NMS, max_detections.
Input, the val pipeline (`nanodet/data/transform/warp.py` warp_and_resize + color.py
_normalize): the BGR frame warped by one 3x3 matrix with cv2.warpPerspective (linear, border 0)
to the input size, keeping the aspect ratio centred (configs with keep_ratio: True, NanoDet-m)
or stretched (keep_ratio: False, every NanoDet-Plus config); then (x - mean) / std per BGR
channel, mean (103.53, 116.28, 123.675), std (57.375, 57.12, 58.395). Boxes back by the
inverse warp (warp_boxes with inv(M)).
"""

from __future__ import annotations

import math

import numpy as np

from edge_agent.core.detector.adapters.base import Adapter, input_size
from edge_agent.core.detector.detections import Detections
from edge_agent.core.detector.preprocess import Preprocess, Transform
from edge_agent.core.errors import ModelError

REG_MAX = 7
MEAN_BGR = (103.53, 116.28, 123.675)
STD_BGR = (57.375, 57.12, 58.395)


def cells(size: tuple[int, int], strides: tuple[int, ...]) -> int:
    w, h = size
    return sum(math.ceil(w / s) * math.ceil(h / s) for s in strides)


class _NanoDet(Adapter):
    STRIDES: tuple[int, ...] = ()
    OFFSET = 0.0
    KEEP_RATIO = True

    @classmethod
    def matches(cls, inputs, outputs) -> bool:
        if len(inputs) != 1 or inputs[0].key != "data" or len(outputs) != 1:
            return False
        out = outputs[0]
        if len(out.shape) != 3 or (out.dim(2) or 0) <= 4 * (REG_MAX + 1):
            return False
        return out.dim(1) == cells(input_size(inputs[0], "NCHW", 320), cls.STRIDES)

    @classmethod
    def class_count(cls, outputs) -> int | None:
        c = outputs[0].dim(2) if len(outputs) == 1 and len(outputs[0].shape) == 3 else None
        return c - 4 * (REG_MAX + 1) if c and c > 4 * (REG_MAX + 1) else None

    def __init__(self, inputs, outputs, class_names, options) -> None:
        super().__init__(inputs, outputs, class_names, options)
        out = outputs[0] if len(outputs) == 1 else None
        if out is None or len(out.shape) != 3 or (out.dim(2) or 0) <= 4 * (REG_MAX + 1):
            raise ModelError(f"{self.layout} needs one output [1,N,C+{4 * (REG_MAX + 1)}]; "
                             f"found {', '.join(map(str, outputs))}")
        self._out = out.name
        self._classes = out.dim(2) - 4 * (REG_MAX + 1)
        w, h = self.preprocess.size
        centres, strides = [], []
        for s in self.STRIDES:
            gy, gx = np.mgrid[0:math.ceil(h / s), 0:math.ceil(w / s)]
            centres.append((np.stack([gx.ravel(), gy.ravel()], 1) + self.OFFSET) * s)
            strides.append(np.full(gx.size, s))
        self._centre = np.concatenate(centres).astype(np.float32)
        self._stride = np.concatenate(strides).astype(np.float32)[:, None]
        self._bins = np.arange(REG_MAX + 1, dtype=np.float32)

    def _preprocess(self) -> Preprocess:
        return Preprocess(input_size(self.input, "NCHW", 320), resize="warp",
                          keep_ratio=self.KEEP_RATIO, pad_value=0, rgb=False,
                          mean=MEAN_BGR, std=STD_BGR)

    def decode(self, outputs: dict[str, np.ndarray], t: Transform) -> Detections:
        p = outputs[self._out][0]
        scores = p[:, :self._classes]
        cell, cls = np.nonzero(scores > self.options.score_threshold)
        rows = np.unique(cell)
        logits = p[rows, self._classes:].reshape(len(rows), 4, REG_MAX + 1).astype(np.float32)
        e = np.exp(logits - logits.max(axis=2, keepdims=True))
        dist = (e / e.sum(axis=2, keepdims=True)) @ self._bins * self._stride[rows]
        c = self._centre[rows]
        w, h = t.input_size
        xyxy = np.concatenate([c - dist[:, :2], c + dist[:, 2:]], axis=1)
        np.clip(xyxy[:, 0::2], 0, w, out=xyxy[:, 0::2])
        np.clip(xyxy[:, 1::2], 0, h, out=xyxy[:, 1::2])
        at = np.searchsorted(rows, cell)
        return self._finish(xyxy[at], scores[cell, cls].astype(np.float32),
                            cls.astype(np.int64), t, run_nms=True)


class NanoDetAdapter(_NanoDet):
    layout = "nanodet"
    description = ("input data, output [1,N,C+32], N = cells over strides 8/16/32, priors at "
                   "cell centres")
    STRIDES = (8, 16, 32)
    OFFSET = 0.5
    KEEP_RATIO = True


class NanoDetPlusAdapter(_NanoDet):
    layout = "nanodet-plus"
    description = ("input data, output [1,N,C+32], N = cells over strides 8/16/32/64, priors "
                   "at cell corners")
    STRIDES = (8, 16, 32, 64)
    OFFSET = 0.0
    KEEP_RATIO = False
