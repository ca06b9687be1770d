"""The agent end to end with real parts: a synthetic-world video decoded by OpenCV, the bundled
edge model in ONNX Runtime, a real Mosquitto; every payload checked against its schema."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict

import cv2
import numpy as np
import pytest
from agent_kit import decoded, make_agent
from listener import Listener
from servers import wait_until

from edge_agent.core.detector.nms import iou_matrix
from edge_agent.core.metrics import MetricsServer
from edge_agent.tools.sim import SyntheticWorld, WorldOptions
from edge_agent.tools.sim.clip import read_truth, write_clip

pytestmark = pytest.mark.integration

MATCH_IOU = 0.5
RECALL_FLOOR = 0.85
"""Share of clearly visible objects (>= 400 px visible, at most 50% hidden) the published
boxes must find at IoU >= 0.5 with the right label, on a held-out `normal` clip (0.94 when
written: 1,509 of 1,606)."""


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    world = SyntheticWorld(WorldOptions.from_preset("normal", seed=1003))
    return write_clip(world, 8.0, tmp_path_factory.mktemp("clip"), progress=False)


def stopped(device: str):
    return lambda ms: any(m.topic == f"osprey/{device}/status" and m.payload == b"stopped"
                          for m in ms)


def test_a_video_through_the_agent(mosquitto, clip):
    agent, publisher, cfg = make_agent(mosquitto.port, [{"name": "cam", "url": str(clip.video)}])
    listen = Listener(mosquitto.port, f"osprey/{cfg.device_id}/#")
    agent.start()
    assert agent.wait(90), "the agent did not finish the clip"
    agent.stop()
    publisher.stop()
    msgs = listen.wait(stopped(cfg.device_id))
    listen.close()
    base = f"osprey/{cfg.device_id}"
    pipe = agent.pipelines[0]
    stats = pipe.camera.stats

    # Every frame read is processed or counted as dropped; every processed frame is published.
    assert stats.frames_in == clip.frames
    assert pipe.processed + stats.dropped_unread + stats.dropped_stale == stats.frames_in
    dets = decoded(msgs, f"{base}/cam/detections", "detections")
    assert len(dets) == pipe.processed >= clip.frames // 2
    assert [d["seq"] for d in dets] == list(range(1, len(dets) + 1))
    frames = [d["frame"] for d in dets]
    assert frames == sorted(set(frames))
    assert all(d["published_at"] >= d["captured_at"] and d["width"] == 640 for d in dets)

    # Boxes against the ground truth.
    truth = {t.frame: t for t in read_truth(clip.truth)}
    found = total = 0
    for d in dets:
        objs = [o for o in truth[d["frame"]].objects
                if o.box is not None and o.visible_px >= 400 and o.occlusion <= 0.5]
        if not objs:
            continue
        boxes = np.array([x["box"] for x in d["detections"]], np.float32).reshape(-1, 4)
        labels = [x["label"] for x in d["detections"]]
        iou = iou_matrix(np.array([o.box for o in objs], np.float32), boxes)
        for i, o in enumerate(objs):
            total += 1
            found += any(iou[i, j] >= MATCH_IOU and labels[j] == o.cls
                         for j in range(len(labels)))
    assert total > 100
    assert found / total >= RECALL_FLOOR, f"{found}/{total} visible objects found"
    assert any("track_id" in x for d in dets for x in d["detections"])

    # Status: device online -> stopped; camera streaming -> down at the end of the file.
    device = [m.payload for m in msgs if m.topic == f"{base}/status"]
    assert device[0] == b"online" and device[-1] == b"stopped"
    states = decoded(msgs, f"{base}/cam/status", "camera_status")
    assert states[0]["state"] == "streaming"
    assert (states[-1]["state"], states[-1]["reason"]) == ("down", "end of stream")

    # Events: each confirmed track opens with `new` and closes with `end`, exactly once.
    events = decoded(msgs, f"{base}/cam/events", "events")
    by_track = defaultdict(list)
    for e in events:
        by_track[e["event_id"]].append(e["type"])
    assert by_track, "no events"
    for kinds in by_track.values():
        assert kinds[0] == "new" and kinds[-1] == "end" and kinds.count("end") == 1
        assert set(kinds[1:-1]) <= {"update"}
    ends = [e for e in events if e["type"] == "end"]
    assert all(e["end_time"] >= e["start_time"] for e in ends)

    # Snapshots are JPEGs of the frame.
    snaps = [m.payload for m in msgs if m.topic == f"{base}/cam/snapshot"]
    assert len(snaps) == pipe.events.counts.snapshots > 0
    img = cv2.imdecode(np.frombuffer(snaps[-1], np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (360, 640, 3)

    # Stats: schema-valid, and the last one (sent at stop) has the final counters.
    stats_msgs = decoded(msgs, f"{base}/stats", "stats")
    assert stats_msgs[-1]["cameras"]["cam"]["frames_in"] == clip.frames
    assert stats_msgs[-1]["cameras"]["cam"]["processed"] == pipe.processed


def test_latency_stays_flat_when_the_camera_outruns_the_model(mosquitto):
    """A 120 fps camera in front of a model held to at most ~80 fps (whatever this machine's
    speed): frames are dropped (counted), never queued, so latency at the end is what it was
    at the start."""
    max_age = 300
    agent, publisher, cfg, _, _ = _slow_agent(mosquitto.port, 0.012, {
        "name": "fast", "url": "synthetic://?seed=11&fps=120&seconds=5",
        "max_frame_age_ms": max_age})
    listen = Listener(mosquitto.port, f"osprey/{cfg.device_id}/fast/detections")
    agent.start()
    assert agent.wait(60)
    agent.stop()
    publisher.stop()
    stats = agent.pipelines[0].camera.stats
    dets = decoded(listen.wait(lambda ms: len(ms) >= agent.pipelines[0].processed),
                   f"osprey/{cfg.device_id}/fast/detections", "detections")
    listen.close()
    assert stats.dropped_unread > 0
    assert agent.pipelines[0].processed + stats.dropped_unread + stats.dropped_stale \
        == stats.frames_in
    lat = np.array([d["latency_ms"] for d in dets])
    third = len(lat) // 3
    assert third >= 20
    # A queue would make the last third seconds behind; a one-frame slot keeps it flat.
    assert np.median(lat[-third:]) <= 2 * np.median(lat[:third]) + 30
    assert lat.max() < max_age + 200


def test_detect_fps_caps_processing(mosquitto):
    agent, publisher, _ = make_agent(mosquitto.port, [{
        "name": "capped", "url": "synthetic://?seed=12&fps=30&seconds=4", "detect_fps": 5}])
    agent.start()
    assert agent.wait(60)
    agent.stop()
    publisher.stop()
    pipe = agent.pipelines[0]
    # 4 s at 5 fps: about 20 frames (one more for the first), the rest dropped and counted.
    assert 15 <= pipe.processed <= 22
    assert pipe.processed + pipe.camera.stats.dropped_unread + pipe.camera.stats.dropped_stale \
        == pipe.camera.stats.frames_in == 120


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_and_health_endpoints(mosquitto):
    agent, publisher, _ = make_agent(mosquitto.port, [
        {"name": "m1", "url": "synthetic://?seed=13&seconds=3"}])
    server = MetricsServer("127.0.0.1", 0, agent.metrics.registry, agent.health).start()
    url = f"http://127.0.0.1:{server.port}"
    try:
        agent.start()
        assert wait_until(lambda: agent.pipelines[0].processed >= 10, 20)
        code, body = _get(f"{url}/healthz")
        health = json.loads(body)
        assert code == 200 and health["ok"] and health["cameras"] == {"m1": "streaming"}
        assert health["mqtt_connected"] is True
        code, text = _get(f"{url}/metrics")
        assert code == 200
        for needle in ('osprey_camera_up{camera="m1"} 1.0', "osprey_inference_seconds_bucket",
                       "osprey_end_to_end_latency_seconds_count", "osprey_mqtt_connected 1.0",
                       'osprey_frames_dropped_total{camera="m1",reason="stale"}',
                       "osprey_mqtt_queue_depth"):
            assert needle in text, needle
        assert agent.wait(30)
        agent.stop()
        code, text = _get(f"{url}/metrics")
        processed = agent.pipelines[0].processed
        assert f'osprey_frames_processed_total{{camera="m1"}} {float(processed)}' in text
        assert 'osprey_frames_in_total{camera="m1"} 90.0' in text
        code, body = _get(f"{url}/healthz")
        assert code == 503 and json.loads(body)["detection_loop"] == "stopped"
        assert _get(f"{url}/nope")[0] == 404
    finally:
        publisher.stop()
        server.stop()


class _SlowModel:
    """The bundled model's backend, `delay_s` slower, recording when and where each stage ran:
    a model slower than any camera, to see the prepare thread work while it runs."""

    def __init__(self, detector, delay_s: float) -> None:
        self.inner, self.delay_s = detector.backend, delay_s
        self.inputs, self.outputs = self.inner.inputs, self.inner.outputs
        self.runs: list[tuple[str, float, float]] = []

    def run(self, feeds):
        t0 = time.monotonic()
        time.sleep(self.delay_s)
        out = self.inner.run(feeds)
        self.runs.append((threading.current_thread().name, t0, time.monotonic()))
        return out


class _RecordingAdapter:
    def __init__(self, adapter) -> None:
        self.inner = adapter
        self.prepares: list[tuple[str, float]] = []

    def prepare(self, image):
        self.prepares.append((threading.current_thread().name, time.monotonic()))
        return self.inner.prepare(image)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def _slow_agent(port: int, delay_s: float, camera: dict):
    from agent_kit import shared_detector

    from edge_agent.core.detector import Detector

    real = shared_detector()
    model, adapter = _SlowModel(real, delay_s), _RecordingAdapter(real.adapter)
    agent, publisher, cfg = make_agent(port, [camera], detector=Detector(model, adapter))
    return agent, publisher, cfg, model, adapter


def _run_to_end(agent, publisher):
    """Run the agent until its one camera's stream ends; its pipeline and capture stats."""
    agent.start()
    assert agent.wait(60)
    agent.stop()
    publisher.stop()
    return agent.pipelines[0], agent.pipelines[0].camera.stats


