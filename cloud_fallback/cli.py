"""`cloud-fallback`: the cloud worker's command line."""

from __future__ import annotations

import argparse

from cloud_fallback.config import load_cloud_config
from edge_agent.cli.common import add_global_options, add_validate_config, not_yet, run_main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cloud-fallback",
        description="Osprey cloud fallback: refines low-confidence windows from edge agents.",
    )
    add_global_options(parser)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    sub.add_parser("run", help="serve offload requests from a shared subscription").set_defaults(
        func=not_yet("cloud-fallback run"))
    add_validate_config(sub, load_cloud_config)
    sub.add_parser("doctor", help="check the model, the broker and Redis").set_defaults(
        func=not_yet("cloud-fallback doctor"))
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), argv)
