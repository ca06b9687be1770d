"""`edge-agent quantize`: INT8 Q/DQ model from real calibration frames, with its accuracy cost."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge_agent.core.cli import EXIT_OK
from edge_agent.core.config.common import DetectorModelConfig, RuntimeConfig
from edge_agent.core.detector import Detector
from edge_agent.core.errors import OspreyError
from edge_agent.tools.evaluate import evaluate_model


def add_quantize(sub) -> None:
    p = sub.add_parser("quantize", help="calibrate on real frames and write an INT8 (Q/DQ) "
                                        "ONNX model")
    p.add_argument("--model", type=Path, required=True, help="FP32 ONNX model")
    p.add_argument("--calib", required=True, action="append",
                   help="calibration source: a video, a camera, or synthetic://... (repeat "
                        "to calibrate on several; --frames is shared evenly among them)")
    p.add_argument("--out", type=Path, required=True, help="where to write the INT8 model")
    p.add_argument("--frames", type=int, default=200, help="calibration frames (default 200)")
    p.add_argument("--stride", type=int, default=5, help="take every Nth frame (default 5)")
    p.add_argument("--method", choices=["percentile", "entropy", "minmax"],
                   default="percentile")
    p.add_argument("--percentile", type=float, default=99.99)
    p.add_argument("--keep-float", action="append", default=[], metavar="REGEX",
                   help="leave the convolutions whose node name matches REGEX in float "
                        "(repeatable), e.g. the detection heads' last layers: "
                        "'_heads\\.[0-9]+\\.1/'")
    p.add_argument("--eval", type=Path, action="append", default=[],
                   help="held-out clip to measure the accuracy change on (repeatable; each "
                        "is reported alone)")
    p.add_argument("--eval-stride", type=int, default=2)
    p.set_defaults(func=run_quantize)


def run_quantize(args: argparse.Namespace) -> int:
    try:
        from edge_agent.tools.quantize import CalibrationSet, calibration_set, quantize
    except ImportError as exc:  # onnxruntime.quantization needs the onnx package
        raise OspreyError(f"quantize needs the onnx package ({exc}): "
                          "pip install 'osprey[tools]'") from None
    per_source = max(1, args.frames // len(args.calib))
    sets = [calibration_set(args.model, src, per_source, args.stride) for src in args.calib]
    calib = CalibrationSet(sets[0].input_name, [x for s in sets for x in s.tensors])
    out = quantize(args.model, calib, args.out, args.method, args.percentile,
                   args.keep_float)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) from {len(calib.tensors)} "
          f"calibration frames of {', '.join(args.calib)}")
    summary = []
    for clip in args.eval:
        row = {"data": str(clip)}
        for name, path in (("fp32", args.model), ("int8", out)):
            det = Detector.from_config(DetectorModelConfig(path=path, score_threshold=0.05),
                                       RuntimeConfig(providers=["cpu"]))
            r = evaluate_model(det, clip, stride=args.eval_stride)
            row[name] = {"map50": round(r.map50, 4), "map50_95": round(r.map50_95, 4)}
        row["map50_change"] = round(row["int8"]["map50"] - row["fp32"]["map50"], 4)
        summary.append(row)
        print(f"{clip}: mAP@0.5 FP32 {row['fp32']['map50']:.3f} -> INT8 "
              f"{row['int8']['map50']:.3f} ({100 * row['map50_change']:+.2f} points)")
    if summary:
        print(json.dumps(summary))
    return EXIT_OK
