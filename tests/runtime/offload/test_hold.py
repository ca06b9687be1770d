"""Static objects the cloud found, held on `detections` where the edge has no box."""

from __future__ import annotations

import numpy as np
import pytest
from offload_kit import dets


def test_only_static_confident_cloud_objects_are_held():
    from edge_agent.runtime.offload.hold import static_objects

    parked, walker, faint = [100, 100, 180, 150], [300, 100, 330, 180], [400, 50, 440, 80]
    first = dets([parked, walker, faint], [0.9, 0.8, 0.25], [1, 0, 1])
    last = dets([[102, 101, 181, 151], [340, 100, 370, 180], faint], [0.8, 0.8, 0.25], [1, 0, 1])
    held = static_objects(first, last, min_score=0.3, static_iou=0.8, score_factor=0.5)
    assert len(held) == 1 and held.label(0) == "car"            # the walker moved; faint is weak
    assert held.score[0] == pytest.approx(0.4)                    # the last keyframe's, halved
    assert held.track_id.tolist() == [-1]
    # The same object as another class on the first keyframe is not "the same place".
    other = dets([parked], [0.9], [2])
    assert not len(static_objects(other, last, 0.3, 0.8, 0.5))
    assert not len(static_objects(dets([], [], []), last, 0.3, 0.8, 0.5))


def test_held_objects_show_only_where_no_edge_box_covers_them():
    from edge_agent.runtime.offload.hold import with_held

    held = dets([[100, 100, 180, 150], [400, 50, 440, 90]], [0.6, 0.5], [1, 2], [-1, -1])
    edge = dets([[105, 98, 178, 152]], [0.7], [2], [9])   # the edge has the first (a truck)
    out = with_held(edge, held)
    assert len(out) == 2 and out.track_id.tolist() == [9, -1]
    assert out.xyxy[1].tolist() == [400, 50, 440, 90] and out.score[1] == pytest.approx(0.5)
    assert len(with_held(dets([], [], []), held)) == 2
    assert with_held(edge, held[np.zeros(2, bool)]) is edge


def test_nothing_is_held_from_a_single_keyframe():
    from edge_agent.runtime.offload.hold import held_from

    car = dets([[100, 100, 180, 150]], [0.9], [1])
    assert held_from([(7, car)], 0.5) is None                     # parked or passing? unknown
    assert held_from([(7, car), (7, car)], 0.5) is None
    held = held_from([(12, car), (4, car)], 0.5)                  # any order
    assert len(held) == 1 and held.score[0] == pytest.approx(0.45)
