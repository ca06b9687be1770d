"""Class-wise non-maximum suppression on the host, for layouts without NMS in the graph."""

from __future__ import annotations

import numpy as np


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


def nms(xyxy: np.ndarray, score: np.ndarray, class_id: np.ndarray, iou: float,
        max_keep: int) -> np.ndarray:
    """Indices kept by greedy class-wise NMS, best score first, at most `max_keep`.

    Boxes of different classes are moved apart by a per-class offset so one pass suppresses
    within classes only; each step is one vectorised IoU row."""
    if len(score) == 0:
        return np.zeros(0, np.int64)
    span = float(np.abs(xyxy).max()) + 1.0
    boxes = xyxy.astype(np.float64) + (class_id.astype(np.float64) * 2 * span)[:, None]
    order = np.argsort(-score, kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < max_keep:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        if rest.size == 0:
            break
        overlap = iou_matrix(boxes[i:i + 1], boxes[rest])[0]
        order = rest[overlap <= iou]
    return np.asarray(keep, np.int64)