def test_the_next_frame_is_prepared_while_the_model_runs(mosquitto):
    """Preprocessing runs on its own thread while the model runs on the frame before, so the
    model goes from one frame to the next without waiting on it."""
    agent, publisher, _, model, adapter = _slow_agent(mosquitto.port, 0.04, {
        "name": "cam", "url": "synthetic://?seed=13&fps=60&seconds=3"})
    agent.start()
    assert agent.wait(60)
    agent.stop()
    publisher.stop()
    assert {name for name, *_ in model.runs} == {"detect"}
    assert {name for name, _ in adapter.prepares} == {"prepare"}
    runs = sorted(model.runs, key=lambda r: r[1])
    assert len(runs) >= 30 and agent.pipelines[0].processed == len(runs)
    # The frame for run i was prepared while run i-1 was going on.
    starts = sorted(t for _, t in adapter.prepares)
    ahead = sum(any(prev[1] < t < prev[2] for t in starts)
                for prev in runs[:-1])
    assert ahead >= 0.9 * (len(runs) - 1)


def test_a_frame_that_went_stale_waiting_for_the_model_is_dropped(mosquitto):
    """A 200 ms model and frames of at most 120 ms: the frame prepared during a run is too
    old by the time the model is free, so it is dropped (counted), a fresh one goes in, and
    no published frame went into the model older than 120 ms."""
    delay, max_age = 0.2, 120
    agent, publisher, cfg, *_ = _slow_agent(mosquitto.port, delay, {
        "name": "cam", "url": "synthetic://?seed=14&fps=30&seconds=3",
        "max_frame_age_ms": max_age})
    listen = Listener(mosquitto.port, f"osprey/{cfg.device_id}/cam/detections")
    pipe, stats = _run_to_end(agent, publisher)
    dets = decoded(listen.wait(lambda ms: len(ms) >= pipe.processed),
                   f"osprey/{cfg.device_id}/cam/detections", "detections")
    listen.close()
    assert stats.dropped_stale > 0 and pipe.processed >= 5
    assert pipe.processed + stats.dropped_unread + stats.dropped_stale == stats.frames_in
    # Age at the model's start <= 120 ms, then 200 ms of model and a little publishing; a
    # frame let through after waiting a whole run would be 400 ms old.
    assert max(d["latency_ms"] for d in dets) < max_age + delay * 1000 + 60


