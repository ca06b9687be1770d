"""Layouts whose graph already ran NMS: TF Object Detection API SSD and TensorRT EfficientNMS.

- tf-od (ONNX model zoo ssd_mobilenet_v1): `image_tensor:0` uint8 [1,H,W,3] RGB (dynamic size:
  the frame is fed as it is); `detection_boxes` [1,K,4] y1,x1,y2,x2 normalised,
  `detection_scores` [1,K], `detection_classes` [1,K] 1-based, `num_detections` [1].
- efficient-nms: float32 NCHW input (a YOLO backbone: RGB 0-1, Ultralytics' centred letterbox,
  see yolo.py);
  `num_detections` [1,1], `detection_boxes` [1,K,4] x1,y1,x2,y2 in input pixels,
  `detection_scores` [1,K], `detection_classes` [1,K] 0-based.
"""

from __future__ import annotations

import numpy as np

from edge_agent.core.detector.adapters.base import Adapter, find, input_size
from edge_agent.core.detector.adapters.yolo import ultralytics_letterbox
from edge_agent.core.detector.detections import Detections
from edge_agent.core.detector.preprocess import Preprocess, Transform
from edge_agent.core.errors import ModelError

_NUM = ("num_detections", "num_dets")
_BOXES = ("detection_boxes", "det_boxes")
_SCORES = ("detection_scores", "det_scores")
_CLASSES = ("detection_classes", "det_classes")


class _InGraph(Adapter):
    def __init__(self, inputs, outputs, class_names, options) -> None:
        super().__init__(inputs, outputs, class_names, options)
        found = [find(outputs, *keys) for keys in (_NUM, _BOXES, _SCORES, _CLASSES)]
        if any(f is None for f in found):
            raise ModelError(f"{self.layout} needs outputs num_detections, detection_boxes, "
                             f"detection_scores, detection_classes; found "
                             f"{', '.join(map(str, outputs))}")
        self._num, self._boxes, self._scores, self._classes = (f.name for f in found)

    @staticmethod
    def _has_outputs(outputs) -> bool:
        return all(find(outputs, *keys) for keys in (_NUM, _BOXES, _SCORES, _CLASSES))

    def _rows(self, outputs: dict[str, np.ndarray]):
        n = int(np.asarray(outputs[self._num]).reshape(-1)[0])
        boxes = outputs[self._boxes][0][:n].astype(np.float32)
        scores = outputs[self._scores][0][:n].astype(np.float32)
        classes = outputs[self._classes][0][:n]
        keep = scores > self.options.score_threshold
        return boxes[keep], scores[keep], classes[keep]


class TfOdAdapter(_InGraph):
    layout = "tf-od"
    description = ("input uint8 NHWC; outputs num_detections, detection_boxes (y-first, "
                   "normalised), detection_scores, detection_classes (1-based)")

    @classmethod
    def matches(cls, inputs, outputs) -> bool:
        return (len(inputs) == 1 and inputs[0].dtype == np.uint8 and len(inputs[0].shape) == 4
                and inputs[0].dim(3) == 3 and cls._has_outputs(outputs))

    def _preprocess(self) -> Preprocess:
        w, h = self.input.dim(2), self.input.dim(1)
        if w and h:
            return Preprocess((w, h), resize="stretch", rgb=True, layout="NHWC", dtype=np.uint8)
        return Preprocess((0, 0), resize="none", rgb=True, layout="NHWC", dtype=np.uint8)

    def decode(self, outputs, t: Transform) -> Detections:
        boxes, scores, classes = self._rows(outputs)
        w, h = t.input_size
        xyxy = boxes[:, [1, 0, 3, 2]] * np.array([w, h, w, h], np.float32)
        class_id = np.maximum(classes.astype(np.int64) - 1, 0)
        return self._finish(xyxy, scores, class_id, t, run_nms=False)


class EfficientNmsAdapter(_InGraph):
    layout = "efficient-nms"
    description = ("outputs num_detections, detection_boxes (x1,y1,x2,y2 pixels), "
                   "detection_scores, detection_classes (0-based)")

    @classmethod
    def matches(cls, inputs, outputs) -> bool:
        return (len(inputs) == 1 and inputs[0].dtype != np.uint8 and cls._has_outputs(outputs))

    def _preprocess(self) -> Preprocess:
        return ultralytics_letterbox(input_size(self.input, "NCHW"))

    def decode(self, outputs, t: Transform) -> Detections:
        boxes, scores, classes = self._rows(outputs)
        return self._finish(boxes, scores, classes.astype(np.int64), t, run_nms=False)
