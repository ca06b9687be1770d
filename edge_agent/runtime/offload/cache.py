"""The edge's cache of cloud answers, keyed by what the keyframes look like.

A window's fingerprint is, per keyframe, a 64-bit difference hash (dHash) for a fast near
match and a 64x36 colour thumbnail to verify it. An entry is reused when every keyframe's
hash is within `hamming_radius` bits of the entry's, no 2x2 block of the thumbnails (20x20
pixels of a 640x360 frame) differs by more than `block_threshold` levels on average in any
colour channel (after each channel is matched in mean and spread, so the light of the day does
not matter but one small new object does, even one as dark as the road it stands on), the entry is
younger than its TTL, and the edge's own detections agree: with the cached answer (every
confident edge detection has a same-class cloud box over it), and with the edge's detections
when the answer was stored, at the same places in the window (the edge signature: the same
scene gives the same edge boxes; an object that moved, left or came in does not). An entry
whose answer the edge contradicts is dropped (invalidated), and the window goes to the cloud.
LRU beyond `max_entries`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from edge_agent.core.detector.detections import Detections
from edge_agent.core.detector.nms import iou_matrix

THUMB = (64, 36)
BLOCK = 2


@dataclass(frozen=True)
class Fingerprint:
    hashes: np.ndarray
    """(k,) uint64 dHash per keyframe."""
    thumbs: np.ndarray
    """(k, 36, 64, 3) uint8 colour thumbnails."""


def fingerprint_frames(indices: list[int]) -> list[int]:
    """The frames of a window a fingerprint looks at: first, middle and last. Fixed positions,
    not the keyframes (which follow the edge's uncertainty and differ between two passes of
    the same scene), so a recurring scene gives the same fingerprint."""
    if len(indices) <= 3:
        return list(indices)
    return [indices[0], indices[len(indices) // 2], indices[-1]]


def fingerprint(images: list[np.ndarray]) -> Fingerprint:
    hashes, thumbs = [], []
    for img in images:
        grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
        bits = (small[:, 1:] > small[:, :-1]).flatten()
        hashes.append(int(np.packbits(bits).view(">u8")[0]))
        thumbs.append(cv2.resize(img, THUMB, interpolation=cv2.INTER_AREA))
    return Fingerprint(np.array(hashes, np.uint64), np.stack(thumbs))


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x = np.bitwise_xor(a, b)
    return np.unpackbits(x.view(np.uint8).reshape(len(x), 8), axis=1).sum(axis=1)


def block_difference(a: np.ndarray, b: np.ndarray, block: int = BLOCK) -> float:
    """Largest mean absolute difference over block x block cells and channels, after matching
    each channel of `b` to `a` in mean and spread (global brightness, contrast and colour cast:
    the light of the day changes them, a new object does not)."""
    fa, fb = a.astype(np.float32), b.astype(np.float32)
    ma, mb = fa.reshape(-1, 3).mean(axis=0), fb.reshape(-1, 3).mean(axis=0)
    sa, sb = fa.reshape(-1, 3).std(axis=0), fb.reshape(-1, 3).std(axis=0)
    d = np.abs(fa - ((fb - mb) * (sa / np.maximum(sb, 1e-3)) + ma))
    h, w = d.shape[:2]
    hb, wb = h // block * block, w // block * block
    cells = d[:hb, :wb].reshape(hb // block, block, wb // block, block, -1).mean(axis=(1, 3))
    return float(cells.max())


def agrees(edge: Detections, cloud: Detections, min_score: float = 0.6,
           iou: float = 0.4) -> bool:
    """Every confident edge detection has a same-class cloud box over it."""
    sure = edge[edge.score >= min_score]
    if not len(sure):
        return True
    if not len(cloud):
        return False
    m = iou_matrix(sure.xyxy, cloud.xyxy)
    same = sure.class_id[:, None] == cloud.class_id[None, :]
    return bool(((m >= iou) & same).any(axis=1).all())


def agreement(a: Detections, b: Detections, score: float = 0.5, slack: float = 0.3,
              iou: float = 0.5) -> float:
    """F1 of two sets of detections: the share of each one's detections (score >= `score`)
    that the other has too (same class, IoU >= `iou`, score >= `slack`, so a box at 0.48 in
    one and 0.52 in the other is the same), over both. 1.0 when neither has any."""
    found, total = agreement_counts(a, b, score, slack, iou)
    return found / total if total else 1.0


def agreement_counts(a: Detections, b: Detections, score: float = 0.5, slack: float = 0.3,
                     iou: float = 0.5) -> tuple[int, int]:
    """`agreement` as (detections found in the other, detections), to pool over frames."""
    sa, sb = a[a.score >= score], b[b.score >= score]

    def found(x: Detections, y: Detections) -> int:
        y = y[y.score >= slack]
        if not len(x) or not len(y):
            return 0
        m = iou_matrix(x.xyxy, y.xyxy) * (x.class_id[:, None] == y.class_id[None, :])
        return int((m >= iou).any(axis=1).sum())

    return found(sa, b) + found(sb, a), len(sa) + len(sb)


@dataclass
class Entry:
    fp: Fingerprint
    answer: Any
    """What the cloud said (the response frames, as the client keeps them)."""
    cloud_last: Detections
    """The cloud's detections on the last keyframe, to check the edge against."""
    created: float
    last_offset: int = -1
    """Where in its window that keyframe was (-1: the window's last frame)."""
    hits: int = 0
    meta: dict = field(default_factory=dict)
    edge: dict[int, Detections] = field(default_factory=dict)
    """The edge's detections at the fingerprint's places in the window, when stored."""


