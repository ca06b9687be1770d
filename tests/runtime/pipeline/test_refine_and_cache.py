"""Answers change what the agent publishes: the cloud's class sticks to a track, events say it
was verified; a recurring scene is answered from the edge cache with no upload, and the same
scene with one small new object is not."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from agent_kit import decoded, make_agent
from listener import Listener
from servers import wait_until

from cloud_fallback.config import CloudConfig
from cloud_fallback.worker import Worker
from edge_agent.core.detector.detections import Detections
from edge_agent.runtime.capture.frame import Frame
from edge_agent.runtime.offload.answer import Answer
from edge_agent.tools.sim import SyntheticWorld, WorldOptions

pytestmark = pytest.mark.integration


class StillCamera:
    """A camera looking at a still scene at 30 fps; `image` may be swapped while it runs."""

    def __init__(self, image: np.ndarray) -> None:
        self.name, self.image = "still", image
        self.lock = threading.Lock()
        self._i = 0
        self._t0 = time.monotonic()

    def read(self) -> Frame:
        due = self._t0 + self._i / 30
        if due > time.monotonic():
            time.sleep(due - time.monotonic())
        with self.lock:
            img = self.image
        f = Frame(self.name, self._i, time.monotonic(), time.time(), img)
        self._i += 1
        return f

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def still_scene():
    world = SyntheticWorld(WorldOptions.from_preset("easy", seed=1020))
    # A frame with a few clearly visible objects.
    for i in range(0, 900, 15):
        rendered, truth = world.render(i)
        if sum(o.visible_px > 1500 and o.occlusion < 0.2 for o in truth.objects) >= 2:
            return rendered.image
    raise AssertionError("no busy frame in the first 30 s of the world")


@pytest.fixture(scope="module")
def still_queries():
    """Text queries describing the still scene's clearly visible objects ("a red car")."""
    world = SyntheticWorld(WorldOptions.from_preset("easy", seed=1020))
    for i in range(0, 900, 15):
        _, truth = world.render(i)
        clear = [o for o in truth.objects if o.visible_px > 1500 and o.occlusion < 0.2]
        if len(clear) >= 2:
            return sorted({f"{o.colour} {o.cls}" for o in clear})
    raise AssertionError("no busy frame")


def test_a_cloud_label_sticks_to_its_track_and_the_event_is_verified(mosquitto, still_scene):
    cam = StillCamera(still_scene)
    agent, publisher, cfg = make_agent(mosquitto.port, [{"name": "still", "url": "synthetic://"}],
                                       openers={"still": lambda: cam})
    base = f"osprey/{cfg.device_id}/still"
    listen = Listener(mosquitto.port, f"{base}/#")
    try:
        agent.start()
        msgs = listen.wait(lambda ms: any(e["type"] == "new" for e in
                                          decoded(ms, f"{base}/events")), 20)
        last = decoded(msgs, f"{base}/detections")[-1]
        tracked = next(d for d in last["detections"] if "track_id" in d)
        names = agent.detector.class_names
        other = next(i for i, n in enumerate(names) if n != tracked["label"])
        box = np.array([tracked["box"]], np.float32)
        edge = Detections(box, np.array([tracked["score"]], np.float32),
                          np.array([tracked["class_id"]], np.int32), names,
                          np.array([tracked["track_id"]], np.int64))
        cloud = Detections(box, np.array([0.97], np.float32), np.array([other], np.int32),
                           names)
        agent.post_answer(Answer(
            camera="still", window_id="still-x", request_id="r" * 32, source="cloud",
            frames=[(last["frame"], cloud)], edge=[edge], rtt_ms=42.0,
            window=[(last["frame"] - 1, edge), (last["frame"], edge)], worker="w",
            model="cloud"))
        tid, label = tracked["track_id"], names[other]

        def relabelled(ms):
            return any(d.get("track_id") == tid and d["label"] == label
                       for m in decoded(ms, f"{base}/detections") for d in m["detections"])

        msgs = listen.wait(relabelled, 10)
    finally:
        agent.stop()
        publisher.stop()
        listen.close()
    refined = decoded(msgs, f"{base}/refined", "refined")
    assert refined[0]["verified_tracks"] == [
        {"track_id": tid, "label": label, "class_id": other, "score": 0.97}]
    assert refined[0]["source"] == "cloud" and refined[0]["rtt_ms"] == 42.0
    before, key = refined[0]["frames"]
    assert key["keyframe"] and not before["keyframe"]
    assert [d["label"] for d in key["detections"]] == [label]
    assert [(d["label"], d["track_id"]) for d in before["detections"]] == [(label, tid)]
    events = [e for e in decoded(msgs, f"{base}/events", "events") if e["track_id"] == tid]
    assert any(e["type"] == "update" and e["verified"] and e["label"] == label
               for e in events)


