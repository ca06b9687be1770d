"""YOLOv10, the DETR family (RT-DETR, D-FINE, RF-DETR), YOLO-NAS and NanoDet(-Plus) on tiny ONNX
graphs with their real names and shapes, and the letterboxes against their references.

Expected boxes are computed here from the references' own formulas (transcribed below), not
with Osprey's preprocessing or adapters."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from onnx_graphs import make_model, make_rtdetr_postprocessed

from edge_agent.core.config.common import DetectorModelConfig
from edge_agent.core.detector import Detector
from edge_agent.core.detector.adapters import ADAPTERS, detect_layout
from edge_agent.core.detector.backends import OnnxRuntimeBackend
from edge_agent.core.detector.preprocess import Preprocess
from edge_agent.core.errors import ModelError

ODD = [(854, 480), (626, 360)]


def frame(w: int, h: int, seed: int | None = None) -> np.ndarray:
    if seed is None:
        return np.full((h, w, 3), 90, np.uint8)
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def detector(path, layout="auto", **kw) -> Detector:
    return Detector.from_config(DetectorModelConfig(path=path, layout=layout, **kw))


def rows(dets) -> list[tuple[str, float, list[float]]]:
    return [(dets.label(i), round(float(dets.score[i]), 3), [round(float(v), 2)
             for v in dets.xyxy[i]]) for i in range(len(dets))]


def approx(boxes, expected, tol=1e-3) -> bool:
    return np.allclose(np.asarray(boxes, np.float64), np.asarray(expected, np.float64), atol=tol)


# --- the references, transcribed -------------------------------------------------------------

def yolox_preproc(img, input_size):
    """Megvii-BaseDetection/YOLOX yolox/data/data_augment.py preproc (swap 2,0,1)."""
    padded_img = np.ones((input_size[0], input_size[1], 3), dtype=np.uint8) * 114
    r = min(input_size[0] / img.shape[0], input_size[1] / img.shape[1])
    resized_img = cv2.resize(img, (int(img.shape[1] * r), int(img.shape[0] * r)),
                             interpolation=cv2.INTER_LINEAR).astype(np.uint8)
    padded_img[: int(img.shape[0] * r), : int(img.shape[1] * r)] = resized_img
    padded_img = padded_img.transpose(2, 0, 1)
    return np.ascontiguousarray(padded_img, dtype=np.float32), r


def ultralytics_letterbox(img, new_shape):
    """ultralytics/data/augment.py LetterBox (auto=False, scaleup, center), value 114."""
    shape = img.shape[:2]
    r = min(new_shape[0] / shape[0], new_shape[1] / shape[1])
    new_unpad = round(shape[1] * r), round(shape[0] * r)
    dw, dh = new_shape[1] - new_unpad[0], new_shape[0] - new_unpad[1]
    dw /= 2
    dh /= 2
    if shape[::-1] != new_unpad:
        img = cv2.resize(img, new_unpad, interpolation=cv2.INTER_LINEAR)
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    return cv2.copyMakeBorder(img, top, bottom, left, right, cv2.BORDER_CONSTANT,
                              value=(114, 114, 114))


def scale_boxes(img1_shape, boxes, img0_shape):
    """ultralytics/utils/ops.py scale_boxes (ratio_pad None, padding, xyxy), before clipping."""
    gain = min(img1_shape[0] / img0_shape[0], img1_shape[1] / img0_shape[1])
    pad = (round((img1_shape[1] - img0_shape[1] * gain) / 2 - 0.1),
           round((img1_shape[0] - img0_shape[0] * gain) / 2 - 0.1))
    boxes = np.array(boxes, np.float64)
    boxes[..., [0, 2]] -= pad[0]
    boxes[..., [1, 3]] -= pad[1]
    boxes[..., :4] /= gain
    return boxes


def yolo_nas_letterbox(img, out=640, fit=636):
    """super-gradients DetectionLongestMaxSizeRescale((fit, fit)) then
    DetectionCenterPadding((out, out), 114); returns the image, scale and (top, left)."""
    height, width = img.shape[:2]
    scale_factor = min(fit / height, fit / width)
    if scale_factor != 1.0:
        new_height, new_width = round(height * scale_factor), round(width * scale_factor)
        img = cv2.resize(img, dsize=(int(new_width), int(new_height)),
                         interpolation=cv2.INTER_LINEAR).astype(np.uint8)
    pad_height, pad_width = out - img.shape[0], out - img.shape[1]
    top, left = pad_height // 2, pad_width // 2
    img = np.pad(img, ((top, pad_height - top), (left, pad_width - left), (0, 0)),
                 constant_values=114)
    return img, scale_factor, (top, left)


def nanodet_resize_matrix(raw_shape, dst_shape, keep_ratio):
    """RangiLyu/nanodet nanodet/data/transform/warp.py get_resize_matrix."""
    r_w, r_h = raw_shape
    d_w, d_h = dst_shape
    rs = np.eye(3)
    if keep_ratio:
        c = np.eye(3)
        c[0, 2] = -r_w / 2
        c[1, 2] = -r_h / 2
        ratio = d_h / r_h if r_w / r_h < d_w / d_h else d_w / r_w
        rs[0, 0] *= ratio
        rs[1, 1] *= ratio
        t = np.eye(3)
        t[0, 2] = 0.5 * d_w
        t[1, 2] = 0.5 * d_h
        return t @ rs @ c
    rs[0, 0] *= d_w / r_w
    rs[1, 1] *= d_h / r_h
    return rs


def warp_boxes(boxes, m):
    """nanodet warp_boxes without the clip: the four corners through m, min/max."""
    n = len(boxes)
    xy = np.ones((n * 4, 3))
    xy[:, :2] = np.asarray(boxes)[:, [0, 1, 2, 3, 0, 3, 2, 1]].reshape(n * 4, 2)
    xy = xy @ m.T
    xy = (xy[:, :2] / xy[:, 2:3]).reshape(n, 8)
    x, y = xy[:, [0, 2, 4, 6]], xy[:, [1, 3, 5, 7]]
    return np.concatenate((x.min(1), y.min(1), x.max(1), y.max(1))).reshape(4, n).T


# --- letterboxes against the references ------------------------------------------------------

@pytest.mark.parametrize("wh", ODD)
def test_yolox_letterbox_is_the_reference_preproc(wh):
    img = frame(*wh, seed=1)
    ref, r = yolox_preproc(img, (416, 416))
    x, t = Preprocess((416, 416), resize="letterbox", pad="top-left", rounding="floor",
                      rgb=False, scale=1.0)(img)
    assert np.array_equal(x[0], ref)  # same floored size (854x480 -> 416x233), same pixels
    nh = int(wh[1] * r)
    assert (x[0, :, nh:, :] == 114).all() and not (x[0, :, nh - 1, :] == 114).all()
    box = np.array([[10.5, 20.25, 300.0, 200.75]], np.float32)
    assert (t.scale_x, t.scale_y, t.pad_x, t.pad_y) == (r, r, 0.0, 0.0)
    assert approx(t.to_frame(box), box / r)  # the demo's boxes /= ratio


@pytest.mark.parametrize("wh", [*ODD, (600, 400)])
def test_ultralytics_letterbox_and_scale_boxes(wh):
    img = frame(*wh, seed=2)
    ref = ultralytics_letterbox(img, (640, 640))
    x, t = Preprocess((640, 640), resize="letterbox", pad="center", rounding="round",
                      pad_back="ultralytics", rgb=True, scale=1 / 255)(img)
    canvas = np.rint(x[0].transpose(1, 2, 0)[:, :, ::-1] * 255).astype(np.uint8)
    assert np.array_equal(canvas, ref)
    box = np.array([[100.0, 150.0, 400.0, 420.5]], np.float32)
    assert approx(t.to_frame(box), scale_boxes((640, 640), box, img.shape))


def test_ultralytics_maps_back_with_scale_boxes_pad_not_the_placed_one():
    """600x400 in 640: placed at y = (640 - 427) // 2 = 106, scale_boxes subtracts 107."""
    _, t = Preprocess((640, 640), resize="letterbox", pad_back="ultralytics")(frame(600, 400))
    assert t.pad_y == round((640 - 400 * (640 / 600)) / 2 - 0.1) == 107


