"""Ground truth of the synthetic world: object states in, per-frame truth out (JSON lines)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from edge_agent.tools.sim.catalog import CLASSES

Box = tuple[int, int, int, int]
"""Pixel-edge box x1, y1, x2, y2 (x2, y2 exclusive): width is x2 - x1."""


@dataclass(frozen=True)
class ObjectState:
    """Where one object is at one instant: what the world hands the renderer."""

    track_id: int
    cls: str
    colour: str
    size: str
    x: float
    """Centre of the object's foot line, pixels."""
    foot_y: float
    """Row where the object touches the ground; sets its depth and its scale."""
    facing_left: bool
    moving: bool
    phase: float = 0.0
    variant: int = 0


@dataclass(frozen=True)
class ObjectTruth:
    track_id: int
    cls: str
    colour: str
    size: str
    state: str
    facing: str
    box: Box | None
    """Tight box of the visible pixels; None when the object is fully hidden."""
    full_box: Box
    """Tight box of the whole object as drawn, ignoring occlusion (may leave the frame)."""
    visible_px: int
    occlusion: float
    """Share of the object's in-frame pixels hidden by nearer objects or scenery."""
    truncation: float
    """Share of the object's pixels outside the frame."""
    score: float | None = None
    """A pseudo-label's confidence (the teacher's); None for exact ground truth."""
    ignore: bool = False
    """An uncertain pseudo-label: a region neither to learn nor to score, not a negative."""
    label_id: int | None = None
    """The class's index in the label set of its clip, when that is not the synthetic world's
    (pseudo-labels use COCO names)."""

    @property
    def class_id(self) -> int:
        return self.label_id if self.label_id is not None else CLASSES.index(self.cls)

    def to_json(self) -> dict[str, Any]:
        return {
            "track_id": self.track_id,
            "class": self.cls,
            "class_id": self.class_id,
            "attributes": {
                "colour": self.colour, "size": self.size, "state": self.state,
                "facing": self.facing,
            },
            "box": list(self.box) if self.box else None,
            "full_box": list(self.full_box),
            "visible_px": self.visible_px,
            "occlusion": self.occlusion,
            "truncation": self.truncation,
            **({"score": self.score} if self.score is not None else {}),
            **({"ignore": True} if self.ignore else {}),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ObjectTruth:
        a = d["attributes"]
        return cls(
            track_id=d["track_id"], cls=d["class"], colour=a["colour"], size=a["size"],
            state=a["state"], facing=a["facing"],
            box=tuple(d["box"]) if d["box"] else None, full_box=tuple(d["full_box"]),
            visible_px=d["visible_px"], occlusion=d["occlusion"], truncation=d["truncation"],
            score=d.get("score"), ignore=bool(d.get("ignore", False)),
            label_id=_label_id(d["class"], d.get("class_id")),
        )


def _label_id(cls: str, class_id: int | None) -> int | None:
    """The stored class id when it is not the synthetic world's id of that name (a label set
    of its own, such as COCO's)."""
    if cls in CLASSES and class_id in (None, CLASSES.index(cls)):
        return None
    return class_id


@dataclass(frozen=True)
class SceneInfo:
    """Which scene a frame belongs to. Frames of segments with equal scene_id show the same
    content at the same local time; a near-duplicate adds one small object to its base."""

    segment: int
    scene_id: str
    kind: str  # "fresh" | "recurring" | "near_duplicate"
    base_segment: int | None = None
    added_track_id: int | None = None


@dataclass(frozen=True)
class FrameTruth:
    frame: int
    t: float
    scene: SceneInfo
    light: float
    objects: tuple[ObjectTruth, ...]

    def visible(self) -> tuple[ObjectTruth, ...]:
        return tuple(o for o in self.objects if o.box is not None)

    def to_json(self) -> dict[str, Any]:
        s = self.scene
        return {
            "frame": self.frame,
            "t": self.t,
            "scene": {
                "segment": s.segment, "scene_id": s.scene_id, "kind": s.kind,
                "base_segment": s.base_segment, "added_track_id": s.added_track_id,
            },
            "light": self.light,
            "objects": [o.to_json() for o in self.objects],
        }

    def to_line(self) -> str:
        return json.dumps(self.to_json(), separators=(",", ":"))

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FrameTruth:
        return cls(
            frame=d["frame"], t=d["t"], scene=SceneInfo(**d["scene"]), light=d["light"],
            objects=tuple(ObjectTruth.from_json(o) for o in d["objects"]),
        )
