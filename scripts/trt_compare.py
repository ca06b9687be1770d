#!/usr/bin/env python3
"""TensorRT against ONNX Runtime on the shipped edge model, for a machine with an NVIDIA GPU.

    pip install -e . tensorrt pycuda          # the TensorRT pip wheel (x86 or Jetson)
    python scripts/trt_compare.py [--frames 30] [--source VIDEO] [--out trt.json]

Builds the INT8 engine of `models/edge/osprey_edge_ssdlite_int8.onnx` and the FP16 engine of
`models/edge/osprey_edge_ssdlite.onnx` with Osprey's own builder (the agent's code path:
optimization profile, plugins, precision flags), runs each on the same frames as ONNX Runtime
on the CPU runs the same ONNX file, and compares their detections: boxes matched by class at
IoU >= 0.5 among scores >= 0.3, then recall and precision of TensorRT against ONNX Runtime,
the mean IoU of matched boxes and the largest score difference. Frames: a held-out synthetic
world, and `--source` (a real clip) when given. Exits 1 when a precision falls below
`--min-f1` (0.9), or when TensorRT was not the backend that ran (the reason is printed).
Prints one JSON report; nothing here runs without an NVIDIA GPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edge_agent.core.bundled import bundled_edge_model
from edge_agent.core.config.common import DetectorModelConfig, RuntimeConfig
from edge_agent.core.detector import Detections, Detector
from edge_agent.core.detector.nms import iou_matrix
from edge_agent.runtime.capture.opencv import open_source

MIN_SCORE = 0.3


def frames(source: str | None, n: int) -> list[np.ndarray]:
    urls = [f"synthetic://?seed=1000&preset=hard&seconds={n / 3 + 1:g}"]
    if source:
        urls.append(source)
    out = []
    for url in urls:
        src = open_source("compare", url, realtime=False)
        try:
            for i in range(n * 3):
                f = src.read()
                if f is None:
                    break
                if i % 3 == 0:
                    out.append(f.image)
        finally:
            src.close()
    return out


def agreement(trt: Detections, ort: Detections) -> dict[str, float]:
    a, b = trt[trt.score >= MIN_SCORE], ort[ort.score >= MIN_SCORE]
    if not len(a) or not len(b):
        return {"matched": 0, "trt": len(a), "ort": len(b), "iou_sum": 0.0, "score_diff": 0.0}
    iou = iou_matrix(a.xyxy, b.xyxy) * (a.class_id[:, None] == b.class_id[None, :])
    matched, used, ious, diffs = 0, set(), [], []
    for i in np.argsort(-a.score):
        j = int(np.argmax(np.where([k in used for k in range(len(b))], -1, iou[i])))
        if iou[i, j] >= 0.5 and j not in used:
            used.add(j)
            matched += 1
            ious.append(float(iou[i, j]))
            diffs.append(abs(float(a.score[i]) - float(b.score[j])))
    return {"matched": matched, "trt": len(a), "ort": len(b), "iou_sum": float(sum(ious)),
            "score_diff": max(diffs, default=0.0)}


def compare(model: Path, precision: str, images: list[np.ndarray], cache: Path) -> dict:
    cfg = DetectorModelConfig(path=model)
    trt = Detector.from_config(cfg, RuntimeConfig(backend="tensorrt", precision=precision,
                                                  engine_cache_dir=cache))
    if not trt.backend.name.startswith("tensorrt"):
        return {"model": model.name, "precision": precision, "error":
                f"TensorRT did not run: {getattr(trt.backend, 'fallback', None)}"}
    ort = Detector.from_config(cfg, RuntimeConfig(providers=["cpu"]))
    totals = {"matched": 0, "trt": 0, "ort": 0, "iou_sum": 0.0, "score_diff": 0.0}
    ms = []
    for img in images:
        t0 = time.perf_counter()
        a = trt(img)
        ms.append((time.perf_counter() - t0) * 1e3)
        r = agreement(a, ort(img))
        for k in ("matched", "trt", "ort", "iou_sum"):
            totals[k] += r[k]
        totals["score_diff"] = max(totals["score_diff"], r["score_diff"])
    recall = totals["matched"] / max(1, totals["ort"])
    precision_ = totals["matched"] / max(1, totals["trt"])
    f1 = 2 * recall * precision_ / max(1e-9, recall + precision_)
    return {"model": model.name, "precision": precision, "backend": trt.backend.name,
            "frames": len(images), "ort_boxes": totals["ort"], "trt_boxes": totals["trt"],
            "recall_vs_ort": round(recall, 4), "precision_vs_ort": round(precision_, 4),
            "f1": round(f1, 4),
            "mean_iou": round(totals["iou_sum"] / max(1, totals["matched"]), 4),
            "max_score_diff": round(totals["score_diff"], 4),
            "trt_call_ms_median": round(float(np.median(ms)), 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--source", help="a real clip as well (e.g. ../shared/data/real/...)")
    ap.add_argument("--min-f1", type=float, default=0.9)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    images = frames(args.source, args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        results = [compare(bundled_edge_model("int8"), "int8", images, Path(tmp)),
                   compare(bundled_edge_model("fp32"), "fp16", images, Path(tmp))]
    report = {"results": results}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    bad = [r for r in results if "error" in r or r["f1"] < args.min_f1]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
