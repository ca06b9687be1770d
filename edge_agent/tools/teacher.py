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
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from edge_agent.core.config.common import DetectorModelConfig, RuntimeConfig
from edge_agent.core.detector import Detector
from edge_agent.core.detector.detections import Detections
from edge_agent.core.detector.ensemble import EnsembleDetector, EnsembleSettings
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
    more_tile_px: tuple[int, ...] = ()
    """Further tile grids (more scales)."""
    flip_tiles: bool = False
    max_grid: tuple[int, int] = (4, 3)
    groups: tuple[tuple[str, ...], ...] = ()
    """Classes judged together (see EnsembleSettings.groups)."""


VEHICLES = (("car", "truck", "bus"),)
"""With `--vehicles-together`: the views' votes for car, truck and bus count for one vehicle
(YOLOX-nano's views often split a lorry between car and truck), the class most voted stays."""


REFERENCE = TeacherSettings(tile_px=300, more_tile_px=(160,), flip_tiles=True, max_grid=(6, 4))
"""The offline reference the cloud config is scored against: the same COCO model at more
scales, tiles and flips than the teacher or the cloud's real config (tiles of about 300 and
160 frame pixels, up to 6x4, each tile also mirrored). Fixed before any cloud setting was
chosen; neither the edge nor the cloud runs it live."""


class Teacher:
    """The core's ensemble recipe (edge_agent/core/detector/ensemble.py) with the teacher's
    settings, its fused boxes split into labels and ignore regions by agreement."""

    def __init__(self, settings: TeacherSettings = TeacherSettings()) -> None:
        self.s = settings
        detector = Detector.from_config(
            DetectorModelConfig(path=Path(settings.model), classes_file=Path(settings.classes_file),
                                score_threshold=settings.floor, nms_iou=0.6,
                                max_detections=300),
            RuntimeConfig(providers=["cpu"]))
        self.ensemble = EnsembleDetector([detector], EnsembleSettings(
            flip=True, tiles=None, tile_px=settings.tile_px, tile_overlap=settings.tile_overlap,
            more_tile_px=settings.more_tile_px, flip_tiles=settings.flip_tiles,
            max_grid=settings.max_grid, floor=settings.floor, fuse_iou=settings.fuse_iou,
            min_side=settings.min_side, min_score=settings.ignore_score,
            groups=settings.groups))
        self.class_names = self.ensemble.class_names

    def label(self, image: np.ndarray) -> tuple[Detections, np.ndarray]:
        """Fused detections (score: agreement of the views that see the whole box) and
        whether each is a label (True) or an ignore region (False)."""
        dets = self.ensemble(image)
        return dets, dets.score >= self.s.label_score


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
    ap.add_argument("--vehicles-together", action="store_true",
                    help="judge car, truck and bus together (VEHICLES)")
    ap.add_argument("--reference", action="store_true",
                    help="label with the offline reference settings (REFERENCE: more scales, "
                         "tiles and flips; the proxy for human labels the cloud is scored on)")
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
    settings = REFERENCE if args.reference else TeacherSettings()
    if args.vehicles_together:
        settings = replace(settings, groups=VEHICLES)
    teacher = Teacher(settings)
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
