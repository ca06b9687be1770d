"""A refined answer for a window, and what applying it means: pure functions the agent's post
thread and the offload benchmark both call, so the figures measure the agent's own rules.

An answer (from the cloud or the edge cache) holds the cloud's detections on the window's
keyframes, the edge's detections on the same keyframes and on every frame of the window.
Applying it:

- `refined_frames`: the answer merged into every frame of the window (`refined`);
- `verified_tracks`: tracked edge detections a confident cloud box confirms; their tracks take
  the cloud's class from then on (`relabel`);
- `held_objects`: static objects the cloud found, held on `detections` for `offload.hold_s`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from edge_agent.core.detector.detections import Detections, wider
from edge_agent.core.detector.nms import iou_matrix
from edge_agent.core.protocol import RefusedQuery, WireMatch
from edge_agent.runtime.offload.cache import Fingerprint
from edge_agent.runtime.offload.hold import held_from
from edge_agent.runtime.offload.merge import merge_window

AnswerSource = Literal["cloud", "cache"]

VERIFY_IOU = 0.5
"""A cloud box verifies the tracked edge detection it overlaps at least this much."""


@dataclass(frozen=True, kw_only=True)
class Answer:
    """A refined result for a window, from the cloud or the edge cache."""

    camera: str
    window_id: str
    request_id: str
    source: AnswerSource
    frames: list[tuple[int, Detections]]
    """(frame index, detections in frame pixels) per keyframe."""
    edge: list[Detections]
    """The edge's detections on the same keyframes (with track ids)."""
    rtt_ms: float
    window: list[tuple[int, Detections]] = field(default_factory=list)
    """The edge's detections on every frame of the window, for the merge."""
    worker: str = ""
    model: str = ""
    fingerprint: Fingerprint | None = None
    matches: list[WireMatch] = field(default_factory=list)
    """Text queries the cloud found true of a detection (frame index, box, score)."""
    text_model: str = ""
    refused_queries: list[RefusedQuery] = field(default_factory=list)
    """Text queries the cloud's image-text model cannot read, with the reason."""


class Verified(NamedTuple):
    track_id: int
    class_id: int
    score: float


def verified_tracks(edge: Detections, cloud: Detections, min_score: float = 0.0
                    ) -> list[Verified]:
    """Each tracked edge detection a cloud box of at least `min_score` overlaps (IoU >=
    VERIFY_IOU, best match first), with the cloud's class and score."""
    if edge.track_id is None or not len(edge) or not len(cloud):
        return []
    cloud = cloud[cloud.score >= min_score]
    if not len(cloud):
        return []
    iou = iou_matrix(edge.xyxy, cloud.xyxy)
    out, used = [], set()
    for i in sorted(range(len(edge)), key=lambda i: -float(iou[i].max())):
        j = int(iou[i].argmax())
        tid = int(edge.track_id[i])
        if tid < 0 or iou[i, j] < VERIFY_IOU or j in used:
            continue
        used.add(j)
        out.append(Verified(tid, int(cloud.class_id[j]), float(cloud.score[j])))
    return out


def answer_verifies(answer: Answer, min_score: float) -> list[Verified]:
    """The tracks an answer verifies: judged on its last keyframe, the freshest."""
    if not answer.frames or not answer.edge:
        return []
    return verified_tracks(answer.edge[-1], answer.frames[-1][1], min_score)


def relabel(dets: Detections, overrides: Mapping[int, int],
            names: tuple[str, ...] = ()) -> Detections:
    """`dets` with each tracked detection in `overrides` (track id -> class id in `names`,
    the answers' names, which extend the edge's) given that class."""
    if not overrides or dets.track_id is None or not len(dets):
        return dets
    cls = dets.class_id.copy()
    for i, tid in enumerate(dets.track_id.tolist()):
        cls[i] = overrides.get(tid, cls[i])
    return Detections(dets.xyxy, dets.score, cls, wider(dets.class_names, names),
                      dets.track_id)


def refined_frames(answer: Answer) -> list[tuple[int, Detections]]:
    """The answer merged into every frame of its window (edge_agent.runtime.offload.merge)."""
    return merge_window(answer.window, answer.frames)


def held_objects(answer: Answer, score_factor: float) -> Detections | None:
    """The static objects of the answer to hold on `detections` (None: nothing to hold)."""
    return held_from(answer.frames, score_factor)
