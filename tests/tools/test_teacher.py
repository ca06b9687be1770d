"""The teacher's pseudo-labels on real frames: a person it must find, a blank frame it must
leave empty, uncertain boxes kept as ignore regions, and a labelling run that resumes."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("ensemble_boxes", reason="the teacher fuses boxes with ensemble-boxes")

from edge_agent.core.detector.nms import iou_matrix
from edge_agent.tools.sim.truth import FrameTruth
from edge_agent.tools.teacher import Teacher, TeacherSettings, label_clip


@pytest.fixture(scope="module")
def teacher(real_data) -> Teacher:
    return Teacher(TeacherSettings(model=str(real_data / "yolox_nano_416.onnx"),
                                   classes_file=str(real_data / "coco_classes.txt")))


def _frame(path: Path, index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, image = cap.read()
    cap.release()
    assert ok, f"cannot read frame {index} of {path}"
    return image


def test_the_walker_in_the_hall_is_a_confident_label(teacher, real_data):
    # Frame 800 of the hall clip: one man standing by a table, looked at by eye:
    # his box is about (361, 29, 512, 389) in the 768x432 frame.
    image = _frame(real_data / "clips" / "indoor_hall_walker.mp4", 800)
    dets, is_label = teacher.label(image)
    people = [k for k in range(len(dets)) if dets.label(k) == "person" and is_label[k]]
    assert len(people) == 1
    iou = iou_matrix(dets.xyxy[people], np.array([[361, 29, 512, 389]], np.float32))
    assert iou.max() >= 0.8
    assert dets.score[people[0]] >= teacher.s.label_score


def test_a_blank_frame_gets_no_labels(teacher):
    _, is_label = teacher.label(np.full((360, 640, 3), 128, np.uint8))
    assert not is_label.any()


def test_uncertain_boxes_are_ignore_regions_not_dropped(teacher, real_data):
    image = _frame(real_data / "clips" / "residential_street_schoolbus.mp4", 400)
    dets, is_label = teacher.label(image)
    s = teacher.s
    assert is_label.any() and (~is_label).any()
    assert (dets.score[is_label] >= s.label_score).all()
    assert ((dets.score[~is_label] >= s.ignore_score)
            & (dets.score[~is_label] < s.label_score)).all()


def test_labelling_resumes_where_it_stopped(teacher, real_data, tmp_path):
    clip = real_data / "clips" / "night_ir_driveway_intruder.mp4"
    full = label_clip(teacher, clip, tmp_path / "full", every_s=2.0)
    lines = (full / "truth.jsonl").read_text().splitlines()
    assert len(lines) >= 5
    # Given a run cut short after two frames (no meta.json: not done)
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "truth.jsonl").write_text("\n".join(lines[:2]) + "\n")
    # When it runs again, it labels only the frames after those, once each
    label_clip(teacher, clip, cut, every_s=2.0)
    again = (cut / "truth.jsonl").read_text().splitlines()
    assert [json.loads(x)["frame"] for x in again] == [json.loads(x)["frame"] for x in lines]
    meta = json.loads((cut / "meta.json").read_text())
    assert meta["stride"] == round(meta["fps"] * 2.0) and "person" in meta["classes"]
    truths = [FrameTruth.from_json(json.loads(x)) for x in again]
    objects = [o for t in truths for o in t.objects]
    assert all(o.score is not None for o in objects)
    assert all(o.class_id == meta["classes"].index(o.cls) for o in objects)
