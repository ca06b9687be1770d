"""The offload manager on its own, with a fake publisher and a fake clock: which windows go to
the cloud, what the request looks like on the wire, how answers, timeouts, late answers, the
edge cache and dropped publishes are handled and counted."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from offload_kit import NAMES, Clock, dets

from edge_agent.core.mqtt.topics import Topics
from edge_agent.core.protocol import (
    OffloadRequest,
    OffloadResponse,
    ResponseFrame,
    decode_request,
    encode,
    to_wire,
)
from edge_agent.runtime.capture.frame import Frame
from edge_agent.runtime.config import EdgeConfig
from edge_agent.runtime.offload.answer import Answer
from edge_agent.runtime.offload.manager import OffloadManager
from edge_agent.runtime.window import SlidingWindow, WindowSummary

WINDOW = 8
TIMEOUT_S = 10.0
REQUEST_TOPIC = "osprey/dev/offload/request"
RESPONSE_TOPIC = "osprey/dev/offload/response"
SURE, UNSURE = [0.95, 0.9], [0.45, 0.5]
"""Edge scores of the two tracked objects on every frame: a confident window scores about 0.1,
an uncertain one about 0.66 (threshold 0.5)."""

CONFIG = {
    "device_id": "dev",
    "cameras": [{"name": "c1", "url": "c1.mp4"}],
    "window": {"size": WINDOW, "stride": WINDOW},
    "offload": {"enabled": True, "mode": "threshold", "score_threshold": 0.5,
                "uncertain_band": [0.3, 0.6], "keyframes": 3, "timeout_s": TIMEOUT_S,
                "windows_per_minute": 60, "max_in_flight": 1},
    "cache": {"enabled": True},
}


@dataclass(frozen=True)
class Published:
    topic: str
    data: bytes
    qos: int | None
    retain: bool
    expiry_s: float | None
    response_topic: str | None
    correlation: bytes | None


class FakePublisher:
    """The agent's Publisher as the offload client sees it: records publishes and the handler
    subscribed; `drop = True` makes publish_raw return None (dropped while offline)."""

    def __init__(self) -> None:
        self.topics = Topics("osprey", "dev")
        self.published: list[Published] = []
        self.handlers: dict[str, object] = {}
        self.drop = False

    def publish_raw(self, topic: str, data: bytes, *, qos: int | None = None,
                    retain: bool = False, expiry_s: float | None = None,
                    response_topic: str | None = None,
                    correlation: bytes | None = None) -> object | None:
        self.published.append(Published(topic, data, qos, retain, expiry_s, response_topic,
                                        correlation))
        return None if self.drop else object()

    def subscribe(self, topic: str, on_message, qos: int = 1) -> None:
        self.handlers[topic] = on_message

    def answer(self, response: OffloadResponse) -> None:
        """An answer arriving from the broker, through the handler the client subscribed."""
        self.handlers[RESPONSE_TOPIC](None, None, SimpleNamespace(payload=encode(response)))


def scene_image(scene: int) -> np.ndarray:
    """A 64x48 street: a grey background with one coloured block, placed by the scene."""
    img = np.full((48, 64, 3), 90, np.uint8)
    x = 4 + 30 * (scene % 2)
    cv2.rectangle(img, (x, 10 + 6 * scene), (x + 24, 30 + 6 * scene),
                  (40 + 80 * scene, 200, 220 - 60 * scene), -1)
    return img


class Camera:
    """Frames of one camera through a real SlidingWindow, a window at a time."""

    def __init__(self, name: str = "c1") -> None:
        self.name = name
        self.window = SlidingWindow(name, WINDOW, WINDOW, (0.3, 0.6))
        self.index = 0

    def next_window(self, scene: int, scores: list[float]) -> WindowSummary:
        summary = None
        while summary is None:
            frame = Frame(self.name, self.index, float(self.index), 1.7e9 + self.index / 30,
                          scene_image(scene))
            edge = dets([[4, 10, 28, 30], [34, 10, 58, 30]], scores, [1, 1], [1, 2])
            summary = self.window.push(frame, edge)
            self.index += 1
        return summary


def wait_for(predicate, what: str, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def request_of(published: Published) -> OffloadRequest:
    return decode_request(published.data)


def response_to(req: OffloadRequest, label_class: int = 2) -> OffloadResponse:
    """The cloud's answer: one box of `label_class` (2: truck) on every keyframe."""
    cloud = dets([[4, 10, 28, 30]], [0.9], [label_class])
    return OffloadResponse(id=req.id, device=req.device, camera=req.camera, window=req.window,
                           worker="w1", status="ok", model="m1",
                           frames=[ResponseFrame(index=f.index, detections=to_wire(cloud))
                                   for f in req.frames])