@pytest.mark.parametrize("wh", ODD)
def test_yolo_nas_letterbox_is_super_gradients(wh):
    img = frame(*wh, seed=3)
    ref, s, (top, left) = yolo_nas_letterbox(img[:, :, ::-1])  # super-gradients gets RGB
    x, t = Preprocess((640, 640), resize="letterbox", pad="center", rounding="round",
                      fit=(636, 636), rgb=True, scale=1.0, dtype=np.uint8)(img)
    assert np.array_equal(x[0].transpose(1, 2, 0), ref)
    box = np.array([[50.0, 160.0, 350.0, 480.0]], np.float32)
    expected = (box - np.array([left, top, left, top])) / s
    assert approx(t.to_frame(box), expected)


@pytest.mark.parametrize("keep_ratio", [True, False])
@pytest.mark.parametrize("wh", ODD)
def test_nanodet_warp_is_warp_and_resize(wh, keep_ratio):
    img = frame(*wh, seed=4)
    m = nanodet_resize_matrix(wh, (320, 320), keep_ratio)
    ref = cv2.warpPerspective(img, m, dsize=(320, 320))
    x, t = Preprocess((320, 320), resize="warp", keep_ratio=keep_ratio, pad_value=0,
                      rgb=False, dtype=np.uint8, layout="NHWC")(img)
    assert np.array_equal(x[0], ref)
    box = np.array([[40.0, 90.0, 200.0, 230.0]], np.float32)
    assert approx(t.to_frame(box), warp_boxes(box, np.linalg.inv(m)))


