"""Human labels for eval: a synthetic clip's truth written as MOT gt.txt and as COCO JSON scores
exactly as the clip itself does; ignore rows stay ignore regions; bad input says what it is."""

from __future__ import annotations

import json

import pytest

from edge_agent.cli import main
from edge_agent.core.bundled import bundled_edge_model
from edge_agent.core.config.common import DetectorModelConfig
from edge_agent.core.detector import Detector
from edge_agent.core.errors import OspreyError
from edge_agent.tools.evaluate import (
    MAX_OCCLUSION,
    MIN_VISIBLE_PX,
    LabelledClip,
    evaluate_model,
    load_labels,
)
from edge_agent.tools.labels import parse_class_map, read_coco, read_mot
from edge_agent.tools.sim.clip import write_clip
from edge_agent.tools.sim.options import WorldOptions
from edge_agent.tools.sim.world import SyntheticWorld

pytest.importorskip("pycocotools", reason="eval needs pycocotools (the tools extra)")
CLASSES = ("person", "car")
MOT_ID = {"person": 1, "car": 3}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    out = tmp_path_factory.mktemp("clip")
    world = SyntheticWorld(WorldOptions.from_preset("normal", seed=1001, fps=10))
    write_clip(world, 6, out, progress=False)
    return out


def _crowd(o) -> bool:
    return o.visible_px < MIN_VISIBLE_PX or o.occlusion > MAX_OCCLUSION


def _as_mot(clip, path):
    truths = load_labels(clip).truths
    rows = []
    for k, t in truths.items():
        for o in t.visible():
            if o.cls in MOT_ID:
                x1, y1, x2, y2 = o.box
                rows.append(f"{k + 1},-1,{x1},{y1},{x2 - x1},{y2 - y1},"
                            f"{0 if _crowd(o) else 1},{MOT_ID[o.cls]},1")
    last = max(truths)
    rows.append(f"{last + 1},-1,0,0,2,2,0,8,1")  # a distractor on the last frame
    path.write_text("\n".join(rows) + "\n")
    return path


def test_mot_labels_score_as_the_clips_own_truth(clip, tmp_path):
    det = Detector.from_config(DetectorModelConfig(path=bundled_edge_model(),
                                                   score_threshold=0.05))
    own = evaluate_model(det, clip, classes=CLASSES)
    meta = load_labels(clip)
    truths = read_mot(_as_mot(clip, tmp_path / "gt.txt"), CLASSES,
                      parse_class_map("pedestrian=person"), fps=10)
    mot = evaluate_model(det, LabelledClip(meta.video, truths, CLASSES, dense=False),
                         classes=CLASSES)
    assert mot.frames == own.frames and mot.objects == own.objects
    assert mot.map50 == pytest.approx(own.map50, abs=1e-3)
    assert mot.per_class["person"]["map50"] == pytest.approx(own.per_class["person"]["map50"],
                                                             abs=1e-3)


def test_coco_labels_score_as_the_clips_own_truth(clip, tmp_path):
    det = Detector.from_config(DetectorModelConfig(path=bundled_edge_model(),
                                                   score_threshold=0.05))
    own = evaluate_model(det, clip, classes=CLASSES)
    truths = load_labels(clip).truths
    images = [{"id": 100 + k, "file_name": f"{k:06d}.jpg"} for k in sorted(truths)]
    anns = [{"id": len(images) + i, "image_id": 100 + k, "category_id": CLASSES.index(o.cls) + 1,
             "bbox": [o.box[0], o.box[1], o.box[2] - o.box[0], o.box[3] - o.box[1]],
             "iscrowd": int(_crowd(o))}
            for i, (k, o) in enumerate((k, o) for k, t in truths.items() for o in t.visible()
                                       if o.cls in CLASSES)]
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": images, "annotations": anns, "categories": [
        {"id": 1, "name": "person"}, {"id": 2, "name": "car"}]}))
    coco = evaluate_model(det, LabelledClip(load_labels(clip).video,
                                            read_coco(gt, CLASSES, {}, fps=10), CLASSES,
                                            dense=False), classes=CLASSES)
    assert coco.objects == own.objects
    assert coco.map50 == pytest.approx(own.map50, abs=1e-3)


def test_the_command_scores_a_video_with_mot_labels(clip, tmp_path, capsys):
    gt = _as_mot(clip, tmp_path / "gt.txt")
    video = load_labels(clip).video
    assert main(["eval", "--model", str(bundled_edge_model()), "--video", str(video), "--gt",
                 str(gt), "--class-map", "pedestrian=person", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["per_class"]) == {"person", "car"} and out["map50"] > 0.5


def test_bad_labels_say_what_is_wrong(tmp_path):
    bad = tmp_path / "gt.txt"
    bad.write_text("1,2,three,4,5,6,1,1,1\n")
    with pytest.raises(OspreyError, match=r"gt.txt:1: not a MOT row"):
        read_mot(bad, CLASSES, {})
    with pytest.raises(ValueError, match="pedestrian=person"):
        parse_class_map("pedestrian")
    not_coco = tmp_path / "x.json"
    not_coco.write_text("{}")
    with pytest.raises(OspreyError, match="not COCO JSON"):
        read_coco(not_coco, CLASSES, {})
