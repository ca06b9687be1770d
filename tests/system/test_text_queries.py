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
from edge_agent.core.detector.detections import Detections
from edge_agent.core.detector.nms import iou_matrix
from edge_agent.tools.sim import CLASSES, SyntheticWorld, WorldOptions

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
    label, score = op.combine(dets, p_text)
    # A hesitant "car" gives way; a confident "car" holds; an agreed "dog" stays.
    assert label.tolist() == [4, 1, 4]
    # Scores move by what the text model adds: the agreed dog rises, the car it doubts
    # falls, and the relabelled one is scored as a dog, from the detector's share of "dog".
    assert score[2] > 0.6 and score[1] < 0.95 and score[0] < 0.55
    label0, score0 = TextOpinion(None, CLASSES, label_weight=0.0).combine(dets, p_text)
    assert label0.tolist() == [1, 1, 4] and score0.tolist() == dets.score.tolist()
    # A text model without an opinion (uniform) leaves every score as it was, for any number
    # of classes: the normalisation over classes does not shrink it.
    many = tuple(f"class{i}" for i in range(80))
    sure = Detections(np.zeros((2, 4), np.float32), np.array([0.9, 0.5], np.float32),
                      np.array([3, 7], np.int32), many)
    flat = np.full((2, 80), 1 / 80, np.float32)
    lab, sc = TextOpinion(None, many, label_weight=0.1).combine(sure, flat)
    assert lab.tolist() == [3, 7] and sc.tolist() == sure.score.tolist()


@pytest.fixture(scope="module")
def text_model():
    from cloud_fallback.textimage import TextImageModel
    from edge_agent.core.bundled import bundled_text_model

    return TextImageModel.load(bundled_text_model())


def test_queries_with_words_the_model_does_not_know_are_refused(text_model):
    op = TextOpinion(text_model, CLASSES)
    usable, refused = op.read_queries(["red car", "red cars", "a tractor", "a crimson car",
                                       "a small dog", "the pedestrians facing left", "big",
                                       "a grey bus"])
    assert usable == [("red car", "red car", None), ("red cars", "red car", None),
                      ("a small dog", "a dog", "small"),
                      ("the pedestrians facing left", "the pedestrian facing left", None),
                      ("a grey bus", "a grey bus", None)]  # words real crops taught it
    reasons = {r.query: r.reason for r in refused}
    assert set(reasons) == {"a tractor", "a crimson car", "big"}
    assert "'crimson'" in reasons["a crimson car"] and "osprey-textimage" in reasons[
        "a tractor"]
    assert "needs something to look for" in reasons["big"]
    # A plural reads as its singular: the same embedding, so the same matches.
    assert np.allclose(text_model.encode_texts(["red car"]),
                       text_model.encode_texts([usable[1][1]]))
    # A size is read from the camera's scale: refused while the agent has not learned it.
    usable, refused = op.read_queries(["a small dog", "red car"], scale_known=False)
    assert [u[0] for u in usable] == ["red car"]
    assert refused[0].query == "a small dog" and "not yet known" in refused[0].reason


def test_a_refusal_stays_within_what_an_answer_may_carry(text_model):
    query = " ".join(f"q{i:02d}" for i in range(60))  # 60 unknown words, under 256 characters
    assert len(query) <= 256
    _, refused = TextOpinion(text_model, CLASSES).read_queries([query])
    assert len(refused[0].reason) <= 512 and "and 55 more" in refused[0].reason


def test_a_refused_query_never_matches(text_model):
    world = SyntheticWorld(WorldOptions.from_preset("normal", seed=SEED))
    rendered, truth = world.render(0)
    objs = truth.visible()
    dets = Detections(np.array([o.box for o in objs], np.float32),
                      np.full(len(objs), 0.9, np.float32),
                      np.array([CLASSES.index(o.cls) for o in objs], np.int32), CLASSES)
    op = TextOpinion(text_model, CLASSES, match_threshold=0.0)  # everything read matches
    _, matches = op.apply([rendered.image], [dets], [0], [(1.0, 1.0)],
                          ["a crimson car", "car"])
    assert matches and {m.query for m in matches} == {"car"}


def test_the_crop_budget_is_shared_by_the_keyframes(text_model):
    world = SyntheticWorld(WorldOptions.from_preset("normal", seed=SEED))
    images, frames = [], []
    for i in (0, 30, 60):
        rendered, truth = world.render(i)
        objs = truth.visible()
        images.append(rendered.image)
        frames.append(Detections(np.array([o.box for o in objs], np.float32),
                                 np.full(len(objs), 0.9, np.float32),
                                 np.array([CLASSES.index(o.cls) for o in objs], np.int32),
                                 CLASSES))
    assert all(len(f) >= 2 for f in frames)
    op = TextOpinion(text_model, CLASSES, max_crops=3, min_side_px=1)
    op.apply(images, frames, [0, 30, 60], [(1.0, 1.0)] * 3, [])
    assert op.stats.crops == 3
    seen = []
    real = text_model.encode_crops
    text_model.encode_crops = lambda crops: (seen.append(len(crops)), real(crops))[1]
    try:
        op.apply(images, frames, [0, 30, 60], [(1.0, 1.0)] * 3, [])
    finally:
        text_model.encode_crops = real
    assert seen == [1, 1, 1]  # one crop for each keyframe, not three for the first


@pytest.mark.integration
def test_a_query_for_a_red_car_in_view_yields_matches_and_an_absent_one_none(mosquitto):
    wcfg = CloudConfig.model_validate({"worker_id": "w-text",
                                       "mqtt": {"host": "127.0.0.1", "port": mosquitto.port},
                                       "batching": {"max_wait_ms": 5},
                                       "metrics": {"enabled": False}})
    worker = Worker(wcfg).start()
    agent, publisher, cfg = make_agent(
        mosquitto.port, [{"name": "street", "url": f"synthetic://?seed={SEED}&preset=normal",
                          "text_queries": ["red car", "yellow dog", "a crimson car"]}],
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
    assert {m["query"] for m in matches} == {"red car"}
    # The cloud said it cannot read "crimson"; the agent warned once and kept the rest.
    assert agent.by_name["street"].refused_queries == {"a crimson car"}
    world = SyntheticWorld(WorldOptions.from_preset("normal", seed=SEED))
    shown = {f["frame"] for r in refined for f in r["frames"]}
    assert not any(o.colour == "yellow" and o.cls == "dog"
                   for i in shown for o in world.render(i)[1].visible()), \
        "the world shows a yellow dog: the absent query is not absent"
    assert all(msg["text_model"] == "osprey-textimage" and msg["source"] == "cloud"
               for msg in msgs)
    assert {msg["window_id"] for msg in msgs} <= {r["window_id"] for r in refined}
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