@dataclass
class Rig:
    manager: OffloadManager
    publisher: FakePublisher
    clock: Clock
    delivered: list[Answer]
    camera: Camera

    def counts(self) -> dict[str, int]:
        return self.manager.client.snapshot()["counts"]

    def send(self, summary: WindowSummary) -> OffloadRequest:
        """Hand an uncertain window to the manager and wait for its one request to go out."""
        before = len(self.publisher.published)
        self.manager.on_window(summary)
        wait_for(lambda: len(self.publisher.published) == before + 1, "the request")
        return request_of(self.publisher.published[-1])


@pytest.fixture
def rig() -> Iterator[Rig]:
    publisher, clock, delivered = FakePublisher(), Clock(), []
    manager = OffloadManager(EdgeConfig.model_validate(CONFIG), publisher, NAMES,
                             deliver=delivered.append, scale_line=lambda _: None, clock=clock)
    manager.start()
    try:
        yield Rig(manager, publisher, clock, delivered, Camera())
    finally:
        manager.stop()


def test_the_manager_subscribes_to_the_response_topic(rig):
    assert list(rig.publisher.handlers) == [RESPONSE_TOPIC]


def test_a_confident_window_stays_on_the_edge(rig):
    rig.manager.on_window(rig.camera.next_window(0, SURE))
    time.sleep(0.3)  # one turn of the client's loop (0.2 s): nothing may go out
    assert rig.publisher.published == []
    assert rig.counts() == {"windows": 1, "below_threshold": 1}
    assert rig.manager.client.in_flight_for("c1") == 0


def test_an_uncertain_window_is_published_as_a_request(rig):
    # Given an uncertain window of camera c1
    summary = rig.camera.next_window(0, UNSURE)
    # When the manager gets it and the client thread sends it
    rig.manager.on_window(summary)
    wait_for(lambda: rig.counts().get("sent") == 1, "the send to be counted")
    # Then exactly one request went out, with the reply topic and correlation data
    assert len(rig.publisher.published) == 1
    pub = rig.publisher.published[0]
    req = request_of(pub)
    assert pub.topic == REQUEST_TOPIC
    assert pub.response_topic == RESPONSE_TOPIC
    assert pub.correlation == req.id.encode()
    assert pub.qos == 1 and pub.expiry_s == TIMEOUT_S and not pub.retain
    # and it names the device, camera and window, with keyframes spanning the window
    assert (req.device, req.camera, req.window) == ("dev", "c1", summary.window_id)
    assert req.reply_to == RESPONSE_TOPIC and req.corr == req.id.encode()
    indices = [f.index for f in req.frames]
    assert len(indices) == 3 and indices[0] == 0 and indices[-1] == WINDOW - 1
    assert all((f.width, f.height) == (64, 48) for f in req.frames)
    assert [len(e) for e in req.edge] == [2, 2, 2]
    assert rig.counts()["windows"] == 1 and rig.manager.client.in_flight_for("c1") == 1
    assert rig.manager.client.snapshot()["bytes_up"] == len(pub.data)


