"""The cloud fallback worker: offload requests in, refined detections out.

Any number of workers subscribe to `$share/<group>/<prefix>/<devices>/offload/request`; the
broker hands each request to one of them. The MQTT thread only takes a request in (a device past
its rate is dropped there, unread), so it keeps up with any flood; an intake thread validates
requests device by device in turn (sizes and JPEG dimensions before any decoding) and queues
them (bounded, fair between devices); a batching thread gathers requests
up to `max_batch` keyframes or `max_wait_ms`, then serves each: the content-hash cache (memory,
then Redis), or the cloud detector over every keyframe fused across the window, then the
image-text model over the crops of its detections (a second opinion on labels, and matches for
the camera's text queries: cloud_fallback/opinion.py). The answer goes
to the request's reply topic with its correlation data. Answers are remembered by request id,
so a redelivered request gets the same answer again (idempotent). Nothing a client sends can
stop the worker: a bad request is answered with an error when it says where to answer, and
dropped and counted when it does not.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, get_args

import cv2
import msgpack
import numpy as np
import paho.mqtt.client as mqtt
from cachetools import TTLCache
from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client import Counter as PromCounter

from cloud_fallback.cache import ResultCache, content_key
from cloud_fallback.config import CloudConfig
from cloud_fallback.model import build_detector, recipe_id
from cloud_fallback.model import model_id as cloud_model_id
from cloud_fallback.opinion import TextOpinion
from cloud_fallback.recipe import Keyframes, Recipe, refine
from cloud_fallback.textimage import TextImageModel, text_model_providers
from edge_agent.core.bundled import bundled_text_model
from edge_agent.core.detector import Detector
from edge_agent.core.detector.detections import Detections
from edge_agent.core.metrics import LATENCY_BUCKETS
from edge_agent.core.mqtt.client import (
    make_client,
    publish_properties,
    sent,
    worker_client_id,
)
from edge_agent.core.mqtt.topics import (
    Topics,
    request_device,
    response_topic_for,
    shared_request_filter,
    worker_stats,
)
from edge_agent.core.protocol import (
    Limits,
    OffloadRequest,
    OffloadResponse,
    ProtocolError,
    ResponseFrame,
    WireMatch,
    decode_request,
    encode,
    expired,
    to_wire,
    wire_dict,
)

log = logging.getLogger("osprey.cloud")

Outcome = Literal["ok", "cached", "error", "malformed", "expired", "duplicate", "busy",
                  "flooded"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)


@dataclass
class _Job:
    req: OffloadRequest
    reply_to: str
    corr: bytes
    received: float
    received_at: float = 0.0
    """time.time() on arrival (the answer's `received_at`)."""


class WorkerMetrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = PromCounter("osprey_cloud_requests", "Requests by outcome", ["outcome"],
                                    registry=r)
        self.infer = Histogram("osprey_cloud_inference_seconds", "Detector time per keyframe",
                               buckets=LATENCY_BUCKETS, registry=r)
        self.service = Histogram("osprey_cloud_service_seconds",
                                 "From a request's arrival to its answer sent",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.batch = Histogram("osprey_cloud_batch_requests", "Requests per batch",
                               buckets=(1, 2, 4, 8, 16, 32, 64), registry=r)
        self.queue = Gauge("osprey_cloud_queue_depth", "Requests waiting", registry=r)
        self.cache = PromCounter("osprey_cloud_cache_hits", "Cache hits by level", ["level"],
                                 registry=r)
        self.matches = PromCounter("osprey_cloud_query_matches",
                                   "Detections a text query describes", registry=r)


T = TypeVar("T")


def _job_device(job: _Job) -> str:
    return job.req.device


class FairQueue(Generic[T]):
    """A queue fair between devices: one FIFO per device, served in turn (a device that sends
    a thousand requests waits behind its own, not in front of everyone else's), each device
    holding at most `per_device` of the `maxsize` places and, when `max_bytes` is given (with
    `size`), a quarter of those bytes. Drop-in for the queue.Queue calls the worker makes
    (put_nowait, get, qsize)."""

    def __init__(self, maxsize: int, per_device: int | None = None, *,
                 key: Callable[[T], str] = _job_device, size: Callable[[T], int] | None = None,
                 max_bytes: int | None = None) -> None:
        self.maxsize = maxsize
        self.per_device = per_device or max(4, maxsize // 4)
        self.key, self.size, self.max_bytes = key, size, max_bytes
        self._bytes = 0
        self._device_bytes: Counter[str] = Counter()
        self._queues: dict[str, deque[T]] = {}
        self._turn: deque[str] = deque()
        self._served: str | None = None  # the device taken last: back in line at the next get
        self._size = 0
        self._cond = threading.Condition()

    def put_nowait(self, job: T) -> None:
        device = self.key(job)
        n = self.size(job) if self.size is not None else 0
        with self._cond:
            mine = self._queues.get(device)
            if self._size >= self.maxsize or (mine is not None and
                                               len(mine) >= self.per_device):
                raise queue.Full
            if self.max_bytes is not None and (
                    self._bytes + n > self.max_bytes
                    or self._device_bytes[device] + n > self.max_bytes // 4):
                raise queue.Full
            if self.size is not None:
                self._bytes += n
                self._device_bytes[device] += n
            if mine is None:
                mine = self._queues[device] = deque()
                if device != self._served:
                    self._turn.append(device)
            mine.append(job)
            self._size += 1
            self._cond.notify()

    def get(self, timeout: float | None = None) -> T:
        with self._cond:
            if not self._cond.wait_for(lambda: self._size > 0, timeout):
                raise queue.Empty
            if self._served in self._queues:
                # the device served last goes back in line only now, behind every device
                # that asked while its request was in service
                self._turn.append(self._served)
            device = self._turn.popleft()
            mine = self._queues[device]
            job = mine.popleft()
            self._size -= 1
            if self.size is not None:
                n = self.size(job)
                self._bytes -= n
                self._device_bytes[device] -= n
                if not self._device_bytes[device]:
                    del self._device_bytes[device]
            if not mine:
                del self._queues[device]
            self._served = device
            return job

    def qsize(self) -> int:
        return self._size


class RateLimit:
    """A token bucket per device: `rate` requests a second sustained, `burst` at once. Used
    on the MQTT thread only."""

    def __init__(self, rate: float, burst: int, devices: int = 10_000) -> None:
        self.rate, self.burst = rate, float(burst)
        # a bucket idle long enough to be full again is forgotten
        self._buckets: TTLCache[str, tuple[float, float]] = TTLCache(
            devices, ttl=burst / rate + 60)

    def allow(self, device: str, now: float) -> bool:
        tokens, last = self._buckets.get(device, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1
        self._buckets[device] = (tokens - 1 if allowed else tokens, now)
        return allowed


@dataclass
class _Arrival:
    msg: mqtt.MQTTMessage
    device: str
    received: float
    received_at: float


FLOOD_LOG_S = 10.0
"""A device's dropped requests are logged once per this many seconds."""
STALL_S = 30.0
"""/healthz turns bad when one request has been in service for this long."""
ANSWERED_BYTES = 32 << 20
"""Bytes of answers kept for repeated requests (topics, correlation data, payloads)."""
MAX_CORRELATION_BYTES = 64
"""MQTT v5 correlation data a request may carry (the edge sends its request id)."""


def leading_fields(payload: bytes, head: int = 4096) -> dict[str, Any]:
    """The map entries at the start of a msgpack request, read from its first `head` bytes
    only (a request over the size cap is never decoded whole)."""
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=head, max_bin_len=head,
                                max_str_len=head)
    unpacker.feed(payload[:head])
    fields: dict[str, Any] = {}
    try:
        for _ in range(min(64, unpacker.read_map_header())):
            key = unpacker.unpack()
            value = unpacker.unpack()
            if isinstance(key, str) and isinstance(value, str | bytes | int | float):
                fields[key] = value
    except Exception:  # out of data, not a map, a value over `head`: what was read stands
        pass
    return fields


class Worker:
    def __init__(self, config: CloudConfig, detector: Detector | None = None,
                 model_id: str | None = None, text_model: TextImageModel | None = None) -> None:
        self.config = config
        if detector is None:
            detector = build_detector(config.model)
        self.detector = detector
        self.model_id = model_id or cloud_model_id(config.model)
        t = config.model.text
        self.opinion: TextOpinion | None = None
        self._refused_seen: set[tuple[str, str, str]] = set()
        if t.enabled:
            if text_model is None:
                import onnxruntime as ort

                text_model = TextImageModel.load(
                    t.path or bundled_text_model(), text_model_providers(
                        list(config.model.runtime.providers), ort.get_available_providers()))
            self.opinion = TextOpinion(text_model, tuple(detector.class_names), t.label_weight,
                                       t.match_threshold, t.min_side_px, t.max_crops)
        self.recipe = Recipe.from_config(config.model)
        lim = config.limits
        self.limits = Limits(lim.max_payload_bytes, lim.max_keyframes, lim.max_image_side,
                             lim.max_image_pixels)
        c = config.cache
        self.cache = ResultCache(c.max_entries, c.ttl_s, c.redis_url, c.redis_prefix)
        # Answers kept 10 minutes for repeats of a request (a redelivery after a reconnect),
        # keyed by (device, request id): a request id is the device's, and another device
        # reusing it gets no one else's answer. Bounded by bytes, not entries.
        self.answered: TTLCache[tuple[str, str], tuple[str, bytes, bytes]] = TTLCache(
            ANSWERED_BYTES, 600,
            getsizeof=lambda v: 256 + len(v[0] or "") + len(v[1] or b"") + len(v[2]))
        self._answered_lock = threading.Lock()
        self.jobs: FairQueue[_Job] = FairQueue(config.batching.max_queue)
        # requests taken in by the MQTT thread, read in turn per device by the intake thread
        self.intake: FairQueue[_Arrival] = FairQueue(
            max(64, config.batching.max_queue), key=lambda a: a.device,
            size=lambda a: len(a.msg.payload), max_bytes=lim.intake_bytes)
        self.rate = RateLimit(lim.per_device_rate, lim.per_device_burst)
        self._flood_logged: TTLCache[str, bool] = TTLCache(10_000, FLOOD_LOG_S)
        self.metrics = WorkerMetrics()
        self.stats: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self.connected = threading.Event()
        m = config.mqtt
        self.topic = shared_request_filter(m.topic_prefix, config.share_group, config.devices)
        self.stats_topic = worker_stats(m.topic_prefix, config.worker_id)
        self.client = make_client(m, worker_client_id(m, config.worker_id))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.v5 = m.protocol == "5"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve_loop, name="cloud-batcher",
                                        daemon=True)
        self._intake_thread = threading.Thread(target=self._intake_loop, name="cloud-intake",
                                               daemon=True)
        self.started_at = time.monotonic()
        self._busy_since: float | None = None
        """When the request in service started (None: idle)."""

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> Worker:
        m = self.config.mqtt
        self._thread.start()
        self._intake_thread.start()
        self.client.connect_async(m.host, m.port, m.keepalive_s)
        self.client.loop_start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self._intake_thread.join(timeout)
        self.client.disconnect()
        self.client.loop_stop()

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Healthy while connected and the batch loop makes progress: one request in service
        for longer than STALL_S (a decode that does not come back) turns /healthz bad."""
        busy = self._busy_since
        stuck = 0.0 if busy is None else time.monotonic() - busy
        stalled = stuck > STALL_S
        serving = self._thread.is_alive() and self._intake_thread.is_alive() and not stalled
        ok = serving and self.connected.is_set()
        return ok, {"serving": serving,
                    "request_busy_s": round(stuck, 1), "mqtt_connected":
                    self.connected.is_set(), "queue": self.jobs.qsize(),
                    "intake": self.intake.qsize(),
                    "redis": self.cache.ping() if self.cache.redis is not None else None}

    def stats_payload(self) -> dict[str, Any]:
        return {"v": 1, "worker": self.config.worker_id, "at": round(time.time(), 3),
                "uptime_s": round(time.monotonic() - self.started_at, 1),
                "requests": {k: self.stats.get(k, 0) for k in OUTCOMES},
                "queue": self.jobs.qsize(), "intake": self.intake.qsize(),
                "cache_hits": dict(self.cache.hits),
                "cache_misses": self.cache.misses, "redis_errors": self.cache.redis_errors,
                "text": vars(self.opinion.stats).copy() if self.opinion else None}

    def publish_stats(self) -> None:
        self.client.publish(self.stats_topic, json.dumps(self.stats_payload()), qos=0)

    # MQTT thread -------------------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the worker's connection: %s", reason_code)
            return
        self.connected.set()
        client.subscribe(self.topic, qos=1)
        log.info("worker %s serving %s", self.config.worker_id, self.topic)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("worker disconnected (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, msg) -> None:
        """Take a request in, unread: the MQTT thread never decodes, so a flood from one
        device cannot back up the broker's queue for this worker (and drop other devices'
        requests there). A device past its rate, or past its share of the intake, is dropped
        here."""
        try:
            now = time.monotonic()
            device = request_device(self.config.mqtt.topic_prefix, msg.topic) or ""
            if not self.rate.allow(device, now):
                self._flooded(device, "over its rate")
                return
            try:
                self.intake.put_nowait(_Arrival(msg, device, now, time.time()))
            except queue.Full:
                self._flooded(device, "over its share of the intake")
        except Exception:  # never let one message end the MQTT loop
            log.exception("unexpected error on a request")
            self._count("error")

    def _flooded(self, device: str, why: str) -> None:
        self._count("flooded")
        if device not in self._flood_logged:
            self._flood_logged[device] = True
            log.warning("device %r is %s: its requests are dropped unread (counted `flooded`; "
                        "limits.per_device_rate, per_device_burst, intake_bytes)", device, why)

    def _intake_loop(self) -> None:
        while not self._stop.is_set():
            try:
                arrival = self.intake.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                self._accept(arrival.msg, arrival.received, arrival.received_at)
            except Exception:
                log.exception("unexpected error on a request")
                self._count("error")

    def _accept(self, msg, received: float, received_at: float) -> None:
        props = getattr(msg, "properties", None)
        prop_reply = getattr(props, "ResponseTopic", None) if props else None
        prop_corr = getattr(props, "CorrelationData", None) if props else None
        # The only place a worker answers: the response topic of the device that published,
        # so a request cannot aim answers at another device.
        own = response_topic_for(self.config.mqtt.topic_prefix, msg.topic)
        try:
            if prop_corr is not None and len(prop_corr) > MAX_CORRELATION_BYTES:
                prop_corr = None  # not echoed: an answer carries at most that many bytes
                raise ProtocolError(f"correlation data over {MAX_CORRELATION_BYTES} bytes")
            req = decode_request(msg.payload, self.limits)
            reply_to = prop_reply or req.reply_to
            mine = Topics(self.config.mqtt.topic_prefix, req.device).offload_response
            if own is None or reply_to != own or mine != own:
                raise ProtocolError(f"a request on {msg.topic} must come from the device of "
                                    f"that topic and be answered on {own}; this one names "
                                    f"device {req.device!r} and {reply_to!r}")
        except ProtocolError as exc:
            self._count("malformed")
            log.warning("malformed request on %s (%d bytes): %s", msg.topic, len(msg.payload),
                        exc)
            self._answer_malformed(msg.payload, str(exc), own, prop_corr)
            return
        corr = prop_corr or req.corr
        with self._answered_lock:
            done = self.answered.get((req.device, req.id))
        if done is not None:
            self._count("duplicate")
            self._send(*done)
            return
        if expired(req):
            self._count("expired")
            return
        try:
            self.jobs.put_nowait(_Job(req, reply_to, corr, received, received_at))
        except queue.Full:
            self._count("busy")
            self._send(reply_to, corr, encode(self._error(
                req, f"busy: the worker's queue is full, or this device already has "
                     f"{self.jobs.per_device} requests waiting; retry later")))
        self.metrics.queue.set(self.jobs.qsize())

    def _answer_malformed(self, payload: bytes, reason: str, reply_to: str | None,
                          corr: bytes | None) -> None:
        """Answer with an error on the sending device's response topic (`reply_to`) when the
        request carries a usable id."""
        fields: dict[str, Any] = {}
        try:
            obj = msgpack.unpackb(payload[:self.limits.max_payload_bytes], raw=False,
                                  max_bin_len=self.limits.max_payload_bytes)
            if isinstance(obj, dict):
                fields = obj
        except Exception:
            # too large or cut short: the envelope's first fields (id, device, ...) come
            # before the keyframes, so they can still be read from its head
            fields = leading_fields(payload)
        rid = fields.get("id")
        if not (reply_to and isinstance(rid, str)
                and 8 <= len(rid) <= 64):
            return
        names = {k: v if isinstance(v, str) and 0 < len(v) <= 128 else "unknown"
                 for k, v in ((k, fields.get(k)) for k in ("device", "camera", "window"))}
        try:
            resp = OffloadResponse(id=rid, worker=self.config.worker_id, status="error",
                                   error=reason[:1000], **names)
        except Exception:
            return
        c = corr if corr is not None else fields.get("corr")
        self._send(reply_to, c if isinstance(c, bytes) else b"", encode(resp))

    # serving -----------------------------------------------------------------------------

    def _serve_loop(self) -> None:
        b = self.config.batching
        last_stats = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - last_stats >= self.config.stats_interval_s:
                last_stats = time.monotonic()
                if self.connected.is_set():
                    self.publish_stats()
            try:
                first = self.jobs.get(timeout=0.2)
            except queue.Empty:
                continue
            batch, frames = [first], len(first.req.frames)
            deadline = time.monotonic() + b.max_wait_ms / 1000
            while frames < b.max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    job = self.jobs.get(timeout=left)
                except queue.Empty:
                    break
                batch.append(job)
                frames += len(job.req.frames)
            self.metrics.batch.observe(len(batch))
            self.metrics.queue.set(self.jobs.qsize())
            for job in batch:
                self._busy_since = time.monotonic()
                try:
                    self._serve(job)
                except Exception as exc:
                    log.exception("request %s failed", job.req.id)
                    self._count("error")
                    self._send(job.reply_to, job.corr,
                               encode(self._error(job.req, f"internal error: {exc}")))
                finally:
                    self._busy_since = None

    def _serve(self, job: _Job) -> None:
        req = job.req
        if expired(req):
            self._count("expired")
            return
        started_at = time.time()
        key = content_key(req, self.answer_model_id)
        hit = self.cache.get(key)
        if hit is not None:
            value, level = hit
            self.metrics.cache.labels(level).inc()
            # The key is the keyframes' content in order, not their frame indices: an answer
            # stored for another window of the same scene takes this request's indices.
            cached = [ResponseFrame.model_validate(f) for f in value["frames"]]
            index = {f.index: kf.index for f, kf in zip(cached, req.frames, strict=False)}
            frames = [f.model_copy(update={"index": index[f.index]}) for f in cached]
            matches = [m.model_copy(update={"index": index[m.index]}) for m in
                       (WireMatch.model_validate(x) for x in value.get("matches", []))
                       if m.index in index]
            resp = self._ok(req, frames, matches, 0.0, level)
            outcome = "cached"
        else:
            t0 = time.perf_counter()
            try:
                decoded = [self._detect(i, kf) for i, kf in enumerate(req.frames)]
            except ProtocolError as exc:
                self._count("malformed")
                self._send(job.reply_to, job.corr, encode(self._error(req, str(exc))))
                return
            per_frame, matches = refine(
                [d for _, d, _ in decoded], self.recipe, opinion=self.opinion,
                keyframes=Keyframes(images=[img for img, _, _ in decoded],
                                    indices=[kf.index for kf in req.frames],
                                    scales=[scale for _, _, scale in decoded]),
                queries=req.queries, perspective=req.perspective)
            frames = [ResponseFrame(index=kf.index, detections=to_wire(d))
                      for kf, d in zip(req.frames, per_frame, strict=True)]
            infer_ms = (time.perf_counter() - t0) * 1000
            self.cache.put(key, {"frames": [wire_dict(f) for f in frames],
                                 "matches": [wire_dict(m) for m in matches]})
            resp = self._ok(req, frames, matches, infer_ms, "none")
            outcome = "ok"
            self.metrics.matches.inc(len(matches))
        resp = resp.model_copy(update={"received_at": round(job.received_at, 4),
                                       "started_at": round(started_at, 4),
                                       "answered_at": round(time.time(), 4)})
        data = encode(resp)
        with self._answered_lock:
            self.answered[(req.device, req.id)] = (job.reply_to, job.corr, data)
        self._send(job.reply_to, job.corr, data)
        self._count(outcome)
        self.metrics.service.observe(time.monotonic() - job.received)

    @property
    def answer_model_id(self) -> str:
        """What decides an answer keys the cache: the detector, the text model, tiling, fusion
        and the score floor (workers sharing a Redis with other settings must not share
        answers)."""
        m = self.config.model
        fusion = m.fusion_weight if m.fuse_keyframes else 0
        recipe = f"{self.model_id}|{recipe_id(m)}|fusion={fusion:g}|min={m.min_score:g}"
        if self.opinion is None:
            return recipe
        return f"{recipe}+{self.opinion.model.name}"

    def _detect(self, i: int, kf) -> tuple[np.ndarray, Detections, tuple[float, float]]:
        img = cv2.imdecode(np.frombuffer(kf.jpeg, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise ProtocolError(f"frames[{i}]: the JPEG does not decode")
        dets = self.detector(img)
        self.metrics.infer.observe(self.detector.timings.total / 1000)
        sx, sy = kf.width / img.shape[1], kf.height / img.shape[0]
        if (sx, sy) != (1.0, 1.0):
            dets.xyxy[:] *= np.array([sx, sy, sx, sy], np.float32)
        return img, dets, (sx, sy)

    def _ok(self, req: OffloadRequest, frames: list[ResponseFrame], matches: list[WireMatch],
            infer_ms: float, cache: str) -> OffloadResponse:
        refused = []
        if self.opinion is not None and req.queries:
            _, refused = self.opinion.read_queries(req.queries, bool(req.perspective))
            for r in refused:
                if (req.device, req.camera, r.query) not in self._refused_seen:
                    if len(self._refused_seen) > 4096:
                        self._refused_seen.clear()
                    self._refused_seen.add((req.device, req.camera, r.query))
                    self.opinion.stats.refused_queries += 1
                    log.warning("text query %r of %s/%s refused: %s", r.query, req.device,
                                req.camera, r.reason)
        return OffloadResponse(id=req.id, device=req.device, camera=req.camera,
                               window=req.window, worker=self.config.worker_id, status="ok",
                               frames=frames, model=self.model_id, infer_ms=round(infer_ms, 2),
                               cache=cache, matches=matches,
                               text_model=self.opinion.model.name if self.opinion else "",
                               refused_queries=refused)

    def _error(self, req: OffloadRequest, reason: str) -> OffloadResponse:
        return OffloadResponse(id=req.id, device=req.device, camera=req.camera,
                               window=req.window, worker=self.config.worker_id,
                               status="error", error=reason[:1000])

    def _send(self, reply_to: str, corr: bytes, data: bytes) -> None:
        info = self.client.publish(reply_to, data, qos=1,
                                   properties=publish_properties(self.v5, correlation=corr))
        if not sent(info.rc):
            log.warning("answer to %s not sent: %s", reply_to, mqtt.error_string(info.rc))

    def _count(self, outcome: Outcome) -> None:
        with self._count_lock:  # counted from the MQTT, intake and batching threads
            self.stats[outcome] += 1
        self.metrics.requests.labels(outcome).inc()
