"""`edge-agent eval`: mAP of a model on a synthetic-world clip, on a real clip labelled by the
teacher, on a video with human labels (MOT `gt.txt`, COCO JSON), or on a video a teacher model
labels on the spot."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import get_args

import cv2

from edge_agent.core.cli import EXIT_OK
from edge_agent.core.config.common import DetectorModelConfig, Layout, RuntimeConfig
from edge_agent.core.detector import Detector
from edge_agent.core.detector.jsonl import read_detection_lines
from edge_agent.core.detector.tiling import TiledDetector
from edge_agent.tools.evaluate import (
    LabelledClip,
    evaluate_model,
    evaluate_recorded,
    load_labels,
    require_pycocotools,
)
from edge_agent.tools.labels import parse_class_map, read_coco, read_mot


def parse_tiles(text: str) -> tuple[int, int]:
    try:
        cols, rows = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--tiles must look like 2x2, got {text!r}") from None
    return cols, rows


def add_eval(sub) -> None:
    p = sub.add_parser("eval", help="COCO mAP@0.5 and mAP@0.5:0.95 of a model on a "
                                    "synthetic-world clip (made by `edge-agent sim`) or a real "
                                    "clip labelled by the teacher")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", type=Path, help="the ONNX model (or engine) to run and score")
    what.add_argument("--detections", type=Path,
                      help="score detections written earlier (JSON lines of `edge-agent detect` "
                           "or `cloud-fallback detect`) on one clip, instead of running a model")
    p.add_argument("--data", type=Path, action="append", default=[],
                   help="directory written by sim or by the teacher (repeat to pool "
                        "several clips)")
    p.add_argument("--video", type=Path, help="a video to score the model on, with --gt or "
                                              "--teacher")
    p.add_argument("--gt", type=Path, help="human labels of --video: MOT gt.txt or COCO JSON")
    p.add_argument("--gt-format", choices=["auto", "mot", "coco"], default="auto")
    p.add_argument("--gt-scale", type=float, default=1.0,
                   help="multiply the labels' boxes by this (labels made at another size)")
    p.add_argument("--class-map", default=None, metavar="LABEL=CLASS,...",
                   help="rename the labels' classes to the model's, e.g. pedestrian=person")
    p.add_argument("--teacher", type=Path,
                   help="label --video with this COCO model (whole frame, flip, tiles, "
                        "fused): score a model on your own camera's footage")
    p.add_argument("--teacher-classes", type=Path, help="class names file of --teacher")
    p.add_argument("--every", type=float, default=0.5,
                   help="with --teacher: seconds between labelled frames")
    p.add_argument("--layout", choices=list(get_args(Layout)), default="auto")
    p.add_argument("--classes", default=None,
                   help="comma-separated classes to score (default: the clips' label set)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--stride", type=int, default=1, help="evaluate every Nth frame")
    p.add_argument("--score", type=float, default=0.05,
                   help="score threshold (default 0.05: mAP needs the low-score tail)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--tiles", default=None, metavar="COLSxROWS",
                   help="also run on overlapping tiles, e.g. 2x2 (small objects, more cost)")
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    require_pycocotools()  # before any frame is read: the score needs it at the end
    if args.teacher is not None:
        from edge_agent.core.detector.ensemble import require_wbf

        require_wbf()
    if args.detections is not None:
        return _eval_recorded(args)
    detector = Detector.from_config(
        DetectorModelConfig(path=args.model, layout=args.layout, score_threshold=args.score),
        RuntimeConfig(providers=["cpu"], intra_op_threads=args.threads))
    if args.tiles:
        detector = TiledDetector(detector, *parse_tiles(args.tiles))
    classes = tuple(c.strip() for c in args.classes.split(",")) if args.classes else None
    data: list = list(args.data)
    names = [str(d) for d in args.data]
    with tempfile.TemporaryDirectory() as tmp:
        if args.video is not None:
            clip, classes = _video_labels(args, detector.class_names, classes, Path(tmp))
            data.append(clip)
            names.append(str(args.video))
        if not data:
            raise ValueError("nothing to score: give --data DIR, or --video with --gt or "
                             "--teacher")
        result = evaluate_model(detector, data, args.max_frames, args.stride,
                                progress=not args.json, classes=classes)
    if args.json:
        print(json.dumps({"model": str(args.model), "data": names, **result.to_json()}))
    else:
        print(f"{args.model} on {', '.join(names)}")
        print(result.table())
    return EXIT_OK


def _eval_recorded(args: argparse.Namespace) -> int:
    recorded = read_detection_lines(args.detections)
    if len(args.data) + (args.video is not None) != 1:
        raise ValueError("--detections scores one clip: give one --data DIR or one --video")
    classes = tuple(c.strip() for c in args.classes.split(",")) if args.classes else None
    names = tuple(dict.fromkeys(n for d in recorded.values() for n in d.class_names))
    with tempfile.TemporaryDirectory() as tmp:
        if args.video is not None:
            clip, classes = _video_labels(args, names, classes, Path(tmp))
            name = str(args.video)
        else:
            clip, name = load_labels(args.data[0]), str(args.data[0])
        result = evaluate_recorded(recorded, clip, args.max_frames, args.stride, classes)
    if args.json:
        print(json.dumps({"detections": str(args.detections), "data": [name],
                          **result.to_json()}))
    else:
        print(f"{args.detections} on {name}")
        print(result.table())
    return EXIT_OK


def _video_labels(args: argparse.Namespace, model_classes: tuple[str, ...],
                  classes: tuple[str, ...] | None, tmp: Path
                  ) -> tuple[LabelledClip, tuple[str, ...]]:
    """The labels of --video (human or the teacher's) and the classes to score: --classes, or
    the model's classes that the labels have."""
    if not args.video.is_file():
        raise ValueError(f"--video {args.video}: no such file")
    if (args.gt is None) == (args.teacher is None):
        raise ValueError("--video needs either --gt (human labels) or --teacher (a model that "
                         "labels it)")
    if args.teacher is not None:
        from edge_agent.tools.teacher import Teacher, TeacherSettings, label_clip

        settings = TeacherSettings(model=str(args.teacher), classes_file=str(
            args.teacher_classes or TeacherSettings.classes_file))
        clip = load_labels(label_clip(Teacher(settings), args.video, tmp / "teacher",
                                      every_s=args.every))
    else:
        fmt = args.gt_format
        if fmt == "auto":
            fmt = "coco" if args.gt.suffix.lower() == ".json" else "mot"
        cap = cv2.VideoCapture(str(args.video))
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        cap.release()
        class_map = parse_class_map(args.class_map)
        read = read_coco if fmt == "coco" else read_mot
        truths = read(args.gt, classes or model_classes, class_map, args.gt_scale, fps)
        clip = LabelledClip(args.video, truths, classes or model_classes, dense=False)
    if classes is None:
        present = {o.cls for t in clip.truths.values() for o in t.objects if not o.ignore}
        classes = tuple(c for c in model_classes if c in present)
        if not classes:
            raise ValueError(f"the labels of {args.video} share no class with the model "
                             f"({', '.join(model_classes)}): give --class-map or --classes")
    return clip, classes
