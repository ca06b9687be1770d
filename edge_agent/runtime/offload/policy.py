"""Which windows go to the cloud: a confidence score per window, a threshold or a rate target,
a budget (token buckets in windows and bytes per minute), a cap on requests in flight, and a
circuit breaker while the cloud does not answer."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

from edge_agent.runtime.config import OffloadConfig
from edge_agent.runtime.window import WindowSummary


def score_parts(summary: WindowSummary, band: tuple[float, float]) -> dict[str, float]:
    """What a window's uncertainty is made of, each in [0, 1]: the share of detections whose
    score lies in the uncertain band, their mean binary entropy (a score near 0.5 knows
    least), track flicker (tracks seen in under half of the frames), and 1 - mean score."""
    scores = np.concatenate([f.detections.score for f in summary.frames]) \
        if summary.frames else np.zeros(0, np.float32)
    if not scores.size:
        return {"uncertain_share": 0.0, "entropy": 0.0, "flicker": float(summary.flicker),
                "low_mean_score": 0.0}
    low, high = band
    p = np.clip(scores.astype(np.float64), 1e-6, 1 - 1e-6)
    return {"uncertain_share": float(((scores >= low) & (scores < high)).mean()),
            "entropy": float((-(p * np.log2(p) + (1 - p) * np.log2(1 - p))).mean()),
            "flicker": float(summary.flicker), "low_mean_score": 1.0 - float(scores.mean())}


def window_score(summary: WindowSummary, band: tuple[float, float]) -> float:
    """Uncertainty of a window in [0, 1]: the mean of the uncertain share, the entropy and the
    flicker of `score_parts`. An empty window (nothing seen at all) scores by its flicker
    alone, which is 0."""
    parts = score_parts(summary, band)
    return (parts["uncertain_share"] + parts["entropy"] + parts["flicker"]) / 3


class TokenBucket:
    """`rate` tokens per minute, holding at most `burst`."""

    def __init__(self, per_minute: float, burst: float | None = None,
                 clock=time.monotonic) -> None:
        self.rate = per_minute / 60.0
        self.capacity = burst if burst is not None else max(1.0, per_minute / 6)
        self.tokens = self.capacity
        self.clock = clock
        self._t = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._t) * self.rate)
        self._t = now

    def can(self, n: float = 1.0) -> bool:
        self._refill()
        return self.tokens >= n

    def take(self, n: float = 1.0) -> bool:
        self._refill()
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False


class Breaker:
    """Closed: requests go. `failures` failures in a row open it for `cooldown_s`; then one
    request may try (half-open): success closes it, failure opens it again."""

    def __init__(self, failures: int, cooldown_s: float, clock=time.monotonic) -> None:
        self.limit, self.cooldown, self.clock = failures, cooldown_s, clock
        self.failures = 0
        self.opened_at: float | None = None
        self.trial = False
        self.opens = 0

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.clock() - self.opened_at >= self.cooldown else "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self.trial:
            self.trial = True
            return True
        return False

    def success(self) -> None:
        self.failures, self.opened_at, self.trial = 0, None, False

    def failure(self) -> None:
        self.failures += 1
        self.trial = False
        if self.opened_at is not None or self.failures >= self.limit:
            if self.opened_at is None:
                self.opens += 1
            self.opened_at = self.clock()


DecisionReason = Literal["sent", "below_threshold", "overlap", "in_flight", "breaker", "budget"]


@dataclass(frozen=True)
class Decision:
    send: bool
    reason: DecisionReason
    score: float


class OffloadPolicy:
    def __init__(self, config: OffloadConfig, clock=time.monotonic) -> None:
        self.config = config
        self.windows = TokenBucket(config.windows_per_minute, clock=clock)
        self.bytes = TokenBucket(config.bytes_per_minute,
                                 burst=max(config.bytes_per_minute / 6,
                                           config.max_payload_bytes), clock=clock)
        self.breaker = Breaker(config.breaker_failures, config.breaker_cooldown_s, clock)
        self.history: deque[float] = deque(maxlen=500)
        self.covered: dict[str, int] = {}
        """Per camera, the last frame of the last window answered or sent: a window that
        overlaps it would send frames already refined."""

    def threshold(self) -> float:
        """The score a window needs: fixed, or in rate mode the (1 - rate) quantile of recent
        windows' scores, so about `rate_target` of windows qualify."""
        if self.config.mode == "threshold" or len(self.history) < 20:
            return self.config.score_threshold
        return float(np.quantile(np.array(self.history), 1.0 - self.config.rate_target))

    def decide(self, score: float, in_flight: int, camera: str = "",
               first_frame: int | None = None) -> Decision:
        threshold = self.threshold()
        self.history.append(score)
        if score < threshold or score <= 0.0:
            return Decision(False, "below_threshold", score)
        if first_frame is not None and first_frame <= self.covered.get(camera, -1):
            return Decision(False, "overlap", score)
        if in_flight >= self.config.max_in_flight:
            return Decision(False, "in_flight", score)
        if not self.breaker.allow():
            return Decision(False, "breaker", score)
        if not self.windows.can():
            if self.breaker.trial:
                self.breaker.trial = False
            return Decision(False, "budget", score)
        return Decision(True, "sent", score)

    def cover(self, camera: str, last_frame: int) -> None:
        self.covered[camera] = max(last_frame, self.covered.get(camera, -1))

    def charge(self, nbytes: int) -> bool:
        """Take one window and `nbytes` from the budget; False (nothing taken) when the bytes
        are not there."""
        if not self.bytes.can(nbytes):
            return False
        self.windows.take()
        self.bytes.take(nbytes)
        return True