class _SlowWholeDetector:
    """A detector that prepares its own input (like the tiled one): image in, detections out,
    200 ms a call."""

    def __init__(self, inner) -> None:
        self.inner, self.class_names = inner, inner.class_names
        self.calls: list[float] = []

    def __call__(self, image):
        self.calls.append(time.monotonic())
        time.sleep(0.2)
        return self.inner(image)


def test_a_detector_that_prepares_its_own_input_gets_the_freshest_frame(mosquitto):
    """Nothing to prepare ahead for such a detector, so its next frame is picked when it is
    free: a 200 ms model with frames of at most 120 ms loses none to staleness."""
    from agent_kit import shared_detector

    slow = _SlowWholeDetector(shared_detector())
    agent, publisher, _ = make_agent(mosquitto.port, [{
        "name": "cam", "url": "synthetic://?seed=15&fps=30&seconds=3",
        "max_frame_age_ms": 120}], detector=slow)
    pipe, stats = _run_to_end(agent, publisher)
    assert pipe.processed == len(slow.calls) >= 10
    # Every frame taken went into the model: none waited there until it was stale (the
    # stream's last frame may go stale in the camera's slot while the model runs).
    assert stats.taken == pipe.processed and stats.dropped_stale <= 1
    assert pipe.processed + stats.dropped_unread + stats.dropped_stale == stats.frames_in
