"""The cloud worker against a real Mosquitto and a real Redis: answers, idempotence, the shared
cache, and a corpus of malformed requests that must leave it running."""

from __future__ import annotations

import itertools
import threading
import time

import cv2
import msgpack
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from servers import wait_until

from cloud_fallback.config import CloudConfig
from cloud_fallback.worker import Worker
from edge_agent.core.detector.nms import iou_matrix
from edge_agent.core.protocol import (
    Keyframe,
    OffloadRequest,
    decode_response,
    encode,
    new_request_id,
)
from edge_agent.tools.sim import SyntheticWorld, WorldOptions

pytestmark = pytest.mark.integration
_n = itertools.count(1)


class Edge:
    """Stands in for an agent's MQTT side: publishes requests, collects answers."""

    def __init__(self, port: int, device: str) -> None:
        self.device = device
        self.reply = f"osprey/{device}/offload/response"
        self.answers: list = []
        self.cond = threading.Condition()
        ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *a: c.subscribe(self.reply, qos=1)
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert ready.wait(5)

    def _on(self, client, userdata, msg) -> None:
        with self.cond:
            corr = getattr(msg.properties, "CorrelationData", None)
            self.answers.append((decode_response(msg.payload), corr))
            self.cond.notify_all()

    def send(self, data: bytes) -> None:
        topic = f"osprey/{self.device}/offload/request"
        self.client.publish(topic, data, qos=1).wait_for_publish(5)

    def wait(self, predicate, timeout: float = 20.0):
        with self.cond:
            assert self.cond.wait_for(lambda: predicate(self.answers), timeout), \
                [(a.id, a.status, a.error) for a, _ in self.answers]
            return list(self.answers)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture(scope="module")
def scene():
    world = SyntheticWorld(WorldOptions.from_preset("normal", seed=1005))
    out = []
    for i in (200, 204, 208):
        rendered, truth = world.render(i)
        out.append((rendered.image, truth))
    return out


def make_request(scene, device: str, rid: str | None = None) -> OffloadRequest:
    now = time.time()
    frames = [Keyframe(index=t.frame, captured_at=now, width=img.shape[1], height=img.shape[0],
                       jpeg=cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
                       .tobytes()) for img, t in scene]
    rid = rid or new_request_id()
    return OffloadRequest(id=rid, device=device, camera="cam", window="cam-1", sent_at=now,
                          expires_at=now + 30, reply_to=f"osprey/{device}/offload/response",
                          corr=rid.encode(), frames=frames, edge=[[] for _ in frames])


def worker(port: int, name: str, redis_url: str | None = None, **over) -> Worker:
    cfg = CloudConfig.model_validate({
        "worker_id": name, "mqtt": {"host": "127.0.0.1", "port": port},
        "cache": {"redis_url": redis_url, "redis_prefix": f"osprey-test-{next(_n)}:"},
        "batching": {"max_wait_ms": 5}, **over})
    w = Worker(cfg).start()
    assert wait_until(w.connected.is_set, 10)
    time.sleep(0.2)  # the subscription
    return w


def test_answers_match_the_ground_truth_and_are_idempotent(mosquitto, scene):
    w = worker(mosquitto.port, "w-truth")
    edge = Edge(mosquitto.port, "cw1")
    try:
        req = make_request(scene, "cw1")
        edge.send(encode(req))
        (resp, corr), = edge.wait(lambda a: len(a) == 1)
        assert resp.status == "ok" and resp.id == req.id and corr == req.id.encode()
        assert resp.worker == "w-truth" and resp.cache == "none"
        assert [f.index for f in resp.frames] == [t.frame for _, t in scene]
        # Its clock at arrival, start and answer: the round trip's phases at the agent.
        assert req.sent_at <= resp.received_at <= resp.started_at <= resp.answered_at \
            <= time.time()
        assert resp.answered_at - resp.started_at >= resp.infer_ms / 1000 - 0.01
        # The boxes are where the objects are (frame pixels, clearly visible objects).
        _, truth = scene[-1]
        objs = [o for o in truth.objects if o.box is not None and o.visible_px >= 600
                and o.occlusion < 0.3]
        got = resp.frames[-1].detections
        iou = iou_matrix(np.array([o.box for o in objs], np.float32),
                         np.array([d.box for d in got], np.float32).reshape(-1, 4))
        found = sum(any(iou[i, j] >= 0.5 and got[j].label == o.cls for j in range(len(got)))
                    for i, o in enumerate(objs))
        assert objs and found / len(objs) >= 0.8
        # A redelivered request gets the same answer again, without recomputing.
        edge.send(encode(req))
        answers = edge.wait(lambda a: len(a) == 2)
        assert answers[1][0] == resp and w.stats["duplicate"] == 1 and w.stats["ok"] == 1
    finally:
        edge.close()
        w.stop()


