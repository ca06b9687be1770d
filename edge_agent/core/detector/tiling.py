"""Tiled inference: the whole frame plus overlapping tiles seen at a finer scale.

Small objects cover a few pixels once a full frame is shrunk to the model's input; each tile is
shrunk less, so they are seen larger. Boxes cut by a tile's inner border are dropped (a
neighbouring tile or the whole-frame pass sees them whole), the rest are moved back into frame
pixels and merged by class-wise NMS. Costs one inference per tile plus one.
"""

from __future__ import annotations

import time

import numpy as np

from edge_agent.core.detector.detections import Detections
from edge_agent.core.detector.detector import Detector, Timings
from edge_agent.core.detector.nms import nms


def tile_grid(width: int, height: int, cols: int, rows: int, overlap: float
              ) -> list[tuple[int, int, int, int]]:
    """(x1, y1, x2, y2) of `cols` x `rows` tiles covering the frame, overlapping by a share."""
    if cols < 1 or rows < 1 or not 0 <= overlap < 1:
        raise ValueError(f"tiles must be at least 1x1 with overlap in [0, 1), got {cols}x{rows} "
                         f"overlap {overlap}")
    tw = width / (cols - (cols - 1) * overlap)
    th = height / (rows - (rows - 1) * overlap)
    out = []
    for r in range(rows):
        for c in range(cols):
            x1, y1 = round(c * tw * (1 - overlap)), round(r * th * (1 - overlap))
            out.append((x1, y1, min(width, round(x1 + tw)), min(height, round(y1 + th))))
    return out


class TiledDetector:
    """Wraps a Detector; called like one."""

    def __init__(self, detector: Detector, cols: int = 2, rows: int = 2, overlap: float = 0.25,
                 margin: float = 0.03, max_share: float = 0.4) -> None:
        self.detector = detector
        self.cols, self.rows, self.overlap = cols, rows, overlap
        self.margin = margin
        """Boxes within this share of a tile's inner border are cut: dropped."""
        self.max_share = max_share
        """Tiles keep only boxes smaller than this share of the tile's height; larger objects
        are the whole-frame pass's to find."""
        self.timings = Timings()

    @property
    def adapter(self):
        return self.detector.adapter

    @property
    def backend(self):
        return self.detector.backend

    @property
    def layout(self) -> str:
        return self.detector.layout

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.detector.class_names

    @property
    def domain(self) -> str | None:
        return self.detector.domain

    def __call__(self, image: np.ndarray) -> Detections:
        start = time.perf_counter()
        h, w = image.shape[:2]
        parts = [self.detector(image)]
        for x1, y1, x2, y2 in tile_grid(w, h, self.cols, self.rows, self.overlap):
            d = self.detector(image[y1:y2, x1:x2])
            b = d.xyxy
            tw, th = x2 - x1, y2 - y1
            mx, my = self.margin * tw, self.margin * th
            cut = (b[:, 3] - b[:, 1]) > self.max_share * th
            if x1 > 0:
                cut |= b[:, 0] <= mx
            if y1 > 0:
                cut |= b[:, 1] <= my
            if x2 < w:
                cut |= b[:, 2] >= tw - mx
            if y2 < h:
                cut |= b[:, 3] >= th - my
            d = d[~cut]
            parts.append(Detections(d.xyxy + np.array([x1, y1, x1, y1], np.float32), d.score,
                                    d.class_id, d.class_names))
        xyxy = np.concatenate([p.xyxy for p in parts])
        score = np.concatenate([p.score for p in parts])
        cls = np.concatenate([p.class_id for p in parts])
        opts = self.detector.adapter.options
        keep = nms(xyxy, score, cls, opts.nms_iou, opts.max_detections)
        self.timings = Timings(infer=(time.perf_counter() - start) * 1e3)
        return Detections(xyxy[keep], score[keep], cls[keep], parts[0].class_names)
