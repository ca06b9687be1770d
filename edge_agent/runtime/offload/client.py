"""Requests to the cloud and their answers, over the agent's MQTT connection.

`submit` (post thread) hands a window's keyframes to the client's thread, which encodes
them as JPEG, keeps the request under the payload cap (dropping the least useful keyframes if
it must), charges the byte budget and publishes it with a reply topic and correlation data
(MQTT v5 properties, and inside the envelope for 3.1.1). Answers arrive in paho's thread and
are matched by request id; requests unanswered after `timeout_s` are counted as timeouts and
feed the circuit breaker. Every outcome is counted.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

import numpy as np

from edge_agent.core.detector.detections import Detections
from edge_agent.core.mqtt.topics import Topics
from edge_agent.core.protocol import (
    Keyframe,
    OffloadRequest,
    ProtocolError,
    decode_response,
    encode,
    from_wire,
    new_request_id,
    to_wire,
)
from edge_agent.runtime.config import EdgeConfig
from edge_agent.runtime.offload.answer import Answer
from edge_agent.runtime.offload.cache import Fingerprint
from edge_agent.runtime.offload.keyframes import encode_jpeg
from edge_agent.runtime.offload.policy import OffloadPolicy
from edge_agent.runtime.window import WindowFrame, WindowSummary

log = logging.getLogger("osprey.offload")


@dataclass
class _Pending:
    camera: str
    window_id: str
    sent_at: float
    frames: list[int]
    edge: list[Detections]
    fingerprint: Fingerprint | None
    window: list[tuple[int, Detections]]
    sent_wall: float = 0.0
    """time.time() when the request left (for the round trip's phases)."""
    job: _Job | None = None
    """What the request was made of, kept to send it again once it times out."""
    tries: int = 1


@dataclass
class _Job:
    summary: WindowSummary
    keyframes: list[WindowFrame]
    queries: list[str]
    fingerprint: Fingerprint | None
    perspective: tuple[float, float] | None = None


@dataclass
class OffloadStats:
    counts: Counter = field(default_factory=Counter)
    bytes_up: int = 0
    rtts: list[float] = field(default_factory=list)
    phases: list[tuple[float, float, float, float]] = field(default_factory=list)
    """(upload, queue, model, download) ms of answers whose worker stamped its times."""


PHASES = ("upload", "queue", "model", "download")


Outcome = Literal["windows", "sent", "answered", "cache_hit", "below_threshold", "overlap",
                  "in_flight", "breaker", "budget", "busy", "too_large", "failed", "timeout",
                  "retried", "late", "error", "bad_answer"]
"""What became of a window or a request; each is counted (stats `offload.counts`)."""


class Transport(Protocol):
    """How requests go out and answers come in: the agent's Publisher (every publish counted,
    and held while the broker is away)."""

    topics: Topics

    def publish_raw(self, topic: str, data: bytes, *, qos: int | None = None,
                    retain: bool = False, expiry_s: float | None = None,
                    response_topic: str | None = None,
                    correlation: bytes | None = None) -> object | None: ...

    def subscribe(self, topic: str, on_message: Callable[..., None], qos: int = 1) -> None: ...


class OffloadClient:
    def __init__(self, config: EdgeConfig, publisher: Transport, policy: OffloadPolicy,
                 on_answer: Callable[[Answer], None], class_names: tuple[str, ...] = (), *,
                 clock: Callable[[], float] = time.monotonic):
        self.config, self.o = config, config.offload
        self.publisher, self.policy, self.on_answer = publisher, policy, on_answer
        self.clock = clock
        self.class_names = class_names
        self.topics = publisher.topics
        self.stats = OffloadStats()
        self.pending: dict[str, _Pending] = {}
        self.in_flight: Counter[str] = Counter()
        self.lock = threading.Lock()
        self._jobs: queue.Queue[_Job | None] = queue.Queue(8)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="offload", daemon=True)
        publisher.subscribe(self.topics.offload_response, self._on_message, qos=1)

    def start(self) -> OffloadClient:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(5)

    def count(self, outcome: Outcome, n: int = 1) -> None:
        with self.lock:
            self.stats.counts[outcome] += n

    def in_flight_for(self, camera: str) -> int:
        with self.lock:
            return self.in_flight[camera]

    # detection thread --------------------------------------------------------------------

    def submit(self, summary: WindowSummary, keyframes: list[WindowFrame], queries: list[str],
               fingerprint: Fingerprint | None,
               perspective: tuple[float, float] | None = None) -> bool:
        with self.lock:
            self.in_flight[summary.camera] += 1  # held from now, so the policy sees it
        try:
            self._jobs.put_nowait(_Job(summary, keyframes, queries, fingerprint, perspective))
            return True
        except queue.Full:
            with self.lock:
                self.in_flight[summary.camera] -= 1
            self.count("busy")
            return False

    # client thread -----------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                job = self._jobs.get(timeout=0.2)
            except queue.Empty:
                job = None
            if job is not None:
                try:
                    self._send(job)
                except Exception:
                    log.exception("offload of %s failed", job.summary.window_id)
                    self._release(job.summary.camera)
                    self.count("failed")
            self._expire()

    def _release(self, camera: str) -> None:
        with self.lock:
            self.in_flight[camera] = max(0, self.in_flight[camera] - 1)

    def _encode(self, job: _Job, rid: str) -> tuple[bytes, list[WindowFrame]]:
        """The request's bytes and the keyframes it carries: under the payload cap when it
        can be, by dropping the keyframes with the fewest detections."""
        o = self.o
        frames = list(job.keyframes)
        jpegs = [encode_jpeg(f.frame.image, o.keyframe_max_side, o.jpeg_quality) for f in frames]
        now = time.time()
        while True:
            req = OffloadRequest(
                id=rid, device=self.config.device_id, camera=job.summary.camera,
                window=job.summary.window_id, sent_at=now, expires_at=now + o.timeout_s,
                reply_to=self.topics.offload_response, corr=rid.encode(),
                frames=[Keyframe(index=f.frame.index, captured_at=f.frame.wall_time,
                                 width=f.frame.width, height=f.frame.height, jpeg=j)
                        for f, j in zip(frames, jpegs, strict=True)],
                edge=[to_wire(f.detections) for f in frames], queries=job.queries,
                perspective=list(job.perspective) if job.perspective else [])
            data = encode(req)
            if len(data) <= o.max_payload_bytes or len(frames) == 1:
                return data, frames
            drop = min(range(len(frames)), key=lambda i: len(frames[i].detections))
            del frames[drop], jpegs[drop]

    def _send(self, job: _Job) -> None:
        o = self.o
        rid = new_request_id()
        data, frames = self._encode(job, rid)
        if len(data) > o.max_payload_bytes:
            self._release(job.summary.camera)
            self.count("too_large")
            log.warning("window %s: one keyframe is %d bytes, over offload.max_payload_bytes "
                        "%d; lower keyframe_max_side or jpeg_quality", job.summary.window_id,
                        len(data), o.max_payload_bytes)
            return
        with self.lock:
            charged = self.policy.charge(len(data))
        if not charged:
            self._release(job.summary.camera)
            self.count("budget")
            return
        with self.lock:
            self.pending[rid] = _Pending(job.summary.camera, job.summary.window_id,
                                         self.clock(), [f.frame.index for f in frames],
                                         [f.detections for f in frames], job.fingerprint,
                                         [(f.frame.index, f.detections)
                                          for f in job.summary.frames], time.time(), job)
        if not self._publish(rid, data):
            return
        self.count("sent")
        with self.lock:
            self.stats.bytes_up += len(data)

    def _publish(self, rid: str, data: bytes) -> bool:
        """Publish a request (pending under `rid`); False, with its place released and
        `failed` counted, when the publisher dropped it."""
        o = self.o
        # Through the publisher, like every message: counted, and held while the broker is
        # away (the expiry then shortened by the wait).
        try:
            info = self.publisher.publish_raw(self.topics.offload_request, data,
                                              qos=self.config.mqtt.qos, expiry_s=o.timeout_s,
                                              response_topic=self.topics.offload_response,
                                              correlation=rid.encode())
        except Exception:
            with self.lock:  # never sent: nothing to wait for (the caller counts `failed`)
                self.pending.pop(rid, None)
            raise
        if info is None:
            with self.lock:
                p = self.pending.pop(rid, None)
            if p is not None:
                self._release(p.camera)
            self.count("failed")
            return False
        return True

    def _expire(self) -> None:
        now = self.clock()
        with self.lock:
            late = [rid for rid, p in self.pending.items() if now - p.sent_at > self.o.timeout_s]
            gone = [(rid, self.pending.pop(rid)) for rid in late]
        for rid, p in gone:
            if p.tries <= self.o.retries and p.job is not None and self._retry(rid, p):
                continue
            self._release(p.camera)
            self.count("timeout")
            with self.lock:
                self.policy.breaker.failure()
            log.warning("camera %s: window %s not answered within %.1f s (%d tries)",
                        p.camera, p.window_id, self.o.timeout_s, p.tries)

    def _retry(self, rid: str, p: _Pending) -> bool:
        """Send a request that timed out once more, under the same id (a worker that died
        with it in flight is not the only one: the shared subscription gives it to any;
        requests are idempotent by id), with a new expiry. Not charged to the budget again:
        the window was paid for."""
        try:
            data, _ = self._encode(p.job, rid)
        except Exception:
            log.exception("camera %s: window %s could not be encoded again", p.camera,
                          p.window_id)
            return False
        retry = replace(p, sent_at=self.clock(), sent_wall=time.time(), tries=p.tries + 1)
        with self.lock:
            self.pending[rid] = retry
        try:
            if not self._publish(rid, data):
                return True  # released and counted as failed
        except Exception:
            log.exception("camera %s: window %s could not be sent again", p.camera,
                          p.window_id)
            self._release(p.camera)
            self.count("failed")
            return True
        self.count("retried")
        with self.lock:
            self.stats.bytes_up += len(data)
        log.info("camera %s: window %s not answered within %.1f s; sent again", p.camera,
                 p.window_id, self.o.timeout_s)
        return True

    # paho thread -------------------------------------------------------------------------

    def _on_message(self, client, userdata, msg) -> None:
        try:
            resp = decode_response(msg.payload)
        except ProtocolError as exc:
            self.count("bad_answer")
            log.warning("unreadable answer from the cloud: %s", exc)
            return
        with self.lock:
            p = self.pending.pop(resp.id, None)
        if p is None:
            self.count("late")  # timed out already, or a duplicate delivery
            return
        self._release(p.camera)
        rtt = (self.clock() - p.sent_at) * 1000
        arrived = time.time()
        if resp.status != "ok":
            self.count("error")
            with self.lock:
                self.policy.breaker.failure()
            log.warning("cloud answered window %s with an error: %s", p.window_id, resp.error)
            return
        with self.lock:
            self.policy.breaker.success()
            self.stats.rtts.append(rtt)
            if len(self.stats.rtts) > 4096:
                del self.stats.rtts[:2048]
            if None not in (resp.received_at, resp.started_at, resp.answered_at):
                self.stats.phases.append((
                    (resp.received_at - p.sent_wall) * 1000,
                    (resp.started_at - resp.received_at) * 1000,
                    (resp.answered_at - resp.started_at) * 1000,
                    (arrived - resp.answered_at) * 1000))
                if len(self.stats.phases) > 4096:
                    del self.stats.phases[:2048]
        self.count("answered")
        # One growing list of names for every answer: the edge's, then each label a cloud
        # model added; ids of earlier answers stay valid in later ones.
        with self.lock:
            for f in resp.frames:
                for d in f.detections:
                    if d.label and d.label not in self.class_names:
                        self.class_names = (*self.class_names, d.label)
            names = self.class_names
        by_index = {f.index: from_wire(f.detections, names) for f in resp.frames}
        frames = [(i, by_index.get(i, Detections.empty(names))) for i in p.frames]
        self.on_answer(Answer(
            camera=p.camera, window_id=p.window_id, request_id=resp.id, source="cloud",
            frames=frames, edge=p.edge, rtt_ms=rtt, window=p.window, worker=resp.worker,
            model=resp.model, fingerprint=p.fingerprint, matches=list(resp.matches),
            text_model=resp.text_model, refused_queries=list(resp.refused_queries)))

    def snapshot(self) -> dict:
        with self.lock:
            c = dict(self.stats.counts)
            rtts = np.array(self.stats.rtts[-512:], np.float64)
            phases = np.array(self.stats.phases[-512:], np.float64).reshape(-1, len(PHASES))
            phase_ms = {name: {"p50": round(float(np.percentile(phases[:, k], 50)), 1),
                               "p95": round(float(np.percentile(phases[:, k], 95)), 1)}
                        for k, name in enumerate(PHASES)} if len(phases) else {}
            return {"counts": c, "bytes_up": self.stats.bytes_up,
                    "in_flight": int(sum(self.in_flight.values())),
                    "breaker": self.policy.breaker.state,
                    "rtt_ms_p50": round(float(np.percentile(rtts, 50)), 1) if rtts.size
                    else None,
                    "rtt_ms_p95": round(float(np.percentile(rtts, 95)), 1) if rtts.size
                    else None,
                    "phases_ms": phase_ms}