def test_a_second_window_waits_while_one_is_in_flight(rig):
    rig.send(rig.camera.next_window(0, UNSURE))
    rig.manager.on_window(rig.camera.next_window(0, UNSURE))
    assert rig.counts()["in_flight"] == 1 and len(rig.publisher.published) == 1


def test_a_cloud_answer_is_delivered_for_its_window(rig):
    # Given a request in flight
    summary = rig.camera.next_window(0, UNSURE)
    req = rig.send(summary)
    rig.clock.t += 0.25
    # When its answer comes back through the subscribed handler
    rig.publisher.answer(response_to(req))
    # Then the answer reaches `deliver` for that window and those keyframes
    assert len(rig.delivered) == 1
    answer = rig.delivered[0]
    assert answer.source == "cloud" and answer.request_id == req.id
    assert (answer.camera, answer.window_id) == ("c1", summary.window_id)
    assert [i for i, _ in answer.frames] == [f.index for f in req.frames]
    assert all(d.label(0) == "truck" for _, d in answer.frames)
    assert [i for i, _ in answer.window] == list(range(WINDOW))
    assert len(answer.edge) == 3 and answer.model == "m1" and answer.worker == "w1"
    assert answer.rtt_ms == pytest.approx(250.0)
    assert answer.fingerprint is not None
    assert rig.counts()["answered"] == 1
    assert rig.manager.client.in_flight_for("c1") == 0


def test_an_unanswered_request_is_retried_once_then_times_out_and_a_late_answer_is_dropped(
        rig):
    # Given a request in flight
    req = rig.send(rig.camera.next_window(0, UNSURE))
    # When the clock passes timeout_s (the client's thread checks every 0.2 s)
    rig.clock.t += TIMEOUT_S - 0.5
    time.sleep(0.3)
    assert "timeout" not in rig.counts() and "retried" not in rig.counts()
    rig.clock.t += 1.0
    # Then it is sent once more, under the same id, with a new expiry (a worker that died
    # with it in flight loses it; the shared subscription gives the retry to any worker)
    wait_for(lambda: rig.counts().get("retried") == 1, "the retry")
    assert len(rig.publisher.published) == 2
    again = request_of(rig.publisher.published[-1])
    assert again.id == req.id and again.expires_at > req.expires_at
    assert [f.index for f in again.frames] == [f.index for f in req.frames]
    assert "timeout" not in rig.counts() and rig.manager.policy.breaker.failures == 0
    # and when the retry is not answered either, the request times out
    rig.clock.t += TIMEOUT_S + 0.5
    wait_for(lambda: rig.counts().get("timeout") == 1, f"the timeout {rig.counts()}")
    assert len(rig.publisher.published) == 2
    # Then the camera may send again, and the breaker has seen one failure
    assert rig.manager.client.in_flight_for("c1") == 0
    assert rig.manager.policy.breaker.failures == 1
    # When the answer arrives after all
    rig.publisher.answer(response_to(req))
    # Then it is counted late and not delivered
    assert rig.counts()["late"] == 1 and "answered" not in rig.counts()
    assert rig.delivered == []


def test_a_remembered_answer_serves_the_same_scene_from_the_edge_cache(rig):
    # Given a cloud answer for scene 0, remembered (as the post thread does)
    first = rig.camera.next_window(0, UNSURE)
    rig.publisher.answer(response_to(rig.send(first)))
    cloud = rig.delivered[0]
    rig.manager.remember(cloud)
    # When the same scene's next window comes
    rig.clock.t += 5.0
    second = rig.camera.next_window(0, UNSURE)
    rig.manager.on_window(second)
    # Then it is answered from the cache at once, with nothing published
    assert len(rig.delivered) == 2
    cached = rig.delivered[1]
    assert cached.source == "cache" and cached.window_id == second.window_id
    assert [i for i, _ in cached.frames] == [i + WINDOW for i, _ in cloud.frames]
    assert all(d.label(0) == "truck" for _, d in cached.frames)
    assert [i for i, _ in cached.window] == list(range(WINDOW, 2 * WINDOW))
    assert cached.model == "m1"
    time.sleep(0.3)
    assert len(rig.publisher.published) == 1
    assert rig.counts()["cache_hit"] == 1 and rig.counts()["sent"] == 1
    assert rig.manager.snapshot()["cache"]["hits"] == 1
    # And another scene is not: it goes to the cloud
    rig.send(rig.camera.next_window(1, UNSURE))
    assert len(rig.delivered) == 2 and rig.counts()["cache_hit"] == 1


