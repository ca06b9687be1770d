"""`edge-agent`: the edge agent's command line."""

from __future__ import annotations

import argparse

from edge_agent.cli.bench import add_bench
from edge_agent.cli.demo import add_demo
from edge_agent.cli.detect import add_detect
from edge_agent.cli.doctor import add_doctor
from edge_agent.cli.engine import add_build_engine
from edge_agent.cli.evaluate import add_eval
from edge_agent.cli.quantize import add_quantize
from edge_agent.cli.run import add_run, common_options
from edge_agent.cli.sim import add_sim
from edge_agent.core.cli import add_global_options, add_validate_config, run_main
from edge_agent.runtime.config import load_edge_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-agent",
        description="Osprey edge agent: real-time object detection on edge devices.",
    )
    add_global_options(parser)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    add_run(sub)
    add_demo(sub, common_options)
    add_detect(sub)
    add_eval(sub)
    add_sim(sub)
    add_quantize(sub)
    add_build_engine(sub)
    add_bench(sub)
    add_validate_config(sub, load_edge_config)
    add_doctor(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), argv)
