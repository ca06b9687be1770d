"""A small ByteTrack-style tracker: stable ids from IoU matching in two passes.

High-score detections are matched to predicted track boxes first; low-score ones may then keep
an existing track alive (a partly hidden car dips in score) but never start one. A track is
confirmed after `min_hits` matches and ends after `max_age` frames unseen. Matching is greedy by
buffered IoU (boxes widened first) within a class, on a vectorised IoU matrix, against boxes
moved by each track's velocity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge_agent.core.detector.detections import Detections
from edge_agent.core.detector.nms import iou_matrix, widen


@dataclass
class Track:
    track_id: int
    class_id: int
    box: np.ndarray
    score: float
    first_frame: int
    last_frame: int
    hits: int = 1
    confirmed: bool = False
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2, np.float32))
    """Centre velocity, pixels per frame (the box's shape changes with occlusion; its centre
    moves more steadily)."""
    best_score: float = 0.0

    def predicted(self, frame: int) -> np.ndarray:
        return self.box + np.tile(self.velocity, 2) * (frame - self.last_frame)


@dataclass(frozen=True)
class TrackUpdate:
    detections: Detections
    """This frame's detections that belong to a track, with `track_id` set."""
    all: Detections
    """Every detection of the frame, in input order; `track_id` -1 where none matched."""
    started: tuple[Track, ...]
    """Tracks confirmed on this frame."""
    ended: tuple[Track, ...]
    """Confirmed tracks that ended on this frame (unseen for max_age frames)."""


class Tracker:
    def __init__(self, high: float = 0.5, low: float = 0.15, match_iou: float = 0.3,
                 min_hits: int = 2, max_age: int = 30, buffer: float = 0.5,
                 first_id: int = 1) -> None:
        if not 0 <= low <= high <= 1:
            raise ValueError(f"need 0 <= low <= high <= 1, got low {low}, high {high}")
        self.high, self.low, self.match_iou = high, low, match_iou
        self.min_hits, self.max_age = min_hits, max_age
        self.buffer = buffer
        """Boxes are widened by this share of their size on each side before matching, so a
        small, fast object still overlaps its last box (buffered IoU)."""
        self.tracks: list[Track] = []
        self._next_id = first_id

    def update(self, dets: Detections, frame: int) -> TrackUpdate:
        ids = np.full(len(dets), -1, np.int64)
        started: list[Track] = []
        unmatched = list(range(len(self.tracks)))
        for pass_mask in (dets.score >= self.high,
                          (dets.score >= self.low) & (dets.score < self.high)):
            cand = np.nonzero(pass_mask)[0]
            pairs = self._match([self.tracks[i] for i in unmatched], dets, cand, frame)
            taken = set()
            for ti, di in pairs:
                track = self.tracks[unmatched[ti]]
                self._follow(track, dets, di, frame)
                ids[di] = track.track_id
                taken.add(ti)
                if not track.confirmed and track.hits >= self.min_hits:
                    track.confirmed = True
                    started.append(track)
            unmatched = [t for k, t in enumerate(unmatched) if k not in taken]
        for di in np.nonzero((dets.score >= self.high) & (ids < 0))[0]:
            track = Track(self._next_id, int(dets.class_id[di]), dets.xyxy[di].copy(),
                          float(dets.score[di]), frame, frame, best_score=float(dets.score[di]))
            self._next_id += 1
            if self.min_hits <= 1:
                track.confirmed = True
                started.append(track)
            self.tracks.append(track)
            ids[di] = track.track_id
        ended = [t for t in self.tracks if frame - t.last_frame > self.max_age]
        self.tracks = [t for t in self.tracks if frame - t.last_frame <= self.max_age]
        keep = ids >= 0
        kept = dets[keep]
        tracked = Detections(kept.xyxy, kept.score, kept.class_id, kept.class_names, ids[keep])
        every = Detections(dets.xyxy, dets.score, dets.class_id, dets.class_names, ids)
        return TrackUpdate(tracked, every, tuple(started), tuple(t for t in ended if t.confirmed))

    def _match(self, tracks: list[Track], dets: Detections, cand: np.ndarray,
               frame: int) -> list[tuple[int, int]]:
        if not tracks or not len(cand):
            return []
        boxes = np.stack([t.box for t in tracks])
        moved = np.stack([t.velocity for t in tracks]) * np.array(
            [frame - t.last_frame for t in tracks], np.float32)[:, None]
        predicted = boxes + np.concatenate([moved, moved], axis=1)
        iou = iou_matrix(widen(predicted, self.buffer), widen(dets.xyxy[cand],
                                                                      self.buffer))
        same = np.array([t.class_id for t in tracks])[:, None] == dets.class_id[cand][None, :]
        iou = np.where(same, iou, 0.0)
        pairs = []
        while True:
            ti, dj = np.unravel_index(np.argmax(iou), iou.shape)
            if iou[ti, dj] < self.match_iou:
                return pairs
            pairs.append((int(ti), int(cand[dj])))
            iou[ti, :] = 0.0
            iou[:, dj] = 0.0

    @staticmethod
    def _follow(track: Track, dets: Detections, di: int, frame: int) -> None:
        box = dets.xyxy[di]
        gap = max(1, frame - track.last_frame)
        moved = ((box[:2] + box[2:]) - (track.box[:2] + track.box[2:])) / 2
        track.velocity = 0.5 * track.velocity + 0.5 * moved / gap
        track.box = box.copy()
        track.score = float(dets.score[di])
        track.best_score = max(track.best_score, track.score)
        track.last_frame = frame
        track.hits += 1
