"""COCO-style mAP of a detector against ground truth in the synthetic world's format
(pycocotools): a synthetic-world clip, or a real clip labelled by the teacher.

Ground truth: every visible object of the clip. Objects with fewer than MIN_VISIBLE_PX visible
pixels or more than MAX_OCCLUSION hidden, and a teacher's ignore regions, are marked `iscrowd`
(ignored): a detection on them is neither a hit nor a false alarm, and missing them costs
nothing. Detections are matched to the label set's classes by name (the synthetic world's, or
the teacher's COCO names); labels outside it are dropped, as are objects of classes outside it.
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
ALIASES = (("motorbike", "motorcycle"), ("aeroplane", "airplane"), ("sofa", "couch"),
           ("tvmonitor", "tv"), ("pottedplant", "potted plant"),
           ("diningtable", "dining table"))
"""Names one class goes by in COCO's list and in the older one many COCO exports ship."""
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


def require_pycocotools():
    """pycocotools' COCO and COCOeval, or an error saying how to install them (checked
    before any inference runs)."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise OspreyError("edge-agent eval needs pycocotools: pip install 'osprey[tools]'") \
            from None
    return COCO, COCOeval


def ground_truth(truths: list[FrameTruth], classes: tuple[str, ...] = CLASSES
                 ) -> tuple[list[dict], int, int]:
    anns, real, ignored = [], 0, 0
    for t in truths:
        for o in t.visible():
            if o.cls in classes:
                cats = [classes.index(o.cls) + 1]
            elif o.ignore:  # an ignore region of another class (a MOT distractor, say)
                cats = list(range(1, len(classes) + 1))
            else:
                continue
            x1, y1, x2, y2 = o.box
            crowd = int(o.visible_px < MIN_VISIBLE_PX or o.occlusion > MAX_OCCLUSION
                        or o.ignore)
            for cat in cats:
                anns.append({"id": len(anns) + 1, "image_id": t.frame, "category_id": cat,
                             "bbox": [x1, y1, x2 - x1, y2 - y1],
                             "area": float((x2 - x1) * (y2 - y1)), "iscrowd": crowd})
            real += 1 - crowd
            ignored += crowd
    return anns, real, ignored


def evaluate(truths: list[FrameTruth], detections: Iterable[tuple[int, Detections]],
             classes: tuple[str, ...] = CLASSES) -> EvalResult:
    """mAP of `detections` (frame index, Detections) against `truths`, over `classes`."""
    COCO, COCOeval = require_pycocotools()
    anns, real, ignored = ground_truth(truths, classes)
    cat_of = {name: i + 1 for i, name in enumerate(classes)}
    for a, b in ALIASES:  # the same class under COCO's and the older VOC-style names
        if a in cat_of and b not in cat_of:
            cat_of[b] = cat_of[a]
        elif b in cat_of and a not in cat_of:
            cat_of[a] = cat_of[b]
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
                  "categories": [{"id": i + 1, "name": n} for i, n in enumerate(classes)]}
    quiet = contextlib.redirect_stdout(io.StringIO())
    with quiet:
        gt.createIndex()
    empty = {"map50": 0.0, "map50_95": 0.0}
    if not dets or not real:
        return EvalResult(0.0, 0.0, {c: dict(empty) for c in classes},
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
    present = {a["category_id"] for a in anns if not a["iscrowd"]}
    per_class = {name: ap(p[:, :, k, 0, -1]) for k, name in enumerate(classes)
                 if k + 1 in present or classes is CLASSES}
    per_size = {name: ap(p[:, :, :, a, -1]) for a, name in enumerate(SIZES, start=1)}
    return EvalResult(overall["map50"], overall["map50_95"], per_class, per_size, len(truths),
                      real, ignored, len(dets))


@dataclass
class LabelledClip:
    video: Path
    truths: dict[int, FrameTruth]
    """Frame index -> truth: every frame (a synthetic clip) or the labelled ones (a teacher's)."""
    classes: tuple[str, ...]
    dense: bool
    """Every frame has truth (the stride then picks frames); else the labelled frames only."""


def load_labels(data: str | Path) -> LabelledClip:
    """A directory written by `edge-agent sim`, or by the teacher
    (models/training/teacher.py: its meta.json names the source video and the classes)."""
    data = Path(data)
    meta_path = data / META_FILE
    if not meta_path.is_file():
        raise OspreyError(f"{data} is not a synthetic-world clip nor a teacher's labelled real "
                          f"clip (no {META_FILE}): make one with "
                          f"`edge-agent sim --seed 1000 --seconds 30 --out {data}`, or label a "
                          "real clip with `python -m models.training.teacher`")
    meta = json.loads(meta_path.read_text())
    truths = {t.frame: t for t in read_truth(data / TRUTH_FILE)}
    if "source" in meta:  # the teacher's pseudo-labels of a real clip
        return LabelledClip(Path(meta["source"]), truths, tuple(meta["classes"]), dense=False)
    return LabelledClip(data / meta["video"], truths, CLASSES, dense=True)


def load_clip(data: str | Path) -> tuple[Path, list[FrameTruth]]:
    """(video path, truths) of a directory written by `edge-agent sim`."""
    clip = load_labels(data)
    return clip.video, [clip.truths[k] for k in sorted(clip.truths)]


def evaluate_model(detector, data: str | Path | LabelledClip | list,
                   max_frames: int | None = None,
                   stride: int = 1, progress: bool = False,
                   classes: tuple[str, ...] | None = None) -> EvalResult:
    """Run `detector` over one clip or several (pooled) and score it: every `stride`-th frame
    of a synthetic clip, every `stride`-th labelled frame of a teacher's. `classes`: the
    classes scored (default: the clips' own label set)."""
    import cv2
    from tqdm import tqdm

    require_pycocotools()  # before minutes of inference, not after
    clips = data if isinstance(data, list) else [data]
    used, results = [], []
    label_set = classes
    for k, path in enumerate(clips):
        clip = path if isinstance(path, LabelledClip) else load_labels(path)
        label_set = label_set or clip.classes
        wanted = sorted(clip.truths) if not clip.dense else \
            [i for i in sorted(clip.truths) if i % stride == 0]
        if not clip.dense:
            wanted = wanted[::stride]
        if max_frames is not None:
            wanted = wanted[:max_frames]
        cap = cv2.VideoCapture(str(clip.video))
        if not cap.isOpened():
            raise OspreyError(f"cannot open {clip.video}")
        todo, index = set(wanted), 0
        last = max(wanted, default=-1)
        with tqdm(total=len(wanted), desc=f"eval {Path(clip.video).name}", unit="frame",
                  disable=not progress) as bar:
            while index <= last:
                ok, image = cap.read()
                if not ok:
                    break
                if index in todo:
                    truth = replace(clip.truths[index], frame=k * CLIP_ID_SPAN + index)
                    results.append((truth.frame, detector(image)))
                    used.append(truth)
                    bar.update()
                index += 1
        cap.release()
    return evaluate(used, results, label_set or CLASSES)


def evaluate_recorded(recorded: dict[int, Detections], data: str | Path | LabelledClip,
                      max_frames: int | None = None, stride: int = 1,
                      classes: tuple[str, ...] | None = None) -> EvalResult:
    """Score detections written earlier (`read_detection_lines`: frame index -> Detections,
    from `edge-agent detect` or `cloud-fallback detect`) against one clip's labels, over the
    labelled frames the file covers. A labelled frame inside the file's range without a line
    is an error: a gap there would count its objects as missed."""
    clip = data if isinstance(data, LabelledClip) else load_labels(data)
    if not recorded:
        raise OspreyError("the detections file has no lines")
    last = max(recorded)
    wanted = [i for i in sorted(clip.truths) if i <= last]
    wanted = [i for i in wanted if i % stride == 0] if clip.dense else wanted[::stride]
    if max_frames is not None:
        wanted = wanted[:max_frames]
    missing = [i for i in wanted if i not in recorded]
    if missing:
        raise OspreyError(f"the detections file has no line for labelled frame(s) "
                          f"{', '.join(map(str, missing[:5]))}{' ...' if len(missing) > 5 else ''}"
                          f" of {clip.video}: write every frame (no --max-frames shorter than "
                          "the labels)")
    if not wanted:
        raise OspreyError(f"the detections file (frames up to {last}) covers no labelled frame "
                          f"of {clip.video}")
    used = [clip.truths[i] for i in wanted]
    return evaluate(used, [(i, recorded[i]) for i in wanted], classes or clip.classes)