def test_a_worker_without_a_share_group_subscribes_plainly(mosquitto, scene):
    """share_group: null (one worker on a broker without shared subscriptions, the demo's):
    the plain request filter, answered as usual."""
    w = worker(mosquitto.port, "w-plain", share_group=None)
    edge = Edge(mosquitto.port, "cw-plain")
    try:
        assert w.topic == "osprey/+/offload/request"
        req = make_request(scene, "cw-plain")
        edge.send(encode(req))
        (resp, _), = edge.wait(lambda a: len(a) == 1)
        assert resp.status == "ok" and resp.id == req.id and resp.worker == "w-plain"
    finally:
        edge.close()
        w.stop()


def test_workers_share_the_redis_cache(mosquitto, redis, scene):
    url = f"redis://127.0.0.1:{redis.port}/0"
    prefix_over = {"cache": {"redis_url": url, "redis_prefix": "osprey-shared-test:"}}
    first = worker(mosquitto.port, "w-a", **prefix_over)
    edge = Edge(mosquitto.port, "cw2")
    try:
        edge.send(encode(make_request(scene, "cw2")))
        edge.wait(lambda a: len(a) == 1)
        first.stop()
        second = worker(mosquitto.port, "w-b", **prefix_over)
        try:
            edge.send(encode(make_request(scene, "cw2")))  # same content, a new request id
            answers = edge.wait(lambda a: len(a) == 2)
        finally:
            second.stop()
    finally:
        edge.close()
    a, b = answers[0][0], answers[1][0]
    assert (a.worker, a.cache) == ("w-a", "none")
    assert (b.worker, b.cache) == ("w-b", "redis")
    assert a.id != b.id and a.frames == b.frames


def jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    i = next(i for i in range(2, len(data)) if data[i] == 0xFF and data[i + 1] == 0xC0)
    data[i + 5:i + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def test_malformed_requests_leave_the_worker_answering(mosquitto, scene):
    w = worker(mosquitto.port, "w-robust", limits={"max_payload_bytes": 1 << 20})
    edge = Edge(mosquitto.port, "cw3")
    victim = Edge(mosquitto.port, "victim")
    good = make_request(scene, "cw3")
    as_map = msgpack.unpackb(encode(good))

    def variant(**changes) -> bytes:
        return msgpack.packb({**as_map, "id": new_request_id(), **changes})

    frame0 = as_map["frames"][0]
    corpus = {
        "truncated": variant()[:200],
        "random bytes": bytes(np.random.default_rng(0).integers(0, 256, 5000, np.uint8)),
        "not a map": msgpack.packb(["a", 1]),
        "oversized": variant(queries=["x" * 200] * 2) + b"\0" * (1 << 20),
        "wrong types": variant(frames="nope"),
        "edge count": variant(edge=[]),
        "huge header": variant(frames=[{**frame0, "jpeg": jpeg_claiming(60000, 60000)}],
                               edge=[[]]),
        "garbage jpeg": variant(frames=[{**frame0, "jpeg": b"\xff\xd8\xff\xc0\x00\x11\x08"
                                         b"\x00\x10\x00\x10" + b"\x00" * 40}], edge=[[]]),
        "version": variant(v=2),
        "expired": variant(expires_at=time.time() - 5),
        # Answers go to the sending device's own topic only, never where a request says.
        "other device": variant(device="victim", reply_to="osprey/victim/offload/response"),
        "other reply": variant(reply_to="osprey/victim/offload/response"),
    }
    try:
        for data in corpus.values():
            edge.send(data)
        edge.send(encode(good))
        answers = edge.wait(lambda a: any(r.id == good.id for r, _ in a))
        time.sleep(0.5)
        answers = list(edge.answers)
    finally:
        edge.close()
        victim.close()
    assert victim.answers == []
    assert sum("must come from the device of that topic" in (r.error or "")
               for r, _ in answers) == 2
    assert w.health()[1]["serving"] and w.connected.is_set()
    ok = [r for r, _ in answers if r.id == good.id]
    assert len(ok) == 1 and ok[0].status == "ok" and ok[0].frames
    errors = {r.error.split(":")[0] for r, _ in answers if r.status == "error"}
    # Requests that say where to answer get an error that names the problem.
    assert any("JPEG of 60000x60000 is over the limits" in (r.error or "")
               for r, _ in answers)
    assert any("does not decode" in (r.error or "") for r, _ in answers)
    assert any("frames" in (r.error or "") for r, _ in answers)
    # a request over the size cap is answered too (its id read from the envelope's head),
    # so the edge counts an error instead of waiting for its timeout
    assert any("over the" in (r.error or "") and "cap" in (r.error or "")
               for r, _ in answers)
    assert errors
    assert w.stats["malformed"] >= 9 and w.stats["expired"] == 1 and w.stats["ok"] == 1
    w.stop()


def test_worker_metrics_health_and_stats_topic(mosquitto, scene):
    import json
    import urllib.request

    from edge_agent.core.metrics import MetricsServer

    w = worker(mosquitto.port, "w-metrics", stats_interval_s=0.5)
    server = MetricsServer("127.0.0.1", 0, w.metrics.registry, w.health).start()
    stats: list = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    sub.on_connect = lambda c, *a: c.subscribe("osprey/cloud/w-metrics/stats")
    sub.on_message = lambda c, u, m: stats.append(json.loads(m.payload))
    sub.connect("127.0.0.1", mosquitto.port)
    sub.loop_start()
    edge = Edge(mosquitto.port, "cw4")
    try:
        edge.send(encode(make_request(scene, "cw4")))
        edge.wait(lambda a: len(a) == 1)
        assert wait_until(lambda: any(s["requests"]["ok"] == 1 for s in stats), 10)
        url = f"http://127.0.0.1:{server.port}"
        text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
        assert 'osprey_cloud_requests_total{outcome="ok"} 1.0' in text
        assert "osprey_cloud_inference_seconds_count 3.0" in text  # three keyframes
        health = json.loads(urllib.request.urlopen(f"{url}/healthz", timeout=5).read())
        assert health["ok"] and health["mqtt_connected"] and health["redis"] is None
    finally:
        sub.loop_stop()
        sub.disconnect()
        edge.close()
        server.stop()
        w.stop()


def test_a_cached_answer_takes_the_new_requests_frame_indices(mosquitto, scene):
    """The cache key is the keyframes' content: a later window of the same still scene (other
    frame indices) gets the stored answer at its own frames, not the first window's."""
    w = worker(mosquitto.port, "w-idx")
    edge = Edge(mosquitto.port, "cw-idx")
    try:
        first = make_request(scene, "cw-idx")
        edge.send(encode(first))
        edge.wait(lambda a: len(a) == 1)
        later = first.model_copy(update={
            "id": new_request_id(), "window": "cam-2",
            "frames": [f.model_copy(update={"index": f.index + 1000}) for f in first.frames]})
        edge.send(encode(later))
        answers = edge.wait(lambda a: len(a) == 2)
    finally:
        w.stop()
        edge.close()
    a, b = answers[0][0], answers[1][0]
    assert b.cache == "memory"
    assert [f.index for f in b.frames] == [f.index + 1000 for f in a.frames]
    assert [f.detections for f in b.frames] == [f.detections for f in a.frames]


def test_a_reused_request_id_gets_no_other_devices_answer(mosquitto, scene):
    """Repeats are kept by (device, request id): a device that sends another device's
    request id gets its own answer computed, never the victim's stored one."""
    w = worker(mosquitto.port, "w-ids")
    victim, thief = Edge(mosquitto.port, "cw-victim"), Edge(mosquitto.port, "cw-thief")
    try:
        req = make_request(scene, "cw-victim")
        victim.send(encode(req))
        victim.wait(lambda a: len(a) == 1)
        stolen = make_request(scene[:1], "cw-thief", rid=req.id)
        thief.send(encode(stolen))
        (resp, _), = thief.wait(lambda a: len(a) == 1)
        time.sleep(0.3)
        assert len(victim.answers) == 1, "the victim's answer was published again"
        assert resp.device == "cw-thief" and len(resp.frames) == 1
        assert w.stats["duplicate"] == 0 and w.stats["ok"] == 2
    finally:
        victim.close()
        thief.close()
        w.stop()


def test_long_correlation_data_is_refused_and_not_kept(mosquitto, scene):
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    w = worker(mosquitto.port, "w-corr")
    edge = Edge(mosquitto.port, "cw-corr")
    try:
        req = make_request(scene[:1], "cw-corr")
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = b"c" * 65_000
        edge.client.publish("osprey/cw-corr/offload/request", encode(req), qos=1,
                            properties=props).wait_for_publish(5)
        (resp, corr), = edge.wait(lambda a: len(a) == 1)
        assert resp.status == "error" and "correlation data over 64 bytes" in resp.error
        assert corr is None or len(corr) <= 64
        assert not w.answered  # nothing kept for it
    finally:
        edge.close()
        w.stop()


def test_a_progressive_jpeg_bomb_is_refused_unread_and_others_are_served(mosquitto, scene):
    """One device sends a large progressive JPEG (scans a decoder would spend minutes on):
    it is refused from its header at once, and another device's request is answered as
    usual; /healthz stays good because the loop never stalls."""
    rng = np.random.default_rng(3)
    big = rng.integers(0, 255, (3904, 4096, 3), np.uint8)
    bomb = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1,
                                      cv2.IMWRITE_JPEG_QUALITY, 30])[1].tobytes()
    w = worker(mosquitto.port, "w-bomb", limits={"max_payload_bytes": 16 << 20})
    attacker, other = Edge(mosquitto.port, "cw-attacker"), Edge(mosquitto.port, "cw-other")
    try:
        good = make_request(scene, "cw-attacker")
        as_map = msgpack.unpackb(encode(good))
        frame0 = {**as_map["frames"][0], "jpeg": bomb, "width": 4096, "height": 3904}
        t0 = time.monotonic()
        attacker.send(msgpack.packb({**as_map, "frames": [frame0], "edge": [[]]}))
        (refused, _), = attacker.wait(lambda a: len(a) == 1)
        took = time.monotonic() - t0
        valid = make_request(scene, "cw-other")
        other.send(encode(valid))
        (answer, _), = other.wait(lambda a: len(a) == 1)
    finally:
        attacker.close()
        other.close()
    assert refused.status == "error" and "progressive (SOF2)" in refused.error
    assert took < 2.0, f"the bomb took {took:.1f} s to refuse"
    assert answer.status == "ok" and answer.id == valid.id
    ok, detail = w.health()
    assert ok and detail["serving"]
    w.stop()


