"""The edge agent: cameras -> shared detector -> tracker -> sliding window -> MQTT.

Threads: one capture thread per camera (edge_agent.capture.camera); one prepare thread that
serves every camera in turn, taking its freshest frame and turning it into the model's input
while the model runs on the one before; one detection thread that does only inference, with
the one detector shared by every camera; one post thread that decodes, tracks, makes events
and window summaries, applies cloud answers and publishes, overlapping the next inference (it
owns the tracks, so they need no lock); and one stats thread. The model thus runs back to
back, never waiting on the Python around it. The prepare thread holds at most one frame ready
(so a frame waits at most one inference) and the detection thread may run at most AHEAD frames
ahead of the post thread. Each camera's freshest frame is taken (never one older than its
`max_frame_age_ms`, checked again just before inference), at most `detect_fps` per camera, so
a camera faster than the model costs dropped frames, counted, and never a growing latency.
Detections are published at once; window summaries go to listeners (the offload policy),
which never wait on the cloud.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.capture.camera import Backoff, Camera
from edge_agent.capture.frame import Frame, FrameSource
from edge_agent.capture.opencv import report_capabilities, source_from_config
from edge_agent.config.edge import CameraConfig, EdgeConfig
from edge_agent.detector import Detector
from edge_agent.detector.detections import Detections
from edge_agent.events import EventOutput, EventTracker
from edge_agent.metrics import AgentMetrics
from edge_agent.mqtt.payloads import SCHEMA_VERSION, camera_status_payload, detections_payload
from edge_agent.mqtt.publisher import Publisher
from edge_agent.offload.client import Answer
from edge_agent.offload.hold import held_from, with_held
from edge_agent.offload.manager import OffloadManager, verified_tracks
from edge_agent.offload.merge import merge_window
from edge_agent.offload.sizes import Perspective
from edge_agent.tracker import Tracker, TrackUpdate
from edge_agent.window import SlidingWindow, WindowSummary

log = logging.getLogger("osprey.agent")

HEARTBEAT_STALE_S = 10.0
"""/healthz fails when the detection loop has not gone round for this long."""

AHEAD = 2
"""Frames the detection thread may run ahead of the post-processing thread; past that it waits
up to AHEAD_WAIT_S, then drops that frame's results (counted as an error)."""
AHEAD_WAIT_S = 1.0


@dataclass
class _Prepared:
    """A frame turned into the model's input, waiting for the detection thread."""

    pipe: CameraPipeline
    frame: Frame
    feeds: Any
    """The model's input tensors (split detector), or None (any other detector)."""
    transform: Any
    prepare_ms: float


@dataclass
class _Inferred:
    """A frame through the model, waiting for decoding, tracking and publishing."""

    pipe: CameraPipeline
    frame: Frame
    outputs: Any
    """Raw model outputs (split detector), or finished Detections (any other detector)."""
    transform: Any
    pre_infer_ms: float


@dataclass
class _Events:
    pipe: CameraPipeline
    events: list[EventOutput]


class _Flush:
    """Every camera has ended: once this is reached, everything before it is published."""


@dataclass
class _Interval:
    """Counters at the start of the current stats interval."""

    at: float
    frames_in: int = 0
    processed: int = 0
    dropped: int = 0


class CameraPipeline:
    """Per-camera state the detection and post threads work on."""

    def __init__(self, cfg: CameraConfig, config: EdgeConfig, class_names: tuple[str, ...],
                 opener: Callable[[], FrameSource], on_status: Callable, on_frame: Callable):
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
        self.held: Detections | None = None
        """Static objects of the last answer the edge misses (edge_agent.offload.hold)."""
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
        self.interval = _Interval(time.monotonic())

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
        for t in upd.ended:
            self.overrides.pop(t.track_id, None)

        def apply(d: Detections) -> Detections:
            if d.track_id is None or not len(d):
                return d
            cls = d.class_id.copy()
            for i, tid in enumerate(d.track_id.tolist()):
                if tid in self.overrides:
                    cls[i] = self.overrides[tid]
            return Detections(d.xyxy, d.score, cls, d.class_names, d.track_id)

        return TrackUpdate(apply(upd.detections), apply(upd.all), upd.started, upd.ended)


