"""One camera's state in the pipeline: capture thread, tracker, window, events, counters, and
what the cloud's answers left on it (class overrides, held objects, refused queries)."""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from edge_agent.core.detector.detections import Detections
from edge_agent.core.sizes import Perspective
from edge_agent.runtime.capture.camera import Backoff, Camera
from edge_agent.runtime.capture.frame import FrameSource
from edge_agent.runtime.config import CameraConfig, EdgeConfig
from edge_agent.runtime.events import EventTracker
from edge_agent.runtime.offload.answer import relabel
from edge_agent.runtime.offload.hold import with_held
from edge_agent.runtime.tracker import Tracker, TrackUpdate
from edge_agent.runtime.window import SlidingWindow


@dataclass
class Interval:
    """Counters at the start of the current stats interval."""

    at: float
    frames_in: int = 0
    processed: int = 0
    dropped: int = 0


class CameraPipeline:
    """Per-camera state. The prepare thread reads `due`/`mark`; the post thread owns the
    tracker, window, events and answer state; `samples_lock` guards the samples the stats
    thread reads."""

    def __init__(self, cfg: CameraConfig, config: EdgeConfig, class_names: tuple[str, ...],
                 opener: Callable[[], FrameSource], on_status: Callable,
                 on_frame: Callable) -> None:
        self.cfg = cfg
        self.name = cfg.name
        r = cfg.reconnect
        self.camera = Camera(cfg.name, opener, Backoff(r.initial_s, r.max_s, r.jitter),
                             on_status=on_status, on_frame=on_frame)
        t = config.tracker
        self.tracker = Tracker(high=t.high, low=t.low, match_iou=t.match_iou,
                               min_hits=t.min_hits, max_age=t.max_age)
        self.window = SlidingWindow(cfg.name, config.window.size, config.window.stride,
                                    config.offload.uncertain_band)
        self.events = EventTracker(config.device_id, cfg.name, config.events, class_names)
        self.period = 1.0 / cfg.detect_fps if cfg.detect_fps else 0.0
        self.next_due = 0.0
        self.seq = 0
        self.processed = 0
        self.errors = 0
        self.windows = 0
        self.unpublished = 0
        self.overrides: dict[int, int] = {}
        """Track id -> class id the cloud gave it; applied to every later detection."""
        self.override_names: tuple[str, ...] = ()
        """The names the overrides' class ids are in (the cloud answers', which extend the
        edge model's)."""
        self.answers: Counter[str] = Counter()
        """Answers applied, by source (`cloud`, `cache`), and `matches` messages published."""
        self.held: Detections | None = None
        """Static objects of the last answer the edge misses (edge_agent.runtime.offload.hold)."""
        self.held_until = 0.0
        self.refused_queries: set[str] = set()
        """Text queries the cloud said it cannot read (each warned about once)."""
        self.perspective = Perspective(class_names)
        """The camera's scale line, learned from its detections (sizes in text queries)."""
        self.last_latency_ms: float | None = None
        self.last_infer_ms: float | None = None
        self.latencies: deque[float] = deque(maxlen=4096)
        self.infer_ms: deque[float] = deque(maxlen=4096)
        self.samples_lock = threading.Lock()
        self.interval = Interval(time.monotonic())

    def due(self, now: float) -> bool:
        return not self.period or now >= self.next_due

    def mark(self, now: float) -> None:
        if self.period:  # keep the average rate; after a gap, start over (no burst)
            late = now - self.next_due
            self.next_due = self.next_due + self.period if late < self.period \
                else now + self.period

    @property
    def state(self) -> str:
        return self.camera.state or "starting"

    def relabel(self, upd: TrackUpdate) -> TrackUpdate:
        """The update with the cloud's classes on verified tracks; ended tracks forgotten."""
        for t in upd.ended:
            self.overrides.pop(t.track_id, None)
        return TrackUpdate(relabel(upd.detections, self.overrides, self.override_names),
                           relabel(upd.all, self.overrides, self.override_names), upd.started,
                           upd.ended)

    def shown(self, dets: Detections, now: float) -> Detections:
        """What `detections` publishes: the edge's, plus held static objects while they
        last."""
        if self.held is None:
            return dets
        if now < self.held_until:
            return with_held(dets, self.held)
        self.held = None
        return dets