def test_health_turns_bad_when_the_batch_loop_stalls(mosquitto, scene):
    import cloud_fallback.worker as worker_module

    w = worker(mosquitto.port, "w-stall")
    release = threading.Event()
    detect = w._detect

    def stuck(i, kf):  # a decode that does not come back (what a bomb would do)
        release.wait(20)
        return detect(i, kf)

    w._detect = stuck
    edge = Edge(mosquitto.port, "cw-stall")
    old = worker_module.STALL_S
    worker_module.STALL_S = 0.5
    try:
        edge.send(encode(make_request(scene, "cw-stall")))
        edge.send(encode(make_request(scene, "cw-stall")))
        assert wait_until(lambda: not w.health()[0], 10)
        assert w.health()[1]["request_busy_s"] >= 0.5
        assert w.health()[1]["serving"] is False
        release.set()
        edge.wait(lambda a: len(a) == 2, 30)
        assert wait_until(lambda: w.health()[0], 10)
    finally:
        worker_module.STALL_S = old
        release.set()
        edge.close()
        w.stop()


def test_a_flooding_device_waits_behind_its_own_requests(mosquitto, scene):
    """Devices are served in turn: one that sends 30 requests at once does not hold back
    another's one request sent just after (it is served next), and past its share of the
    queue it is told it is busy, alone. The first request is held in service until every
    request has arrived, so the order checked is the queue's, not the machine's load."""
    w = worker(mosquitto.port, "w-fair", batching={"max_batch": 1, "max_wait_ms": 1,
                                                   "max_queue": 40})
    flood, quiet = Edge(mosquitto.port, "cw-flood"), Edge(mosquitto.port, "cw-quiet")
    served: list[str] = []
    release = threading.Event()
    serve = w._serve

    def held(job):  # the service order, as the worker takes jobs from its queue
        served.append(job.req.device)
        release.wait(60)
        serve(job)

    w._serve = held
    rng = np.random.default_rng(5)

    def fresh(device):  # another picture each time: no answer comes from the cache
        noisy = [(np.clip(img.astype(np.int16) + rng.integers(-8, 9, img.shape), 0, 255)
                  .astype(np.uint8), t) for img, t in scene]
        return make_request(noisy, device)

    try:
        for _ in range(30):
            flood.send(encode(fresh("cw-flood")))
        # one in service, 10 waiting, 19 told busy
        flood.wait(lambda a: len(a) == 19, 60)
        assert wait_until(lambda: w.jobs.qsize() == 10, 30)
        quiet.send(encode(fresh("cw-quiet")))
        assert wait_until(lambda: w.jobs.qsize() == 11, 30)
        release.set()
        quiet.wait(lambda a: len(a) == 1, 60)
        flood.wait(lambda a: len(a) == 30, 120)
    finally:
        release.set()
        flood.close()
        quiet.close()
        w.stop()
    assert quiet.answers[0][0].status == "ok"
    # the flood's first was in service when the quiet device asked; it is served next
    assert served[:3] == ["cw-flood", "cw-quiet", "cw-flood"], served
    assert len(served) == 12
    busy = [r for r, _ in flood.answers if r.status == "error"]
    assert len(busy) == 19 and sum(r.status == "ok" for r, _ in flood.answers) == 11
    assert all("this device already has 10 requests waiting" in r.error for r in busy)


