"""The image-text model in the cloud's answers: a camera's text query that describes an object
in view yields `matches` messages through a real broker, boxed on that object; a query for
something absent yields none; the second opinion combines the detector and the text model."""

from __future__ import annotations

import time

import numpy as np
import pytest
from agent_kit import decoded, make_agent
from listener import Listener
from servers import wait_until

from cloud_fallback.config import CloudConfig
from cloud_fallback.opinion import TextOpinion
from cloud_fallback.worker import Worker
from edge_agent.detector.detections import Detections
from edge_agent.detector.nms import iou_matrix
from edge_agent.sim import CLASSES, SyntheticWorld, WorldOptions

pytest.importorskip("tokenizers", reason="the image-text model needs `tokenizers` "
                    "(pip install '.[cloud]')")

SEED = 1013
"""A held-out normal world with a red car in view from the start and no yellow dog."""


def test_the_second_opinion_weighs_detector_and_text():
    op = TextOpinion(model=None, class_names=CLASSES, label_weight=0.5)
    dets = Detections(np.zeros((3, 4), np.float32), np.array([0.55, 0.95, 0.6], np.float32),
                      np.array([1, 1, 4], np.int32), CLASSES)
    p_text = np.full((3, 5), 0.1, np.float32)
    p_text[:, 4] = 0.6  # the text model leans to dog for all three
    # A hesitant "car" gives way; a confident "car" holds; an agreed "dog" stays.
    assert op.combine(dets, p_text).tolist() == [4, 1, 4]
    assert TextOpinion(None, CLASSES, label_weight=0.0).combine(dets, p_text).tolist() == \
        [1, 1, 4]


@pytest.mark.integration
def test_a_query_for_a_red_car_in_view_yields_matches_and_an_absent_one_none(mosquitto):
    wcfg = CloudConfig.model_validate({"worker_id": "w-text",
                                       "mqtt": {"host": "127.0.0.1", "port": mosquitto.port},
                                       "batching": {"max_wait_ms": 5},
                                       "metrics": {"enabled": False}})
    worker = Worker(wcfg).start()
    agent, publisher, cfg = make_agent(
        mosquitto.port, [{"name": "street", "url": f"synthetic://?seed={SEED}&preset=normal",
                          "text_queries": ["red car", "yellow dog"]}],
        window={"size": 8, "stride": 8},
        offload={"enabled": True, "score_threshold": 0.0, "windows_per_minute": 6000,
                 "bytes_per_minute": 50_000_000, "max_in_flight": 2, "keyframes": 2,
                 "timeout_s": 10},
        cache={"enabled": False})
    base = f"osprey/{cfg.device_id}/street"
    listen = Listener(mosquitto.port, f"{base}/#")
    try:
        assert wait_until(worker.connected.is_set, 10)
        time.sleep(0.3)
        agent.start()
        listen.wait(lambda ms: len(decoded(ms, f"{base}/matches")) >= 4
                    and len(decoded(ms, f"{base}/refined")) >= 8, 90)
    finally:
        agent.stop()
        publisher.stop()
        worker.stop()
        listen.close()
    msgs = decoded(listen.messages, f"{base}/matches", "matches")
    refined = decoded(listen.messages, f"{base}/refined", "refined")
    matches = [m for msg in msgs for m in msg["matches"]]
    assert {m["query"] for m in matches} == {"red car"}, "nothing here is a yellow dog"
    assert all(msg["text_model"] == "osprey-textimage" and msg["source"] == "cloud"
               for msg in msgs)
    assert {msg["window_id"] for msg in msgs} <= {r["window_id"] for r in refined}
    world = SyntheticWorld(WorldOptions.from_preset("normal", seed=SEED))
    on_red_car = 0
    for m in matches:
        truth = world.render(m["frame"])[1]
        reds = [o.box for o in truth.visible() if o.colour == "red" and o.cls == "car"]
        if reds and iou_matrix(np.array([m["box"]], np.float32),
                               np.array(reds, np.float32)).max() >= 0.5:
            on_red_car += 1
        assert m["label"] == "car" or m["score"] < 0.9
    assert on_red_car >= 0.9 * len(matches), f"{on_red_car} of {len(matches)} on the red car"
    assert worker.opinion.stats.crops > 0
    assert worker.stats_payload()["text"]["matches"] >= len(matches)  # answers after stop too
