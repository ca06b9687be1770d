"""Each layout on a tiny ONNX graph with its real names and shapes: known outputs decode to
known boxes in frame pixels, through real ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_graphs import make_model

from edge_agent.core.config.common import DetectorModelConfig
from edge_agent.core.detector import Detector
from edge_agent.core.detector.adapters import detect_layout
from edge_agent.core.detector.backends import OnnxRuntimeBackend
from edge_agent.core.errors import ModelError

YOLO_CELLS_64 = 8 * 8 + 4 * 4 + 2 * 2  # a 64x64 input over strides 8, 16, 32


def frame(w: int, h: int) -> np.ndarray:
    return np.full((h, w, 3), 90, np.uint8)


def detector(path, layout="auto", **kw) -> Detector:
    return Detector.from_config(DetectorModelConfig(path=path, layout=layout, **kw))


def rows(dets) -> list[tuple[str, float, list[float]]]:
    return [(dets.label(i), round(float(dets.score[i]), 3), [round(float(v), 2)
             for v in dets.xyxy[i]]) for i in range(len(dets))]


def test_ssd_softmax_scores_normalised_corners(tmp_path):
    scores = np.zeros((1, 3, 3), np.float32)
    scores[0, 0] = [0.1, 0.9, 0.0]   # car
    scores[0, 1] = [0.2, 0.8, 0.0]   # car, overlaps anchor 0: suppressed by NMS
    scores[0, 2] = [0.3, 0.0, 0.7]   # dog
    boxes = np.array([[[0.1, 0.2, 0.5, 0.6], [0.12, 0.22, 0.5, 0.6], [0.6, 0.6, 0.9, 0.9]]],
                     np.float32)
    path = make_model(tmp_path / "ssd.onnx", "input_0", [1, 3, 300, 300], np.float32,
                      {"scores": scores, "boxes": boxes})
    det = detector(path, classes=["BACKGROUND", "car", "dog"])
    assert det.layout == "ssd" and det.class_names == ("car", "dog")
    out = det(frame(600, 400))  # stretched: normalised corners scale by the frame size
    assert rows(out) == [("car", 0.9, [60, 80, 300, 240]), ("dog", 0.7, [360, 240, 540, 360])]


def test_yolox_grid_decode_with_top_left_letterbox(tmp_path):
    p = np.zeros((1, YOLO_CELLS_64, 7), np.float32)
    cell = 2 * 8 + 3  # stride 8, gx=3, gy=2
    p[0, cell] = [0.5, 0.5, np.log(2), np.log(4), 0.9, 0.1, 0.8]
    path = make_model(tmp_path / "yolox.onnx", "images", [1, 3, 64, 64], np.float32,
                      {"output": p})
    det = detector(path, classes=["person", "car"])
    assert det.layout == "yolox"
    # 128x64 frame -> scale 0.5, pasted at the top-left: no offset.
    # centre (3.5*8, 2.5*8) = (28, 20), size 16x32 -> input box (20, 4, 36, 36) -> frame x2.
    assert rows(det(frame(128, 64))) == [("car", 0.72, [40, 8, 72, 64])]  # y2 clipped at 64


def test_yolov5_objectness_and_centred_letterbox(tmp_path):
    p = np.zeros((1, 3 * YOLO_CELLS_64, 7), np.float32)
    p[0, 5] = [32, 32, 20, 10, 0.9, 0.9, 0.1]
    p[0, 6] = [32, 32, 20, 10, 0.2, 0.9, 0.1]  # objectness 0.2 -> score 0.18 < 0.3
    path = make_model(tmp_path / "yolov5.onnx", "images", [1, 3, 64, 64], np.float32,
                      {"output0": p})
    det = detector(path, classes=["person", "car"])
    assert det.layout == "yolov5"
    # 128x64 frame -> scale 0.5, 64x32 pasted at y offset 16: input box (22, 27, 42, 37).
    assert rows(det(frame(128, 64))) == [("person", 0.81, [44, 22, 84, 42])]


def test_yolov8_channels_first_without_objectness(tmp_path):
    p = np.zeros((1, 6, YOLO_CELLS_64), np.float32)
    p[0, :, 10] = [20, 30, 8, 12, 0.1, 0.6]
    path = make_model(tmp_path / "yolov8.onnx", "images", [1, 3, 64, 64], np.float32,
                      {"output0": p})
    det = detector(path, classes=["person", "car"])
    assert det.layout == "yolov8"
    # 64x128 (tall) frame -> scale 0.5, 32x64 pasted at x offset 16: input (16, 24, 24, 36).
    assert rows(det(frame(64, 128))) == [("car", 0.6, [0, 48, 16, 72])]


def test_tf_od_y_first_normalised_one_based(tmp_path):
    outputs = {
        "detection_boxes:0": np.array([[[0.1, 0.2, 0.5, 0.6], [0, 0, 1, 1]]], np.float32),
        "detection_scores:0": np.array([[0.8, 0.9]], np.float32),
        "detection_classes:0": np.array([[3, 1]], np.float32),
        "num_detections:0": np.array([1], np.float32),  # only the first row is real
    }
    path = make_model(tmp_path / "tfod.onnx", "image_tensor:0", [1, "h", "w", 3], np.uint8,
                      outputs)
    det = detector(path, classes=["person", "bicycle", "car"])
    assert det.layout == "tf-od"
    assert rows(det(frame(200, 100))) == [("car", 0.8, [40, 10, 120, 50])]


def test_efficient_nms_pixel_corners(tmp_path):
    outputs = {
        "num_detections": np.array([[2]], np.int32),
        "detection_boxes": np.array([[[20, 10, 40, 30], [0, 0, 8, 8], [1, 1, 2, 2]]],
                                    np.float32),
        "detection_scores": np.array([[0.95, 0.2, 0.99]], np.float32),
        "detection_classes": np.array([[1, 0, 0]], np.int32),
    }
    path = make_model(tmp_path / "enms.onnx", "images", [1, 3, 64, 64], np.float32, outputs)
    det = detector(path, classes=["person", "car"])
    assert det.layout == "efficient-nms"
    # 64x128 frame -> scale 0.5, x offset 16; row 2 is below the threshold, row 3 past num.
    assert rows(det(frame(64, 128))) == [("car", 0.95, [8, 20, 48, 60])]


def test_unknown_layout_lists_what_was_found(tmp_path):
    path = make_model(tmp_path / "odd.onnx", "pixels", [1, 3, 32, 32], np.float32,
                      {"logits": np.zeros((1, 10), np.float32)})
    with pytest.raises(ModelError) as exc:
        detector(path)
    msg = str(exc.value)
    assert "inputs [pixels float32[1,3,32,32]]" in msg and "outputs [logits float32[1,10]]" in msg
    for layout in ("ssd", "tf-od", "yolox", "yolov5", "yolov8", "efficient-nms", "yolov10",
                   "rt-detr", "rf-detr", "rt-detr-postprocessed", "yolo-nas", "yolo-nas-flat",
                   "nanodet", "nanodet-plus"):
        assert f"{layout}:" in msg
    assert "model.layout or --layout" in msg


def test_forced_layout_that_does_not_fit_is_a_clear_error(tmp_path):
    p = np.zeros((1, YOLO_CELLS_64, 7), np.float32)
    path = make_model(tmp_path / "yolox.onnx", "images", [1, 3, 64, 64], np.float32,
                      {"output": p})
    with pytest.raises(ModelError, match="does not fit the ssd layout"):
        detector(path, layout="ssd")
    assert detector(path, layout="yolov5").layout == "yolov5"  # forcing wins over detection


def test_class_names_from_model_metadata(tmp_path):
    scores = np.zeros((1, 1, 3), np.float32)
    boxes = np.zeros((1, 1, 4), np.float32)
    path = make_model(tmp_path / "ssd.onnx", "input_0", [1, 3, 300, 300], np.float32,
                      {"scores": scores, "boxes": boxes},
                      metadata={"classes": '["person", "car"]'})
    assert detector(path).class_names == ("person", "car")
    backend = OnnxRuntimeBackend.from_config(path)
    assert detect_layout(backend.inputs, backend.outputs) == "ssd"


@pytest.mark.parametrize("layout,graph,pixel", [
    # (layout, graph maker, expected first-pixel channel values from BGR (10, 20, 30))
    ("yolox", ("images", [1, 3, 64, 64], np.float32), [10, 20, 30]),
    ("yolov5", ("images", [1, 3, 64, 64], np.float32), [30 / 255, 20 / 255, 10 / 255]),
    ("ssd", ("input_0", [1, 3, 300, 300], np.float32),
     [(30 / 255 - 0.5) / 0.5, (20 / 255 - 0.5) / 0.5, (10 / 255 - 0.5) / 0.5]),
])
def test_preprocessing_channel_order_and_scale(tmp_path, layout, graph, pixel):
    name, shape, dtype = graph
    outputs = ({"scores": np.zeros((1, 1, 3), np.float32), "boxes": np.zeros((1, 1, 4),
                                                                             np.float32)}
               if layout == "ssd" else
               {"output" if layout == "yolox" else "output0": np.zeros(
                   (1, YOLO_CELLS_64 * (3 if layout == "yolov5" else 1), 7), np.float32)})
    det = detector(make_model(tmp_path / "m.onnx", name, shape, dtype, outputs))
    img = np.empty((64, 64, 3), np.uint8)
    img[:] = (10, 20, 30)
    feeds, _ = det.adapter.prepare(img)
    x = next(iter(feeds.values()))
    assert x.dtype == np.float32 and x.shape == tuple(shape)
    assert np.allclose(x[0, :, 5, 5], pixel, atol=1e-5)