def test_a_recurring_scene_comes_from_the_edge_cache(mosquitto, still_scene, still_queries):
    wcfg = CloudConfig.model_validate({"worker_id": "w-cache",
                                       "mqtt": {"host": "127.0.0.1", "port": mosquitto.port},
                                       "batching": {"max_wait_ms": 5}})
    worker = Worker(wcfg).start()
    cam = StillCamera(still_scene)
    agent, publisher, cfg = make_agent(
        mosquitto.port, [{"name": "still", "url": "synthetic://",
                          "text_queries": still_queries}],
        openers={"still": lambda: cam}, window={"size": 8, "stride": 8},
        offload={"enabled": True, "score_threshold": 0.0, "windows_per_minute": 6000,
                 "max_in_flight": 1, "keyframes": 2, "timeout_s": 20},
        cache={"enabled": True})
    base = f"osprey/{cfg.device_id}/still"
    listen = Listener(mosquitto.port, f"{base}/+")
    off = agent.offload
    try:
        assert wait_until(worker.connected.is_set, 10)
        time.sleep(0.3)
        agent.start()
        listen.wait(lambda ms: [r["source"] for r in decoded(ms, f"{base}/refined")]
                    .count("cache") >= 3, 60)
        sent_before = off.client.snapshot()["counts"]["sent"]
        bytes_before = off.client.snapshot()["bytes_up"]
        # One small new object: the scene is no longer the cached one.
        changed = still_scene.copy()
        changed[290:312, 380:394] = (30, 30, 170)
        with cam.lock:
            cam.image = changed
        n = len(listen.messages)
        listen.wait(lambda ms: any(r["source"] == "cloud"
                                   for r in decoded(ms[n:], f"{base}/refined")), 20)
    finally:
        agent.stop()
        publisher.stop()
        worker.stop()
        listen.close()
    refined = decoded(listen.messages, f"{base}/refined", "refined")
    sources = [r["source"] for r in refined]
    assert sources[0] == "cloud" and sources.count("cache") >= 3
    # The cached answer's query matches come back with it, at this window's own frames.
    matches = decoded(listen.messages, f"{base}/matches", "matches")
    assert {m["source"] for m in matches} == {"cloud", "cache"}
    keyframes = {r["window_id"]: {f["frame"] for f in r["frames"] if f["keyframe"]}
                 for r in refined}
    for m in matches:
        assert {x["frame"] for x in m["matches"]} <= keyframes[m["window_id"]]
        assert {x["query"] for x in m["matches"]} <= set(still_queries)
    counts = off.client.snapshot()["counts"]
    assert counts["sent"] > sent_before
    assert off.client.snapshot()["bytes_up"] > bytes_before
    assert off.cache.stats.hits >= 3 and off.cache.stats.misses >= 2
    # Every answer came from this worker: inferred, or from its own result cache when the
    # edge sent a window the worker had already seen.
    assert counts["answered"] >= 2
    assert worker.stats["ok"] + worker.stats["cached"] >= counts["answered"]
    assert worker.stats["ok"] >= 2


def test_a_parked_object_only_the_cloud_sees_is_held_on_detections(mosquitto, still_scene):
    """The cloud answers with an object the edge has no box for, in the same place on the
    first and last keyframe: the agent keeps publishing it on `detections`, marked held, at
    the cloud's score times `hold_score_factor`, for `hold_s`, then stops."""
    cam = StillCamera(still_scene)
    agent, publisher, cfg = make_agent(
        mosquitto.port, [{"name": "still", "url": "synthetic://"}],
        openers={"still": lambda: cam}, offload={"hold_s": 1.5, "hold_score_factor": 0.5})
    base = f"osprey/{cfg.device_id}/still"
    listen = Listener(mosquitto.port, f"{base}/detections")
    try:
        agent.start()
        msgs = listen.wait(lambda ms: len(ms) >= 5, 20)
        last = decoded(msgs, f"{base}/detections")[-1]
        names = agent.detector.class_names
        edge_boxes = np.array([d["box"] for d in last["detections"]] or np.zeros((0, 4)),
                              np.float32)
        # A box well away from every edge box: the top-left corner of the frame, or the
        # bottom right if the edge has something there.
        box = [2.0, 2.0, 42.0, 32.0]
        if len(edge_boxes) and (edge_boxes[:, 0] < 60).any() and (edge_boxes[:, 1] < 50).any():
            box = [last["width"] - 42.0, last["height"] - 32.0, last["width"] - 2.0,
                   last["height"] - 2.0]
        cloud = Detections(np.array([box], np.float32), np.array([0.9], np.float32),
                           np.array([1], np.int32), names)
        edge = Detections.empty(names)
        f = last["frame"]
        t_answer = time.monotonic()
        agent.post_answer(Answer(
            camera="still", window_id="still-h", request_id="h" * 32, source="cloud",
            frames=[(f - 4, cloud), (f, cloud)], edge=[edge, edge], rtt_ms=30.0,
            window=[(f - 4, edge), (f, edge)], worker="w", model="cloud"))

        def held_in(m):
            return [d for d in m["detections"] if d.get("held")]

        msgs = listen.wait(lambda ms: any(held_in(m) for m in decoded(ms, f"{base}/detections"))
                           and time.monotonic() > t_answer + 2.5, 20)
    finally:
        agent.stop()
        publisher.stop()
        listen.close()
    payloads = decoded(msgs, f"{base}/detections", "detections")
    held = [(m, held_in(m)) for m in payloads if held_in(m)]
    assert held, "no detections message carried the held object"
    for _, items in held:
        assert len(items) == 1
        assert items[0]["box"] == box and items[0]["label"] == names[1]
        assert items[0]["score"] == pytest.approx(0.45) and "track_id" not in items[0]
    # Held for 1.5 s (about 45 frames at 30 fps), then no more.
    assert 20 <= len(held) <= 60
    assert not held_in(payloads[-1])
