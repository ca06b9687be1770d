"""The ground truth's view of a cache hit: does the window the answer came from show the same
scene? Checked on the cache benchmark's own world, whose scenes recur unchanged and with one
small new object."""

from __future__ import annotations

from dataclasses import replace

from edge_agent.tools.bench.cache import CACHE_SEEDS, scene_agreement
from edge_agent.tools.evaluate import MAX_OCCLUSION, MIN_VISIBLE_PX
from edge_agent.tools.sim import SyntheticWorld, WorldOptions


def _world() -> SyntheticWorld:
    return SyntheticWorld(WorldOptions.from_preset("normal", seed=CACHE_SEEDS[0],
                                                   recurring_fraction=0.4,
                                                   near_duplicate_fraction=0.2))


def test_the_cache_world_has_both_kinds_of_repeat():
    w = _world()
    kinds = [w.segment_kind(s) for s in range(6)]
    assert ("recurring", 0) in kinds and ("near_duplicate", 0) in kinds
    assert ("recurring", 1) in kinds and ("near_duplicate", 1) in kinds


def test_recurring_is_the_same_scene_and_a_near_duplicate_is_not():
    w = _world()
    seg = round(w.options.segment_seconds * w.options.fps)
    kinds = [w.segment_kind(s)[0] for s in range(6)]
    rec, dup = kinds.index("recurring"), kinds.index("near_duplicate")
    base_rec, base_dup = w.segment_kind(rec)[1], w.segment_kind(dup)[1]
    for f in (30, 100, 300):
        base = w.render(base_rec * seg + f)[1]
        again = w.render(rec * seg + f)[1]
        assert again.light != base.light  # another time of day: the pixels differ
        assert scene_agreement(base, again) == 1.0
        near = w.render(dup * seg + f)[1]
        assert 0.8 < scene_agreement(w.render(base_dup * seg + f)[1], near) < 1.0
        assert scene_agreement(base, w.render((1 - base_rec) * seg + f)[1]) < 0.5


def test_scene_agreement_counts_each_side():
    w = _world()
    t = w.render(100)[1]
    assert scene_agreement(t, t) == 1.0
    empty = replace(t, objects=())
    assert scene_agreement(empty, empty) == 1.0
    assert scene_agreement(t, empty) == 0.0
    scored = [o for o in t.visible()
              if o.visible_px >= MIN_VISIBLE_PX and o.occlusion <= MAX_OCCLUSION]
    assert len(scored) >= 2
    one_less = replace(t, objects=tuple(o for o in t.objects if o is not scored[0]))
    # s - 1 of s found on one side, all s - 1 found on the other.
    n = len(scored)
    assert abs(scene_agreement(t, one_less) - (2 * n - 2) / (2 * n - 1)) < 1e-6
