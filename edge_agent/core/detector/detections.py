"""Detections of one frame as parallel numpy arrays, validated once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Detections:
    """`xyxy` (n, 4) float32 boxes in frame pixels (x1, y1, x2, y2); `score` (n,) float32;
    `class_id` (n,) int32 indexing `class_names`; `track_id` (n,) int64 or None."""

    xyxy: np.ndarray
    score: np.ndarray
    class_id: np.ndarray
    class_names: tuple[str, ...] = field(default=(), repr=False)
    track_id: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.shape != (n, 4):
            raise ValueError(f"xyxy must be (n, 4), got {self.xyxy.shape}")
        for name in ("score", "class_id") + (("track_id",) if self.track_id is not None else ()):
            arr = getattr(self, name)
            if arr.shape != (n,):
                raise ValueError(f"{name} must be ({n},) like xyxy, got {arr.shape}")
        object.__setattr__(self, "xyxy", self.xyxy.astype(np.float32, copy=False))
        object.__setattr__(self, "score", self.score.astype(np.float32, copy=False))
        object.__setattr__(self, "class_id", self.class_id.astype(np.int32, copy=False))
        if n and self.class_names and int(self.class_id.max()) >= len(self.class_names):
            raise ValueError(f"class id {int(self.class_id.max())} has no name among "
                             f"{len(self.class_names)} class names")

    @classmethod
    def empty(cls, class_names: tuple[str, ...] = ()) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32),
                   class_names)

    def __len__(self) -> int:
        return len(self.score)

    def __getitem__(self, index: Any) -> Detections:
        """Select by boolean mask or index array; keeps the parallel arrays together."""
        return Detections(
            self.xyxy[index], self.score[index], self.class_id[index], self.class_names,
            None if self.track_id is None else self.track_id[index],
        )

    def label(self, i: int) -> str:
        c = int(self.class_id[i])
        return self.class_names[c] if c < len(self.class_names) else f"class_{c}"

    def to_json(self, decimals: int = 1) -> list[dict[str, Any]]:
        boxes = np.round(self.xyxy.astype(np.float64), decimals).tolist()
        scores = np.round(self.score.astype(np.float64), 4).tolist()
        out = []
        for i, (box, score) in enumerate(zip(boxes, scores, strict=True)):
            item = {"label": self.label(i), "class_id": int(self.class_id[i]), "score": score,
                    "box": box}
            if self.track_id is not None and self.track_id[i] >= 0:  # -1: not on a track
                item["track_id"] = int(self.track_id[i])
            out.append(item)
        return out


def wider(*names: tuple[str, ...]) -> tuple[str, ...]:
    """The longest of class-name lists that extend one another (the edge's names, then the
    labels a cloud answer added after them): ids valid in any are valid in it."""
    return max(names, key=len, default=())
