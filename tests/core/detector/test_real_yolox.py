"""The real COCO YOLOX-nano on real fixed-camera clips: people and cars where they are.

Expected boxes were checked by eye on the frames (rounded to 5 px); a detection must match
each with IoU >= 0.6 and the right label."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edge_agent.cli import main
from edge_agent.core.config.common import DetectorModelConfig
from edge_agent.core.detector import Detector
from edge_agent.core.detector.nms import iou_matrix

EXPECTED = {
    ("pedestrian_survaillance.mp4", 0): [
        ("person", [520, 130, 590, 280]), ("person", [550, 160, 625, 315])],
    ("pedestrian_survaillance.mp4", 120): [
        ("person", [195, 175, 270, 305]), ("person", [430, 50, 465, 135]),
        ("person", [455, 60, 490, 155])],
    ("vehicle_survaillance.mp4", 130): [
        ("car", [255, 145, 395, 240]), ("car", [205, 110, 235, 135]),
        ("car", [595, 150, 640, 190])],
}


def frame_at(path, index: int) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    for _ in range(index + 1):
        ok, image = cap.read()
        assert ok, f"{path} has no frame {index}"
    cap.release()
    return image


@pytest.fixture(scope="module")
def yolox(real_data) -> Detector:
    return Detector.from_config(DetectorModelConfig(path=real_data / "yolox_nano_416.onnx"))


@pytest.mark.parametrize("clip,index", list(EXPECTED))
def test_finds_people_and_cars_where_they_are(real_data, yolox, clip, index):
    dets = yolox(frame_at(real_data / clip, index))
    assert yolox.layout == "yolox"
    for label, box in EXPECTED[(clip, index)]:
        same = np.array([dets.label(i) == label for i in range(len(dets))])
        assert same.any(), f"no {label} at all in {clip}#{index}"
        best = iou_matrix(np.array([box], np.float32), dets.xyxy[same]).max()
        assert best >= 0.6, f"{label} {box} in {clip}#{index}: best IoU {best:.2f}"
    wrong = {"pedestrian_survaillance.mp4": "car", "vehicle_survaillance.mp4": "person"}[clip]
    assert not any(dets.label(i) == wrong and dets.score[i] > 0.5 for i in range(len(dets)))


def test_detect_command_writes_json_lines(real_data, tmp_path):
    out = tmp_path / "dets.jsonl"
    rc = main(["detect", "--model", str(real_data / "yolox_nano_416.onnx"),
               "--source", str(real_data / "vehicle_survaillance.mp4"), "--max-frames", "5",
               "--classes", str(real_data / "coco_classes.txt"), "--out", str(out)])
    assert rc == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["frame"] for x in lines] == [0, 1, 2, 3, 4]
    assert lines[0]["width"] == 640 and lines[0]["height"] == 352
    cars = [d for d in lines[0]["detections"] if d["label"] == "car"]
    assert len(cars) >= 3
    for d in cars:
        x1, y1, x2, y2 = d["box"]
        assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 352 and 0.3 <= d["score"] <= 1
        assert d["class_id"] == 2


def test_detect_command_on_a_synthetic_source(real_data, capsys):
    rc = main(["detect", "--model", str(real_data / "yolox_nano_416.onnx"),
               "--source", "synthetic://?seed=1&fps=10&seconds=0.3"])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(x)["frame"] for x in lines] == [0, 1, 2]


def test_detect_command_with_a_missing_source(real_data, tmp_path, capsys):
    rc = main(["detect", "--model", str(real_data / "yolox_nano_416.onnx"),
               "--source", str(tmp_path / "nope.mp4")])
    assert rc == 1
    assert "video file" in capsys.readouterr().err
