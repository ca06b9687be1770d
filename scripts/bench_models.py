#!/usr/bin/env python3
"""Accuracy and CPU latency of Osprey's models, measured side by side in one run.

    python scripts/bench_models.py \
        --model edge-fp32=models/edge/osprey_edge_ssdlite.onnx \
        --model edge-int8=models/edge/osprey_edge_ssdlite_int8.onnx \
        --model cloud=models/cloud/osprey_cloud_ssdlite.onnx \
        --clips normal=out/eval/normal-1000,out/eval/normal-1001 \
        --clips hard=out/eval/hard-1000,out/eval/hard-1001

Latency: ONNX Runtime CPU, the whole detector call (preprocess + infer + decode + NMS) and
`session.run` alone, median over the same frames, models interleaved frame by frame.
Accuracy: COCO mAP@0.5 and mAP@0.5:0.95 pooled over each group of held-out clips.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from datetime import date
from pathlib import Path

import cv2
import onnxruntime as ort

from edge_agent.cli.evaluate import parse_tiles
from edge_agent.core.config.common import DetectorModelConfig, RuntimeConfig
from edge_agent.core.detector import Detector
from edge_agent.core.detector.tiling import TiledDetector
from edge_agent.tools.evaluate import evaluate_model, load_clip


def load(spec: str, score: float, threads: int):
    """PATH, or PATH@COLSxROWS for tiled inference."""
    path, _, tiles = spec.partition("@")
    det = Detector.from_config(DetectorModelConfig(path=Path(path), score_threshold=score),
                               RuntimeConfig(providers=["cpu"], intra_op_threads=threads))
    return TiledDetector(det, *parse_tiles(tiles)) if tiles else det


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", action="append", required=True,
                    help="NAME=PATH, or NAME=PATH@2x2 for tiled inference")
    ap.add_argument("--clips", action="append", default=[], help="GROUP=DIR[,DIR...]")
    ap.add_argument("--stride", type=int, default=2, help="evaluate every Nth frame")
    ap.add_argument("--latency-frames", type=int, default=200)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    models = dict(m.split("=", 1) for m in args.model)
    groups = {g: [Path(d) for d in dirs.split(",")] for g, dirs in
              (c.split("=", 1) for c in args.clips)}
    print(f"date {date.today()}, {platform.machine()}, {os.cpu_count()} cpus, python "
          f"{platform.python_version()}, onnxruntime {ort.__version__}, CPUExecutionProvider")

    frames = []
    if groups:
        video, _ = load_clip(next(iter(groups.values()))[0])
        cap = cv2.VideoCapture(str(video))
        while len(frames) < args.latency_frames and (ok := cap.read())[0]:
            frames.append(ok[1])
    dets = {name: load(path, 0.3, args.threads) for name, path in models.items()}
    whole = {n: [] for n in dets}
    infer = {n: [] for n in dets}
    for i, image in enumerate(frames[:10] + frames):
        for name, det in dets.items():
            feeds, _ = det.adapter.prepare(image)
            t0 = time.perf_counter()
            det.backend.run(feeds)
            t1 = time.perf_counter()
            det(image)
            t2 = time.perf_counter()
            if i >= 10:
                infer[name].append((t1 - t0) * 1e3)
                whole[name].append((t2 - t1) * 1e3)
    report = {}
    first = next(iter(dets))
    print("\n| model | input | file MB | infer ms | detect ms | detect ms / "
          f"{first}'s |")
    print("|---|---|---|---|---|---|")
    base = statistics.median(whole[first]) if frames else 1.0
    for name, det in dets.items():
        w, h = det.adapter.preprocess.size
        mb = Path(models[name].partition("@")[0]).stat().st_size / 1e6
        mi = statistics.median(infer[name]) if frames else 0.0
        mw = statistics.median(whole[name]) if frames else 0.0
        report[name] = {"input": f"{w}x{h}", "mb": round(mb, 2), "infer_ms": round(mi, 2),
                        "detect_ms": round(mw, 2)}
        print(f"| {name} | {w}x{h} | {mb:.2f} | {mi:.2f} | {mw:.2f} | {mw / base:.2f} |")
    if groups:
        print("\n| model | " + " | ".join(f"{g} mAP@0.5 | {g} mAP@.5:.95" for g in groups)
              + " |")
        print("|---|" + "---|---|" * len(groups))
        for name, path in models.items():
            det = load(path, 0.05, args.threads)
            row = []
            for g, clips in groups.items():
                r = evaluate_model(det, clips, stride=args.stride)
                report[name][g] = {"map50": round(r.map50, 4), "map50_95": round(r.map50_95, 4),
                                   "per_class": {k: round(v["map50"], 3)
                                                 for k, v in r.per_class.items()},
                                   "per_size": {k: round(v["map50"], 3)
                                                for k, v in r.per_size.items()}}
                row += [f"{r.map50:.3f}", f"{r.map50_95:.3f}"]
            print(f"| {name} | " + " | ".join(row) + " |")
    print("\n" + json.dumps(report))


if __name__ == "__main__":
    main()