def test_stretch_is_unchanged():
    _, t = Preprocess((300, 300), resize="stretch")(frame(854, 480))
    assert (t.scale_x, t.scale_y, t.pad_x, t.pad_y) == (300 / 854, 300 / 480, 0.0, 0.0)


# --- YOLOv10 ---------------------------------------------------------------------------------

@pytest.mark.parametrize("wh", [*ODD, (600, 400)])
def test_yolov10_end_to_end_rows(tmp_path, wh):
    p = np.zeros((1, 300, 6), np.float32)
    p[0, 0] = [100, 200, 300, 260, 0.9, 2]
    p[0, 1] = [10, 10, 50, 50, 0.2, 0]  # below the threshold
    p[0, 2] = [400, 300, 500, 380, 0.6, 1]
    path = make_model(tmp_path / "yolov10.onnx", "images", [1, 3, 640, 640], np.float32,
                      {"output0": p})
    det = detector(path, classes=["person", "bicycle", "car"])
    assert det.layout == "yolov10"
    out = det(frame(*wh))
    expected = np.clip(scale_boxes((640, 640), p[0, [0, 2], :4], (wh[1], wh[0])),
                       0, [wh[0], wh[1], wh[0], wh[1]])
    assert [(r[0], r[1]) for r in rows(out)] == [("car", 0.9), ("bicycle", 0.6)]
    assert approx(out.xyxy, expected)


# --- DETR family -----------------------------------------------------------------------------

def _detr_outputs(q=300, c=3):
    logits = np.full((1, q, c), -10.0, np.float32)
    boxes = np.full((1, q, 4), 0.5, np.float32)
    logits[0, 5, 2] = 2.0    # 0.881
    logits[0, 5, 0] = 1.0    # 0.731: the same query, another class (top-K over Q*C)
    logits[0, 7, 1] = 0.0    # 0.5
    logits[0, 9, 1] = -2.0   # 0.119, below the threshold
    boxes[0, 5] = [0.5, 0.5, 0.2, 0.4]
    boxes[0, 7] = [0.25, 0.25, 0.1, 0.1]
    return logits, boxes


def _sig(x):
    return 1 / (1 + math.exp(-x))


