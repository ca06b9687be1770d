"""One or more detectors over several views of a frame, fused by weighted box fusion.

The views are the whole frame, its mirror image and overlapping tiles (each seen at a finer
scale, for small and far objects). A tile's boxes cut by its inner borders are parts of
objects and are dropped. Every detector's boxes of every view are fused with weighted box
fusion (`ensemble-boxes`); each fused box is then scored by how the views that could see it
agree: the mean, over the views that contain the whole box, of the best same-class score there
(0 where a view missed it): a tile that holds only part of a box does not count against it.

The cloud worker runs this as its full model for real cameras (`model.merge: wbf`), and the
teacher that labels real clips for training runs the same code: one recipe.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edge_agent.core.detector.detections import Detections
from edge_agent.core.detector.detector import Timings
from edge_agent.core.detector.nms import iou_matrix
from edge_agent.core.detector.tiling import tile_grid
from edge_agent.core.errors import ConfigError


@dataclass(frozen=True)
class View:
    box: tuple[int, int, int, int]
    """The part of the frame it sees (x1, y1, x2, y2)."""
    flip: bool
    weight: float


@dataclass(frozen=True)
class EnsembleSettings:
    flip: bool = True
    """Also run each detector on the whole frame mirrored."""
    tiles: tuple[int, int] | None = None
    """(cols, rows) of overlapping tiles; None: `tile_px` decides (2 to 4 columns, 2 to 3
    rows by default, see `max_grid`); (0, 0): no tiles."""
    tile_px: int = 220
    """Without `tiles`: tiles of about this many frame pixels a side."""
    tile_overlap: float = 0.25
    more_tile_px: tuple[int, ...] = ()
    """Further tile grids at these sizes (more scales), each chosen as `tile_px` is."""
    flip_tiles: bool = False
    """Also run on every tile mirrored."""
    max_grid: tuple[int, int] = (4, 3)
    """The most columns and rows a `tile_px` grid may have."""
    floor: float = 0.05
    """Detections below this score are not fused."""
    fuse_iou: float = 0.55
    whole_weight: float = 2.0
    """Weight of the whole-frame views against a tile's (1)."""
    min_side: int = 6
    """Fused boxes with a side below this (frame pixels) are dropped."""
    min_score: float = 0.0
    """Fused boxes whose agreement is below this are dropped."""
    groups: tuple[tuple[str, ...], ...] = ()
    """Classes judged together (e.g. car, truck, bus): a box's agreement counts any class of
    its group, so views that split their votes between car and truck still agree that a
    vehicle is there; of the group's boxes on one object, the class most supported stays."""


def require_wbf():
    try:
        from ensemble_boxes import weighted_boxes_fusion
    except ImportError:
        raise ConfigError("weighted box fusion needs the ensemble-boxes package: "
                          "pip install 'osprey[cloud]' (or pip install ensemble-boxes)") from None
    return weighted_boxes_fusion


