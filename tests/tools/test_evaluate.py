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
