"""The image-text model's part of an answer: a second opinion on labels, and query matches.

For each keyframe's detections (after fusion), crops are embedded once and read two ways:
- labels: the detector's distribution (its label at its score, the rest spread evenly) and
  the text model's softmax over the class prompts are combined log-linearly,
  `q(c) ~ p_det(c)^(1-w) * p_text(c)^w` (normalised over the classes); the label becomes
  argmax q. The score is the detector's probability of that label times how much the text
  model moved it, `p_det(label) * q(label) / q0(label)`, where `q0` is the same combination
  with a text model that says nothing (uniform): a text model without an opinion leaves every
  score as it was, for any number of classes; agreement raises it, doubt lowers it, and a
  relabelled detection is scored for its new label, from the detector's share of it.
- queries: each of the camera's text queries is a match for a detection when the model's
  match probability reaches the threshold. A query with a word the model does not know is
  refused, with the reason, instead of being read without that word ("a crimson car" is not
  "a car"). A size word ("a small dog") is read by geometry, not by the model: the rest of
  the query must match and the detection must be of that size for its class at its place in
  the frame, by the camera's scale line the agent sends (edge_agent.core.sizes); until the
  agent has learned it, such a query is refused for that answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cloud_fallback.textimage import TextImageModel
from edge_agent.core.detector.detections import Detections
from edge_agent.core.protocol import RefusedQuery, WireMatch
from edge_agent.core.sizes import class_heights, size_class, size_ratio, split_size


@dataclass
class OpinionStats:
    crops: int = 0
    relabelled: int = 0
    matches: int = 0
    refused_queries: int = 0


@dataclass
class TextOpinion:
    model: TextImageModel
    class_names: tuple[str, ...]
    label_weight: float = 0.1
    match_threshold: float = 0.5
    min_side_px: int = 6
    max_crops: int = 256
    stats: OpinionStats = field(default_factory=OpinionStats)

    def combine(self, dets: Detections, p_text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(class ids, scores) of `dets` given the text model's class distribution (n, C)."""
        w, c = self.label_weight, len(self.class_names)
        if w <= 0 or c < 2:
            return dets.class_id.copy(), dets.score.copy()
        s = np.clip(dets.score, 0.02, 0.98)[:, None]
        p_det = np.broadcast_to((1 - s) / (c - 1), (len(dets), c)).copy()
        p_det[np.arange(len(dets)), dets.class_id] = s[:, 0]
        def normalised(log_q: np.ndarray) -> np.ndarray:
            q = np.exp(log_q - log_q.max(axis=1, keepdims=True))
            return q / q.sum(axis=1, keepdims=True)

        q = normalised((1 - w) * np.log(p_det) + w * np.log(np.clip(p_text, 1e-6, 1.0)))
        q0 = normalised((1 - w) * np.log(p_det))
        rows = np.arange(len(dets))
        label = q.argmax(axis=1)
        score = np.clip(p_det[rows, label] * q[rows, label] / q0[rows, label], 0.0, 1.0)
        # Unchanged where the text model moved nothing (no rounding noise on the score).
        same = np.isclose(q[rows, label], q0[rows, label], rtol=1e-6) & (label == dets.class_id)
        score = np.where(same, dets.score, score)
        return label.astype(np.int32), score.astype(np.float32)

    def read_queries(self, queries: list[str], scale_known: bool = True
                     ) -> tuple[list[tuple[str, str, str | None]], list[RefusedQuery]]:
        """(query, text the model reads, size asked for or None) for each query that can be
        answered, and the refused ones with the reason: words the model does not know, a
        size alone, or a size before the camera's scale is known (`scale_known`)."""
        usable, refused = [], []
        for query in dict.fromkeys(queries):
            size, rest = split_size(query)
            text, unknown = self.model.read_query(rest)
            if unknown:
                words = ", ".join(repr(u[:40]) for u in unknown[:5])
                more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
                reason = (f"the image-text model {self.model.name[:80]!r} does not know "
                          f"{words}{more}")
            elif size is not None and not text.strip():
                reason = f"{size!r} needs something to look for, e.g. '{size} dog'"
            elif size is not None and not scale_known:
                reason = (f"{size!r} is read from the camera's scale, which the agent learns "
                          "from its first few hundred confident detections: not yet known")
            else:
                usable.append((query, text, size))
                continue
            refused.append(RefusedQuery(query=query, reason=reason))
        return usable, refused

    def apply(self, images: list[np.ndarray], frames: list[Detections], indices: list[int],
              scales: list[tuple[float, float]], queries: list[str],
              perspective: list[float] | tuple[float, float] | None = None
              ) -> tuple[list[Detections], list[WireMatch]]:
        """Relabelled detections per keyframe and the matches of the queries it can read
        (`read_queries`). `scales` map a keyframe's decoded pixels to the boxes' frame pixels
        (the keyframe may travel smaller). The crop budget is shared evenly by the keyframes,
        what one leaves unused going to the next."""
        budget = self.max_crops
        out, matches = [], []
        usable, _ = self.read_queries(list(queries), scale_known=bool(perspective))
        query_emb = self.model.encode_texts([t for _, t, _ in usable]) if usable else None
        heights = class_heights(self.class_names) if perspective else None
        for n, (image, dets, index, (sx, sy)) in enumerate(
                zip(images, frames, indices, scales, strict=True)):
            share = budget // max(1, len(images) - n)
            if not len(dets) or share <= 0:
                out.append(dets)
                continue
            boxes = dets.xyxy / np.array([sx, sy, sx, sy], np.float32)
            sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
            pick = np.flatnonzero(sides >= self.min_side_px)
            pick = pick[np.argsort(-dets.score[pick], kind="stable")][:share]
            if not len(pick):
                out.append(dets)
                continue
            budget -= len(pick)
            self.stats.crops += len(pick)
            emb = self.model.encode_crops(self.model.crops(image, boxes[pick]))
            class_id, score = dets.class_id.copy(), dets.score.copy()
            if self.class_names:
                p_text = self.model.class_distribution(emb, self.class_names)
                class_id[pick], score[pick] = self.combine(dets[pick], p_text)
                self.stats.relabelled += int((class_id != dets.class_id).sum())
            relabelled = Detections(dets.xyxy, score, class_id, dets.class_names,
                                    dets.track_id)
            out.append(relabelled)
            if query_emb is not None:
                prob = self.model.match_probability(emb, query_emb)
                frame = (image.shape[1] * sx, image.shape[0] * sy)
                sizes = (size_class(size_ratio(relabelled[pick], perspective, heights, frame))
                         if heights is not None else [None] * len(pick))
                for i, q in zip(*np.nonzero(prob >= self.match_threshold), strict=True):
                    wanted = usable[q][2]
                    if wanted is not None and sizes[i] != wanted:
                        continue
                    j = int(pick[i])
                    cid = int(class_id[j])
                    label = self.class_names[cid] if cid < len(self.class_names) else \
                        f"class_{cid}"
                    matches.append(WireMatch(
                        query=usable[q][0], score=round(float(prob[i, q]), 4), index=index,
                        box=[round(float(v), 1) for v in dets.xyxy[j]], label=label,
                        class_id=cid, size=sizes[i]))
        self.stats.matches += len(matches)
        return out, matches
