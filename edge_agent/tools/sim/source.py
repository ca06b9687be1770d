"""`synthetic://` live source: the synthetic world served as a camera.

    synthetic://?seed=3&preset=hard&fps=15&width=640&height=360&seconds=60&realtime=1

With realtime (the default) frames are paced at `fps` like a camera; with realtime=0 they come
as fast as they render (tests, evaluation). The ground truth of the last frame is kept on
`last_truth`.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge_agent.runtime.capture.frame import Frame
from edge_agent.tools.sim.options import PRESETS, Preset, WorldOptions
from edge_agent.tools.sim.truth import FrameTruth
from edge_agent.tools.sim.world import SyntheticWorld

SCHEME = "synthetic"


class SyntheticUrl(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(0, ge=0)
    preset: Preset = "normal"
    fps: float = Field(30.0, gt=0, le=240)
    width: int = Field(640, ge=64, le=3840)
    height: int = Field(360, ge=64, le=2160)
    seconds: float | None = Field(None, gt=0, description="End of stream; None = endless.")
    realtime: bool = True
    start: int = Field(0, ge=0, description="First frame index.")
    segment_seconds: float | None = Field(None, gt=1, description="Length of a scene.")
    recurring_fraction: float | None = Field(None, ge=0, le=1,
                                             description="Scenes that replay an earlier one.")
    near_duplicate_fraction: float | None = Field(
        None, ge=0, le=1, description="Scenes that replay one plus a small new object.")

    def world_options(self) -> WorldOptions:
        scenes = {k: v for k in ("segment_seconds", "recurring_fraction",
                                 "near_duplicate_fraction")
                  if (v := getattr(self, k)) is not None}
        return WorldOptions.from_preset(
            self.preset, seed=self.seed, fps=self.fps, width=self.width, height=self.height,
            **scenes)


def parse_synthetic_url(url: str) -> SyntheticUrl:
    """Parse a synthetic:// URL; raise ValueError naming the bad part and what is valid."""
    parts = urlsplit(url)
    if parts.scheme != SCHEME:
        raise ValueError(f"not a synthetic:// URL: {url!r}")
    if parts.netloc or parts.path not in ("", "/"):
        raise ValueError(
            f"{url!r}: put options in the query, e.g. synthetic://?seed=1&preset=hard"
        )
    params: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        if key in params:
            raise ValueError(f"{url!r}: option {key!r} given twice")
        params[key] = value
    try:
        return SyntheticUrl(**params)
    except ValidationError as exc:
        valid = ", ".join(SyntheticUrl.model_fields)
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}={e.get('input')!r}: {e['msg']}"
            for e in exc.errors()
        )
        raise ValueError(
            f"{url!r}: {problems}. Valid options: {valid}; presets: {', '.join(PRESETS)}"
        ) from None


class SyntheticSource:
    """A FrameSource over the synthetic world."""

    def __init__(self, name: str, world: SyntheticWorld, *, realtime: bool = True,
                 seconds: float | None = None, start: int = 0) -> None:
        self.name = name
        self.world = world
        self.realtime = realtime
        fps = world.options.fps
        self._end = None if seconds is None else start + round(seconds * fps)
        self._first = self._next = start
        self._period = 1.0 / fps
        self._t0: float | None = None
        self.last_truth: FrameTruth | None = None

    @classmethod
    def from_url(cls, name: str, url: str) -> SyntheticSource:
        u = parse_synthetic_url(url)
        return cls(name, SyntheticWorld(u.world_options()), realtime=u.realtime,
                   seconds=u.seconds, start=u.start)

    def read(self) -> Frame | None:
        if self._end is not None and self._next >= self._end:
            return None
        if self.realtime:
            now = time.monotonic()
            if self._t0 is None:
                self._t0 = now
            due = self._t0 + (self._next - self._first) * self._period
            if due > now:
                time.sleep(due - now)
        rendered, truth = self.world.render(self._next)
        self.last_truth = truth
        frame = Frame(self.name, self._next, time.monotonic(), time.time(), rendered.image)
        self._next += 1
        return frame

    def close(self) -> None:
        self._end = self._next


def open_synthetic(name: str, url: str, *, realtime: bool = True) -> SyntheticSource:
    """The capture registry's opener for `synthetic://`: `realtime=False` plays as fast as
    frames render, whatever the URL says."""
    source = SyntheticSource.from_url(name, url)
    if not realtime:
        source.realtime = False
    return source
