"""`edge-agent detect`: a detector over a source, one JSON line per frame."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import get_args

from edge_agent.core.cli import EXIT_OK
from edge_agent.core.config.common import DetectorModelConfig, Layout, RuntimeConfig
from edge_agent.core.detector import Detector
from edge_agent.core.detector.jsonl import detection_line
from edge_agent.runtime.capture.opencv import open_source

log = logging.getLogger("osprey.detect")


def add_detect(sub) -> None:
    p = sub.add_parser("detect", help="run a detector over a video, camera or synthetic:// "
                                      "source, one JSON line per frame")
    p.add_argument("--model", type=Path, required=True, help="ONNX model or TensorRT engine")
    p.add_argument("--layout", choices=list(get_args(Layout)), default="auto")
    p.add_argument("--source", required=True,
                   help="video file, rtsp://..., usb://0, gst://..., synthetic://?seed=1")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--classes", type=Path, default=None, help="class names, one per line")
    p.add_argument("--score", type=float, default=0.3, help="score threshold (default 0.3)")
    p.add_argument("--iou", type=float, default=0.45, help="NMS IoU (default 0.45)")
    p.add_argument("--backend", choices=["onnxruntime", "tensorrt"], default="onnxruntime")
    p.add_argument("--precision", choices=["fp32", "fp16", "int8"], default="fp16")
    p.add_argument("--providers", default="auto",
                   help="comma list of tensorrt, cuda, cpu, or auto (default)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads")
    p.add_argument("--out", type=Path, default=None, help="write JSON lines here, not stdout")
    p.set_defaults(func=run_detect)


def run_detect(args: argparse.Namespace) -> int:
    model = DetectorModelConfig(path=args.model, layout=args.layout, classes_file=args.classes,
                                score_threshold=args.score, nms_iou=args.iou)
    runtime = RuntimeConfig(backend=args.backend, precision=args.precision,
                            providers=args.providers.split(","),
                            intra_op_threads=args.threads)
    detector = Detector.from_config(model, runtime)
    log.info("%s: layout %s on %s, %d classes", args.model.name, detector.layout,
             detector.backend.name, len(detector.class_names))
    source = open_source("detect", args.source, realtime=False)
    frames, busy = 0, 0.0
    start = time.perf_counter()
    sink = args.out.open("w", encoding="utf-8") if args.out else nullcontext(sys.stdout)
    try:
        with sink as out:
            while args.max_frames is None or frames < args.max_frames:
                frame = source.read()
                if frame is None:
                    break
                dets = detector(frame.image)
                busy += detector.timings.total
                out.write(detection_line(frame.index, frame.wall_time, frame.width,
                                         frame.height, dets))
                frames += 1
    finally:
        source.close()
    took = time.perf_counter() - start
    if frames:
        log.info("%d frames in %.1fs (%.1f fps overall); detector %.1f ms/frame", frames, took,
                 frames / took, busy / frames)
    return EXIT_OK
