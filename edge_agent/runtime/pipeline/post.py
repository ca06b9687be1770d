"""The post thread: decode, track, publish detections and events, close windows, apply answers.

It owns every camera's tracker, window, events and answer state, so none of them needs a lock.
Work arrives on one queue: frames from the detection thread, answers from the offload path
(cloud answers and edge-cache hits alike), closing events at stop.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge_agent.core.detector import FrameDetector, StagedDetector
from edge_agent.core.detector.detections import Detections
from edge_agent.core.mqtt.topics import Topics
from edge_agent.runtime.config import EdgeConfig
from edge_agent.runtime.events import EventOutput
from edge_agent.runtime.live import LiveView
from edge_agent.runtime.metrics import AgentMetrics
from edge_agent.runtime.mqtt.payloads import (
    detections_payload,
    matches_payload,
    refined_payload,
)
from edge_agent.runtime.mqtt.publisher import Publisher
from edge_agent.runtime.offload.answer import Answer, refined_frames
from edge_agent.runtime.offload.manager import Offload
from edge_agent.runtime.pipeline.answers import apply_to_camera
from edge_agent.runtime.pipeline.camera import CameraPipeline
from edge_agent.runtime.pipeline.stages import Inferred
from edge_agent.runtime.window import WindowSummary

log = logging.getLogger("osprey.agent")


@dataclass
class Events:
    """Events to publish for a camera (its open tracks closed at stop)."""

    pipe: CameraPipeline
    events: list[EventOutput]


class Flush:
    """Every camera has ended: once this is reached, everything before it is published."""


PostItem = Inferred | Answer | Events | Flush | None


class PostStage:
    def __init__(self, config: EdgeConfig, detector: FrameDetector, publisher: Publisher, *,
                 model_id: str, metrics: AgentMetrics, pipelines: list[CameraPipeline],
                 offload: Offload, release: Callable[[], None]) -> None:
        self.config = config
        self.detector = detector
        self.staged = detector if isinstance(detector, StagedDetector) else None
        self.publisher = publisher
        self.topics: Topics = publisher.topics
        self.model_id = model_id
        self.metrics = metrics
        self.by_name = {p.name: p for p in pipelines}
        self.offload = offload
        self._release = release
        """Frees the detection thread's place for each frame finished (AHEAD)."""
        self.window_listeners: list[Callable[[WindowSummary], None]] = []
        self.live: LiveView | None = None
        """The live view, when served: frames, events and answers go to it (it keeps what a
        viewer asks for and drops the rest at once)."""
        self.frame_listeners: list[Callable[[str, Detections], None]] = []
        """Called (post thread) with the detections of a camera's confirmed tracks on each
        frame (relabelled by the cloud where it answered)."""
        self.inbox: queue.Queue[PostItem] = queue.Queue()
        self.done = threading.Event()
        """Set once every camera has ended and all before it is published."""
        self._thread = threading.Thread(target=self._loop, name="post", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            item = self.inbox.get()
            if item is None:
                return
            try:
                if isinstance(item, Inferred):
                    try:
                        self._frame(item)
                    finally:
                        self._release()
                elif isinstance(item, Events):
                    for out in item.events:
                        self.publish_event(item.pipe, out)
                elif isinstance(item, Flush):
                    self.done.set()
                else:
                    self.apply_answer(item)
            except Exception:  # a bug here must not silence the agent for good
                log.exception("post-processing failed")

    # frames ------------------------------------------------------------------------------

    def _frame(self, item: Inferred) -> None:
        p, frame = item.pipe, item.frame
        t0 = time.perf_counter()
        if item.detections is not None:
            dets = item.detections
        else:
            assert self.staged is not None and item.outputs is not None \
                and item.transform is not None
            dets = self.staged.finish(item.outputs, item.transform, frame.image.shape)
        infer_ms = item.pre_infer_ms + (time.perf_counter() - t0) * 1000
        upd = p.tracker.update(dets, frame.index)
        if p.cfg.text_queries:
            p.perspective.add(dets, frame.width, frame.height)
        if p.overrides:
            upd = p.relabel(upd)
        p.processed += 1
        p.last_infer_ms = infer_ms
        p.seq += 1
        shown = p.shown(upd.all, time.monotonic())
        latency_ms = (time.monotonic() - frame.captured) * 1000.0
        payload = detections_payload(
            device=self.config.device_id, camera=p.name, seq=p.seq, frame=frame.index,
            captured_at=frame.wall_time, latency_ms=latency_ms, model=self.model_id,
            width=frame.width, height=frame.height, dets=shown,
            held=len(shown) - len(upd.all))
        self.publisher.publish_json(self.topics.camera(p.name, "detections"), payload,
                                    expiry_s=self.config.mqtt.message_expiry_s)
        for out in p.events.update(upd, frame):
            self.publish_event(p, out)
        if self.live is not None:
            self.live.frame(p.name, frame.image, shown)
        if self.frame_listeners:
            confirmed = {t.track_id for t in p.tracker.tracks if t.confirmed}
            objects = upd.detections
            if objects.track_id is not None and len(objects):
                objects = objects[np.isin(objects.track_id, list(confirmed))]
        for listener in self.frame_listeners:
            try:
                listener(p.name, objects)
            except Exception:
                log.exception("camera %s: frame listener failed", p.name)
        summary = p.window.push(frame, upd.all)
        if summary is not None:
            p.windows += 1
            self.metrics.windows.labels(p.name).inc()
            for listener in self.window_listeners:
                try:
                    listener(summary)
                except Exception:
                    log.exception("camera %s: window listener failed", p.name)
        p.last_latency_ms = latency_ms
        with p.samples_lock:
            p.infer_ms.append(infer_ms)
            p.latencies.append(latency_ms)
        self.metrics.processed.labels(p.name).inc()
        self.metrics.inference.labels(p.name).observe(infer_ms / 1000.0)
        self.metrics.latency.labels(p.name).observe(latency_ms / 1000.0)

    def publish_event(self, p: CameraPipeline, out: EventOutput) -> None:
        self.publisher.publish_json(self.topics.camera(p.name, "events"), out.payload)
        if self.live is not None:
            self.live.event(p.name, out.payload)
        self.metrics.events.labels(p.name, out.payload["type"]).inc()
        if out.snapshot is not None:
            self.publisher.publish_raw(self.topics.camera(p.name, "snapshot"),
                                       out.snapshot.jpeg(), retain=True)

    # answers (cloud or edge cache: the same path) ---------------------------------------

    def apply_answer(self, answer: Answer) -> None:
        """Publish `refined` (and `matches`), relabel and verify the tracks it covers."""
        p = self.by_name.get(answer.camera)
        if p is None or not answer.frames:
            return
        if answer.source == "cloud":
            self.offload.remember(answer)
        verified = apply_to_camera(p, answer, self.config.offload, time.monotonic())
        for v in verified:
            out = p.events.verify(v.track_id, v.class_id)
            if out is not None:
                self.publish_event(p, out)
        device = self.config.device_id
        self.publisher.publish_json(self.topics.camera(p.name, "refined"), refined_payload(
            device=device, answer=answer, frames=refined_frames(answer), verified=verified,
            class_names=self.detector.class_names))
        self.metrics.refined.labels(p.name, answer.source).inc()
        if self.live is not None:
            self.live.answer(p.name, answer.frames[-1][1], answer.source)
        p.answers[answer.source] += 1
        if answer.matches:
            p.answers["matches"] += 1
            self.publisher.publish_json(self.topics.camera(p.name, "matches"),
                                        matches_payload(device=device, answer=answer))
            for m in answer.matches:
                self.metrics.matches.labels(p.name, m.query).inc()
