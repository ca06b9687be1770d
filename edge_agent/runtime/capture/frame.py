"""The unit of work of the capture stage and the seam every source implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One captured image. `captured` is time.monotonic() when it was read, for ages and
    latencies; `wall_time` is time.time() for timestamps on the wire."""

    camera: str
    index: int
    captured: float
    wall_time: float
    image: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        img = self.image
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(
                f"Frame.image must be uint8 BGR (H, W, 3), got {img.dtype} {img.shape}"
            )

    @property
    def height(self) -> int:
        return self.image.shape[0]

    @property
    def width(self) -> int:
        return self.image.shape[1]


@runtime_checkable
class FrameSource(Protocol):
    """Yields frames of one camera. `read()` blocks until the next frame, returns None at the
    end of a finite stream, and raises SourceError when the source fails."""

    name: str

    def read(self) -> Frame | None: ...

    def close(self) -> None: ...
