"""Shared helpers for the offload tests: class names, a settable clock, a tiny JPEG, an offload
request and detections built from plain lists."""

from __future__ import annotations

import cv2
import numpy as np

from edge_agent.core.detector.detections import Detections
from edge_agent.core.protocol import Keyframe, OffloadRequest

NAMES = ("person", "car", "truck", "cyclist", "dog")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def jpeg(w: int = 64, h: int = 48) -> bytes:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (40, 120, 200)
    return cv2.imencode(".jpg", img)[1].tobytes()


def request(**over) -> OffloadRequest:
    base = dict(id="a" * 32, device="d1", camera="c1", window="c1-1", sent_at=1.0,
                expires_at=2e9, reply_to="osprey/d1/offload/response", corr=b"x",
                frames=[Keyframe(index=3, captured_at=1.0, width=64, height=48, jpeg=jpeg())],
                edge=[[]], queries=["red car"])
    base.update(over)
    return OffloadRequest(**base)


def dets(boxes, scores, classes, ids=None) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4),
                      np.array(scores, np.float32), np.array(classes, np.int32), NAMES,
                      None if ids is None else np.array(ids, np.int64))
