"""The image-text model's part of an answer: a second opinion on labels, and query matches.

For each keyframe's detections (after fusion), crops are embedded once and read two ways:
- labels: the detector's distribution (its label at its score, the rest spread evenly) and
  the text model's softmax over the class prompts are combined log-linearly,
  `q(c) ~ p_det(c)^(1-w) * p_text(c)^w`; the label becomes argmax q. The score (how sure the
  object is there) stays the detector's.
- queries: each of the camera's text queries is a match for a detection when the model's
  match probability reaches the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cloud_fallback.textimage import TextImageModel
from edge_agent.detector.detections import Detections
from edge_agent.offload.protocol import WireMatch


@dataclass
class OpinionStats:
    crops: int = 0
    relabelled: int = 0
    matches: int = 0


@dataclass
class TextOpinion:
    model: TextImageModel
    class_names: tuple[str, ...]
    label_weight: float = 0.1
    match_threshold: float = 0.5
    min_side_px: int = 6
    max_crops: int = 256
    stats: OpinionStats = field(default_factory=OpinionStats)

    def combine(self, dets: Detections, p_text: np.ndarray) -> np.ndarray:
        """New class ids for `dets` given the text model's class distribution (n, C)."""
        w, c = self.label_weight, len(self.class_names)
        if w <= 0 or c < 2:
            return dets.class_id.copy()
        s = np.clip(dets.score, 0.02, 0.98)[:, None]
        p_det = np.broadcast_to((1 - s) / (c - 1), (len(dets), c)).copy()
        p_det[np.arange(len(dets)), dets.class_id] = s[:, 0]
        q = (1 - w) * np.log(p_det) + w * np.log(np.clip(p_text, 1e-6, 1.0))
        return q.argmax(axis=1).astype(np.int32)

    def apply(self, images: list[np.ndarray], frames: list[Detections], indices: list[int],
              scales: list[tuple[float, float]], queries: list[str]
              ) -> tuple[list[Detections], list[WireMatch]]:
        """Relabelled detections per keyframe and the query matches. `scales` map a keyframe's
        decoded pixels to the boxes' frame pixels (the keyframe may travel smaller)."""
        budget = self.max_crops
        out, matches = [], []
        query_emb = self.model.encode_texts(list(queries)) if queries else None
        for image, dets, index, (sx, sy) in zip(images, frames, indices, scales, strict=True):
            if not len(dets) or budget <= 0:
                out.append(dets)
                continue
            boxes = dets.xyxy / np.array([sx, sy, sx, sy], np.float32)
            sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
            pick = np.flatnonzero(sides >= self.min_side_px)
            pick = pick[np.argsort(-dets.score[pick], kind="stable")][:budget]
            if not len(pick):
                out.append(dets)
                continue
            budget -= len(pick)
            self.stats.crops += len(pick)
            emb = self.model.encode_crops(self.model.crops(image, boxes[pick]))
            class_id = dets.class_id.copy()
            if self.class_names:
                p_text = self.model.class_distribution(emb, self.class_names)
                class_id[pick] = self.combine(dets[pick], p_text)
                self.stats.relabelled += int((class_id != dets.class_id).sum())
            relabelled = Detections(dets.xyxy, dets.score, class_id, dets.class_names,
                                    dets.track_id)
            out.append(relabelled)
            if query_emb is not None:
                prob = self.model.match_probability(emb, query_emb)
                for i, q in zip(*np.nonzero(prob >= self.match_threshold), strict=True):
                    j = int(pick[i])
                    cid = int(class_id[j])
                    label = self.class_names[cid] if cid < len(self.class_names) else \
                        f"class_{cid}"
                    matches.append(WireMatch(
                        query=queries[q], score=round(float(prob[i, q]), 4), index=index,
                        box=[round(float(v), 1) for v in dets.xyxy[j]], label=label,
                        class_id=cid))
        self.stats.matches += len(matches)
        return out, matches
