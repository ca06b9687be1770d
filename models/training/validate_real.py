"""Models against the teacher's labels on the real clips no model trained on, clip by clip.

    python -m models.training.validate_real \
        --model real=models/edge/osprey_edge_real.onnx \
        --model synthetic=models/edge/osprey_edge_ssdlite.onnx [--pseudo runs/pseudo] [--out F]

Held-out clips: those the shared MANIFEST marks `validate` and the three clips beside it, each
labelled by `python -m models.training.teacher` (never trained on: split by scene). Scored
over the student's classes (person, bicycle, car, motorbike, bus, truck), COCO mAP@0.5 per
clip and pooled; a clip without any labelled object of those classes is listed, not scored.

`--ceiling` also scores the teacher against itself: a second run on the frames shrunk to 0.8
and JPEG-compressed (quality 70), its boxes mapped back. What its labels can show of a student
is bounded by how well it agrees with itself under such a change.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from edge_agent.core.config.common import DetectorModelConfig, RuntimeConfig
from edge_agent.core.detector import Detections, Detector
from edge_agent.tools.evaluate import evaluate_model, load_labels
from edge_agent.tools.labels import manifest_split
from edge_agent.tools.teacher import REAL_DATA, Teacher
from models.training.train import CONFIGS

CLASSES = CONFIGS["edge-real"].classes
BESIDE = ("pedestrian_survaillance", "vehicle_survaillance", "intel_car-detection")


def held_out(pseudo: Path) -> list[Path]:
    split = manifest_split(REAL_DATA / "clips" / "MANIFEST.md")
    names = [n for n, use in split.items() if use == "validate"] + list(BESIDE)
    return [pseudo / n for n in sorted(names) if (pseudo / n / "meta.json").is_file()]


class SecondRun:
    """The teacher as a detector, on a changed copy of each frame (0.8 size, JPEG 70)."""

    def __init__(self, teacher: Teacher, scale: float = 0.8, quality: int = 70) -> None:
        self.teacher, self.scale, self.quality = teacher, scale, quality
        self.class_names = teacher.class_names

    def __call__(self, image: np.ndarray) -> Detections:
        h, w = image.shape[:2]
        small = cv2.resize(image, (round(w * self.scale), round(h * self.scale)),
                           interpolation=cv2.INTER_AREA)
        _, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        dets, _ = self.teacher.label(cv2.imdecode(buf, cv2.IMREAD_COLOR))
        return Detections(dets.xyxy / self.scale, dets.score, dets.class_id, dets.class_names)


def objects(clip: Path) -> int:
    labels = load_labels(clip)
    return sum(1 for t in labels.truths.values() for o in t.objects
               if o.cls in CLASSES and not o.ignore)


def _detector(path: Path, score: float):
    """An ONNX model, or a cloud config (.yaml): the worker's detector as it describes it."""
    if path.suffix.lower() in (".yaml", ".yml"):
        from cloud_fallback.config import load_cloud_config
        from cloud_fallback.model import build_detector

        return build_detector(load_cloud_config(path).model)
    return Detector.from_config(DetectorModelConfig(path=path, score_threshold=score),
                                RuntimeConfig(providers=["cpu"]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True, metavar="NAME=PATH",
                    help="an ONNX model, or a cloud config (.yaml) scored as the worker runs it")
    ap.add_argument("--pseudo", type=Path, default=Path("runs/pseudo"))
    ap.add_argument("--score", type=float, default=0.05)
    ap.add_argument("--ceiling", action="store_true",
                    help="also score the teacher's second run against its first")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    clips = held_out(args.pseudo)
    if not clips:
        print(f"no labelled held-out clips in {args.pseudo}: run the teacher first",
              file=sys.stderr)
        return 1
    scored = [c for c in clips if objects(c)]
    report: dict = {"classes": list(CLASSES), "clips": {c.name: objects(c) for c in clips},
                    "models": {}}
    for spec in args.model:
        name, _, path = spec.partition("=")
        det = _detector(Path(path), args.score)
        per_clip = {c.name: round(evaluate_model(det, c, classes=CLASSES).map50, 4)
                    for c in scored}
        pooled = evaluate_model(det, scored, classes=CLASSES)
        report["models"][name] = {"path": path, "pooled_map50": round(pooled.map50, 4),
                                  "per_class": {k: round(v["map50"], 4)
                                                for k, v in pooled.per_class.items()},
                                  "per_clip": per_clip}
        print(f"{name}: pooled mAP@0.5 {pooled.map50:.3f} over {len(scored)} clips")
    if args.ceiling:
        second = SecondRun(Teacher())
        per_clip = {c.name: round(evaluate_model(second, c, classes=CLASSES).map50, 4)
                    for c in scored}
        pooled = evaluate_model(second, scored, classes=CLASSES)
        report["teacher_ceiling"] = {"pooled_map50": round(pooled.map50, 4),
                                     "per_clip": per_clip}
        print(f"teacher vs itself: pooled mAP@0.5 {pooled.map50:.3f}")
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
