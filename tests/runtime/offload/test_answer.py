"""The agent's answer rules: which tracks a cloud answer verifies."""

from __future__ import annotations

import pytest
from offload_kit import dets


def test_only_a_confident_cloud_box_verifies_a_track():
    from edge_agent.runtime.offload.answer import verified_tracks

    edge = dets([[0, 0, 40, 30], [100, 50, 180, 110]], [0.5, 0.6], [1, 1], [3, 4])
    cloud = dets([[0, 0, 40, 30], [100, 50, 180, 110]], [0.95, 0.6], [2, 2])
    assert verified_tracks(edge, cloud) == [(3, 2, pytest.approx(0.95)),
                                            (4, 2, pytest.approx(0.6))]
    assert verified_tracks(edge, cloud, min_score=0.8) == [(3, 2, pytest.approx(0.95))]
    assert verified_tracks(edge, cloud, min_score=0.99) == []
