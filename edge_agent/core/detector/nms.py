"""Class-wise non-maximum suppression on the host, for layouts without NMS in the graph, and
one label per object in an answer."""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from edge_agent.core.detector.detections import Detections


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (n, 4) against every box in b (m, 4), xyxy."""
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def widen(xyxy: np.ndarray, share: float) -> np.ndarray:
    """Boxes grown by `share` of their width and height on each side (buffered IoU: a small,
    moving object still overlaps where it was)."""
    wh = xyxy[:, 2:] - xyxy[:, :2]
    return xyxy + np.concatenate([-wh, wh], axis=1) * share


def nms(xyxy: np.ndarray, score: np.ndarray, class_id: np.ndarray, iou: float,
        max_keep: int) -> np.ndarray:
    """Indices kept by greedy class-wise NMS, best score first, at most `max_keep`.

    OpenCV's NMSBoxesBatched (C++, every class in one call; about 30 times faster here than a
    numpy loop, with the same result: a box is dropped when its IoU with a kept,
    higher-scoring box of its class is above `iou`)."""
    if len(score) == 0:
        return np.zeros(0, np.int64)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1).astype(np.float64)
    idx = cv2.dnn.NMSBoxesBatched(xywh, score.astype(np.float64), class_id.astype(np.int32),
                                  0.0, float(iou))
    kept = np.asarray(idx, np.int64).reshape(-1)
    kept = kept[np.argsort(-score[kept], kind="stable")]
    return kept[:max_keep]


# Objects that are really seen together, box on box: a rider and the bike keep both boxes.
TOGETHER = frozenset({frozenset({"person", "bicycle"}), frozenset({"person", "motorbike"}),
                      frozenset({"person", "motorcycle"}), frozenset({"person", "horse"})})


def one_label_per_object(dets: Detections, iou: float = 0.7) -> Detections:
    """Boxes of different classes over one object (IoU >= `iou`: class-wise NMS leaves such
    duplicates, e.g. one car answered as car, dog and cyclist) collapse to the best-supported
    one, the highest score. Pairs in TOGETHER (a person on a bicycle) are not duplicates."""
    if len(dets) < 2:
        return dets
    order = np.argsort(-dets.score, kind="stable")
    overlap = iou_matrix(dets.xyxy[order], dets.xyxy[order])
    names = dets.class_names
    label = [names[c] if c < len(names) else f"class_{c}" for c in dets.class_id[order]]
    keep: list[int] = []
    for i in range(len(order)):
        if not any(overlap[i, j] >= iou and label[i] != label[j]
                   and frozenset((label[i], label[j])) not in TOGETHER for j in keep):
            keep.append(i)
    if len(keep) == len(order):
        return dets
    return dets[np.sort(order[keep])]
