#!/usr/bin/env python3
"""Pure inference vs the whole detector call, measured side by side in one run.

    python scripts/bench_detect.py --model ../shared/data/real/yolox_nano_416.onnx \
        --source ../shared/data/real/vehicle_survaillance.mp4 [--frames 200] [--threads 0]

"infer" is `session.run` alone on an already prepared tensor; "detect" is the whole call
(preprocess + infer + decode + NMS) on the frame. Both run on the same frames, alternating, so
machine noise hits both alike. Prints a Markdown row for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import onnxruntime as ort

from edge_agent.core.config.common import DetectorModelConfig, RuntimeConfig
from edge_agent.core.detector import Detector
from edge_agent.runtime.capture.opencv import open_source


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=10)
    args = ap.parse_args()
    det = Detector.from_config(DetectorModelConfig(path=args.model),
                               RuntimeConfig(providers=["cpu"], intra_op_threads=args.threads))
    source = open_source("bench", args.source, realtime=False)
    frames = []
    while len(frames) < args.frames and (f := source.read()) is not None:
        frames.append(f.image)
    source.close()
    run = det.backend.run
    infer, whole, stages = [], [], []
    for i in range(args.warmup + len(frames)):
        image = frames[i % len(frames)]
        feeds, _ = det.adapter.prepare(image)
        t0 = time.perf_counter()
        run(feeds)
        t1 = time.perf_counter()
        det(image)
        t2 = time.perf_counter()
        if i >= args.warmup:
            infer.append((t1 - t0) * 1e3)
            whole.append((t2 - t1) * 1e3)
            stages.append(det.timings)
    mi, mw = statistics.median(infer), statistics.median(whole)
    pre = statistics.median(s.preprocess for s in stages)
    dec = statistics.median(s.decode for s in stages)
    print(f"date {date.today()}, {platform.machine()}, {os.cpu_count()} cpus, python "
          f"{platform.python_version()}, onnxruntime {ort.__version__}, {det.backend.name}, "
          f"layout {det.layout}, {len(frames)} frames of {args.source}")
    print("| model | infer ms (median) | detect ms (median) | preprocess ms | decode+NMS ms | "
          "detect / infer |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.model.name} | {mi:.2f} | {mw:.2f} | {pre:.2f} | {dec:.2f} | {mw / mi:.2f} |")


if __name__ == "__main__":
    main()
