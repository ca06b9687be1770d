"""Pseudo-labels for real clips from the strongest real detector at hand (COCO YOLOX-nano).

The teacher runs as well as a CPU allows: the whole frame, the frame flipped, and overlapping
tiles (each seen at a finer scale, for small and far objects); the views' boxes are fused with
weighted box fusion (`ensemble-boxes`), and each fused box is scored by how the views that could
see it agree: the mean, over the views that contain the whole box, of the best same-class score
there (0 where a view missed it); a tile's boxes cut by its inner borders are parts of objects
and are dropped. Confident boxes become labels; uncertain ones become ignore regions
(neither learned nor scored: not negatives); the rest are dropped.

Labels are written once per clip in the synthetic world's ground-truth format (`truth.jsonl`,
one FrameTruth line per labelled frame, with `score` and `ignore` per object) beside a
`meta.json` naming the clip, its frame stride and the teacher's settings, so `eval` and the
training loader read both kinds. A clip whose `meta.json` exists is done; a clip cut short
resumes after its last labelled frame.

    python -m models.training.teacher --clips ../shared/data/real/clips --out runs/pseudo \
        [--every 0.5] [--only NAME,...] [--draw 4]

`edge-agent eval --teacher` uses it to score a model on a user's own footage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edge_agent.core.config.common import DetectorModelConfig, RuntimeConfig
from edge_agent.core.detector import Detector
from edge_agent.core.detector.detections import Detections
from edge_agent.core.detector.nms import iou_matrix
from edge_agent.core.detector.tiling import tile_grid
from edge_agent.tools.sim.truth import FrameTruth, ObjectTruth, SceneInfo

REPO = Path(__file__).resolve().parents[2]
REAL_DATA = Path(os.environ.get("OSPREY_REAL_DATA", REPO.parent / "shared" / "data" / "real"))
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov")


@dataclass(frozen=True)
class TeacherSettings:
    model: str = str(REAL_DATA / "yolox_nano_416.onnx")
    classes_file: str = str(REAL_DATA / "coco_classes.txt")
    floor: float = 0.05
    """Detections below this score are not fused."""
    tile_px: int = 220
    """Tiles of about this many frame pixels a side (2 to 4 columns, 2 to 3 rows): each is
    seen by the model about twice as large as in the whole frame."""
    tile_overlap: float = 0.25
    fuse_iou: float = 0.55
    label_score: float = 0.5
    """Fused agreement at or above this: a label."""
    ignore_score: float = 0.25
    """Fused agreement from this to label_score: an ignore region; below it, dropped."""
    min_side: int = 6
    """Boxes with a side below this (frame pixels) are dropped."""


@dataclass
class View:
    box: tuple[int, int, int, int]
    """The part of the frame it sees (x1, y1, x2, y2)."""
    flip: bool
    weight: float


class Teacher:
    def __init__(self, settings: TeacherSettings = TeacherSettings()) -> None:
        self.s = settings
        self.detector = Detector.from_config(
            DetectorModelConfig(path=Path(settings.model), classes_file=Path(settings.classes_file),
                                score_threshold=settings.floor, nms_iou=0.6,
                                max_detections=300),
            RuntimeConfig(providers=["cpu"]))
        self.class_names = self.detector.class_names

    def views(self, width: int, height: int) -> list[View]:
        whole = (0, 0, width, height)
        out = [View(whole, False, 2.0), View(whole, True, 2.0)]
        cols = max(2, min(4, round(width / self.s.tile_px)))
        rows = max(2, min(3, round(height / self.s.tile_px)))
        out += [View(b, False, 1.0)
                for b in tile_grid(width, height, cols, rows, self.s.tile_overlap)]
        return out

    def _run(self, image: np.ndarray, view: View) -> Detections:
        x1, y1, x2, y2 = view.box
        crop = image[y1:y2, x1:x2]
        if view.flip:
            crop = crop[:, ::-1]
        dets = self.detector(np.ascontiguousarray(crop))
        xyxy = dets.xyxy.copy()
        if view.flip:
            w = x2 - x1
            xyxy[:, [0, 2]] = w - xyxy[:, [2, 0]]
        keep = np.ones(len(dets), bool)
        if (x2 - x1, y2 - y1) != image.shape[1::-1]:
            # A tile: boxes cut by its inner borders are parts of objects, which the whole
            # frame or a neighbouring tile sees whole.
            m = 0.02 * max(x2 - x1, y2 - y1)
            w, h = image.shape[1], image.shape[0]
            keep &= ~(((xyxy[:, 0] <= m) & (x1 > 0)) | ((xyxy[:, 1] <= m) & (y1 > 0))
                      | ((xyxy[:, 2] >= x2 - x1 - m) & (x2 < w))
                      | ((xyxy[:, 3] >= y2 - y1 - m) & (y2 < h)))
        xyxy += np.array([x1, y1, x1, y1], np.float32)
        return Detections(xyxy[keep], dets.score[keep], dets.class_id[keep], dets.class_names)

    def label(self, image: np.ndarray) -> tuple[Detections, np.ndarray]:
        """Fused detections (score: agreement of the views that see the whole box) and
        whether each is a label (True) or an ignore region (False)."""
        from ensemble_boxes import weighted_boxes_fusion

        h, w = image.shape[:2]
        views = self.views(w, h)
        per_view = [self._run(image, v) for v in views]
        scale = np.array([w, h, w, h], np.float32)
        boxes = [np.clip(d.xyxy / scale, 0, 1).tolist() for d in per_view]
        fused, _, labels = weighted_boxes_fusion(
            boxes, [d.score.tolist() for d in per_view],
            [d.class_id.tolist() for d in per_view], weights=[v.weight for v in views],
            iou_thr=self.s.fuse_iou, skip_box_thr=self.s.floor, conf_type="max")
        xyxy = (np.asarray(fused, np.float32).reshape(-1, 4) * scale)
        cls = np.asarray(labels, np.int64)
        agreement = self._agreement(xyxy, cls, views, per_view)
        sides = np.minimum(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1])
        keep = (agreement >= self.s.ignore_score) & (sides >= self.s.min_side)
        dets = Detections(xyxy[keep], agreement[keep].astype(np.float32), cls[keep],
                          self.class_names)
        return dets, dets.score >= self.s.label_score

    @staticmethod
    def _agreement(xyxy: np.ndarray, cls: np.ndarray, views: list[View],
                   per_view: list[Detections]) -> np.ndarray:
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
                iou = iou_matrix(xyxy, d.xyxy) * (cls[:, None] == d.class_id[None, :])
                hit = iou >= 0.5
                best = np.where(hit, d.score[None, :], 0).max(axis=1)
            total += np.where(covers, v.weight * best, 0)
            weight += np.where(covers, v.weight, 0)
        return (total / np.maximum(weight, 1e-9)).astype(np.float32)


def frame_truth(index: int, fps: float, clip: str, dets: Detections, is_label: np.ndarray
                ) -> FrameTruth:
    objects = []
    for k in range(len(dets)):
        x1, y1, x2, y2 = (round(float(v), 1) for v in dets.xyxy[k])
        objects.append(ObjectTruth(
            track_id=-1, cls=dets.label(k), colour="unknown", size="unknown", state="unknown",
            facing="unknown", box=(x1, y1, x2, y2), full_box=(x1, y1, x2, y2),
            visible_px=int((x2 - x1) * (y2 - y1)), occlusion=0.0, truncation=0.0,
            score=round(float(dets.score[k]), 4), ignore=not bool(is_label[k]),
            label_id=int(dets.class_id[k])))
    return FrameTruth(frame=index, t=round(index / fps, 4),
                      scene=SceneInfo(segment=0, scene_id=clip, kind="fresh"), light=1.0,
                      objects=tuple(objects))


def draw(image: np.ndarray, truth: FrameTruth) -> np.ndarray:
    out = image.copy()
    for o in truth.objects:
        x1, y1, x2, y2 = (int(v) for v in o.box)
        colour = (0, 200, 255) if o.ignore else (0, 220, 0)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 1 if o.ignore else 2)
        cv2.putText(out, f"{o.cls} {o.score:.2f}", (x1, max(10, y1 - 3)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
    return out


def label_clip(teacher: Teacher, video: Path, out: Path, every_s: float = 0.5, draw_n: int = 0,
               bar: tqdm | None = None) -> Path:
    """Label every `every_s` seconds of `video` into `out` (truth.jsonl, meta.json); resumes
    after the last frame written; a clip with meta.json is done."""
    out.mkdir(parents=True, exist_ok=True)
    meta_path, truth_path = out / "meta.json", out / "truth.jsonl"
    if meta_path.is_file():
        return out
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise RuntimeError(f"cannot open {video}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    stride = max(1, round(fps * every_s))
    done = -1
    if truth_path.is_file():
        lines = [ln for ln in truth_path.read_text().splitlines() if ln.strip()]
        done = json.loads(lines[-1])["frame"] if lines else -1
    drawn, index, size = 0, 0, None
    with truth_path.open("a") as f:
        while True:
            ok, image = cap.read()
            if not ok:
                break
            size = image.shape[1], image.shape[0]
            if index % stride == 0 and index > done:
                dets, is_label = teacher.label(image)
                truth = frame_truth(index, fps, video.stem, dets, is_label)
                f.write(truth.to_line() + "\n")
                f.flush()
                if drawn < draw_n and len(truth.objects) and index % (stride * 8) == 0:
                    (out / "draw").mkdir(exist_ok=True)
                    cv2.imwrite(str(out / "draw" / f"{index:06d}.png"), draw(image, truth))
                    drawn += 1
                if bar is not None:
                    bar.update()
            index += 1
    cap.release()
    meta_path.write_text(json.dumps({
        "source": str(video), "clip": video.stem, "fps": fps, "stride": stride,
        "frames_total": index, "width": size[0] if size else None,
        "height": size[1] if size else None, "classes": list(teacher.class_names),
        "teacher": asdict(teacher.s)}, indent=2))
    return out


def _frames_to_label(video: Path, every_s: float) -> int:
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    cap.release()
    stride = max(1, round(fps * every_s))
    return (n + stride - 1) // stride


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=Path, default=REAL_DATA / "clips",
                    help="folder of real clips (also takes single video files)")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "pseudo")
    ap.add_argument("--every", type=float, default=0.5, help="seconds between labelled frames")
    ap.add_argument("--only", help="comma-separated clip names (file stems)")
    ap.add_argument("--draw", type=int, default=0, help="annotated JPEGs to save per clip")
    args = ap.parse_args(argv)
    if not Path(TeacherSettings.model).is_file():
        print(f"teacher model not found at {TeacherSettings.model}: set OSPREY_REAL_DATA to the "
              "folder with yolox_nano_416.onnx", file=sys.stderr)
        return 1
    videos = sorted(p for p in ([args.clips] if args.clips.is_file() else args.clips.iterdir())
                    if p.suffix.lower() in VIDEO_SUFFIXES)
    if args.only:
        wanted = set(args.only.split(","))
        videos = [v for v in videos if v.stem in wanted]
    teacher = Teacher()
    todo = [v for v in videos if not (args.out / v.stem / "meta.json").is_file()]
    total = sum(_frames_to_label(v, args.every) for v in todo)
    with tqdm(total=total, desc="teacher", unit="frame") as bar:
        for video in todo:
            bar.set_postfix_str(video.stem)
            label_clip(teacher, video, args.out / video.stem, args.every, args.draw, bar)
    print(f"pseudo-labels of {len(videos)} clips in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