@pytest.mark.parametrize("layout,names,inp,res", [
    ("rt-detr", ("logits", "pred_boxes"), "pixel_values", 640),   # Hugging Face export
    ("rt-detr", ("pred_logits", "pred_boxes"), "images", 640),    # RT-DETR / D-FINE head
    ("rf-detr", ("labels", "dets"), "input", 560),                # RF-DETR export
])
def test_detr_sigmoid_top_k_over_queries_and_classes(tmp_path, layout, names, inp, res):
    logits, boxes = _detr_outputs()
    path = make_model(tmp_path / "detr.onnx", inp, [1, 3, res, res], np.float32,
                      {names[1]: boxes, names[0]: logits})
    det = detector(path, classes=["person", "bicycle", "car"])
    assert det.layout == layout
    w, h = 854, 480  # stretched: normalised boxes scale by the frame size
    out = det(frame(w, h))
    q5 = [(0.5 - 0.1) * w, (0.5 - 0.2) * h, (0.5 + 0.1) * w, (0.5 + 0.2) * h]
    q7 = [(0.25 - 0.05) * w, (0.25 - 0.05) * h, (0.25 + 0.05) * w, (0.25 + 0.05) * h]
    assert [(r[0], r[1]) for r in rows(out)] == [
        ("car", round(_sig(2.0), 3)), ("person", round(_sig(1.0), 3)),
        ("bicycle", round(_sig(0.0), 3))]
    assert approx(out.xyxy, [q5, q5, q7], tol=2e-3)


def test_detr_keeps_the_top_q_of_q_times_c(tmp_path):
    logits = np.full((1, 300, 3), 0.5, np.float32)  # all 900 pairs above the threshold
    logits[0, 0, 0] = 3.0
    boxes = np.tile(np.array([0.5, 0.5, 0.1, 0.1], np.float32), (1, 300, 1))
    path = make_model(tmp_path / "detr.onnx", "images", [1, 3, 64, 64], np.float32,
                      {"pred_boxes": boxes, "pred_logits": logits})
    out = detector(path, max_detections=1000)(frame(64, 64))
    assert len(out) == 300 and round(float(out.score[0]), 3) == round(_sig(3.0), 3)


def test_rtdetr_postprocessed_takes_the_frame_size(tmp_path):
    norm = np.zeros((1, 300, 4), np.float32)
    norm[0, 0] = [0.1, 0.2, 0.5, 0.6]
    norm[0, 1] = [0.6, 0.1, 0.9, 0.3]
    scores = np.zeros((1, 300), np.float32)
    scores[0, :3] = [0.95, 0.4, 0.2]
    labels = np.zeros((1, 300), np.int64)
    labels[0, :3] = [2, 0, 1]
    path = make_rtdetr_postprocessed(tmp_path / "rtdetr.onnx", norm, scores, labels)
    det = detector(path, classes=["person", "bicycle", "car"])
    assert det.layout == "rt-detr-postprocessed"
    w, h = 854, 480
    out = det(frame(w, h))
    assert [(r[0], r[1]) for r in rows(out)] == [("car", 0.95), ("person", 0.4)]
    assert approx(out.xyxy, norm[0, :2] * np.array([w, h, w, h]))  # [w, h], not [h, w]
    feeds, t = det.adapter.prepare(frame(w, h))
    assert feeds["orig_target_sizes"].dtype == np.int64
    assert feeds["orig_target_sizes"].tolist() == [[w, h]]
    assert feeds["images"].shape == (1, 3, 640, 640) and t.input_size == (640, 640)


# --- YOLO-NAS --------------------------------------------------------------------------------

YOLO_CELLS_640 = 80 * 80 + 40 * 40 + 20 * 20


def test_yolo_nas_multi_label_classwise_nms(tmp_path):
    boxes = np.zeros((1, YOLO_CELLS_640, 4), np.float32)
    scores = np.zeros((1, YOLO_CELLS_640, 3), np.float32)
    boxes[0, 100] = [100, 200, 300, 400]
    scores[0, 100] = [0.5, 0.9, 0.0]        # two labels on one box: both kept
    boxes[0, 101] = [102, 202, 302, 402]
    scores[0, 101] = [0.0, 0.8, 0.0]        # overlaps anchor 100's class 1: suppressed
    boxes[0, 200] = [400, 300, 500, 400]
    scores[0, 200] = [0.2, 0.0, 0.0]        # below the threshold
    path = make_model(tmp_path / "yolo_nas.onnx", "input", [1, 3, 640, 640], np.float32,
                      {"pred_bboxes": boxes, "pred_scores": scores})
    det = detector(path, classes=["person", "bicycle", "car"])
    assert det.layout == "yolo-nas"
    img = frame(854, 480)
    _, s, (top, left) = yolo_nas_letterbox(img)
    out = det(img)
    expected = (boxes[0, 100] - np.array([left, top, left, top])) / s
    assert [(r[0], r[1]) for r in rows(out)] == [("bicycle", 0.9), ("person", 0.5)]
    assert approx(out.xyxy, [expected, expected])


