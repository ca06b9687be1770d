"""`edge-agent doctor`: is this machine, this config, this broker and these cameras ready?"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_agent.config import load_edge_config
from edge_agent.config.loader import ConfigFileError
from edge_agent.doctor import Check, edge_checks, exit_code, render_json, render_text
from edge_agent.doctor.report import fail, ok
from edge_agent.errors import ConfigError


def add_doctor(sub) -> None:
    p = sub.add_parser("doctor", help="check this machine, the model, the broker and the "
                                      "cameras; exit 1 when something the config needs is "
                                      "missing")
    p.add_argument("--config", type=Path, help="edge config (YAML); without it, this machine "
                                               "and the bundled model only")
    add_report_options(p)
    p.set_defaults(func=doctor_cmd)


def add_report_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="seconds to wait for each camera and service (default 10)")


def config_check(path: Path, load, tool: str) -> tuple[Check, object | None]:
    """The config line, and the config when it is valid."""
    try:
        config = load(path)
    except ConfigFileError as exc:
        problems = "; ".join(f"{p.where}: {p.path or '(top level)'}: {p.message}"
                             for p in exc.problems)
        return fail("config", f"invalid: {problems}",
                    f"`{tool} validate-config {path}` shows each problem"), None
    except ConfigError as exc:
        return fail("config", str(exc), "give the path of a YAML config"), None
    return ok("config", f"{path}: valid"), config


def report(checks: list[Check], as_json: bool) -> int:
    print(render_json(checks) if as_json else render_text(checks), flush=True)
    return exit_code(checks)


def doctor_cmd(args: argparse.Namespace) -> int:
    checks, config = [], None
    if args.config:
        line, config = config_check(args.config, load_edge_config, "edge-agent")
        checks.append(line)
    return report(checks + edge_checks(config, timeout=args.timeout), args.json)
