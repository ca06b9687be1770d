"""The ensemble recipe (the cloud's full model for real cameras and the teacher): its views,
weighted box fusion of several detectors and views, cut boxes dropped, scores as agreement."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

pytest.importorskip("ensemble_boxes", reason="the ensemble fuses boxes with ensemble-boxes")

from edge_agent.core.detector.detections import Detections
from edge_agent.core.detector.ensemble import EnsembleDetector, EnsembleSettings, agreement
from edge_agent.core.errors import ConfigError


class Blobs:
    """A real, if simple, detector: white rectangles, as `label`, seen only when at least
    `min_share` of its input's width (a model shrinking its input loses small things)."""

    def __init__(self, names=("car",), label="car", score=0.9, min_share=0.0):
        self.class_names, self.label, self.score, self.min_share = names, label, score, min_share

    def __call__(self, image: np.ndarray) -> Detections:
        _, _, stats, _ = cv2.connectedComponentsWithStats((image[..., 0] > 200).astype(np.uint8))
        rows = [(x, y, x + w, y + h) for x, y, w, h, _ in stats[1:]
                if w >= self.min_share * image.shape[1]]
        boxes = np.array(rows, np.float32).reshape(-1, 4)
        return Detections(boxes, np.full(len(boxes), self.score, np.float32),
                          np.full(len(boxes), self.class_names.index(self.label), np.int64),
                          self.class_names)


def frame(*rects) -> np.ndarray:
    image = np.zeros((360, 640, 3), np.uint8)
    for x1, y1, x2, y2 in rects:
        image[y1:y2, x1:x2] = 255
    return image


def test_views_are_the_frame_its_mirror_and_tiles_covering_it():
    e = EnsembleDetector([Blobs()], EnsembleSettings(flip=True, tile_px=220))
    views = e.views(640, 360)
    assert [(v.box, v.flip) for v in views[:2]] == [((0, 0, 640, 360), False),
                                                    ((0, 0, 640, 360), True)]
    tiles = views[2:]
    assert len(tiles) == 3 * 2 and not any(v.flip for v in tiles)
    covered = np.zeros((360, 640), int)
    for v in tiles:
        x1, y1, x2, y2 = v.box
        covered[y1:y2, x1:x2] += 1
    assert covered.min() >= 1
    more = EnsembleDetector([Blobs()], EnsembleSettings(tile_px=300, more_tile_px=(160, 300),
                                                        flip_tiles=True, max_grid=(6, 4)))
    # grids 2x2 and 4x2 (300 again is the same grid: run once), each tile also mirrored
    assert len(more.views(640, 360)) == 2 + 2 * (4 + 8)
    none = EnsembleDetector([Blobs()], EnsembleSettings(flip=False, tiles=(0, 0)))
    assert len(none.views(640, 360)) == 1


def test_an_object_across_tile_borders_is_one_whole_box_scored_by_agreement():
    image = frame((230, 60, 290, 120), (30, 20, 40, 30))
    out = EnsembleDetector([Blobs()], EnsembleSettings(tile_px=220))(image)
    assert sorted(np.round(out.xyxy).tolist()) == [[30, 20, 40, 30], [230, 60, 290, 120]]
    assert out.score == pytest.approx([0.9, 0.9])  # every view that holds it found it
    assert out.class_names == ("car",)


def test_a_small_object_only_tiles_resolve_is_found_with_lower_agreement():
    image = frame((100, 100, 112, 110), (300, 120, 420, 220))
    e = EnsembleDetector([Blobs(min_share=0.03)], EnsembleSettings(tile_px=220))
    out = e(image)
    small = np.argmin(out.xyxy[:, 2] - out.xyxy[:, 0])
    assert np.round(out.xyxy[small]).tolist() == [100, 100, 112, 110]
    # the two whole views (weight 2 each) missed it; the tiles holding it (weight 1) found it
    views = e.views(640, 360)
    holding = [v for v in views[2:] if v.box[0] <= 100 and v.box[1] <= 100
               and v.box[2] >= 112 and v.box[3] >= 110]
    assert out.score[small] == pytest.approx(0.9 * len(holding) / (4 + len(holding)), abs=1e-4)
    big = 1 - small
    assert out.score[big] > out.score[small]


def test_detectors_with_other_class_lists_are_fused_by_class_name():
    image = frame((300, 120, 420, 220))
    a = Blobs(names=("car",), label="car", score=0.8)
    b = Blobs(names=("person", "bicycle", "car"), label="car", score=0.6)
    out = EnsembleDetector([a, b], EnsembleSettings(flip=False, tiles=(0, 0)))(image)
    assert out.class_names == ("car", "person", "bicycle")
    assert len(out) == 1 and out.label(0) == "car"
    assert out.score[0] == pytest.approx(0.7)  # the two detectors' views, equal weights


def test_agreement_counts_only_the_views_that_hold_the_whole_box():
    from edge_agent.core.detector.ensemble import View

    box = np.array([[10, 10, 50, 50]], np.float32)
    views = [View((0, 0, 100, 100), False, 2.0), View((0, 0, 30, 100), False, 1.0),
             View((0, 0, 60, 60), False, 1.0)]
    hit = Detections(box, np.array([0.8], np.float32), np.zeros(1, np.int64), ("car",))
    miss = Detections.empty(("car",))
    score = agreement(box, np.zeros(1, np.int64), views, [hit, hit, miss])
    # the middle view cuts the box: not counted; the last holds it and missed it
    assert score == pytest.approx([(2 * 0.8 + 0) / 3])


def test_without_ensemble_boxes_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ensemble_boxes", None)
    with pytest.raises(ConfigError, match=r"pip install 'osprey\[cloud\]'"):
        EnsembleDetector([Blobs()])


def test_a_vehicle_the_views_call_car_or_truck_is_one_box_when_grouped():
    image = frame((300, 120, 420, 220))
    names = ("car", "truck")
    a = Blobs(names=names, label="car", score=0.6)
    b = Blobs(names=names, label="truck", score=0.5)
    plain = EnsembleDetector([a, b], EnsembleSettings(flip=False, tiles=(0, 0)))(image)
    labels = [plain.label(i) for i in range(len(plain))]
    assert sorted(zip(labels, plain.score.tolist(), strict=True)) == \
        [("car", pytest.approx(0.3)), ("truck", pytest.approx(0.25))]
    grouped = EnsembleDetector([a, b], EnsembleSettings(flip=False, tiles=(0, 0),
                                                        groups=(("car", "truck"),)))(image)
    assert len(grouped) == 1 and grouped.label(0) == "car"   # the class most supported
    assert grouped.score[0] == pytest.approx(0.55)            # both views saw a vehicle
