"""`edge-agent build-engine`: build and cache a TensorRT engine of an ONNX model."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_agent.core.cli import EXIT_OK
from edge_agent.core.config.common import RuntimeConfig
from edge_agent.core.detector.backends.tensorrt import build_engine


def add_build_engine(sub) -> None:
    p = sub.add_parser("build-engine", help="build and cache a TensorRT engine from an ONNX "
                                            "model (rebuilt when model, TensorRT or GPU change)")
    p.add_argument("model", type=Path, help="ONNX model (a Q/DQ model builds INT8)")
    p.add_argument("--precision", choices=["fp32", "fp16", "int8"], default="fp16")
    p.add_argument("--cache-dir", type=Path,
                   default=RuntimeConfig.model_fields["engine_cache_dir"].default)
    p.add_argument("--workspace-mb", type=int, default=1024)
    p.add_argument("--profile-batch", type=int, nargs=3, metavar=("MIN", "OPT", "MAX"),
                   default=[1, 1, 1], help="batch range of a model with a dynamic batch")
    p.add_argument("--profile-hw", type=int, nargs=2, metavar=("H", "W"),
                   help="input size of a model with a dynamic input size")
    p.set_defaults(func=run_build_engine)


def run_build_engine(args: argparse.Namespace) -> int:
    print(build_engine(args.model, args.precision, args.cache_dir, args.workspace_mb,
                       profile_batch=tuple(args.profile_batch),
                       profile_hw=tuple(args.profile_hw) if args.profile_hw else None))
    return EXIT_OK
