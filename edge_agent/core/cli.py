"""Pieces both command-line tools share."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ValidationError

from edge_agent import __version__
from edge_agent.core.config.loader import dump_config, flag_error
from edge_agent.core.errors import OspreyError
from edge_agent.core.logs import redact, setup_logging

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2

log = logging.getLogger("osprey.cli")


def add_global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper)
    parser.add_argument("--log-format", default="text", choices=["text", "json"])


def validate_config(load: Callable[[Path], BaseModel], args: argparse.Namespace) -> int:
    config = load(args.file)
    print(f"{args.file}: OK")
    if args.print:
        print(dump_config(config), end="")
    return EXIT_OK


def add_validate_config(sub, load: Callable[[Path], BaseModel]) -> None:
    p = sub.add_parser("validate-config", help="check a config file and say what is wrong")
    p.add_argument("file", type=Path, help="YAML config file")
    p.add_argument("--print", action="store_true",
                   help="print the effective config (defaults filled, secrets masked)")
    p.set_defaults(func=lambda args: validate_config(load, args))


def run_main(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args))
    except OspreyError as exc:
        print(redact(f"{parser.prog}: error: {exc}"), file=sys.stderr)
        return EXIT_ERROR
    except ValidationError as exc:  # a value from the command line, checked by a config model
        print(redact(f"{parser.prog}: error: {flag_error(exc)}"), file=sys.stderr)
        return EXIT_ERROR
    except ValueError as exc:
        print(redact(f"{parser.prog}: error: {exc}"), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
