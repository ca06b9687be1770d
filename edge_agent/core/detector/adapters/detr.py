"""DETR-family layouts (no NMS): RT-DETR, RT-DETRv2, D-FINE, RF-DETR and their Hugging Face
exports.

- rt-detr: the raw head, outputs `pred_boxes`|`boxes` [1,Q,4] cx,cy,w,h normalised to the input
  and `logits`|`pred_logits` [1,Q,C] class logits (Hugging Face exports name them `pred_boxes`,
  `logits`). Decoded as lyuwenyu/RT-DETR `rtdetr_pytorch/src/zoo/rtdetr/rtdetr_postprocessor.py`
  (use_focal_loss) and transformers `RTDetrImageProcessor.post_process_object_detection` do:
  sigmoid, top-K over the flattened Q*C scores (K = Q, the reference's num_top_queries 300),
  class = index % C, query = index // C, then score > threshold. Input: RGB stretched to the
  input size, / 255, no mean/std (RT-DETR `references/deploy/rtdetrv2_onnxruntime.py`:
  T.Resize((S, S)) + ToTensor; D-FINE `tools/inference/onnx_inf.py` the same;
  RTDetrImageProcessor: size 640x640, rescale 1/255, do_normalize False).
- rf-detr (roboflow/rf-detr `rfdetr/deploy/export.py`: input `input`, outputs `dets` = pred_boxes
  [1,Q,4] cxcywh normalised, `labels` = pred_logits [1,Q,C]): the same decode
  (`rfdetr/models/lwdetr.py` PostProcess: sigmoid, top num_select=300 over Q*C, index % C),
  input as `rfdetr/detr.py` predict: RGB to_tensor (/ 255), ImageNet mean (0.485, 0.456, 0.406)
  std (0.229, 0.224, 0.225), resized to the square resolution (stretched). Its class index is
  the logit column: for the COCO checkpoints that is the COCO category id (1 = person, 91
  columns), so a class list for them needs 91 entries.
- rt-detr-postprocessed: the official RT-DETR / D-FINE export (`tools/export_onnx.py`: model
  + postprocessor in deploy mode), inputs `images` [N,3,S,S] and `orig_target_sizes` [N,2]
  int64, outputs `labels` [N,K], `boxes` [N,K,4] x1,y1,x2,y2, `scores` [N,K]: the
  postprocessor multiplies the normalised boxes by orig_target_sizes.repeat(1, 2), so it is fed
  the frame's (width, height) (as rtdetrv2_onnxruntime.py does) and its boxes are frame pixels.
Boxes of the first two scale by the input size and map back by the stretch; all three keep
rows above the score threshold, best first, up to max_detections.
"""

from __future__ import annotations

import numpy as np

