"""mAP: perfect detections score 1, shuffled boxes score low, the command speaks JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_agent.cli import main
from edge_agent.core.detector.detections import Detections
from edge_agent.tools.evaluate import evaluate
from edge_agent.tools.sim import CLASSES, SyntheticWorld, WorldOptions


@pytest.fixture(scope="module")
def truths():
    world = SyntheticWorld(WorldOptions.from_preset("normal", seed=1001, fps=10))
    return [world.render(i)[1] for i in range(0, 300, 3)]


def as_detections(truth, boxes=None) -> Detections:
    vis = truth.visible()
    xyxy = np.array([o.box for o in vis], np.float32).reshape(-1, 4) if boxes is None else boxes
    return Detections(xyxy, np.linspace(0.99, 0.5, len(vis)).astype(np.float32),
                      np.array([o.class_id for o in vis]), CLASSES)


def test_ground_truth_as_detections_scores_one(truths):
    result = evaluate(truths, [(t.frame, as_detections(t)) for t in truths])
    assert result.objects > 100
    assert result.map50 == pytest.approx(1.0) and result.map50_95 == pytest.approx(1.0)
    for name in ("person", "car"):
        assert result.per_class[name]["map50"] == pytest.approx(1.0)


def test_shuffled_boxes_score_low(truths):
    rng = np.random.default_rng(0)
    all_boxes = np.concatenate([as_detections(t).xyxy for t in truths])
    shuffled = []
    for t in truths:
        n = len(t.visible())
        shuffled.append((t.frame, as_detections(t, all_boxes[rng.integers(len(all_boxes),
                                                                             size=n)])))
    result = evaluate(truths, shuffled)
    assert result.map50 < 0.1


def test_no_detections_and_missing_half(truths):
    assert evaluate(truths, []).map50 == 0.0
    half = [(t.frame, as_detections(t)) for t in truths[::2]]
    result = evaluate(truths, half)
    assert 0.3 < result.map50 < 0.7


def test_eval_command_json(tmp_path, capsys, real_data):
    main(["sim", "--seed", "1002", "--seconds", "1", "--fps", "10", "--out", str(tmp_path),
          "--no-progress"])
    capsys.readouterr()
    rc = main(["eval", "--model", str(real_data / "yolox_nano_416.onnx"), "--data",
               str(tmp_path), "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert {"map50", "map50_95", "per_class", "per_size"} <= set(out)
    assert 0.0 <= out["map50_95"] <= out["map50"] <= 1.0
    assert out["frames"] == 10


def test_eval_command_on_a_directory_that_is_not_a_clip(tmp_path, capsys, real_data):
    rc = main(["eval", "--model", str(real_data / "yolox_nano_416.onnx"), "--data",
               str(tmp_path)])
    assert rc == 1
    assert "not a synthetic-world clip" in capsys.readouterr().err


def test_a_teachers_labelled_real_clip_is_scored_by_its_own_classes(tmp_path):
    """A clip labelled by the teacher (COCO names, sparse frames, an ignore region): exact
    detections score 1; a detection on the ignore region is neither hit nor false alarm; one
    elsewhere is a false alarm; frames without labels are not scored."""
    import cv2

    from edge_agent.tools.evaluate import evaluate_model
    from edge_agent.tools.sim.truth import FrameTruth, ObjectTruth, SceneInfo

    video = tmp_path / "clip.mp4"
    out = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 120))
    for _ in range(6):
        out.write(np.full((120, 160, 3), 90, np.uint8))
    out.release()
    classes = ("person", "bicycle", "car")

    def obj(cls, box, ignore=False):
        return ObjectTruth(-1, cls, "unknown", "unknown", "unknown", "unknown", box, box,
                           int((box[2] - box[0]) * (box[3] - box[1])), 0.0, 0.0, score=0.9,
                           ignore=ignore, label_id=classes.index(cls))

    labelled = {0: (obj("car", (10, 10, 60, 50)), obj("person", (100, 20, 120, 80), True)),
                4: (obj("person", (30, 30, 50, 90)),)}
    folder = tmp_path / "labels"
    folder.mkdir()
    (folder / "meta.json").write_text(json.dumps({"source": str(video), "classes": classes}))
    (folder / "truth.jsonl").write_text("".join(
        FrameTruth(k, k / 10, SceneInfo(0, "clip", "fresh"), 1.0, objs).to_line() + "\n"
        for k, objs in labelled.items()))
    seen = []

    def detector(extra):
        def run(image):
            k = len(seen)
            seen.append(k)
            frame = sorted(labelled)[k]
            boxes = [o.box for o in labelled[frame]] + extra
            cls = [classes.index(o.cls) for o in labelled[frame]] + [0] * len(extra)
            return Detections(np.array(boxes, np.float32), np.full(len(boxes), 0.8, np.float32),
                              np.array(cls), classes)
        return run

    exact = evaluate_model(detector([]), folder)
    assert len(seen) == 2 and exact.frames == 2  # only the labelled frames
    assert exact.map50 == pytest.approx(1.0) and exact.objects == 2 and exact.ignored == 1
    assert set(exact.per_class) == {"person", "car"}
    seen.clear()
    false_alarm = evaluate_model(detector([(130, 90, 155, 118)]), folder)
    assert false_alarm.map50 < 1.0


def test_a_class_under_its_other_name_is_the_same_class():
    """Labels say `motorbike` (the older list COCO exports often ship), a model says
    `motorcycle` (COCO's list): the same class."""
    from edge_agent.tools.sim.truth import FrameTruth, ObjectTruth, SceneInfo

    box = (10.0, 10.0, 60.0, 50.0)
    bike = ObjectTruth(-1, "motorbike", "unknown", "unknown", "unknown", "unknown", box, box,
                       2000, 0.0, 0.0, label_id=1)
    truths = [FrameTruth(0, 0.0, SceneInfo(0, "c", "fresh"), 1.0, (bike,))]
    dets = Detections(np.array([box], np.float32), np.array([0.9], np.float32), np.array([1]),
                      ("person", "motorcycle"))
    assert evaluate(truths, [(0, dets)], ("person", "motorbike")).map50 == pytest.approx(1.0)
