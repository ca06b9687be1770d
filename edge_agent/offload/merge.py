"""Merge the cloud's answer for a window's keyframes into every frame of the window.

The cloud saw a few keyframes; the edge tracked every frame. For each frame, take the nearest
keyframe and match the edge's tracks to the cloud's boxes there (IoU >= 0.5):

- a track the cloud confirms takes the cloud's class and at least the cloud's score;
- a track the cloud saw nothing under (the keyframe had it, no cloud box overlaps) is taken
  down to `reject` times its score: the stronger model says it is not there;
- an edge detection with no track at the keyframe keeps `unsure` times its score;
- on the keyframes themselves, and on frames within `carry` frames of one, cloud boxes the edge
  missed are added (objects move little in a few frames), at `carry_score` times their score
  away from the keyframe.

The agent publishes the result on `refined`; `edge-agent bench offload` scores the same
function, so the measured gain is the gain users get.
"""

from __future__ import annotations

import numpy as np

from edge_agent.detector.detections import Detections
from edge_agent.detector.nms import iou_matrix

MATCH_IOU = 0.5


def _tracks_at(edge: Detections, cloud: Detections) -> tuple[dict[int, tuple[int, float]],
                                                             set[int], np.ndarray]:
    """At a keyframe: confirmed track -> (cloud class, cloud score); tracks the cloud did not
    confirm; which cloud boxes no edge detection matched."""
    confirmed: dict[int, tuple[int, float]] = {}
    rejected: set[int] = set()
    unmatched = np.ones(len(cloud), bool)
    if len(edge) and len(cloud):
        iou = iou_matrix(edge.xyxy, cloud.xyxy)
        for i in np.argsort(-iou.max(axis=1)):
            j = int(np.argmax(np.where(unmatched, iou[i], -1.0)))
            tid = int(edge.track_id[i]) if edge.track_id is not None else -1
            if unmatched[j] and iou[i, j] >= MATCH_IOU:
                unmatched[j] = False
                if tid >= 0:
                    confirmed[tid] = (int(cloud.class_id[j]), float(cloud.score[j]))
            elif tid >= 0:
                rejected.add(tid)
    elif len(edge) and edge.track_id is not None:
        rejected = {int(t) for t in edge.track_id if t >= 0}
    return confirmed, rejected, unmatched


def merge_window(edge_frames: list[tuple[int, Detections]],
                 keyframes: list[tuple[int, Detections]], reject: float = 0.3,
                 unsure: float = 0.6, carry: int = 2, carry_score: float = 0.8
                 ) -> list[tuple[int, Detections]]:
    """(frame index, merged detections) for every frame of `edge_frames`."""
    if not keyframes:
        return edge_frames
    key_index = np.array([k for k, _ in keyframes])
    edge_at = dict(edge_frames)
    verdicts = []
    for k, cloud in keyframes:
        edge_k = edge_at.get(k, Detections.empty(cloud.class_names))
        verdicts.append(_tracks_at(edge_k, cloud))
    out = []
    for f, edge in edge_frames:
        n = int(np.argmin(np.abs(key_index - f)))
        k, cloud = keyframes[n]
        if f == k:
            out.append((f, cloud))
            continue
        confirmed, rejected, unmatched = verdicts[n]
        cls = edge.class_id.copy()
        score = edge.score.copy()
        ids = edge.track_id if edge.track_id is not None else np.full(len(edge), -1)
        for i, tid in enumerate(ids.tolist()):
            if tid in confirmed:
                cls[i], s = confirmed[tid]
                score[i] = max(score[i], s)
            elif tid in rejected:
                score[i] *= reject
            else:
                score[i] *= unsure
        merged = Detections(edge.xyxy, score, cls, edge.class_names, edge.track_id)
        if abs(f - k) <= carry and unmatched.any():
            add = cloud[unmatched]
            merged = concat(merged, Detections(add.xyxy, add.score * carry_score,
                                               add.class_id, add.class_names,
                                               np.full(len(add), -1, np.int64)))
        out.append((f, merged))
    return out


def concat(a: Detections, b: Detections) -> Detections:
    ids_a = a.track_id if a.track_id is not None else np.full(len(a), -1, np.int64)
    ids_b = b.track_id if b.track_id is not None else np.full(len(b), -1, np.int64)
    return Detections(np.concatenate([a.xyxy, b.xyxy]), np.concatenate([a.score, b.score]),
                      np.concatenate([a.class_id, b.class_id]), a.class_names or b.class_names,
                      np.concatenate([ids_a, ids_b]))
