"""The edge cache on real synthetic-world frames: hits, misses, invalidation, TTL and LRU, the
edge signature check, and how two answers agree."""

from __future__ import annotations

import numpy as np
import pytest
from offload_kit import Clock, dets

from edge_agent.runtime.offload.cache import EdgeCache, fingerprint
from edge_agent.tools.sim import SyntheticWorld, WorldOptions


@pytest.fixture(scope="module")
def street():
    world = SyntheticWorld(WorldOptions.from_preset("normal", seed=77))
    return world


def test_edge_cache_hits_the_same_scene_and_misses_a_new_small_object(street):
    clock = Clock()
    cache = EdgeCache(max_entries=2, ttl_s=60, hamming_radius=6, clock=clock)
    frames = [street.render(i)[0].image for i in (100, 104, 108)]
    car = dets([[100, 100, 180, 150]], [0.9], [1])
    cache.put(fingerprint(frames), ["answer"], car)
    # The same scene again, a little darker and noisier: a hit.
    again = [np.clip(f.astype(np.int16) - 12 + np.random.default_rng(i).integers(
        -3, 4, f.shape), 0, 255).astype(np.uint8) for i, f in enumerate(frames)]
    assert cache.lookup(fingerprint(again), car).answer == ["answer"]
    # One small new object (a 14x20 px dog-sized patch) in the last keyframe: a miss.
    changed = [f.copy() for f in again]
    changed[2][300:320, 500:514] = (20, 20, 160)
    assert cache.lookup(fingerprint(changed), car) is None
    # The edge now sees a truck where the cloud said car: the entry is dropped.
    truck = dets([[100, 100, 180, 150]], [0.9], [2])
    assert cache.lookup(fingerprint(again), truck) is None
    assert cache.stats.invalidated == 1 and len(cache) == 0
    # TTL and LRU.
    cache.put(fingerprint(frames), ["a"], car)
    clock.t += 61
    assert cache.lookup(fingerprint(frames), car) is None and cache.stats.expired == 1
    for k in range(3):
        cache.put(fingerprint([street.render(200 + 40 * k + j)[0].image for j in range(3)]),
                  [k], car)
    assert len(cache) == 2 and cache.stats.evicted == 1


def test_a_different_scene_is_not_a_hit(street):
    cache = EdgeCache(hamming_radius=6)
    cache.put(fingerprint([street.render(i)[0].image for i in (10, 14)]), ["x"],
              dets([], [], []))
    other = SyntheticWorld(WorldOptions.from_preset("normal", seed=78))
    assert cache.lookup(fingerprint([other.render(i)[0].image for i in (10, 14)]),
                        dets([], [], [])) is None


def test_edge_cache_checks_the_edge_signature_at_the_same_places(street):
    cache = EdgeCache(hamming_radius=6)
    frames = [street.render(i)[0].image for i in (100, 104, 108)]
    car = dets([[100, 100, 180, 150]], [0.9], [1])
    person = dets([[300, 120, 312, 160]], [0.55], [0])  # too unsure to check the cloud with
    then = {0: car, 2: person}
    cache.put(fingerprint(frames), ["answer"], car, 2, edge=then)
    now = dict(then)
    assert cache.lookup(fingerprint(frames), lambda off: now.get(off, car)) is not None
    # The person walked on by 30 px at the same place in the window: the edge disagrees.
    now[2] = dets([[330, 120, 342, 160]], [0.55], [0])
    assert cache.lookup(fingerprint(frames), lambda off: now.get(off, car)) is None
    assert cache.stats.invalidated == 1
    # With the check off, the pixels and the cloud answer decide alone.
    loose = EdgeCache(hamming_radius=6, edge_agreement=0.0)
    loose.put(fingerprint(frames), ["answer"], car, 2, edge=then)
    assert loose.lookup(fingerprint(frames), lambda off: now.get(off, car)) is not None


def test_answer_agreement_counts_pool_over_keyframes():
    """Two answers agree box by box: same class, IoU >= 0.5, a score near the line on one
    side still counts; pooled over keyframes one miss among many is not a disagreement."""
    from edge_agent.runtime.offload.cache import agreement, agreement_counts

    car, van = [10, 10, 60, 40], [100, 10, 160, 50]
    a = dets([car, van], [0.9, 0.52], [1, 2])
    b = dets([[12, 11, 61, 41], van], [0.8, 0.45], [1, 2])     # the van at 0.45: same answer
    assert agreement_counts(a, b) == (3, 3) and agreement(a, b) == 1.0
    c = dets([car], [0.9], [1])                                  # the van gone
    assert agreement_counts(a, c) == (2, 3) and agreement(a, c) == pytest.approx(2 / 3)
    d = dets([car, van], [0.9, 0.6], [1, 1])                     # the van called a car
    assert agreement_counts(a, d) == (2, 4)
    assert agreement(dets([], [], []), dets([], [], [])) == 1.0
    # Ten keyframes that agree and one that misses a box: 32 of 33 over the answer.
    counts = [agreement_counts(a, b)] * 10 + [agreement_counts(a, c)]
    assert sum(f for f, _ in counts) / sum(t for _, t in counts) == pytest.approx(32 / 33)
