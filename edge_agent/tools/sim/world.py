"""The synthetic fixed-camera world: a seeded timeline of scenes with traffic and ground truth.

Time is cut into segments of `segment_seconds`. A segment is either a fresh scene (parked
objects plus traffic that enters, crosses and leaves), a recurrence of an earlier fresh scene
(the same content again, later in the day: different light and noise), or a near-duplicate of
one (the same plus one small new object). Every frame is a pure function of (options, index),
so frames can be drawn in any order and two runs give the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from edge_agent.tools.sim.catalog import CLASSES, COLOURS, SIZES, SPECS
from edge_agent.tools.sim.options import WorldOptions
from edge_agent.tools.sim.render import Rendered, Renderer, pixels_per_metre
from edge_agent.tools.sim.truth import FrameTruth, ObjectState, SceneInfo

# Where each class may walk or drive: (first row, last row) of the foot line as a share of the
# height, and the direction of travel (+1 right, -1 left, 0 either).
_LANES: dict[str, list[tuple[float, float, int]]] = {
    "person": [(0.455, 0.49, 0), (0.84, 0.97, 0)],
    "dog": [(0.455, 0.49, 0), (0.84, 0.97, 0)],
    "cyclist": [(0.55, 0.58, -1), (0.77, 0.79, 1), (0.86, 0.95, 0)],
    "car": [(0.6, 0.64, -1), (0.71, 0.76, 1)],
    "truck": [(0.6, 0.64, -1), (0.71, 0.76, 1)],
}
_PARK: dict[str, tuple[float, float]] = {
    "person": (0.46, 0.97), "dog": (0.85, 0.97), "cyclist": (0.86, 0.95),
    "car": (0.52, 0.545), "truck": (0.52, 0.545),
}
_MOVER_WEIGHTS = np.array([0.34, 0.28, 0.1, 0.14, 0.14])
_STATIC_WEIGHTS = np.array([0.3, 0.4, 0.1, 0.1, 0.1])
_PRE_ROLL_S = 12.0
_STEP_M = 1.4


@dataclass(frozen=True)
class Track:
    """One object over one segment: a straight path at constant speed, or standing still."""

    local_id: int
    cls: str
    colour: str
    size: str
    variant: int
    t0: float
    t1: float
    x0: float
    y0: float
    vx: float
    vy: float
    speed_m: float = 0.0

    def state(self, tau: float, track_id: int) -> ObjectState | None:
        if not (self.t0 <= tau <= self.t1):
            return None
        dt = tau - self.t0
        moving = self.vx != 0 or self.vy != 0
        return ObjectState(
            track_id=track_id, cls=self.cls, colour=self.colour, size=self.size,
            x=self.x0 + self.vx * dt, foot_y=self.y0 + self.vy * dt,
            facing_left=self.vx < 0 or (not moving and self.variant % 2 == 1),
            moving=moving, phase=(dt * self.speed_m / (_STEP_M * SIZES[self.size])) % 1.0,
            variant=self.variant,
        )


@dataclass(frozen=True)
class SegmentPlan:
    info: SceneInfo
    tracks: tuple[Track, ...]


class SyntheticWorld:
    """Frames and ground truth of one seeded world, addressable by frame index."""

    def __init__(self, options: WorldOptions | None = None) -> None:
        self.options = options or WorldOptions()
        self.renderer = Renderer(self.options)
        self._plan = lru_cache(maxsize=64)(self._make_plan)
        self._kinds: list[tuple[str, int | None]] = []

    @property
    def frames_per_segment(self) -> int:
        return max(1, round(self.options.segment_seconds * self.options.fps))

    def states(self, index: int) -> tuple[SceneInfo, list[ObjectState]]:
        seg, local = divmod(index, self.frames_per_segment)
        plan = self._plan(seg)
        tau = local / self.options.fps
        states = [s for tr in plan.tracks if (s := tr.state(tau, seg * 1000 + tr.local_id))]
        return plan.info, states

    def render(self, index: int) -> tuple[Rendered, FrameTruth]:
        """Frame `index` (BGR uint8) with its label map and ground truth."""
        if index < 0:
            raise ValueError(f"frame index must be >= 0, got {index}")
        info, states = self.states(index)
        t = index / self.options.fps
        out = self.renderer.render(states, t, index)
        truth = FrameTruth(index, t, info, round(self.renderer.light(t), 4), out.objects)
        return out, truth

    def frame(self, index: int) -> np.ndarray:
        return self.render(index)[0].image

    def segment_kind(self, seg: int) -> tuple[str, int | None]:
        """(kind, base segment) of segment `seg`; kinds depend on earlier segments only."""
        o = self.options
        while len(self._kinds) <= seg:
            k = len(self._kinds)
            fresh = [i for i, (kind, _) in enumerate(self._kinds) if kind == "fresh"]
            u = np.random.default_rng([o.seed, 11, k]).random(2)
            if not fresh or u[0] >= o.recurring_fraction + o.near_duplicate_fraction:
                self._kinds.append(("fresh", None))
            else:
                kind = "recurring" if u[0] < o.recurring_fraction else "near_duplicate"
                self._kinds.append((kind, fresh[int(u[1] * len(fresh))]))
        return self._kinds[seg]

    def _make_plan(self, seg: int) -> SegmentPlan:
        kind, base = self.segment_kind(seg)
        if kind == "fresh":
            return SegmentPlan(SceneInfo(seg, f"s{seg}", "fresh"), self._fresh_tracks(seg))
        base_plan = self._plan(base)
        if kind == "recurring":
            return SegmentPlan(SceneInfo(seg, f"s{base}", kind, base), base_plan.tracks)
        extra = self._added_object(seg, len(base_plan.tracks) + 1)
        info = SceneInfo(seg, f"s{base}+{seg}", kind, base, seg * 1000 + extra.local_id)
        return SegmentPlan(info, (*base_plan.tracks, extra))

    def _fresh_tracks(self, seg: int) -> tuple[Track, ...]:
        o = self.options
        r = np.random.default_rng([o.seed, 13, seg])
        length = o.segment_seconds
        tracks: list[Track] = []
        parked: list[tuple[float, float, float]] = []
        for _ in range(int(r.integers(o.static_objects[0], o.static_objects[1] + 1))):
            track = self._static(r, len(tracks) + 1, parked)
            if track is not None:
                tracks.append(track)
        n = r.poisson(o.movers_per_minute * (length + _PRE_ROLL_S) / 60.0)
        for t_enter in np.sort(r.uniform(-_PRE_ROLL_S, length, n)):
            track = self._mover(r, len(tracks) + 1, float(t_enter))
            if track.t1 >= 0:
                tracks.append(track)
        return tuple(tracks)

    def _attributes(self, r: np.random.Generator, weights: np.ndarray):
        cls = CLASSES[int(r.choice(len(CLASSES), p=weights / weights.sum()))]
        colour = list(COLOURS)[int(r.integers(len(COLOURS)))]
        size = list(SIZES)[int(r.choice(3, p=[0.3, 0.45, 0.25]))]
        return cls, colour, size, int(r.integers(0, 1 << 16))

    def _width_px(self, cls: str, size: str, foot_y: float) -> float:
        ppm = pixels_per_metre(foot_y, self.options.height, self.options.zoom)
        return SPECS[cls].width_m * ppm * SIZES[size]

    def _mover(self, r: np.random.Generator, local_id: int, t_enter: float) -> Track:
        o = self.options
        w, h = o.width, o.height
        cls, colour, size, variant = self._attributes(r, _MOVER_WEIGHTS)
        speed_m = float(r.uniform(*SPECS[cls].speed_mps))
        if cls == "person" and r.random() < 0.25:
            # Crossing the street from below the frame to the far sidewalk, growing smaller.
            y_start, y_end = 1.08 * h, 0.455 * h
            ppm_mid = pixels_per_metre(0.75 * h, h, o.zoom)
            duration = (y_start - y_end) / (speed_m * ppm_mid * 0.6)
            x0 = float(r.uniform(0.1, 0.9)) * w
            vx = float(r.uniform(-0.15, 0.15)) * w / duration
            return Track(local_id, cls, colour, size, variant, t_enter, t_enter + duration,
                         x0, y_start, vx, (y_end - y_start) / duration, speed_m)
        lo, hi, direction = _LANES[cls][int(r.integers(len(_LANES[cls])))]
        if direction == 0:
            direction = 1 if r.random() < 0.5 else -1
        y = float(r.uniform(lo, hi)) * h
        half = self._width_px(cls, size, y) / 2 + 2
        speed_px = speed_m * pixels_per_metre(y, h, o.zoom)
        x_start = -half if direction > 0 else w + half
        duration = (w + 2 * half) / speed_px
        return Track(local_id, cls, colour, size, variant, t_enter, t_enter + duration,
                     x_start, y, direction * speed_px, 0.0, speed_m)

    def _static(self, r, local_id: int, parked: list) -> Track | None:
        o = self.options
        cls, colour, size, variant = self._attributes(r, _STATIC_WEIGHTS)
        lo, hi = _PARK[cls]
        for _ in range(20):
            y = float(r.uniform(lo, hi)) * o.height
            half = self._width_px(cls, size, y) / 2
            x = float(r.uniform(half, o.width - half))
            if all(abs(x - px) > half + ph or abs(y - py) > 0.05 * o.height
                   for px, py, ph in parked):
                parked.append((x, y, half))
                return Track(local_id, cls, colour, size, variant,
                             -1.0, o.segment_seconds + 1.0, x, y, 0.0, 0.0)
        return None

    def _added_object(self, seg: int, local_id: int) -> Track:
        """The one small new object of a near-duplicate: a small person, dog or cyclist,
        standing on the near side of the road for the whole segment."""
        o = self.options
        r = np.random.default_rng([o.seed, 17, seg])
        cls = ("person", "dog", "cyclist")[int(r.integers(3))]
        colour = list(COLOURS)[int(r.integers(len(COLOURS)))]
        y = float(r.uniform(0.8, 0.86)) * o.height
        x = float(r.uniform(0.1, 0.9)) * o.width
        return Track(local_id, cls, colour, "small", int(r.integers(0, 1 << 16)),
                     -1.0, o.segment_seconds + 1.0, x, y, 0.0, 0.0)
