"""Osprey's own export, the jetson-inference pytorch-ssd layout.

Input `input_0` float32 [1,3,H,W], RGB, stretched to the input size, (x/255 - 0.5) / 0.5 (the
normalisation detectNet applies). Outputs `scores` [1,N,C] softmaxed with class 0 = background
and `boxes` [1,N,4] normalised x1,y1,x2,y2.
"""

from __future__ import annotations

import numpy as np

from edge_agent.core.detector.adapters.base import Adapter, find, input_size
from edge_agent.core.detector.detections import Detections
from edge_agent.core.detector.preprocess import Preprocess, Transform
from edge_agent.core.detector.tensors import TensorSpec


class SsdAdapter(Adapter):
    layout = "ssd"
    description = "outputs scores [1,N,C] (softmax, class 0 = background) + boxes [1,N,4]"

    @staticmethod
    def matches(inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> bool:
        scores, boxes = find(outputs, "scores"), find(outputs, "boxes")
        return (scores is not None and boxes is not None and len(scores.shape) == 3
                and len(boxes.shape) == 3 and boxes.dim(2) == 4)

    def _preprocess(self) -> Preprocess:
        return Preprocess(input_size(self.input, "NCHW", 300), resize="stretch", rgb=True,
                          scale=1 / 255, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))

    def __init__(self, inputs, outputs, class_names, options) -> None:
        n_cls = (find(outputs, "scores").dim(2) or 0) if find(outputs, "scores") else 0
        if n_cls and len(class_names) == n_cls:
            class_names = class_names[1:]  # a labels file that lists BACKGROUND first
        super().__init__(inputs, outputs, class_names, options)
        self._scores = find(outputs, "scores").name
        self._boxes = find(outputs, "boxes").name

    def decode(self, outputs: dict[str, np.ndarray], t: Transform) -> Detections:
        scores = outputs[self._scores][0]
        boxes = outputs[self._boxes][0]
        fg = scores[:, 1:]
        anchor, cls = np.nonzero(fg > self.options.score_threshold)
        w, h = t.input_size
        xyxy = boxes[anchor] * np.array([w, h, w, h], np.float32)
        return self._finish(xyxy, fg[anchor, cls], cls, t, run_nms=True)