def test_a_dropped_publish_is_counted_failed_and_frees_the_camera(rig):
    # Given a publisher that drops what it is given (offline, its queue full)
    rig.publisher.drop = True
    # When an uncertain window is offloaded
    rig.manager.on_window(rig.camera.next_window(0, UNSURE))
    wait_for(lambda: rig.counts().get("failed") == 1, "the failure")
    # Then the publish was tried once, nothing waits for an answer and the camera is free
    assert len(rig.publisher.published) == 1 and "sent" not in rig.counts()
    assert rig.manager.client.in_flight_for("c1") == 0
    assert rig.manager.client.pending == {}
    assert rig.manager.client.snapshot()["bytes_up"] == 0
    # so its next window goes out once the publisher is back
    rig.publisher.drop = False
    rig.send(rig.camera.next_window(0, UNSURE))
    assert rig.counts()["sent"] == 1


def test_a_publish_that_raises_leaves_nothing_pending(rig):
    """A request that never went out is not waited for: otherwise the expiry would count it
    again as a timeout, feed the breaker and release the camera a second time."""
    # Given a publisher whose publish raises (paho refusing the message)
    def refuse(*args, **kwargs):
        raise ValueError("refused")

    rig.publisher.publish_raw = refuse
    # When an uncertain window is offloaded, then timeout_s passes
    rig.manager.on_window(rig.camera.next_window(0, UNSURE))
    wait_for(lambda: rig.counts().get("failed") == 1, "the failure")
    rig.clock.t += TIMEOUT_S + 1
    time.sleep(0.3)
    # Then it is counted once, as failed, and nothing waits for an answer
    assert rig.manager.client.pending == {}
    assert "timeout" not in rig.counts() and rig.manager.policy.breaker.failures == 0


def test_stop_without_start_is_harmless():
    """Agent.stop() stops the offload path even when the agent never started."""
    config = EdgeConfig.model_validate({"cameras": [{"name": "c1", "url": "x.mp4"}],
                                        "offload": {"enabled": True}})
    manager = OffloadManager(config, FakePublisher(), NAMES, deliver=lambda a: None)
    manager.stop()
    assert not manager.client._thread.is_alive()


def test_the_round_trip_splits_into_phases_by_the_workers_clock(rig):
    # Given a request in flight, and an answer stamped by the worker's clock
    req = rig.send(rig.camera.next_window(0, UNSURE))
    assert rig.manager.client.snapshot()["phases_ms"] == {}
    now = time.time()
    resp = response_to(req).model_copy(update={
        "received_at": now - 0.30, "started_at": now - 0.25, "answered_at": now - 0.05})
    sent = rig.manager.client.pending[req.id].sent_wall
    rig.publisher.answer(resp)
    # Then upload, queue, model and download are the gaps between the four clocks
    phases = rig.manager.client.snapshot()["phases_ms"]
    assert list(phases) == ["upload", "queue", "model", "download"]
    assert phases["upload"]["p50"] == pytest.approx((now - 0.30 - sent) * 1000, abs=1)
    assert phases["queue"]["p50"] == pytest.approx(50, abs=1)
    assert phases["model"]["p50"] == pytest.approx(200, abs=1)
    assert 45 <= phases["download"]["p50"] <= 1000
