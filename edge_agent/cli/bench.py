"""`edge-agent bench pipeline`: pipeline against pure inference, side by side."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import date
from pathlib import Path

from edge_agent.bundled import bundled_edge_model
from edge_agent.cli.common import EXIT_OK
from edge_agent.config.common import DetectorModelConfig, RuntimeConfig
from edge_agent.detector import Detector


def add_bench(sub) -> None:
    p = sub.add_parser("bench", help="measure the pipeline against pure inference")
    p.add_argument("what", choices=["pipeline"], help="what to measure")
    p.add_argument("--model", type=Path, default=None, help="default: the bundled edge model")
    p.add_argument("--seconds", type=float, default=20.0, help="per measurement (default 20)")
    p.add_argument("--memory-minutes", type=float, default=0.0,
                   help="also run this long at 30 fps and report resident memory (e.g. 10)")
    p.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from edge_agent.bench import bench_pipeline, markdown

    model = args.model or bundled_edge_model()
    detector = Detector.from_config(DetectorModelConfig(path=model),
                                    RuntimeConfig(intra_op_threads=args.threads))
    result = bench_pipeline(detector, args.seconds, args.memory_minutes,
                            progress=lambda s: print(f"bench: {s}", file=sys.stderr, flush=True))
    result["model"] = Path(model).name
    result["date"] = date.today().isoformat()
    result["machine"] = f"{platform.node()} {platform.machine()}"
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['date']}, {result['machine']}, model {result['model']}\n")
        print(markdown(result))
    return EXIT_OK
