"""Merge the cloud's answer for a window's keyframes into every frame of the window.

The cloud saw a few keyframes; the edge saw every frame. On a keyframe the answer is the
cloud's. Between keyframes, the cloud's objects are linked from one keyframe to the next (same
class, near enough for the time between them) and their boxes interpolated; an object seen on
one keyframe only is carried up to `carry` frames from it. That gives the cloud's estimate for
every frame. Then, per frame:

- an edge detection that overlaps an estimate (IoU >= 0.3) takes the cloud's class and at
  least the cloud's score; its box becomes the cloud's interpolated box where the object is
  linked between two keyframes (the cloud model localises better than the edge model, and
  over a few frames motion is close to linear), and stays its own where the estimate is only
  carried from one keyframe (then the edge's box, of this very frame, is the better one);
- an estimate no edge detection overlaps (an object the edge missed) is added with its
  interpolated box at `carry_score` times its score;
- an edge detection the cloud does not back keeps `unsure` times its score, or `reject` times
  when its track was on the nearest keyframe and the cloud saw nothing there.

The agent publishes the result on `refined`; `edge-agent bench offload` scores this same
function, so the measured gain is the gain users get.
"""

from __future__ import annotations

import numpy as np

from edge_agent.core.detector.detections import Detections, wider
from edge_agent.core.detector.nms import iou_matrix

MATCH_IOU = 0.3


class _Object:
    """A cloud object on keyframe k0, possibly linked to the same object on keyframe k1."""

    def __init__(self, k0: int, box0: np.ndarray, score: float, cls: int) -> None:
        self.k0, self.box0, self.score, self.cls = k0, box0, score, cls
        self.k1: int | None = None
        self.box1: np.ndarray | None = None
        self.linked_from = False

    def at(self, f: int, carry: int) -> np.ndarray | None:
        if self.k1 is not None and self.k0 <= f <= self.k1:
            t = (f - self.k0) / (self.k1 - self.k0)
            return self.box0 + t * (self.box1 - self.box0)
        if self.k1 is None and f > self.k0 and f - self.k0 <= carry:
            return self.box0
        if not self.linked_from and f < self.k0 and self.k0 - f <= carry:
            return self.box0
        return None


def _objects(keyframes: list[tuple[int, Detections]]) -> list[_Object]:
    objs: list[list[_Object]] = [[_Object(k, d.xyxy[i], float(d.score[i]), int(d.class_id[i]))
                                  for i in range(len(d))] for k, d in keyframes]
    for n in range(len(keyframes) - 1):
        nxt = keyframes[n + 1][1]
        free = list(range(len(nxt)))
        for o in sorted(objs[n], key=lambda o: -o.score):
            cand = [j for j in free if nxt.class_id[j] == o.cls]
            if not cand:
                continue
            dist = _link_distance(o.box0, nxt.xyxy[cand])
            if dist.min() <= 1.0:
                j = cand[int(np.argmin(dist))]
                free.remove(j)
                o.k1, o.box1 = keyframes[n + 1][0], nxt.xyxy[j]
                o.score = min(o.score, float(nxt.score[j]))
                objs[n + 1][j].linked_from = True
    return [o for level in objs for o in level]


def merge_window(edge_frames: list[tuple[int, Detections]],
                 keyframes: list[tuple[int, Detections]], reject: float = 0.3,
                 unsure: float = 0.6, carry: int = 2, carry_score: float = 0.9
                 ) -> list[tuple[int, Detections]]:
    """(frame index, merged detections) for every frame of `edge_frames`."""
    if not keyframes:
        return edge_frames
    keys = dict(keyframes)
    key_index = np.array(sorted(keys))
    objects = _objects(sorted(keyframes, key=lambda kd: kd[0]))
    edge_at = dict(edge_frames)
    seen_at_key = {k: _tracks_under(edge_at.get(k), keys[k]) for k in keys}
    names = wider(*(d.class_names for d in keys.values()))
    out = []
    for f, edge in edge_frames:
        if f in keys:
            out.append((f, keys[f]))
            continue
        est = [(box, o) for o in objects if (box := o.at(f, carry)) is not None]
        cls, score, xyxy = edge.class_id.copy(), edge.score.copy(), edge.xyxy.copy()
        used = np.zeros(len(est), bool)
        backed = np.zeros(len(edge), bool)
        if len(edge) and est:
            iou = iou_matrix(edge.xyxy, np.array([b for b, _ in est], np.float32))
            same_or_any = iou  # the cloud's class wins; any class may match
            for i in np.argsort(-same_or_any.max(axis=1)):
                j = int(np.argmax(np.where(used, -1.0, same_or_any[i])))
                if used[j] or same_or_any[i, j] < MATCH_IOU:
                    continue
                used[j], backed[i] = True, True
                cls[i] = est[j][1].cls
                score[i] = max(score[i], est[j][1].score)
                if est[j][1].k1 is not None:  # linked: an interpolated cloud box
                    xyxy[i] = est[j][0]
        nearest = int(key_index[np.argmin(np.abs(key_index - f))])
        rejected = seen_at_key[nearest][1]
        ids = edge.track_id if edge.track_id is not None else np.full(len(edge), -1)
        for i in np.nonzero(~backed)[0]:
            score[i] *= reject if int(ids[i]) in rejected else unsure
        merged = Detections(xyxy, score, cls, wider(edge.class_names, names),
                            edge.track_id)
        extra = [est[j] for j in np.nonzero(~used)[0]]
        if extra:
            merged = concat(merged, Detections(
                np.array([b for b, _ in extra], np.float32),
                np.array([o.score * carry_score for _, o in extra], np.float32),
                np.array([o.cls for _, o in extra], np.int32), names,
                np.full(len(extra), -1, np.int64)))
        out.append((f, merged))
    return out


def _tracks_under(edge: Detections | None, cloud: Detections) -> tuple[set[int], set[int]]:
    """At a keyframe: (tracks a cloud box overlaps, tracks none does)."""
    if edge is None or edge.track_id is None or not len(edge):
        return set(), set()
    ids = [int(t) for t in edge.track_id]
    if not len(cloud):
        return set(), {t for t in ids if t >= 0}
    hit = iou_matrix(edge.xyxy, cloud.xyxy).max(axis=1) >= MATCH_IOU
    return ({t for t, h in zip(ids, hit, strict=True) if t >= 0 and h},
            {t for t, h in zip(ids, hit, strict=True) if t >= 0 and not h})


def _link_distance(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Centre distance over 1.5 x the box's larger side, or inf when sizes differ over 2x: at
    most 1.0 means the same object a few frames later."""
    c = (box[:2] + box[2:]) / 2
    co = (others[:, :2] + others[:, 2:]) / 2
    side = float(max(box[2] - box[0], box[3] - box[1], 1.0))
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    ratio = np.maximum(areas / max(area, 1e-6), area / np.maximum(areas, 1e-6))
    d = np.linalg.norm(co - c, axis=1) / (1.5 * side)
    return np.where(ratio <= 2.0, d, np.inf)


def concat(a: Detections, b: Detections) -> Detections:
    ids_a = a.track_id if a.track_id is not None else np.full(len(a), -1, np.int64)
    ids_b = b.track_id if b.track_id is not None else np.full(len(b), -1, np.int64)
    return Detections(np.concatenate([a.xyxy, b.xyxy]), np.concatenate([a.score, b.score]),
                      np.concatenate([a.class_id, b.class_id]), wider(a.class_names, b.class_names),
                      np.concatenate([ids_a, ids_b]))
