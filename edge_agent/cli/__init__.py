"""`edge-agent`: the edge agent's command line."""

from __future__ import annotations

import argparse

from edge_agent.cli.common import add_global_options, add_validate_config, not_yet, run_main
from edge_agent.cli.detect import add_detect
from edge_agent.cli.engine import add_build_engine
from edge_agent.cli.sim import add_sim
from edge_agent.config import load_edge_config

_LATER = {
    "run": "run the agent: cameras -> detector -> MQTT (with offload when configured)",
    "demo": "run the agent on a synthetic camera, bundled model and embedded broker",
    "eval": "mAP of a model on a synthetic-world clip and its ground truth",
    "quantize": "calibrate and write an INT8 (QDQ) ONNX model",
    "bench": "measure inference and pipeline speed",
    "doctor": "check this machine, the model, the broker and the cameras",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-agent",
        description="Osprey edge agent: real-time object detection on edge devices.",
    )
    add_global_options(parser)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in ("run", "demo"):
        sub.add_parser(name, help=_LATER[name]).set_defaults(func=not_yet(f"edge-agent {name}"))
    add_detect(sub)
    sub.add_parser("eval", help=_LATER["eval"]).set_defaults(func=not_yet("edge-agent eval"))
    add_sim(sub)
    add_build_engine(sub)
    for name in ("quantize", "bench"):
        sub.add_parser(name, help=_LATER[name]).set_defaults(func=not_yet(f"edge-agent {name}"))
    add_validate_config(sub, load_edge_config)
    sub.add_parser("doctor", help=_LATER["doctor"]).set_defaults(
        func=not_yet("edge-agent doctor"))
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), argv)