class Agent:
    def __init__(self, config: EdgeConfig, detector: Detector, publisher: Publisher, *,
                 model_id: str, metrics: AgentMetrics | None = None,
                 openers: dict[str, Callable[[], FrameSource]] | None = None) -> None:
        self.config = config
        self.detector = detector
        self.publisher = publisher
        self.model_id = model_id
        self.metrics = metrics or AgentMetrics()
        self.metrics.watch(self.snapshot)
        self.topics = publisher.topics
        self.window_listeners: list[Callable[[WindowSummary], None]] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._stopped = False
        openers = openers or {}
        self.pipelines = [
            CameraPipeline(c, config, detector.class_names,
                           openers.get(c.name) or (lambda c=c: source_from_config(c)),
                           on_status=self._camera_status, on_frame=self._wake.set)
            for c in config.cameras if c.enabled
        ]
        if not self.pipelines:
            raise ValueError("every camera is disabled (enabled: false): enable at least one")
        self.started_at = time.monotonic()
        self.heartbeat = time.monotonic()
        self._prepare = threading.Thread(target=self._prepare_loop, name="prepare", daemon=True)
        self._ready: queue.Queue[_Prepared | None] = queue.Queue()
        self._slot = threading.Semaphore(1)
        """Held from the moment the prepare thread picks a frame until the detection thread
        takes it: one frame prepared ahead, never more."""
        self._detect = threading.Thread(target=self._loop, name="detect", daemon=True)
        self._post: queue.Queue[Any] = queue.Queue()
        self._ahead = threading.BoundedSemaphore(AHEAD)
        self._post_thread = threading.Thread(target=self._post_loop, name="post", daemon=True)
        self._split = isinstance(detector, Detector)
        self._stats = threading.Thread(target=self._stats_loop, name="stats", daemon=True)
        self._camera_states: dict[str, dict[str, Any]] = {}
        publisher.on_connected.append(self._republish_status)
        self.by_name = {p.name: p for p in self.pipelines}
        self.offload: OffloadManager | None = None
        if config.offload.enabled:
            self.offload = OffloadManager(self)
            self.window_listeners.append(self.offload.on_window)

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> Agent:
        report_capabilities([p.cfg for p in self.pipelines])
        for p in self.pipelines:
            p.camera.start()
        self._post_thread.start()
        if self.offload is not None:
            self.offload.start()
        self._detect.start()
        self._prepare.start()
        self._stats.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every camera's stream has ended and been processed, or stop();
        True if that happened within `timeout`."""
        return self._done.wait(timeout)

    def stop(self) -> None:
        """Stop cameras and threads; close open events with `end`; final stats. The caller
        stops the publisher afterwards (it sends the retained `stopped`). Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        self._wake.set()
        for p in self.pipelines:
            p.camera.stop()
        self._prepare.join(10)
        self._detect.join(10)
        if self.offload is not None:
            self.offload.stop()
        for p in self.pipelines:
            self._post.put(_Events(p, p.events.close_all()))
        self._post.put(None)
        self._post_thread.join(10)
        self._stats.join(2)
        self.publish_stats()

    # the detection loop ------------------------------------------------------------------

    def _prepare_loop(self) -> None:
        """Prepare thread: the next due camera's freshest frame, made into the model's input as
        soon as the detection thread has taken the last one, so at most one frame waits (for
        at most one inference) and it is the freshest there was when the model came free."""
        turn = 0  # cameras take turns: the next search starts after the last one served
        try:
            while not self._stop.is_set():
                if not self._slot.acquire(timeout=0.1):
                    continue
                self._wake.clear()
                item = None
                n = len(self.pipelines)
                for k in range(n):
                    p = self.pipelines[(turn + k) % n]
                    now = time.monotonic()
                    if not p.due(now):
                        continue
                    frame = p.camera.latest(p.cfg.max_frame_age_ms, timeout=0)
                    if frame is None:
                        continue
                    p.mark(now)
                    turn = (turn + k + 1) % n
                    item = self._prepared(p, frame)
                    if item is not None:
                        break
                if item is not None:
                    self._ready.put(item)
                    continue
                self._slot.release()
                if all(not p.camera.alive and not p.camera.pending for p in self.pipelines):
                    log.info("every camera has ended")
                    break
                self._wake.wait(self._idle_wait())
        except Exception:
            log.exception("prepare loop failed")
            raise
        finally:
            self._ready.put(None)

    def _prepared(self, p: CameraPipeline, frame: Frame) -> _Prepared | None:
        t0 = time.perf_counter()
        feeds = transform = None
        if self._split:
            try:
                feeds, transform = self.detector.adapter.prepare(frame.image)
            except Exception as exc:  # one bad frame must not stop every camera
                self._failed(p, frame, exc)
                return None
        return _Prepared(p, frame, feeds, transform, (time.perf_counter() - t0) * 1000)

    def _loop(self) -> None:
        """Detection thread: the model, back to back on what the prepare thread hands over."""
        try:
            while True:
                self.heartbeat = time.monotonic()
                try:
                    item = self._ready.get(timeout=0.1)
                except queue.Empty:
                    if self._stop.is_set():
                        break
                    continue
                if item is None:
                    self._slot.release()
                    break
                if self._split:  # the prepare thread may pick the next frame now
                    self._slot.release()
                    self._process(item)
                else:
                    # A detector that prepares its own input (tiles, say): nothing to overlap,
                    # so the next frame is picked when the model is free, as fresh as can be.
                    try:
                        self._process(item)
                    finally:
                        self._slot.release()
        except Exception:
            log.exception("detection loop failed")
            raise
        finally:
            self._post.put(_Flush())

    def _idle_wait(self) -> float:
        now = time.monotonic()
        waits = [p.next_due - now for p in self.pipelines if p.period and p.next_due > now]
        return min([0.1, *waits]) if waits else 0.1

    def _failed(self, p: CameraPipeline, frame: Frame, exc: Exception) -> None:
        p.errors += 1
        self.metrics.errors.labels(p.name).inc()
        log.error("camera %s: detector failed on frame %d: %s", p.name, frame.index, exc)

    def _process(self, item: _Prepared) -> None:
        """Detection thread: the model only; the rest of the frame's work is the post thread's,
        so it overlaps the next inference."""
        p, frame = item.pipe, item.frame
        if (time.monotonic() - frame.captured) * 1000 > p.cfg.max_frame_age_ms:
            p.camera.count_stale()  # it waited too long for the model
            return
        t0 = time.perf_counter()
        try:
            if self._split:
                outputs, transform = self.detector.backend.run(item.feeds), item.transform
            else:
                outputs, transform = self.detector(frame.image), None
        except Exception as exc:  # one bad frame must not stop every camera
            self._failed(p, frame, exc)
            return
        took = item.prepare_ms + (time.perf_counter() - t0) * 1000
        if not self._ahead.acquire(timeout=AHEAD_WAIT_S):
            p.unpublished += 1
            log.error("camera %s: post-processing is stuck; frame %d's results dropped", p.name,
                      frame.index)
            return
        self._post.put(_Inferred(p, frame, outputs, transform, took))

    # the post-processing thread: decode, track, events, window, publish -----------------

    def _post_loop(self) -> None:
        while True:
            item = self._post.get()
            if item is None:
                return
            try:
                if isinstance(item, _Inferred):
                    try:
                        self._post_frame(item)
                    finally:
                        self._ahead.release()
                elif isinstance(item, _Events):
                    for out in item.events:
                        self._publish_event(item.pipe, out)
                elif isinstance(item, _Flush):
                    self._done.set()
                else:
                    self.apply_answer(item)
            except Exception:  # a bug here must not silence the agent for good
                log.exception("post-processing failed")

    def _post_frame(self, item: _Inferred) -> None:
        p, frame = item.pipe, item.frame
        t0 = time.perf_counter()
        dets = (self.detector.finish(item.outputs, item.transform, frame.image.shape)
                if self._split else item.outputs)
        infer_ms = item.pre_infer_ms + (time.perf_counter() - t0) * 1000
        upd = p.tracker.update(dets, frame.index)
        if p.cfg.text_queries:
            p.perspective.add(dets, frame.width, frame.height)
        if p.overrides:
            upd = p.relabel(upd)
        p.processed += 1
        p.last_infer_ms = infer_ms
        p.seq += 1
        shown = upd.all
        if p.held is not None:
            if time.monotonic() < p.held_until:
                shown = with_held(upd.all, p.held)
            else:
                p.held = None
        latency_ms = (time.monotonic() - frame.captured) * 1000.0
        payload = detections_payload(self.config.device_id, p.name, p.seq, frame.index,
                                     frame.wall_time, latency_ms, self.model_id, frame.width,
                                     frame.height, shown, held=len(shown) - len(upd.all))
        self.publisher.publish_json(self.topics.camera(p.name, "detections"), payload,
                                    expiry_s=self.config.mqtt.message_expiry_s)
        for out in p.events.update(upd, frame):
            self._publish_event(p, out)
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

    # answers from the cloud (or the edge cache) -----------------------------------------

    def post_answer(self, answer: Answer) -> None:
        """Any thread: queue an answer for the post thread, which owns the tracks."""
        self._post.put(answer)

    def apply_answer(self, answer: Answer) -> None:
        """Post thread: publish `refined`, relabel and verify the tracks it covers."""
        p = self.by_name.get(answer.camera)
        if p is None or not answer.frames:
            return
        if self.offload is not None and answer.source == "cloud":
            self.offload.remember(answer)
        for r in answer.refused_queries:
            if r.query not in p.refused_queries:
                p.refused_queries.add(r.query)
                log.warning("camera %s: the cloud did not read text query %r: %s. Until "
                            "then it matches nothing; see docs/models.md for the words the "
                            "model knows", p.name, r.query, r.reason)
        names = self.detector.class_names
        keys = {idx for idx, _ in answer.frames}
        cfg = self.config.offload
        if cfg.hold_s > 0:
            p.held = held_from(answer.frames, cfg.hold_score_factor)
            p.held_until = time.monotonic() + cfg.hold_s
        verified = []
        for tid, cls, score in verified_tracks(answer.edge[-1], answer.frames[-1][1],
                                               cfg.verify_min_score):
            if not any(t.track_id == tid for t in p.tracker.tracks):
                continue  # the track ended meanwhile
            p.overrides[tid] = cls
            label = names[cls] if cls < len(names) else f"class_{cls}"
            verified.append({"track_id": tid, "label": label, "class_id": cls,
                             "score": round(score, 4)})
            out = p.events.verify(tid, cls)
            if out is not None:
                self._publish_event(p, out)
        head = {"v": SCHEMA_VERSION, "device": self.config.device_id, "camera": p.name,
                "window_id": answer.window_id, "request_id": answer.request_id,
                "source": answer.source}
        payload = {
            **head, "rtt_ms": round(answer.rtt_ms, 2),
            "model": answer.model, "worker": answer.worker,
            "frames": [{"frame": idx, "keyframe": idx in keys, "detections": dets.to_json()}
                       for idx, dets in merge_window(answer.window, answer.frames)],
            "verified_tracks": verified}
        self.publisher.publish_json(self.topics.camera(p.name, "refined"), payload)
        self.metrics.refined.labels(p.name, answer.source).inc()
        if answer.matches:
            self.publisher.publish_json(self.topics.camera(p.name, "matches"), {
                **head, "text_model": answer.text_model,
                "matches": [{"query": m.query, "score": m.score, "frame": m.index,
                             "box": m.box, "label": m.label, "class_id": m.class_id,
                             "size": m.size}
                            for m in answer.matches]})
            for m in answer.matches:
                self.metrics.matches.labels(p.name, m.query).inc()

    def _publish_event(self, p: CameraPipeline, out: EventOutput) -> None:
        self.publisher.publish_json(self.topics.camera(p.name, "events"), out.payload)
        self.metrics.events.labels(p.name, out.payload["type"]).inc()
        if out.snapshot is not None:
            self.publisher.publish_raw(self.topics.camera(p.name, "snapshot"),
                                       out.snapshot.jpeg(), retain=True)

    def _camera_status(self, name: str, state: str, reason: str | None) -> None:
        payload = camera_status_payload(state, reason)
        self._camera_states[name] = payload
        self.publisher.publish_json(self.topics.camera(name, "status"), payload, qos=1,
                                    retain=True)

    def _republish_status(self) -> None:
        """After a reconnect: the broker may have restarted and lost retained messages."""
        for name, payload in list(self._camera_states.items()):
            self.publisher.publish_json(self.topics.camera(name, "status"), payload, qos=1,
                                        retain=True)

    # stats and health --------------------------------------------------------------------

    def _stats_loop(self) -> None:
        interval = self.config.stats_interval_s
        while not self._stop.wait(interval):
            self.publish_stats()

    def stats_payload(self) -> dict[str, Any]:
        now = time.monotonic()
        cameras: dict[str, Any] = {}
        span = 0.0
        for p in self.pipelines:
            s = p.camera.stats
            iv = p.interval
            span = max(1e-9, now - iv.at)
            dropped = s.dropped_unread + s.dropped_stale
            with p.samples_lock:
                lat = np.array(p.latencies, dtype=np.float64)
                inf = np.array(p.infer_ms, dtype=np.float64)
                p.latencies.clear()
                p.infer_ms.clear()
            cameras[p.name] = {
                "state": p.state,
                "fps_in": round((s.frames_in - iv.frames_in) / span, 2),
                "fps_processed": round((p.processed - iv.processed) / span, 2),
                "fps_dropped": round((dropped - iv.dropped) / span, 2),
                "frames_in": s.frames_in, "processed": p.processed,
                "dropped_superseded": s.dropped_unread, "dropped_stale": s.dropped_stale,
                "reconnects": s.reconnects,
                "inference_ms": round(float(inf.mean()), 2) if inf.size else None,
                "latency_ms_p50": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
                "latency_ms_p95": round(float(np.percentile(lat, 95)), 2) if lat.size else None,
                "tracks": len(p.tracker.tracks), "windows": p.windows,
                "errors": p.errors + p.unpublished,
            }
            p.interval = _Interval(now, s.frames_in, p.processed, dropped)
        out = {"v": SCHEMA_VERSION, "device": self.config.device_id,
               "at": round(time.time(), 3), "uptime_s": round(now - self.started_at, 1),
               "interval_s": round(span, 2), "cameras": cameras,
               "mqtt": self.publisher.snapshot()}
        if self.offload is not None:
            out["offload"] = self.offload.snapshot()
        return out

    def publish_stats(self) -> dict[str, Any]:
        payload = self.stats_payload()
        self.publisher.publish_json(self.topics.stats, payload, qos=0)
        self.last_stats = payload
        return payload

    def snapshot(self) -> dict[str, Any]:
        """Counters for metrics, read without resetting the stats interval."""
        cams = {}
        for p in self.pipelines:
            s = p.camera.stats
            cams[p.name] = {"state": p.state, "frames_in": s.frames_in,
                            "processed": p.processed, "last_latency_ms": p.last_latency_ms,
                            "last_infer_ms": p.last_infer_ms,
                            "events": p.events.counts.new + p.events.counts.update
                            + p.events.counts.end,
                            "dropped_superseded": s.dropped_unread,
                            "dropped_stale": s.dropped_stale, "reconnects": s.reconnects,
                            "queue_depth": int(p.camera.pending),
                            "tracks": len(p.tracker.tracks)}
        snap: dict[str, Any] = {"cameras": cams, "mqtt": self.publisher.snapshot()}
        if self.offload is not None:
            snap["offload"] = self.offload.client.snapshot()
        return snap

    def health(self) -> tuple[bool, dict[str, Any]]:
        age = time.monotonic() - self.heartbeat
        alive = self._detect.is_alive() and self._prepare.is_alive()
        loop_ok = alive and self._post_thread.is_alive() and age < HEARTBEAT_STALE_S
        return loop_ok, {
            "detection_loop": "running" if loop_ok else (
                "stopped" if not alive else f"stalled for {age:.0f}s"),
            "cameras": {p.name: p.state for p in self.pipelines},
            "mqtt_connected": self.publisher.connected.is_set(),
        }
