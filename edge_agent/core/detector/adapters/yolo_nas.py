"""YOLO-NAS (Deci-AI/super-gradients) ONNX exports.

- yolo-nas: the export without NMS (`model.export(..., postprocessing=False)`): two outputs,
  boxes [1,N,4] x1,y1,x2,y2 in input pixels and class scores [1,N,C] already sigmoided
  (`NDFLHeads` decoded_predictions while tracing), N = one anchor per cell over strides 8, 16,
  32. Decoded as `PPYoloEPostPredictionCallback` (pp_yolo_e/post_prediction_callback.py,
  multi_label_per_box=True) does: every (anchor, class) with score > threshold, the best
  nms_top_k = 1000 of them, class-wise NMS (torchvision batched_nms), then max_detections.
- yolo-nas-flat: the export with NMS in the graph, output_predictions_format=FLAT
  (`conversion/onnx/nms.py` PickNMSPredictionsAndReturnAsFlatResult): one output
  `flat_predictions` (or `graph2_flat_predictions`) [K,7] = batch index, x1, y1, x2, y2,
  score, class index, in input pixels; rows of image 0 above the threshold are kept. Older
  super-gradients releases wrote class before score (`ConvertFlatTensorToTRTFormat`).
Input, super-gradients' `default_yolo_nas_coco_processing_params` (training/processing/
defaults.py, the COCO checkpoints): RGB (no ReverseImageChannels; images load as RGB),
`DetectionLongestMaxSizeRescale` to 636x636 (r = min(636/h, 636/w), size round(h * r)),
`DetectionCenterPadding` to 640x640 with 114 (pad (640 - nh) // 2), `StandardizeImage` / 255;
boxes back as (b - pad) / r. Other input sizes keep the same 4-pixel margin. A uint8 input
(exported with preprocessing=True) takes the padded RGB image as it is: the graph divides by 255.
"""

from __future__ import annotations

import numpy as np

from edge_agent.core.detector.adapters.base import Adapter, find, input_size, top
from edge_agent.core.detector.adapters.yolo import cells
from edge_agent.core.detector.detections import Detections
from edge_agent.core.detector.preprocess import Preprocess, Transform
from edge_agent.core.detector.tensors import TensorSpec
from edge_agent.core.errors import ModelError

NMS_TOP_K = 1000
"""Candidates kept before NMS (the reference's nms_top_k)."""
MARGIN = 4
"""The rescale box is the input less this (636 in 640)."""
_FLAT = ("flat_predictions", "graph2_flat_predictions")


class _YoloNas(Adapter):
    def _preprocess(self) -> Preprocess:
        w, h = input_size(self.input, "NCHW")
        raw = self.input.dtype == np.uint8
        return Preprocess((w, h), resize="letterbox", pad="center", rounding="round",
                          fit=(w - MARGIN, h - MARGIN), pad_value=114, rgb=True,
                          scale=1.0 if raw else 1 / 255,
                          dtype=np.uint8 if raw else np.float32)


class YoloNasAdapter(_YoloNas):
    layout = "yolo-nas"
    description = ("outputs boxes [1,N,4] (x1,y1,x2,y2 pixels) + scores [1,N,C], N = grid cells "
                   "over strides 8/16/32")

    @staticmethod
    def _pair(inputs, outputs) -> tuple[TensorSpec, TensorSpec] | None:
        if len(inputs) != 1 or len(outputs) != 2:
            return None
        if any(len(o.shape) != 3 for o in outputs):
            return None
        boxes = next((o for o in outputs if o.dim(2) == 4), None)
        if boxes is None:
            return None
        scores = outputs[1] if boxes is outputs[0] else outputs[0]
        n = cells(input_size(inputs[0], "NCHW"))
        return (boxes, scores) if boxes.dim(1) == n == scores.dim(1) else None

    @classmethod
    def matches(cls, inputs, outputs) -> bool:
        return cls._pair(inputs, outputs) is not None

    @classmethod
    def class_count(cls, outputs) -> int | None:
        boxes = [o for o in outputs if len(o.shape) == 3 and o.dim(2) == 4]
        scores = [o for o in outputs if len(o.shape) == 3 and o not in boxes[:1]]
        return scores[0].dim(2) if len(outputs) == 2 and boxes and scores else None

    def __init__(self, inputs, outputs, class_names, options) -> None:
        super().__init__(inputs, outputs, class_names, options)
        pair = self._pair(inputs, outputs)
        if pair is None:
            raise ModelError(f"{self.layout} needs two outputs [1,N,4] and [1,N,C] with N the "
                             f"grid cells of the input; found {', '.join(map(str, outputs))}")
        self._boxes, self._scores = (p.name for p in pair)

    def decode(self, outputs: dict[str, np.ndarray], t: Transform) -> Detections:
        scores = outputs[self._scores][0]
        anchor, cls = np.nonzero(scores > self.options.score_threshold)
        conf = scores[anchor, cls].astype(np.float32)
        if len(conf) > NMS_TOP_K:
            best = top(conf, NMS_TOP_K)
            anchor, cls, conf = anchor[best], cls[best], conf[best]
        xyxy = outputs[self._boxes][0][anchor].astype(np.float32)
        return self._finish(xyxy, conf, cls.astype(np.int64), t, run_nms=True)


class YoloNasFlatAdapter(_YoloNas):
    layout = "yolo-nas-flat"
    description = ("output flat_predictions [K,7]: image, x1,y1,x2,y2 pixels, score, class "
                   "(NMS in the graph)")

    @staticmethod
    def matches(inputs, outputs) -> bool:
        return (len(inputs) == 1 and len(outputs) == 1 and len(outputs[0].shape) == 2
                and outputs[0].dim(1) == 7)

    def __init__(self, inputs, outputs, class_names, options) -> None:
        super().__init__(inputs, outputs, class_names, options)
        out = find(outputs, *_FLAT) or (outputs[0] if len(outputs) == 1 else None)
        if out is None or len(out.shape) != 2:
            raise ModelError(f"{self.layout} needs one output [K,7]; found "
                             f"{', '.join(map(str, outputs))}")
        self._out = out.name

    def decode(self, outputs: dict[str, np.ndarray], t: Transform) -> Detections:
        p = outputs[self._out]
        p = p[(p[:, 0] == 0) & (p[:, 5] > self.options.score_threshold)]
        return self._finish(p[:, 1:5].astype(np.float32), p[:, 5].astype(np.float32),
                            p[:, 6].astype(np.int64), t, run_nms=False)