@dataclass
class CacheStats:
    lookups: int = 0
    hits: int = 0
    misses: int = 0
    invalidated: int = 0
    expired: int = 0
    evicted: int = 0


class EdgeCache:
    def __init__(self, max_entries: int = 512, ttl_s: float = 3600.0, hamming_radius: int = 6,
                 block_threshold: float = 6.0, edge_agreement: float = 1.0,
                 clock=time.monotonic) -> None:
        self.max_entries, self.ttl_s = max_entries, ttl_s
        self.radius, self.block_threshold = hamming_radius, block_threshold
        self.edge_agreement = edge_agreement
        self.clock = clock
        self.entries: OrderedDict[int, Entry] = OrderedDict()
        self._next = 0
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self.entries)

    def lookup(self, fp: Fingerprint, edge_last: Detections | Callable[[int], Detections]
               ) -> Entry | None:
        """The entry to reuse for this window, or None (then ask the cloud). `edge_last` is
        the edge's detections to check against the entry's answer, or a function giving them
        for a position in the window (the entry's last keyframe's)."""
        self.stats.lookups += 1
        now = self.clock()
        for key in [k for k, e in self.entries.items() if now - e.created > self.ttl_s]:
            del self.entries[key]
            self.stats.expired += 1
        for key, entry in reversed(self.entries.items()):
            if len(entry.fp.hashes) != len(fp.hashes):
                continue
            if hamming(entry.fp.hashes, fp.hashes).max() > self.radius:
                continue
            if max(block_difference(a, b) for a, b in zip(entry.fp.thumbs, fp.thumbs,
                                                            strict=True)) \
                    > self.block_threshold:
                continue
            edge = edge_last(entry.last_offset) if callable(edge_last) else edge_last
            if not agrees(edge, entry.cloud_last) or (callable(edge_last) and any(
                    agreement(edge_last(off), then) < self.edge_agreement
                    for off, then in entry.edge.items())):
                del self.entries[key]
                self.stats.invalidated += 1
                break
            self.entries.move_to_end(key)
            entry.hits += 1
            self.stats.hits += 1
            return entry
        self.stats.misses += 1
        return None

    def put(self, fp: Fingerprint, answer: Any, cloud_last: Detections,
            last_offset: int = -1, edge: dict[int, Detections] | None = None,
            **meta: Any) -> None:
        """`edge`: the edge's detections at the fingerprint's places in the window (offsets),
        checked against the edge's at the same places on every lookup."""
        self.entries[self._next] = Entry(fp, answer, cloud_last, self.clock(), last_offset,
                                         meta=dict(meta), edge=dict(edge or {}))
        self._next += 1
        while len(self.entries) > self.max_entries:
            self.entries.popitem(last=False)
            self.stats.evicted += 1
