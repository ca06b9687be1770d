"""COCO-style mAP of a detector on a synthetic-world clip and its ground truth (pycocotools).

Ground truth: every visible object of the clip. Objects with fewer than MIN_VISIBLE_PX visible
pixels or more than MAX_OCCLUSION hidden are marked `iscrowd` (ignored): a detection on them is
neither a hit nor a false alarm, and missing them costs nothing. Detections are matched to the
world's classes by label; labels the world does not have are dropped.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from edge_agent.core.detector.detections import Detections
from edge_agent.core.errors import OspreyError
from edge_agent.tools.sim.catalog import CLASSES
from edge_agent.tools.sim.clip import META_FILE, TRUTH_FILE, read_truth
from edge_agent.tools.sim.truth import FrameTruth

MIN_VISIBLE_PX = 30
MAX_OCCLUSION = 0.8
SIZES = ("small", "medium", "large")
CLIP_ID_SPAN = 10_000_000
"""Frame ids of the k-th pooled clip start at k * CLIP_ID_SPAN."""


@dataclass
class EvalResult:
    map50: float
    map50_95: float
    per_class: dict[str, dict[str, float]]
    per_size: dict[str, dict[str, float]]
    frames: int
    objects: int
    ignored: int
    detections: int

    def to_json(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        lines = [f"frames {self.frames}, objects {self.objects} (+{self.ignored} ignored), "
                 f"detections {self.detections}",
                 f"{'':12s} {'mAP@0.5':>8s} {'mAP@.5:.95':>10s}",
                 f"{'all':12s} {self.map50:8.3f} {self.map50_95:10.3f}"]
        for group in (self.per_class, self.per_size):
            for name, v in group.items():
                lines.append(f"{name:12s} {v['map50']:8.3f} {v['map50_95']:10.3f}")
        return "\n".join(lines)


def _require_pycocotools():
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise OspreyError("edge-agent eval needs pycocotools: pip install 'osprey[tools]'") \
            from None
    return COCO, COCOeval


def ground_truth(truths: list[FrameTruth]) -> tuple[list[dict], int, int]:
    anns, real, ignored = [], 0, 0
    for t in truths:
        for o in t.visible():
            x1, y1, x2, y2 = o.box
            crowd = int(o.visible_px < MIN_VISIBLE_PX or o.occlusion > MAX_OCCLUSION)
            anns.append({"id": len(anns) + 1, "image_id": t.frame, "category_id": o.class_id + 1,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": float((x2 - x1) * (y2 - y1)),
                         "iscrowd": crowd})
            real += 1 - crowd
            ignored += crowd
    return anns, real, ignored


def evaluate(truths: list[FrameTruth], detections: Iterable[tuple[int, Detections]]
             ) -> EvalResult:
    """mAP of `detections` (frame index, Detections) against `truths`."""
    COCO, COCOeval = _require_pycocotools()
    anns, real, ignored = ground_truth(truths)
    cat_of = {name: i + 1 for i, name in enumerate(CLASSES)}
    dets = []
    for frame, d in detections:
        if not len(d):
            continue
        wh = d.xyxy[:, 2:] - d.xyxy[:, :2]
        for i in range(len(d)):
            cat = cat_of.get(d.label(i))
            if cat is not None:
                dets.append({"image_id": frame, "category_id": cat, "score": float(d.score[i]),
                             "bbox": [float(d.xyxy[i, 0]), float(d.xyxy[i, 1]),
                                      float(wh[i, 0]), float(wh[i, 1])]})
    gt = COCO()
    gt.dataset = {"images": [{"id": t.frame} for t in truths], "annotations": anns,
                  "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)]}
    quiet = contextlib.redirect_stdout(io.StringIO())
    with quiet:
        gt.createIndex()
    empty = {"map50": 0.0, "map50_95": 0.0}
    if not dets or not real:
        return EvalResult(0.0, 0.0, {c: dict(empty) for c in CLASSES},
                          {s: dict(empty) for s in SIZES}, len(truths), real, ignored, len(dets))
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
    p = ev.eval["precision"]  # [T(iou), R(recall), K(class), A(area), M(max dets)]

    def ap(sel: np.ndarray) -> dict[str, float]:
        at50 = sel[0][sel[0] > -1]
        allt = sel[sel > -1]
        return {"map50": float(at50.mean()) if at50.size else 0.0,
                "map50_95": float(allt.mean()) if allt.size else 0.0}

    overall = ap(p[:, :, :, 0, -1])
    per_class = {name: ap(p[:, :, k, 0, -1]) for k, name in enumerate(CLASSES)}
    per_size = {name: ap(p[:, :, :, a, -1]) for a, name in enumerate(SIZES, start=1)}
    return EvalResult(overall["map50"], overall["map50_95"], per_class, per_size, len(truths),
                      real, ignored, len(dets))


def load_clip(data: str | Path) -> tuple[Path, list[FrameTruth]]:
    """(video path, truths) of a directory written by `edge-agent sim`."""
    data = Path(data)
    meta_path = data / META_FILE
    if not meta_path.is_file():
        raise OspreyError(f"{data} is not a synthetic-world clip (no {META_FILE}): make one "
                          f"with `edge-agent sim --seed 1000 --seconds 30 --out {data}`")
    meta = json.loads(meta_path.read_text())
    return data / meta["video"], list(read_truth(data / TRUTH_FILE))


def evaluate_model(detector, data: str | Path | list, max_frames: int | None = None,
                   stride: int = 1, progress: bool = False) -> EvalResult:
    """Run `detector` over one clip or several (pooled) and score it; every `stride`-th frame."""
    import cv2
    from tqdm import tqdm

    clips = data if isinstance(data, list) else [data]
    used, results = [], []
    for k, clip in enumerate(clips):
        video, truths = load_clip(clip)
        cap = cv2.VideoCapture(str(video))
        if not cap.isOpened():
            raise OspreyError(f"cannot open {video}")
        limit = len(truths) if max_frames is None else min(len(truths), max_frames * stride)
        for i in tqdm(range(limit), desc=f"eval {Path(clip).name}", unit="frame",
                      disable=not progress):
            ok, image = cap.read()
            if not ok:
                break
            if i % stride:
                continue
            truth = replace(truths[i], frame=k * CLIP_ID_SPAN + truths[i].frame)
            results.append((truth.frame, detector(image)))
            used.append(truth)
        cap.release()
    return evaluate(used, results)