def test_a_device_past_its_rate_is_dropped_unread_and_others_are_served(mosquitto, scene):
    """limits.per_device_rate: a device that sends 60 requests at once gets its burst (5)
    through; the rest are dropped on arrival, never decoded, and counted `flooded`; another
    device's request sent during the flood is answered."""
    w = worker(mosquitto.port, "w-rate", limits={"per_device_rate": 0.5, "per_device_burst": 5})
    flood, quiet = Edge(mosquitto.port, "cw-rflood"), Edge(mosquitto.port, "cw-rquiet")
    decoded: list[str] = []
    accept = w._accept

    def counted(msg, received, received_at):
        decoded.append(msg.topic)
        accept(msg, received, received_at)

    w._accept = counted
    try:
        payload = encode(make_request(scene, "cw-rflood"))
        for _ in range(60):
            flood.send(payload)
        quiet.send(encode(make_request(scene, "cw-rquiet")))
        (answer, _), = quiet.wait(lambda a: len(a) == 1, 60)
        assert wait_until(lambda: w.stats["flooded"] >= 55, 20), dict(w.stats)
        time.sleep(0.5)
    finally:
        flood.close()
        quiet.close()
        w.stop()
    assert answer.status == "ok"
    assert w.stats["flooded"] == 55, dict(w.stats)
    flood_read = [t for t in decoded if "/cw-rflood/" in t]
    assert len(flood_read) == 5  # the burst; one of them answered, four repeats of its id
    assert sum(r.status == "ok" for r, _ in flood.answers) == 5
