"""Table-driven geometry: letterbox placement, transforms back to the frame, NMS."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.core.detector.detections import Detections
from edge_agent.core.detector.nms import iou_matrix, nms
from edge_agent.core.detector.preprocess import Preprocess


@pytest.mark.parametrize("frame_wh,size,pad,scale,offset", [
    ((128, 64), (64, 64), "top-left", 0.5, (0, 0)),
    ((128, 64), (64, 64), "center", 0.5, (0, 16)),
    ((64, 128), (64, 64), "center", 0.5, (16, 0)),
    ((640, 360), (416, 416), "top-left", 0.65, (0, 0)),
    ((640, 360), (640, 640), "center", 1.0, (0, 140)),
    ((100, 100), (50, 50), "center", 0.5, (0, 0)),
])
def test_letterbox_places_the_image_and_maps_back(frame_wh, size, pad, scale, offset):
    w, h = frame_wh
    img = np.zeros((h, w, 3), np.uint8)
    img[h // 4: h // 2, w // 4: w // 2] = 255  # a white block
    x, t = Preprocess(size, resize="letterbox", pad=pad, rgb=False, layout="NHWC")(img)
    assert x.shape == (1, size[1], size[0], 3)
    assert (t.scale_x, t.pad_x, t.pad_y) == (pytest.approx(scale), offset[0], offset[1])
    ys, xs = np.nonzero(x[0, :, :, 0] > 128)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
    back = t.to_frame(found)[0]
    assert np.allclose(back, [w // 4, h // 4, w // 2, h // 2], atol=2 / scale)
    pad_px = x[0, :offset[1] or 1, :offset[0] or 1, 0]
    if offset != (0, 0):
        assert (pad_px == 114).all()


def test_stretch_transform():
    img = np.zeros((100, 200, 3), np.uint8)
    _, t = Preprocess((50, 50), resize="stretch")(img)
    assert np.allclose(t.to_frame(np.array([[10, 10, 20, 20]], np.float32)),
                       [[40, 20, 80, 40]])


def boxes(*b):
    return np.array(b, np.float32)


@pytest.mark.parametrize("xyxy,score,cls,iou,expected", [
    (boxes([0, 0, 10, 10], [1, 1, 11, 11]), [0.9, 0.8], [0, 0], 0.45, [0]),
    (boxes([0, 0, 10, 10], [1, 1, 11, 11]), [0.8, 0.9], [0, 0], 0.45, [1]),
    (boxes([0, 0, 10, 10], [1, 1, 11, 11]), [0.9, 0.8], [0, 1], 0.45, [0, 1]),  # class-wise
    (boxes([0, 0, 10, 10], [5, 0, 15, 10]), [0.9, 0.8], [0, 0], 0.45, [0, 1]),  # IoU 1/3
    (boxes([0, 0, 10, 10], [5, 0, 15, 10]), [0.9, 0.8], [0, 0], 0.3, [0]),
    (boxes([0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]), [0.5, 0.7, 0.6], [0, 0, 0],
     0.45, [1, 2, 0]),
])
def test_nms(xyxy, score, cls, iou, expected):
    keep = nms(xyxy, np.array(score, np.float32), np.array(cls), iou, max_keep=10)
    assert keep.tolist() == expected


def test_nms_max_keep_and_empty():
    xyxy = boxes(*[[i * 20, 0, i * 20 + 10, 10] for i in range(5)])
    keep = nms(xyxy, np.linspace(0.9, 0.5, 5).astype(np.float32), np.zeros(5, int), 0.5, 3)
    assert keep.tolist() == [0, 1, 2]
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0), np.zeros(0), 0.5, 3).size == 0


def test_iou_matrix():
    m = iou_matrix(boxes([0, 0, 10, 10]), boxes([0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]))
    assert np.allclose(m, [[1.0, 1 / 3, 0.0]])


def test_detections_validated_once():
    with pytest.raises(ValueError, match=r"xyxy must be \(n, 4\)"):
        Detections(np.zeros((2, 3)), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match=r"score must be \(2,\) like xyxy"):
        Detections(np.zeros((2, 4)), np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="class id 5 has no name among 2"):
        Detections(np.zeros((1, 4)), np.zeros(1), np.array([5]), ("a", "b"))
    d = Detections(boxes([0, 0, 1, 1], [2, 2, 3, 3]), np.array([0.5, 0.9]), np.array([0, 1]),
                   ("a", "b"))
    top = d[d.score > 0.6]
    assert len(top) == 1 and top.label(0) == "b"
    assert top.to_json() == [{"label": "b", "class_id": 1, "score": 0.9, "box": [2, 2, 3, 3]}]


def _greedy_nms(xyxy, score, cls, iou):
    """The textbook definition, one class at a time: what the fast version must equal."""
    keep = []
    for c in np.unique(cls):
        idx = [int(i) for i in np.nonzero(cls == c)[0]]
        idx.sort(key=lambda i: -score[i])
        while idx:
            best, idx = idx[0], idx[1:]
            keep.append(best)
            ious = iou_matrix(xyxy[[best]], xyxy[idx])[0] if idx else []
            idx = [i for i, v in zip(idx, ious, strict=True) if v <= iou]
    return sorted(keep, key=lambda i: -score[i])


@pytest.mark.parametrize("seed", range(20))
def test_nms_equals_greedy_classwise_nms_on_random_boxes(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 120))
    xy = rng.uniform(0, 300, (n, 2))
    wh = rng.uniform(2, 80, (n, 2))
    xyxy = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    score = rng.permutation(np.linspace(0.05, 0.99, n)).astype(np.float32)  # no ties
    cls = rng.integers(0, 4, n)
    iou = float(rng.choice([0.3, 0.45, 0.6]))
    assert nms(xyxy, score, cls, iou, max_keep=1000).tolist() == _greedy_nms(xyxy, score, cls,
                                                                            iou)
