"""The offload path of one agent: window summaries in (post thread), refined answers out.

For each window of a camera that may offload: score it, ask the policy, pick keyframes, look
in the edge cache (a hit is answered at once, with no upload and no budget spent), otherwise
hand it to the client. Answers come back through the agent's inbox and are applied in the
post thread, which owns the tracks.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from edge_agent.detector.detections import Detections
from edge_agent.detector.nms import iou_matrix
from edge_agent.offload.cache import EdgeCache, fingerprint, fingerprint_frames
from edge_agent.offload.client import Answer, OffloadClient
from edge_agent.offload.keyframes import select_keyframes
from edge_agent.offload.policy import OffloadPolicy, window_score
from edge_agent.window import WindowSummary

if TYPE_CHECKING:
    from edge_agent.agent import Agent

VERIFY_IOU = 0.5


class OffloadManager:
    def __init__(self, agent: Agent) -> None:
        cfg = agent.config
        self.agent = agent
        self.o = cfg.offload
        self.policy = OffloadPolicy(cfg.offload)
        c = cfg.cache
        self.cache = EdgeCache(c.max_entries, c.ttl_s, c.hamming_radius, c.block_threshold,
                               c.edge_agreement) if c.enabled else None
        self.client = OffloadClient(cfg, agent.publisher, self.policy, agent.post_answer,
                                    agent.detector.class_names)
        self.queries = {c.name: list(c.text_queries) for c in cfg.cameras}
        self.cameras = {c.name for c in cfg.cameras if c.offload}

    def start(self) -> None:
        self.client.start()

    def stop(self) -> None:
        self.client.stop()

    def on_window(self, summary: WindowSummary) -> None:
        if summary.camera not in self.cameras:
            return
        self.client.count("windows")
        score = window_score(summary, self.o.uncertain_band)
        with self.client.lock:
            decision = self.policy.decide(score, self.client.in_flight[summary.camera],
                                          summary.camera, summary.first_index)
            if decision.send:
                self.policy.cover(summary.camera, summary.last_index)
        if not decision.send:
            self.client.count(decision.reason)
            return
        started = time.monotonic()
        keyframes = select_keyframes(summary, self.o.keyframes, self.o.uncertain_band)
        fp = None
        if self.cache is not None:
            frames = list(summary.frames)
            at = {f.frame.index: f for f in frames}
            fp = fingerprint([at[i].frame.image for i in fingerprint_frames(list(at))])
            entry = self.cache.lookup(fp, lambda off: frames[off].detections)
            if entry is not None:
                with self.client.lock:
                    self.policy.breaker.trial = False  # nothing was sent to try the cloud
                self.client.count("cache_hit")
                # The cached answer, frame for frame at the same places in this window.
                used = [(off, dets) for off, dets in entry.answer if off < len(frames)]
                matches = [m.model_copy(update={"index": frames[off].frame.index})
                           for off, m in entry.meta.get("matches", []) if off < len(frames)]
                self.agent.apply_answer(Answer(
                    summary.camera, summary.window_id, f"cache-{summary.window_id}", "cache",
                    [(frames[off].frame.index, dets) for off, dets in used],
                    [frames[off].detections for off, _ in used],
                    (time.monotonic() - started) * 1000,
                    [(f.frame.index, f.detections) for f in frames],
                    model=entry.meta.get("model", ""), matches=matches,
                    text_model=entry.meta.get("text_model", "")))
                return
        queries = self.queries.get(summary.camera, [])
        pipe = self.agent.by_name.get(summary.camera)
        line = pipe.perspective.line if queries and pipe is not None else None
        self.client.submit(summary, keyframes, queries, fp, line)

    def remember(self, answer: Answer) -> None:
        """Keep a cloud answer for recurring scenes (post thread)."""
        if self.cache is not None and answer.fingerprint is not None and answer.frames \
                and answer.window:
            first = answer.window[0][0]
            offsets = [idx - first for idx, _ in answer.frames]
            self.cache.put(answer.fingerprint, list(zip(offsets, [d for _, d in answer.frames],
                                                        strict=True)),
                           answer.frames[-1][1], offsets[-1],
                           edge={off: answer.window[off][1]
                                 for off in fingerprint_frames(list(range(len(answer.window))))},
                           model=answer.model,
                           matches=[(m.index - first, m) for m in answer.matches],
                           text_model=answer.text_model)

    def snapshot(self) -> dict[str, Any]:
        snap = self.client.snapshot()
        snap["mode"] = self.o.mode
        snap["threshold"] = round(self.policy.threshold(), 4)
        if self.cache is not None:
            s = self.cache.stats
            snap["cache"] = {"entries": len(self.cache), "hits": s.hits, "misses": s.misses,
                             "invalidated": s.invalidated}
        return snap


def verified_tracks(edge: Detections, cloud: Detections, min_score: float = 0.0
                    ) -> list[tuple[int, int, float]]:
    """(track id, cloud class id, cloud score) for each tracked edge detection a cloud box
    of at least `min_score` overlaps (IoU >= 0.5, best match first)."""
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
        out.append((tid, int(cloud.class_id[j]), float(cloud.score[j])))
    return out
