"""The sliding window: the last N processed frames of a camera with their detections, and a
summary every `stride` frames that the offload policy scores."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

import numpy as np

from edge_agent.core.detector.detections import Detections
from edge_agent.runtime.capture.frame import Frame


@dataclass(frozen=True)
class WindowFrame:
    frame: Frame
    detections: Detections


@dataclass(frozen=True)
class WindowSummary:
    window_id: str
    camera: str
    seq: int
    frames: tuple[WindowFrame, ...]
    detections: int
    mean_score: float
    uncertain_share: float
    """Share of detections whose score lies in the uncertain band."""
    flicker: float
    """Share of tracks seen in fewer than half of the window's frames (on-off tracks)."""
    classes: dict[str, int]

    @property
    def first_index(self) -> int:
        return self.frames[0].frame.index

    @property
    def last_index(self) -> int:
        return self.frames[-1].frame.index


class SlidingWindow:
    """Bounded: holds at most `size` frames; emits a summary once full, then every `stride`."""

    def __init__(self, camera: str, size: int, stride: int,
                 uncertain_band: tuple[float, float] = (0.3, 0.6)) -> None:
        if size < 1 or not 1 <= stride <= size:
            raise ValueError(f"window needs size >= 1 and 1 <= stride <= size, got size {size}, "
                             f"stride {stride}")
        self.camera, self.size, self.stride = camera, size, stride
        self.band = uncertain_band
        self._frames: deque[WindowFrame] = deque(maxlen=size)
        self._pushed = 0
        self._seq = 0

    def __len__(self) -> int:
        return len(self._frames)

    def push(self, frame: Frame, detections: Detections) -> WindowSummary | None:
        self._frames.append(WindowFrame(frame, detections))
        self._pushed += 1
        if self._pushed < self.size or (self._pushed - self.size) % self.stride:
            return None
        self._seq += 1
        return self._summary()

    def _summary(self) -> WindowSummary:
        frames = tuple(self._frames)
        scores = np.concatenate([f.detections.score for f in frames])
        low, high = self.band
        seen: Counter[int] = Counter()
        classes: Counter[str] = Counter()
        for f in frames:
            d = f.detections
            if d.track_id is not None:
                seen.update(int(t) for t in set(d.track_id.tolist()) if t >= 0)
            classes.update(d.label(i) for i in range(len(d)))
        flicker = (sum(1 for n in seen.values() if n < len(frames) / 2) / len(seen)
                   if seen else 0.0)
        return WindowSummary(
            window_id=f"{self.camera}-{self._seq}", camera=self.camera, seq=self._seq,
            frames=frames, detections=int(scores.size),
            mean_score=float(scores.mean()) if scores.size else 0.0,
            uncertain_share=float(((scores >= low) & (scores < high)).mean())
            if scores.size else 0.0,
            flicker=flicker, classes=dict(classes))
