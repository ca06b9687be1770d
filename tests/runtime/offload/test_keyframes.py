"""Choosing the keyframes of a window, on real synthetic-world frames."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from offload_kit import dets

from edge_agent.runtime.capture.frame import Frame
from edge_agent.runtime.offload.keyframes import select_keyframes, sharpness
from edge_agent.runtime.window import SlidingWindow
from edge_agent.tools.sim import SyntheticWorld, WorldOptions


@pytest.fixture(scope="module")
def street():
    world = SyntheticWorld(WorldOptions.from_preset("normal", seed=77))
    return world


def test_keyframes_span_the_window_and_prefer_sharp_frames(street):
    w = SlidingWindow("c", 12, 12)
    summary = None
    for i in range(12):
        img = street.render(i)[0].image
        if i in (5, 6):  # around the middle (anchor 6 of 0-11): only frame 7 is sharp
            img = cv2.GaussianBlur(img, (9, 9), 4)
        summary = w.push(Frame("c", i, 0.0, 0.0, img), dets([], [], []))
    picked = select_keyframes(summary, 3, (0.3, 0.6))
    idx = [f.frame.index for f in picked]
    assert idx == [0, 7, 11]  # both ends, and the sharp neighbour of the middle
    assert sharpness(cv2.GaussianBlur(picked[1].frame.image, (9, 9), 4)) < \
        sharpness(picked[1].frame.image)


def test_keyframe_pick_takes_the_ends_and_the_uncertain_neighbour():
    from edge_agent.runtime.offload.keyframes import pick

    flat = np.ones(16)
    assert pick(np.zeros(16), flat, 5) == [0, 4, 8, 11, 15]     # evenly spread, ends included
    unc = np.zeros(16)
    unc[[3, 9]] = 2.0                                             # uncertain frames next door
    assert pick(unc, flat, 5) == [0, 3, 9, 11, 15]
    unc[12] = 5.0                                                 # next to anchor 11
    assert pick(unc, flat, 5)[3] == 12
    assert pick(unc, flat, 16) == list(range(16))                 # no more frames than asked
    assert pick(unc, flat, 1) == [12]                             # one keyframe: the best
    small = pick(np.zeros(6), np.ones(6), 5)                      # no room to move
    assert small == sorted(set(small)) and len(small) == 5 and small[0] == 0 and small[-1] == 5
