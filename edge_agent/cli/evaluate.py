"""`edge-agent eval`: mAP of a model on a synthetic-world clip."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import get_args

from edge_agent.core.cli import EXIT_OK
from edge_agent.core.config.common import DetectorModelConfig, Layout, RuntimeConfig
from edge_agent.core.detector import Detector
from edge_agent.core.detector.tiling import TiledDetector
from edge_agent.tools.evaluate import evaluate_model


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
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True, action="append",
                   help="directory written by sim or by the teacher (repeat to pool "
                        "several clips)")
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
    detector = Detector.from_config(
        DetectorModelConfig(path=args.model, layout=args.layout, score_threshold=args.score),
        RuntimeConfig(providers=["cpu"], intra_op_threads=args.threads))
    if args.tiles:
        detector = TiledDetector(detector, *parse_tiles(args.tiles))
    classes = tuple(c.strip() for c in args.classes.split(",")) if args.classes else None
    result = evaluate_model(detector, args.data, args.max_frames, args.stride,
                            progress=not args.json, classes=classes)
    if args.json:
        print(json.dumps({"model": str(args.model), "data": [str(d) for d in args.data],
                          **result.to_json()}))
    else:
        print(f"{args.model} on {', '.join(map(str, args.data))}")
        print(result.table())
    return EXIT_OK
