"""Sliding window: cadence, bound, and the summary's statistics."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.core.detector.detections import Detections
from edge_agent.runtime.capture.frame import Frame
from edge_agent.runtime.window import SlidingWindow

IMG = np.zeros((4, 4, 3), np.uint8)


def frame(i: int) -> Frame:
    return Frame("cam", i, float(i), float(i), IMG)


def dets(scores, tracks) -> Detections:
    n = len(scores)
    return Detections(np.zeros((n, 4), np.float32), np.array(scores, np.float32),
                      np.zeros(n, np.int32), ("car",), np.array(tracks, np.int64))


def test_emits_once_full_then_every_stride_and_stays_bounded():
    w = SlidingWindow("cam", size=4, stride=2)
    emitted = [i for i in range(12) if w.push(frame(i), dets([], [])) is not None]
    assert emitted == [3, 5, 7, 9, 11]
    assert len(w) == 4
    last = w.push(frame(12), dets([], []))
    assert last is None


def test_summary_statistics():
    w = SlidingWindow("cam", size=4, stride=4, uncertain_band=(0.3, 0.6))
    out = None
    for i, (scores, tracks) in enumerate([([0.9, 0.4], [1, 2]), ([0.8], [1]),
                                          ([0.5, 0.95], [3, 1]), ([0.7], [1])]):
        out = w.push(frame(i), dets(scores, tracks))
    assert out is not None and out.window_id == "cam-1"
    assert (out.first_index, out.last_index) == (0, 3)
    assert out.detections == 6
    assert out.mean_score == pytest.approx(np.mean([0.9, 0.4, 0.8, 0.5, 0.95, 0.7]))
    assert out.uncertain_share == pytest.approx(2 / 6)
    assert out.flicker == pytest.approx(2 / 3)  # tracks 2 and 3 seen once in 4 frames
    assert out.classes == {"car": 6}


def test_bad_window_is_refused():
    with pytest.raises(ValueError, match="1 <= stride <= size"):
        SlidingWindow("cam", size=4, stride=8)