def test_yolo_nas_flat_rows_of_image_zero(tmp_path):
    flat = np.array([[0, 100, 200, 300, 400, 0.9, 2],
                     [0, 10, 10, 20, 20, 0.1, 1],      # below the threshold
                     [1, 10, 10, 200, 200, 0.95, 0]],  # another image of the batch
                    np.float32)
    path = make_model(tmp_path / "yolo_nas_flat.onnx", "input", [1, 3, 640, 640], np.uint8,
                      {"graph2_flat_predictions": flat})
    det = detector(path, classes=["person", "bicycle", "car"])
    assert det.layout == "yolo-nas-flat"
    img = frame(626, 360)
    _, s, (top, left) = yolo_nas_letterbox(img)
    out = det(img)
    assert [(r[0], r[1]) for r in rows(out)] == [("car", 0.9)]
    assert approx(out.xyxy, [(flat[0, 1:5] - np.array([left, top, left, top])) / s])


# --- NanoDet ---------------------------------------------------------------------------------

def _dist_logits(*bins) -> np.ndarray:
    """4 x 8 logits whose softmax . [0..7] is the mean of the given bins per side."""
    out = np.zeros((4, 8), np.float32)
    for side, b in enumerate(bins):
        for k in np.atleast_1d(b):
            out[side, k] = 40.0
    return out.reshape(-1)


@pytest.mark.parametrize("layout,strides,offset,keep_ratio", [
    ("nanodet", (8, 16, 32), 0.5, True),
    ("nanodet-plus", (8, 16, 32, 64), 0.0, False),
])
def test_nanodet_gfl_integral_priors_and_clamp(tmp_path, layout, strides, offset, keep_ratio):
    n = sum(math.ceil(320 / s) ** 2 for s in strides)
    p = np.zeros((1, n, 2 + 32), np.float32)
    cell = 40 * 40 + 4 * 20 + 3  # stride 16, x 3, y 4
    p[0, cell, :2] = [0.8, 0.1]
    p[0, cell, 2:] = _dist_logits([1, 2], 2, 3, 1)  # sides 1.5, 2, 3, 1 strides
    p[0, 0, :2] = [0.0, 0.7]                          # stride 8, x 0, y 0
    p[0, 0, 2:] = _dist_logits(2, 2, 3, 3)            # left/top past the input: clamped to 0
    path = make_model(tmp_path / "nanodet.onnx", "data", [1, 3, 320, 320], np.float32,
                      {"output": p})
    det = detector(path, classes=["person", "car"])
    assert det.layout == layout
    w, h = 854, 480
    cx, cy = (3 + offset) * 16, (4 + offset) * 16
    box1 = [cx - 1.5 * 16, cy - 2 * 16, cx + 3 * 16, cy + 1 * 16]
    c0 = offset * 8
    box0 = [max(c0 - 16, 0), max(c0 - 16, 0), c0 + 24, c0 + 24]
    m = nanodet_resize_matrix((w, h), (320, 320), keep_ratio)
    expected = np.clip(warp_boxes(np.array([box1, box0]), np.linalg.inv(m)), 0, [w, h, w, h])
    out = det(frame(w, h))
    assert [(r[0], r[1]) for r in rows(out)] == [("person", 0.8), ("car", 0.7)]
    assert approx(out.xyxy, expected, tol=1e-2)


def test_nanodet_is_not_taken_for_yolox(tmp_path):
    p = np.zeros((1, 2100, 85), np.float32)  # 320: 40x40 + 20x20 + 10x10 cells either way
    yolox = make_model(tmp_path / "yolox.onnx", "images", [1, 3, 320, 320], np.float32,
                       {"output": p})
    nanodet = make_model(tmp_path / "nanodet.onnx", "data", [1, 3, 320, 320], np.float32,
                         {"output": p})
    assert detector(yolox).layout == "yolox"
    assert detector(nanodet).layout == "nanodet"


# --- preprocessing of the new layouts --------------------------------------------------------

BGR = (10, 20, 30)
IMAGENET = [(30 / 255 - 0.485) / 0.229, (20 / 255 - 0.456) / 0.224, (10 / 255 - 0.406) / 0.225]
NANODET = [(10 - 103.53) / 57.375, (20 - 116.28) / 57.12, (30 - 123.675) / 58.395]
NANODET_BORDER = [-103.53 / 57.375, -116.28 / 57.12, -123.675 / 58.395]


