"""How big an object is for its class, from where it stands in a fixed camera's view.

A crop does not show size: a small dog near the camera and a large one far away look alike.
The camera's geometry does. On a ground plane seen by a fixed camera, an object of metric
height H whose foot is on image row y appears `H * (a*y + b)` pixels tall: the scale grows
linearly from the horizon row (`-b/a`) towards the camera. The agent learns `a` and `b` for
each camera from its own confident detections, each divided by its class's typical height
(`CLASS_HEIGHTS_M`), pooled over all classes (`Perspective`); with them, a detection's size
ratio is its height over what a typical object of its class would be at that row:
below `SMALL_BELOW` it is small, above `LARGE_ABOVE` large, medium between.

Detections cut by the frame's border say nothing of their height and are left out; boxes
shortened by occlusion read smaller than they are, which the fit's outlier trimming absorbs
but a single detection's size cannot.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from edge_agent.core.detector.detections import Detections

CLASS_HEIGHTS_M: dict[str, float] = {
    "person": 1.7, "pedestrian": 1.7, "cyclist": 1.75, "bicycle": 1.1, "motorcycle": 1.3,
    "car": 1.5, "truck": 3.2, "bus": 3.1, "dog": 0.6,
}
"""Typical height of an object of a class (metres): the prior the perspective is fit with."""
SMALL_BELOW = 0.88
LARGE_ABOVE = 1.13
"""Size-ratio limits: the geometric midpoints between a class's typical size and one about a
quarter smaller or larger."""
SIZES = ("small", "medium", "large")
SIZE_WORDS: dict[str, str] = {
    "small": "small", "little": "small", "tiny": "small",
    "medium": "medium", "medium-sized": "medium",
    "large": "large", "big": "large", "huge": "large",
}
"""Words of a text query read as a size (by geometry), not by the image-text model."""


def class_heights(class_names: tuple[str, ...] | list[str]) -> np.ndarray:
    """Typical height per class id (metres; NaN where unknown)."""
    return np.array([CLASS_HEIGHTS_M.get(n, np.nan) for n in class_names], np.float64)


def split_size(query: str) -> tuple[str | None, str]:
    """(size asked for or None, the query without its size word): "a small dog" ->
    ("small", "a dog")."""
    words, size = [], None
    for w in query.split():
        s = SIZE_WORDS.get(w.lower())
        if s is not None and size is None:
            size = s
        else:
            words.append(w)
    return size, " ".join(words)


def size_ratio(dets: Detections, line: tuple[float, float] | list[float],
               heights: np.ndarray, frame: tuple[float, float] | None = None,
               border: float = 2.0) -> np.ndarray:
    """Height of each detection over its class's typical height at its foot row (NaN where
    the class has no typical height, and, given the `frame` (width, height), for boxes cut by
    its border: their height says nothing)."""
    a, b = line
    y2 = dets.xyxy[:, 3].astype(np.float64)
    h = (dets.xyxy[:, 3] - dets.xyxy[:, 1]).astype(np.float64)
    cls = dets.class_id.astype(int)
    known = cls < len(heights)
    hm = np.full(len(dets), np.nan)
    hm[known] = heights[cls[known]]
    expected = hm * (a * y2 + b)
    if frame is not None:
        x1, y1, x2, _ = dets.xyxy.T
        cut = ((x1 <= border) | (y1 <= border) | (x2 >= frame[0] - border)
               | (y2 >= frame[1] - border))
        expected = np.where(cut, np.nan, expected)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(expected > 1.0, h / expected, np.nan)


def size_class(ratio: np.ndarray) -> list[str | None]:
    return [None if not np.isfinite(r) else
            "small" if r < SMALL_BELOW else "large" if r > LARGE_ABOVE else "medium"
            for r in ratio]


class Perspective:
    """The scale line of one fixed camera, learned from its confident detections.

    Samples are kept as a uniform reservoir over the camera's whole history, not the last
    few seconds: traffic keeps to its lanes, so the scale at a row is learned from the objects
    that passed there, and a short stretch may have shown only large ones. The line is given
    only after `min_seconds` of detections (on the synthetic worlds, a minute can still be
    fooled that way; five are not)."""

    def __init__(self, class_names: tuple[str, ...] | list[str], min_score: float = 0.6,
                 min_samples: int = 500, min_seconds: float = 180.0,
                 max_samples: int = 20000, refit_every: int = 500, seed: int = 0) -> None:
        self.heights = class_heights(class_names)
        self.min_score, self.min_samples, self.min_seconds = min_score, min_samples, min_seconds
        self.refit_every = refit_every
        self._y = np.zeros(max_samples)
        self._h = np.zeros(max_samples)
        self._seen = 0
        self._new = 0
        self._first: float | None = None
        self._last = 0.0
        self._line: tuple[float, float] | None = None
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()

    def add(self, dets: Detections, width: int, height: int, t: float | None = None,
            border: float = 2.0) -> None:
        """Take a frame's detections (frame `width` x `height`, taken at `t` seconds on any
        monotonic clock; default now)."""
        if not len(dets):
            return
        t = time.monotonic() if t is None else t
        x1, y1, x2, y2 = dets.xyxy.T
        cls = dets.class_id.astype(int)
        known = cls < len(self.heights)
        hm = np.full(len(dets), np.nan)
        hm[known] = self.heights[cls[known]]
        ok = ((dets.score >= self.min_score) & np.isfinite(hm) & (x1 > border)
              & (y1 > border) & (x2 < width - border) & (y2 < height - border)
              & (y2 - y1 >= 8))
        if not ok.any():
            return
        cap = len(self._y)
        with self._lock:
            self._first = t if self._first is None else self._first
            self._last = t
            ys, hs = y2[ok], (y2 - y1)[ok] / hm[ok]
            if self._seen + len(ys) <= cap:  # filling up: no sampling yet
                self._y[self._seen:self._seen + len(ys)] = ys
                self._h[self._seen:self._seen + len(ys)] = hs
                self._seen += len(ys)
            else:
                for y, h in zip(ys.tolist(), hs.tolist(), strict=True):
                    slot = (self._seen if self._seen < cap
                            else int(self._rng.integers(0, self._seen + 1)))
                    if slot < cap:
                        self._y[slot], self._h[slot] = y, h
                    self._seen += 1
            self._new += int(ok.sum())
            n = min(self._seen, cap)
            if (self._new >= self.refit_every and n >= self.min_samples
                    and self._last - self._first >= self.min_seconds):
                self._new = 0
                self._line = fit_line(self._y[:n], self._h[:n])

    @property
    def line(self) -> tuple[float, float] | None:
        """(a, b): a 1 m tall object with its foot on row y is `a*y + b` pixels tall; None
        until enough detections over enough time were seen (or when they do not fit a ground
        plane)."""
        with self._lock:
            return self._line

    @property
    def samples(self) -> int:
        with self._lock:
            return min(self._seen, len(self._y))


def fit_line(y: np.ndarray, h: np.ndarray, rounds: int = 4) -> tuple[float, float] | None:
    """Least squares `h ~ a*y + b`, refit without the detections whose ratio to the line is
    more than three robust deviations from the median (occluded boxes, misdetections). None
    when the scale does not grow towards the camera (a > 0): not a ground plane."""
    keep = np.ones(len(y), bool)
    a = b = 0.0
    for _ in range(rounds):
        if keep.sum() < 10:
            return None
        a, b = np.linalg.lstsq(np.stack([y[keep], np.ones(int(keep.sum()))], 1), h[keep],
                               rcond=None)[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            r = h / (a * y + b)
        med = np.median(r[keep])
        mad = np.median(np.abs(r[keep] - med)) + 1e-6
        keep = np.isfinite(r) & (np.abs(r - med) < 3 * 1.4826 * mad)
    if not a > 0:
        return None
    return float(a), float(b)
