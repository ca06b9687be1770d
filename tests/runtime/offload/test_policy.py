"""The offload policy on its own: the token bucket, the breaker, the window score, the decision."""

from __future__ import annotations

import numpy as np
from offload_kit import Clock, dets

from edge_agent.runtime.capture.frame import Frame
from edge_agent.runtime.config import OffloadConfig
from edge_agent.runtime.offload.policy import Breaker, OffloadPolicy, TokenBucket, window_score
from edge_agent.runtime.window import SlidingWindow


def test_token_bucket_refills_at_its_rate():
    clock = Clock()
    bucket = TokenBucket(60, burst=2, clock=clock)  # one a second, two at most
    assert bucket.take() and bucket.take() and not bucket.take()
    clock.t += 1.0
    assert bucket.take() and not bucket.take()
    clock.t += 100
    assert bucket.tokens <= 2 and bucket.take() and bucket.take() and not bucket.take()


def test_breaker_opens_then_half_opens_then_closes():
    clock = Clock()
    b = Breaker(failures=3, cooldown_s=30, clock=clock)
    for _ in range(2):
        b.failure()
    assert b.state == "closed" and b.allow()
    b.failure()
    assert b.state == "open" and not b.allow() and b.opens == 1
    clock.t += 30
    assert b.state == "half-open" and b.allow() and not b.allow()  # one trial only
    b.failure()
    assert b.state == "open" and b.opens == 1
    clock.t += 30
    assert b.allow()
    b.success()
    assert b.state == "closed" and b.allow()


def window_of(scores_per_frame, ids_per_frame=None):
    w = SlidingWindow("c", len(scores_per_frame), len(scores_per_frame))
    img = np.zeros((36, 64, 3), np.uint8)
    summary = None
    for i, scores in enumerate(scores_per_frame):
        n = len(scores)
        ids = (ids_per_frame[i] if ids_per_frame else list(range(1, n + 1)))
        d = dets([[0, 0, 10, 10]] * n, scores, [1] * n, ids)
        summary = w.push(Frame("c", i, 0.0, 0.0, img), d)
    return summary


def test_window_score_rises_with_uncertainty_and_flicker():
    sure = window_of([[0.95, 0.9]] * 8)
    unsure = window_of([[0.45, 0.5]] * 8)
    flicker = window_of([[0.95, 0.9]] * 8, [[1, 2]] * 2 + [[3, 4]] * 2 + [[5, 6]] * 2
                        + [[7, 8]] * 2)
    band = (0.3, 0.6)
    assert window_score(sure, band) < window_score(flicker, band)
    assert window_score(sure, band) < window_score(unsure, band)
    assert 0.0 <= window_score(unsure, band) <= 1.0
    assert window_score(window_of([[]] * 8), band) == 0.0


def test_policy_threshold_budget_in_flight_and_rate_mode():
    clock = Clock()
    cfg = OffloadConfig(enabled=True, score_threshold=0.5, windows_per_minute=6,
                        max_in_flight=1)
    policy = OffloadPolicy(cfg, clock=clock)
    assert policy.decide(0.4, 0).reason == "below_threshold"
    assert policy.decide(0.9, 1).reason == "in_flight"
    assert policy.decide(0.9, 0).send
    assert policy.charge(1000)
    assert policy.decide(0.9, 0).reason == "budget"  # burst of 1 used, refills in 10 s
    clock.t += 10
    assert policy.decide(0.9, 0).send
    # A window overlapping the last one sent would send frames already refined.
    policy.cover("cam", 23)
    clock.t += 60
    assert policy.decide(0.9, 0, "cam", 16).reason == "overlap"
    assert policy.decide(0.9, 0, "other", 16).send
    assert policy.decide(0.9, 0, "cam", 24).send
    rate = OffloadPolicy(OffloadConfig(enabled=True, mode="rate", rate_target=0.2,
                                       windows_per_minute=1e6), clock=clock)
    rng = np.random.default_rng(1)
    sent = [rate.decide(float(s), 0).send for s in rng.random(2000)]
    assert 0.15 < np.mean(sent[100:]) < 0.25
