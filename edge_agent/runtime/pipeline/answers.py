"""Applying an answer to its camera (post thread, which owns the tracks): the camera's state
changes, by the pure rules of edge_agent.runtime.offload.answer."""

from __future__ import annotations

import logging

from edge_agent.core.detector.detections import wider
from edge_agent.runtime.config import OffloadConfig
from edge_agent.runtime.offload.answer import Answer, Verified, answer_verifies, held_objects
from edge_agent.runtime.pipeline.camera import CameraPipeline

log = logging.getLogger("osprey.agent")


def apply_to_camera(p: CameraPipeline, answer: Answer, cfg: OffloadConfig, now: float
                    ) -> list[Verified]:
    """Warn once per refused text query, hold the answer's static objects (when
    `offload.hold_s` is on), and give each verified track that is still alive the cloud's
    class. Returns the tracks verified."""
    for r in answer.refused_queries:
        if r.query not in p.refused_queries:
            p.refused_queries.add(r.query)
            log.warning("camera %s: the cloud did not read text query %r: %s. Until then it "
                        "matches nothing; see docs/models.md for the words the model knows",
                        p.name, r.query, r.reason)
    if cfg.hold_s > 0:
        p.held = held_objects(answer, cfg.hold_score_factor)
        p.held_until = now + cfg.hold_s
    live = {t.track_id for t in p.tracker.tracks}
    verified = [v for v in answer_verifies(answer, cfg.verify_min_score)
                if v.track_id in live]  # a track may have ended meanwhile
    for v in verified:
        p.overrides[v.track_id] = v.class_id
    if answer.frames:  # override ids are in the answers' names
        p.override_names = wider(p.override_names, answer.frames[-1][1].class_names)
    return verified