def _graphs(tmp_path):
    g = {}
    g["yolov10"] = make_model(tmp_path / "v10.onnx", "images", [1, 3, 64, 64], np.float32,
                              {"output0": np.zeros((1, 300, 6), np.float32)})
    g["rt-detr"] = make_model(tmp_path / "rtdetr.onnx", "pixel_values", [1, 3, 64, 64],
                              np.float32, {"logits": np.zeros((1, 300, 3), np.float32),
                                           "pred_boxes": np.zeros((1, 300, 4), np.float32)})
    g["rf-detr"] = make_model(tmp_path / "rfdetr.onnx", "input", [1, 3, 64, 64], np.float32,
                              {"dets": np.zeros((1, 300, 4), np.float32),
                               "labels": np.zeros((1, 300, 91), np.float32)})
    g["rt-detr-postprocessed"] = make_rtdetr_postprocessed(
        tmp_path / "pp.onnx", np.zeros((1, 300, 4), np.float32), np.zeros((1, 300), np.float32),
        np.zeros((1, 300), np.int64), size=64)
    g["yolo-nas"] = make_model(tmp_path / "nas.onnx", "input", [1, 3, 64, 64], np.float32,
                               {"boxes_xyxy": np.zeros((1, 84, 4), np.float32),
                                "class_scores": np.zeros((1, 84, 3), np.float32)})
    g["yolo-nas-flat"] = make_model(tmp_path / "flat.onnx", "input", [1, 3, 64, 64], np.uint8,
                                    {"flat_predictions": np.zeros((1, 7), np.float32)})
    g["nanodet"] = make_model(tmp_path / "nd.onnx", "data", [1, 3, 64, 64], np.float32,
                              {"output": np.zeros((1, 84, 34), np.float32)})
    g["nanodet-plus"] = make_model(tmp_path / "ndp.onnx", "data", [1, 3, 64, 64], np.float32,
                                   {"output": np.zeros((1, 85, 34), np.float32)})
    return g


@pytest.mark.parametrize("layout,pixel,pad,pad_at", [
    # (layout, channels at an image pixel from BGR (10, 20, 30), pad value, pad pixel (y, x))
    ("yolov10", [30 / 255, 20 / 255, 10 / 255], [114 / 255] * 3, (0, 5)),  # centred: top
    ("rt-detr", [30 / 255, 20 / 255, 10 / 255], None, None),  # stretched: no pad
    ("rt-detr-postprocessed", [30 / 255, 20 / 255, 10 / 255], None, None),
    ("rf-detr", IMAGENET, None, None),
    ("yolo-nas", [30 / 255, 20 / 255, 10 / 255], [114 / 255] * 3, (0, 5)),  # centred: top
    ("yolo-nas-flat", [30, 20, 10], [114] * 3, (63, 5)),  # uint8 RGB; centred: bottom too
    ("nanodet", NANODET, NANODET_BORDER, (0, 5)),  # BGR mean/std, centred, border 0
    ("nanodet-plus", NANODET, None, None),  # stretched
])
def test_preprocessing_channel_order_scale_and_pad(tmp_path, layout, pixel, pad, pad_at):
    det = detector(_graphs(tmp_path)[layout])
    assert det.layout == layout
    img = np.empty((32, 64, 3), np.uint8)  # wide: letterboxes pad above and below
    img[:] = BGR
    feeds, _ = det.adapter.prepare(img)
    x = feeds[det.adapter.input.name]
    assert x.shape == (1, 3, 64, 64)
    assert x.dtype == (np.uint8 if layout == "yolo-nas-flat" else np.float32)
    assert np.allclose(x[0, :, 32, 5], pixel, atol=1e-5)
    if pad is None:
        assert np.allclose(x[0, :, 0, 5], pixel, atol=1e-5)
    else:
        assert np.allclose(x[0, :, pad_at[0], pad_at[1]], pad, atol=1e-5)