from edge_agent.core.detector.adapters.base import (
    Adapter,
    cxcywh_to_xyxy,
    find,
    input_size,
    sigmoid,
    top,
)
from edge_agent.core.detector.detections import Detections
from edge_agent.core.detector.preprocess import Preprocess, Transform
from edge_agent.core.detector.tensors import TensorSpec
from edge_agent.core.errors import ModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _Detr(Adapter):
    """Boxes [1,Q,4] cxcywh normalised + class logits [1,Q,C] under the names in BOXES/LOGITS."""

    BOXES: tuple[str, ...] = ()
    LOGITS: tuple[str, ...] = ()

    @classmethod
    def _pair(cls, outputs) -> tuple[TensorSpec, TensorSpec] | None:
        boxes, logits = find(outputs, *cls.BOXES), find(outputs, *cls.LOGITS)
        if boxes is None or logits is None or len(outputs) != 2:
            return None
        if len(boxes.shape) != 3 or len(logits.shape) != 3 or boxes.dim(2) != 4:
            return None
        return boxes, logits

    @classmethod
    def matches(cls, inputs, outputs) -> bool:
        return len(inputs) == 1 and cls._pair(outputs) is not None

    @classmethod
    def class_count(cls, outputs) -> int | None:
        pair = cls._pair(outputs)
        return pair[1].dim(2) if pair else None

    def __init__(self, inputs, outputs, class_names, options) -> None:
        super().__init__(inputs, outputs, class_names, options)
        pair = self._pair(outputs)
        if pair is None:
            raise ModelError(f"{self.layout} needs outputs {'|'.join(self.BOXES)} [1,Q,4] and "
                             f"{'|'.join(self.LOGITS)} [1,Q,C]; found "
                             f"{', '.join(map(str, outputs))}")
        self._boxes, self._logits = (p.name for p in pair)

    def decode(self, outputs: dict[str, np.ndarray], t: Transform) -> Detections:
        logits = outputs[self._logits][0]
        q, c = logits.shape
        flat = logits.reshape(-1)
        best = top(flat, q)  # sigmoid is monotonic: the top-K of logits is that of scores
        score = sigmoid(flat[best].astype(np.float32))
        keep = score > self.options.score_threshold
        best, score = best[keep], score[keep]
        w, h = t.input_size
        xyxy = cxcywh_to_xyxy(outputs[self._boxes][0][best // c].astype(np.float32))
        xyxy *= np.array([w, h, w, h], np.float32)
        return self._finish(xyxy, score, (best % c).astype(np.int64), t, run_nms=False)


class RtDetrAdapter(_Detr):
    layout = "rt-detr"
    description = ("outputs pred_boxes [1,Q,4] (cxcywh, normalised) + logits [1,Q,C] "
                   "(RT-DETR/D-FINE heads, Hugging Face exports); RGB / 255")
    BOXES = ("pred_boxes", "boxes")
    LOGITS = ("logits", "pred_logits")

    def _preprocess(self) -> Preprocess:
        return Preprocess(input_size(self.input, "NCHW"), resize="stretch", rgb=True,
                          scale=1 / 255)


class RfDetrAdapter(_Detr):
    layout = "rf-detr"
    description = ("outputs dets [1,Q,4] (cxcywh, normalised) + labels [1,Q,C] (logits); "
                   "RGB, ImageNet mean/std")
    BOXES = ("dets",)
    LOGITS = ("labels",)

    def _preprocess(self) -> Preprocess:
        return Preprocess(input_size(self.input, "NCHW"), resize="stretch", rgb=True,
                          scale=1 / 255, mean=IMAGENET_MEAN, std=IMAGENET_STD)


_SIZES = ("orig_target_sizes",)
_OUTS = ("labels", "boxes", "scores")


class RtDetrPostprocessedAdapter(Adapter):
    layout = "rt-detr-postprocessed"
    description = ("inputs images + orig_target_sizes [N,2]; outputs labels, boxes (x1,y1,x2,y2 "
                   "frame pixels), scores (the official RT-DETR/D-FINE export)")

    @staticmethod
    def _sizes_input(inputs) -> TensorSpec | None:
        named = find(inputs, *_SIZES)
        if named is not None:
            return named
        two = [s for s in inputs if len(s.shape) == 2 and s.dim(1) == 2]
        return two[0] if len(two) == 1 else None

    @classmethod
    def matches(cls, inputs, outputs) -> bool:
        return (len(inputs) == 2 and cls._sizes_input(inputs) is not None
                and all(find(outputs, k) is not None for k in _OUTS)
                and len(find(outputs, "scores").shape) == 2)

    def _image_input(self, inputs):
        sizes = self._sizes_input(inputs)
        images = [s for s in inputs if s is not sizes]
        if sizes is None or len(images) != 1 or len(images[0].shape) != 4:
            raise ModelError(f"{self.layout} models take an image input and orig_target_sizes "
                             f"[N,2], found {', '.join(map(str, inputs))}")
        self.sizes = sizes
        return images[0]

    def __init__(self, inputs, outputs, class_names, options) -> None:
        super().__init__(inputs, outputs, class_names, options)
        found = [find(outputs, k) for k in _OUTS]
        if any(f is None for f in found):
            raise ModelError(f"{self.layout} needs outputs labels, boxes, scores; found "
                             f"{', '.join(map(str, outputs))}")
        self._labels, self._boxes, self._scores = (f.name for f in found)

    def _preprocess(self) -> Preprocess:
        return Preprocess(input_size(self.input, "NCHW"), resize="stretch", rgb=True,
                          scale=1 / 255)

    def prepare(self, image: np.ndarray) -> tuple[dict[str, np.ndarray], Transform]:
        """The image and the frame's (width, height); the boxes come back in frame pixels, so
        the transform is the identity (input_size still says what the model was fed)."""
        x, t = self.preprocess(image)
        h, w = image.shape[:2]
        dtype = self.sizes.dtype if np.issubdtype(self.sizes.dtype, np.number) else np.int64
        sizes = np.array([[w, h]], dtype=dtype)
        return ({self.input.name: x, self.sizes.name: sizes},
                Transform(1.0, 1.0, 0.0, 0.0, t.input_size))

    def decode(self, outputs: dict[str, np.ndarray], t: Transform) -> Detections:
        score = outputs[self._scores][0].astype(np.float32)
        keep = score > self.options.score_threshold
        xyxy = outputs[self._boxes][0][keep].astype(np.float32)
        labels = outputs[self._labels][0][keep].astype(np.int64)
        return self._finish(xyxy, score[keep], labels, t, run_nms=False)
