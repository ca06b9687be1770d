"""Merging a cloud answer into the window: confirmed, relabelled, rejected, carried and
interpolated boxes."""

from __future__ import annotations

import pytest
from offload_kit import dets

from edge_agent.runtime.offload.merge import merge_window


def test_merge_confirms_relabels_rejects_and_carries():
    car, ghost, truck = [0, 0, 40, 30], [200, 200, 230, 220], [100, 50, 180, 110]
    edge = {f: dets([car, ghost], [0.45, 0.5], [1, 4], [1, 2]) for f in range(5)}
    edge[4] = dets([car, ghost, [300, 10, 320, 30]], [0.45, 0.5, 0.4], [1, 4, 0], [1, 2, -1])
    cloud = dets([car, truck], [0.9, 0.8], [2, 2])  # car is a truck; ghost absent; a truck
    merged = dict(merge_window([(f, edge[f]) for f in range(5)], [(2, cloud)], carry=1))
    assert merged[2] is cloud                                   # the keyframe: the cloud's
    m1 = merged[1]                                              # 1 frame away: carried
    assert m1.class_id.tolist() == [2, 4, 2]
    assert m1.score.tolist() == pytest.approx([0.9, 0.5 * 0.3, 0.8 * 0.9])
    assert m1.xyxy[0].tolist() == car    # carried from one keyframe only: the edge's own box
    m0 = merged[0]                                              # 2 frames away: no estimate
    assert len(m0) == 2 and m0.score.tolist() == pytest.approx([0.45 * 0.6, 0.5 * 0.3])
    assert merged[4].score[2] == pytest.approx(0.4 * 0.6)       # untracked: unsure


def test_merge_interpolates_an_object_only_the_cloud_saw():
    empty = dets([], [], [], [])
    walker0, walker4 = [100, 100, 120, 160], [140, 100, 160, 160]
    keys = [(0, dets([walker0], [0.8], [0])), (4, dets([walker4], [0.7], [0]))]
    merged = dict(merge_window([(f, empty) for f in range(5)], keys, carry=0))
    for f in (1, 2, 3):
        assert merged[f].xyxy.tolist() == [[100 + 10 * f, 100, 120 + 10 * f, 160]]
        assert merged[f].score[0] == pytest.approx(0.7 * 0.9)
        assert merged[f].label(0) == "person"


def test_a_confirmed_edge_box_takes_the_interpolated_cloud_box_between_keyframes():
    # The edge sees the car a little off (its box lags and is too wide); the cloud's boxes on
    # keyframes 0 and 4 are tight. Between them the car is where the cloud's boxes say.
    edge = {f: dets([[98 + 10 * f, 100, 128 + 10 * f, 130]], [0.55], [1], [7]) for f in range(5)}
    keys = [(0, dets([[100, 100, 120, 130]], [0.9], [1])),
            (4, dets([[140, 100, 160, 130]], [0.95], [1]))]
    merged = dict(merge_window([(f, edge[f]) for f in range(5)], keys))
    for f in (1, 2, 3):
        assert merged[f].xyxy.tolist() == [[100 + 10 * f, 100, 120 + 10 * f, 130]]
        assert merged[f].track_id.tolist() == [7] and merged[f].score[0] == pytest.approx(0.9)