def test_yolo_nas_pads_around_a_636_fit():
    """640 input, 854x480: scaled to fit 636 (636x357), so 2 px of pad left and right too."""
    x, t = Preprocess((640, 640), resize="letterbox", fit=(636, 636), rgb=True,
                      scale=1.0, dtype=np.uint8)(frame(854, 480))
    assert (x[0, :, 320, :2] == 114).all() and (x[0, :, 320, 638:] == 114).all()
    assert (x[0, :, 320, 2:638] == 90).all()
    assert (t.pad_x, t.pad_y) == (2.0, (640 - 357) // 2)


# --- detection and errors --------------------------------------------------------------------

def test_every_new_layout_is_detected_alone(tmp_path):
    for layout, path in _graphs(tmp_path).items():
        backend = OnnxRuntimeBackend.from_config(path)
        assert detect_layout(backend.inputs, backend.outputs) == layout


def test_unknown_layout_lists_every_supported_one(tmp_path):
    path = make_model(tmp_path / "odd.onnx", "pixels", [1, 3, 32, 32], np.float32,
                      {"logits": np.zeros((1, 10), np.float32)})
    with pytest.raises(ModelError) as exc:
        detector(path)
    for layout in ADAPTERS:
        assert f"{layout}:" in str(exc.value)


def test_forced_new_layout_that_does_not_fit(tmp_path):
    path = make_model(tmp_path / "v10.onnx", "images", [1, 3, 64, 64], np.float32,
                      {"output0": np.zeros((1, 300, 6), np.float32)})
    with pytest.raises(ModelError, match="rt-detr-postprocessed"):
        detector(path, layout="rt-detr-postprocessed")
    with pytest.raises(ModelError, match="rf-detr needs outputs dets"):
        detector(path, layout="rf-detr")


def test_coco_names_for_80_class_models_the_detector_cannot_size(tmp_path):
    """NanoDet's C+32 columns, YOLO-NAS's and RT-DETR's second output: 80 classes are COCO's,
    as for the older layouts; RF-DETR's 91 category-id columns are not."""
    nanodet = make_model(tmp_path / "nd.onnx", "data", [1, 3, 64, 64], np.float32,
                         {"output": np.zeros((1, 84, 80 + 32), np.float32)})
    nas = make_model(tmp_path / "nas.onnx", "input", [1, 3, 64, 64], np.float32,
                     {"b": np.zeros((1, 84, 4), np.float32),
                      "s": np.zeros((1, 84, 80), np.float32)})
    rtdetr = make_model(tmp_path / "rt.onnx", "images", [1, 3, 64, 64], np.float32,
                        {"pred_boxes": np.zeros((1, 300, 4), np.float32),
                         "pred_logits": np.zeros((1, 300, 80), np.float32)})
    rfdetr = make_model(tmp_path / "rf.onnx", "input", [1, 3, 64, 64], np.float32,
                        {"dets": np.zeros((1, 300, 4), np.float32),
                         "labels": np.zeros((1, 300, 91), np.float32)})
    for path in (nanodet, nas, rtdetr):
        names = detector(path).class_names
        assert len(names) == 80 and names[0] == "person"
    assert detector(rfdetr).class_names == ()
    assert detector(nanodet, classes=["a", "b"]).class_names == ("a", "b")


def test_class_counts_come_from_the_layout_not_the_older_shape_rule(tmp_path):
    """A 53-class NanoDet (53 + 32 columns = 85, which the YOLO rule would read as 80 + 5)
    and a YOLOv10 end-to-end model (6 columns, the class in one of them) get no COCO names;
    an 80-class YOLOv8 still does."""
    nanodet53 = make_model(tmp_path / "nd53.onnx", "data", [1, 3, 64, 64], np.float32,
                           {"output": np.zeros((1, 84, 53 + 32), np.float32)})
    v10 = make_model(tmp_path / "v10.onnx", "images", [1, 3, 64, 64], np.float32,
                     {"output0": np.zeros((1, 300, 6), np.float32)})
    v8 = make_model(tmp_path / "v8.onnx", "images", [1, 3, 640, 640], np.float32,
                    {"output0": np.zeros((1, 84, 8400), np.float32)})
    assert detector(nanodet53).layout == "nanodet"
    assert detector(nanodet53).class_names == ()
    assert detector(v10).class_names == ()
    assert detector(v8).layout == "yolov8" and detector(v8).class_names[0] == "person"