class EnsembleDetector:
    """Called like a Detector: image (BGR) -> fused Detections, score = the views' agreement."""

    def __init__(self, detectors: Sequence, settings: EnsembleSettings = EnsembleSettings()
                 ) -> None:
        if not detectors:
            raise ConfigError("an ensemble needs at least one detector")
        self.detectors = list(detectors)
        self.s = settings
        self._fuse = require_wbf()
        names: list[str] = []
        for d in self.detectors:
            names += [n for n in d.class_names if n not in names]
        self._names = tuple(names)
        self._maps = [np.array([names.index(n) for n in d.class_names], np.int64)
                      for d in self.detectors]
        self._group = np.arange(len(names))
        for members in settings.groups:
            ids = [names.index(n) for n in members if n in names]
            if ids:
                self._group[ids] = ids[0]
        self.timings = Timings()

    @property
    def adapter(self):
        return self.detectors[0].adapter

    @property
    def backend(self):
        return self.detectors[0].backend

    @property
    def layout(self) -> str:
        return self.detectors[0].layout

    @property
    def domain(self) -> str | None:
        return self.detectors[0].domain

    @property
    def class_names(self) -> tuple[str, ...]:
        return self._names

    def views(self, width: int, height: int) -> list[View]:
        whole = (0, 0, width, height)
        out = [View(whole, False, self.s.whole_weight)]
        if self.s.flip:
            out.append(View(whole, True, self.s.whole_weight))
        grids = []
        if self.s.tiles is None:
            for px in (self.s.tile_px, *self.s.more_tile_px):
                grids.append((max(2, min(self.s.max_grid[0], round(width / px))),
                              max(2, min(self.s.max_grid[1], round(height / px)))))
        else:
            grids.append(self.s.tiles)
        for cols, rows in dict.fromkeys(grids):
            if cols and rows and (cols, rows) != (1, 1):
                for b in tile_grid(width, height, cols, rows, self.s.tile_overlap):
                    out.append(View(b, False, 1.0))
                    if self.s.flip_tiles:
                        out.append(View(b, True, 1.0))
        return out

    def run_view(self, image: np.ndarray, view: View, k: int = 0) -> Detections:
        """Detector `k` on one view, boxes in frame pixels, class ids in `class_names`."""
        x1, y1, x2, y2 = view.box
        crop = image[y1:y2, x1:x2]
        if view.flip:
            crop = crop[:, ::-1]
        dets = self.detectors[k](np.ascontiguousarray(crop))
        keep = dets.score >= self.s.floor
        xyxy = dets.xyxy.copy()
        if view.flip:
            w = x2 - x1
            xyxy[:, [0, 2]] = w - xyxy[:, [2, 0]]
        h, w = image.shape[:2]
        if (x2 - x1, y2 - y1) != (w, h):
            # A tile: boxes cut by its inner borders are parts of objects, which the whole
            # frame or a neighbouring tile sees whole.
            m = 0.02 * max(x2 - x1, y2 - y1)
            keep &= ~(((xyxy[:, 0] <= m) & (x1 > 0)) | ((xyxy[:, 1] <= m) & (y1 > 0))
                      | ((xyxy[:, 2] >= x2 - x1 - m) & (x2 < w))
                      | ((xyxy[:, 3] >= y2 - y1 - m) & (y2 < h)))
        xyxy += np.array([x1, y1, x1, y1], np.float32)
        return Detections(xyxy[keep], dets.score[keep], self._maps[k][dets.class_id[keep]],
                          self._names)

    def run_views(self, image: np.ndarray) -> tuple[list[View], list[Detections]]:
        """Every detector on every view: (views, detections), one pair per run."""
        h, w = image.shape[:2]
        views, out = [], []
        for k in range(len(self.detectors)):
            for v in self.views(w, h):
                views.append(v)
                out.append(self.run_view(image, v, k))
        return views, out

    def fuse(self, views: list[View], per_view: list[Detections], width: int, height: int
             ) -> Detections:
        """Weighted box fusion of the runs, scored by agreement (see the module)."""
        scale = np.array([width, height, width, height], np.float32)
        fused, _, labels = self._fuse(
            [np.clip(d.xyxy / scale, 0, 1).tolist() for d in per_view],
            [d.score.tolist() for d in per_view], [d.class_id.tolist() for d in per_view],
            weights=[v.weight for v in views], iou_thr=self.s.fuse_iou,
            skip_box_thr=self.s.floor, conf_type="max")
        xyxy = np.asarray(fused, np.float32).reshape(-1, 4) * scale
        cls = np.asarray(labels, np.int64).reshape(-1)
        score = agreement(xyxy, cls, views, per_view)
        if self.s.groups and len(xyxy):
            grouped = agreement(xyxy, cls, views, per_view, self._group)
            drop = np.zeros(len(xyxy), bool)
            iou = iou_matrix(xyxy, xyxy)
            same = (self._group[cls][:, None] == self._group[cls][None, :]) & \
                (iou >= self.s.fuse_iou)
            for i in np.argsort(-score, kind="stable"):  # the best-supported class first
                if drop[i]:
                    continue
                others = same[i].copy()
                others[i] = False
                drop |= others & (score <= score[i])
            score = np.where(drop, 0.0, grouped).astype(np.float32)
        sides = np.minimum(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1])
        keep = (score > 0) & (score >= self.s.min_score) & (sides >= self.s.min_side)
        order = np.argsort(-score[keep], kind="stable")
        return Detections(xyxy[keep][order], score[keep][order].astype(np.float32),
                          cls[keep][order], self._names)

    def __call__(self, image: np.ndarray) -> Detections:
        start = time.perf_counter()
        views, per_view = self.run_views(image)
        out = self.fuse(views, per_view, image.shape[1], image.shape[0])
        self.timings = Timings(infer=(time.perf_counter() - start) * 1e3)
        return out


def agreement(xyxy: np.ndarray, cls: np.ndarray, views: list[View],
              per_view: list[Detections], group: np.ndarray | None = None) -> np.ndarray:
    """Per fused box: the weighted mean, over the views that contain the whole box, of the
    best same-class score there (IoU >= 0.5; 0 where the view missed it). `group`: class id
    -> group id; then any class of the box's group counts."""
    if not len(xyxy):
        return np.zeros(0, np.float32)
    total = np.zeros(len(xyxy), np.float64)
    weight = np.zeros(len(xyxy), np.float64)
    for v, d in zip(views, per_view, strict=True):
        x1, y1, x2, y2 = v.box
        tol = 0.02 * max(x2 - x1, y2 - y1)
        covers = ((xyxy[:, 0] >= x1 - tol) & (xyxy[:, 1] >= y1 - tol)
                  & (xyxy[:, 2] <= x2 + tol) & (xyxy[:, 3] <= y2 + tol))
        best = np.zeros(len(xyxy))
        if len(d):
            a, b = (cls, d.class_id) if group is None else (group[cls], group[d.class_id])
            iou = iou_matrix(xyxy, d.xyxy) * (a[:, None] == b[None, :])
            best = np.where(iou >= 0.5, d.score[None, :], 0).max(axis=1)
        total += np.where(covers, v.weight * best, 0)
        weight += np.where(covers, v.weight, 0)
    return (total / np.maximum(weight, 1e-9)).astype(np.float32)
