"""Track lifecycle events (`new`, `update`, `end`) and the snapshot JPEG of each event.

An event opens when the tracker confirms a track and closes when the track ends (or the agent
stops). While it is open, an `update` goes out when the track's best score has risen by
`min_score_gain` since the last message, at most once per `update_interval_s`: the best frame
so far is then the new snapshot. Snapshots are JPEGs of the whole frame with the event's box
drawn, resized to fit `snapshot_max_side`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from edge_agent.runtime.capture.frame import Frame
from edge_agent.runtime.config import EventsConfig
from edge_agent.runtime.mqtt.payloads import SCHEMA_VERSION
from edge_agent.runtime.tracker import Track, TrackUpdate

EventType = Literal["new", "update", "end"]


@dataclass
class OpenEvent:
    event_id: str
    track_id: int
    class_id: int
    label: str
    start_time: float
    score: float
    top_score: float
    box: np.ndarray
    frame: int
    sent_score: float
    """top_score when the last message went out."""
    sent_at: float
    """time.monotonic() of the last message."""
    snapshot: bool = False
    verified: bool = False


@dataclass(frozen=True)
class Snapshot:
    """What a snapshot is drawn from; encoded by `jpeg()` (off the detection thread)."""

    image: np.ndarray
    box: np.ndarray
    text: str
    max_side: int
    quality: int

    def jpeg(self) -> bytes:
        return snapshot_jpeg(self.image, self.box, self.text, self.max_side, self.quality)


@dataclass(frozen=True)
class EventOutput:
    payload: dict[str, Any]
    snapshot: Snapshot | None = None
    """For the camera's retained snapshot topic, when this event made a new one."""


@dataclass
class EventCounts:
    new: int = 0
    update: int = 0
    end: int = 0
    snapshots: int = 0


class EventTracker:
    def __init__(self, device: str, camera: str, config: EventsConfig,
                 class_names: tuple[str, ...]) -> None:
        self.device, self.camera, self.config = device, camera, config
        self.class_names = class_names
        self.open: dict[int, OpenEvent] = {}
        self.counts = EventCounts()

    def update(self, upd: TrackUpdate, frame: Frame) -> list[EventOutput]:
        now = time.monotonic()
        out: list[EventOutput] = []
        started = {t.track_id: t for t in upd.started}
        ids = upd.detections.track_id if upd.detections.track_id is not None else []
        for i, tid in enumerate(int(t) for t in ids):
            score = float(upd.detections.score[i])
            box = upd.detections.xyxy[i]
            if tid in started:
                ev = self._open(started[tid], frame, score, box, now)
                out.append(self._emit("new", ev, frame, now))
                continue
            ev = self.open.get(tid)
            if ev is None:
                continue  # not confirmed yet
            ev.score, ev.box, ev.frame = score, box.copy(), frame.index
            ev.top_score = max(ev.top_score, score)
            # An update goes out on a frame that is the track's best so far, so that frame is
            # the new snapshot.
            gained = ev.top_score >= ev.sent_score + self.config.min_score_gain
            due = now - ev.sent_at >= self.config.update_interval_s
            if gained and due and score >= ev.top_score:
                out.append(self._emit("update", ev, frame, now))
        for track in upd.ended:
            ev = self.open.pop(track.track_id, None)
            if ev is not None:
                out.append(self._emit("end", ev, None, now, end_time=time.time()))
        return out

    def verify(self, track_id: int, class_id: int) -> EventOutput | None:
        """The cloud confirmed (or corrected) a track's class: an `update` with `verified`
        true, when the track has an open event and this changes something."""
        ev = self.open.get(track_id)
        if ev is None:
            return None
        label = (self.class_names[class_id] if class_id < len(self.class_names)
                 else f"class_{class_id}")
        if ev.verified and ev.class_id == class_id:
            return None
        ev.verified, ev.class_id, ev.label = True, class_id, label
        return self._emit("update", ev, None, time.monotonic())

    def close_all(self) -> list[EventOutput]:
        """`end` for every open event (the agent is stopping)."""
        now, wall = time.monotonic(), time.time()
        out = [self._emit("end", ev, None, now, end_time=wall) for ev in self.open.values()]
        self.open.clear()
        return out

    def _open(self, track: Track, frame: Frame, score: float, box: np.ndarray,
              now: float) -> OpenEvent:
        label = (self.class_names[track.class_id] if track.class_id < len(self.class_names)
                 else f"class_{track.class_id}")
        ev = OpenEvent(
            event_id=f"{self.camera}-{int(frame.wall_time * 1000)}-{track.track_id}",
            track_id=track.track_id, class_id=track.class_id, label=label,
            start_time=frame.wall_time, score=score, top_score=max(score, track.best_score),
            box=box.copy(), frame=frame.index, sent_score=0.0, sent_at=now)
        self.open[track.track_id] = ev
        return ev

    def _emit(self, kind: EventType, ev: OpenEvent, frame: Frame | None, now: float,
              end_time: float | None = None) -> EventOutput:
        snap = None
        if frame is not None and self.config.snapshots:
            snap = Snapshot(frame.image, ev.box.copy(), f"{ev.label} {ev.score:.2f}",
                            self.config.snapshot_max_side, self.config.snapshot_quality)
            ev.snapshot = True
            self.counts.snapshots += 1
        if kind != "end":
            ev.sent_score, ev.sent_at = ev.top_score, now
        setattr(self.counts, kind, getattr(self.counts, kind) + 1)
        payload = {
            "v": SCHEMA_VERSION, "type": kind, "device": self.device, "camera": self.camera,
            "event_id": ev.event_id, "track_id": ev.track_id, "label": ev.label,
            "class_id": ev.class_id, "score": round(ev.score, 4),
            "top_score": round(ev.top_score, 4),
            "box": [round(float(v), 1) for v in ev.box], "frame": ev.frame,
            "start_time": round(ev.start_time, 3),
            "end_time": None if end_time is None else round(end_time, 3),
            "snapshot": ev.snapshot, "verified": ev.verified,
        }
        return EventOutput(payload, snap)


def snapshot_jpeg(image: np.ndarray, box: np.ndarray, text: str, max_side: int,
                  quality: int) -> bytes:
    """The frame with one box and its label drawn, fitted to `max_side`, as JPEG bytes."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    img = cv2.resize(image, (round(w * scale), round(h * scale)),
                     interpolation=cv2.INTER_AREA) if scale < 1.0 else image.copy()
    x1, y1, x2, y2 = (round(float(v) * scale) for v in box)
    cv2.rectangle(img, (x1, y1), (x2, y2), (0, 255, 255), 2)
    cv2.putText(img, text, (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                (0, 255, 255), 1, cv2.LINE_AA)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for an image of shape {img.shape}")
    return buf.tobytes()
