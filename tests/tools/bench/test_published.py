"""What bench offload scores: what the agent publishes (labels from when the answer arrives, held
objects for hold_s)."""

from __future__ import annotations

import numpy as np
import pytest
from offload_kit import dets


def _clip(n: int, edge: list, cloud: list):
    from edge_agent.tools.bench.clips import Clip
    from edge_agent.tools.sim.truth import FrameTruth, SceneInfo

    truths = [FrameTruth(i, i / 30, SceneInfo(0, "s0", "fresh"), 1.0, ()) for i in range(n)]
    return Clip("c", truths, edge, cloud, np.full(n, 20_000), np.ones(n), 0)


@pytest.mark.parametrize("cloud_score,relabelled", [(0.95, True), (0.5, False)])
def test_bench_scores_track_labels_from_when_the_answer_arrives(cloud_score, relabelled):
    from edge_agent.tools.bench.clips import Window
    from edge_agent.tools.bench.offload import ANSWER_DELAY_S, published

    n, car = 120, [10, 10, 60, 40]
    edge = [dets([car], [0.7], [1], [5]) for _ in range(n)]                 # track 5: a car
    cloud = [dets([car], [cloud_score], [2]) for _ in range(n)]            # the cloud: a truck
    clip = _clip(n, edge, cloud)
    w = Window(0, 0, list(range(16)), {}, [0, 4, 8, 12, 15])
    out, uplink = published([clip], [w], [0], 0.2)
    assert uplink > 5 * 20_000
    assert all(out[0][f].label(0) == "truck" for f in range(16))          # refined: the merge
    arrives = 15 + round(ANSWER_DELAY_S * 30)
    assert all(out[0][f].label(0) == "car" for f in range(16, arrives))   # not yet answered
    after = {out[0][f].label(0) for f in range(arrives, n)}
    assert after == ({"truck"} if relabelled else {"car"})
    assert edge[100].label(0) == "car"                                    # inputs untouched


def test_bench_holds_a_parked_car_the_edge_misses_for_hold_s():
    from edge_agent.tools.bench.clips import Window
    from edge_agent.tools.bench.offload import ANSWER_DELAY_S, published

    n, parked, person = 600, [200, 200, 280, 250], [10, 10, 30, 60]
    edge = [dets([person], [0.8], [0], [3]) for _ in range(n)]            # never sees the car
    cloud = [dets([person, parked], [0.9, 0.9], [0, 1]) for _ in range(n)]
    clip = _clip(n, edge, cloud)
    w = Window(0, 0, list(range(16)), {}, [0, 4, 8, 12, 15])
    out, _ = published([clip], [w], [0], 0.2, hold_s=2.0, hold_score_factor=0.5)
    arrives = 15 + round(ANSWER_DELAY_S * 30)

    def cars(f):
        return [float(s) for s, c in zip(out[0][f].score, out[0][f].class_id, strict=True)
                if c == 1]

    assert all(cars(f) == [] for f in range(16, arrives))                 # not yet answered
    assert all(cars(f) == [pytest.approx(0.45, abs=0.05)]                 # fused 0.9, halved
               for f in range(arrives, arrives + 59))
    assert all(cars(f) == [] for f in range(arrives + 61, n))             # hold_s is over
    assert all(len(out[0][f]) == 1 for f in range(arrives + 61, n))
    off, _ = published([clip], [w], [0], 0.2, hold_s=0)
    assert all(cars_ == [] for cars_ in
               ([c for c in off[0][f].class_id if c == 1] for f in range(16, n)))
