"""Objects the cloud found that stand still and the edge model misses, held after the answer.

A parked car too small or too dim for the edge model is missed on every frame, window after
window; the cloud finds it on the keyframes of an offloaded window. When it is in the same
place (same class, IoU >= `static_iou`) on the first and last keyframe of the answer, it is
static, and the agent keeps publishing it on `detections` for `hold_s` after the answer, at the
cloud's score times `score_factor`, wherever no edge detection covers it (IoU >= 0.3 with any
edge box, any class: then the edge has it, and its track is what users follow). Held boxes
carry no track id and make no events; the next answer for the camera replaces them.

The score factor keeps held boxes below the edge's confident detections in any ranking: a held
box is the cloud's view from up to `hold_s` ago, not this frame's.

Off by default (`offload.hold_s: 0`). On the four training clips (worlds 2000 and 2001, normal
and hard) holding for 5 s at 0.7 of the cloud's score moved G(0.2) of `bench offload` from
0.569 to 0.563 (0.568 at 0.5); on the eight held-out clips the same setting gave 0.623 against
0.576. A gain the training clips do not show is not one to ship as a default.
"""

from __future__ import annotations

import numpy as np

from edge_agent.core.detector.detections import Detections, wider
from edge_agent.core.detector.nms import iou_matrix

COVERED_IOU = 0.3
"""An edge box overlapping a held one this much covers it (any class)."""
HOLD_MIN_SCORE = 0.3
"""The least cloud score (fused) of an object worth holding."""
HOLD_STATIC_IOU = 0.8
"""Same place on the answer's first and last keyframe: static."""


def static_objects(first: Detections, last: Detections, min_score: float, static_iou: float,
                   score_factor: float) -> Detections:
    """The last keyframe's detections of at least `min_score` that are in the same place, same
    class, on the first keyframe, scored `score_factor` times the cloud's score, untracked."""
    if not len(last) or not len(first):
        return last[np.zeros(len(last), bool)]
    iou = iou_matrix(last.xyxy, first.xyxy) * (last.class_id[:, None] == first.class_id[None, :])
    keep = (last.score >= min_score) & (iou.max(axis=1) >= static_iou)
    held = last[keep]
    return Detections(held.xyxy.copy(), (held.score * score_factor).astype(np.float32),
                      held.class_id.copy(), held.class_names,
                      np.full(len(held), -1, np.int64))


def held_from(frames: list[tuple[int, Detections]], score_factor: float) -> Detections | None:
    """What to hold from an answer's keyframes ((frame index, detections)): the static
    objects between its first and last keyframe; None when it has fewer than two distinct
    keyframes, since one frame cannot tell a parked car from a passing one."""
    ordered = sorted(frames, key=lambda kf: kf[0])
    if len(ordered) < 2 or ordered[0][0] == ordered[-1][0]:
        return None
    return static_objects(ordered[0][1], ordered[-1][1], HOLD_MIN_SCORE, HOLD_STATIC_IOU,
                          score_factor)


def with_held(edge: Detections, held: Detections) -> Detections:
    """The edge's detections plus the held boxes no edge box covers."""
    if not len(held):
        return edge
    if len(edge):
        covered = iou_matrix(held.xyxy, edge.xyxy).max(axis=1) >= COVERED_IOU
        held = held[~covered]
        if not len(held):
            return edge
    tracks = edge.track_id if edge.track_id is not None else np.full(len(edge), -1, np.int64)
    return Detections(np.concatenate([edge.xyxy, held.xyxy]).astype(np.float32),
                      np.concatenate([edge.score, held.score]).astype(np.float32),
                      np.concatenate([edge.class_id, held.class_id]),
                      wider(edge.class_names, held.class_names),
                      np.concatenate([tracks, held.track_id]).astype(np.int64))
