"""`edge-agent doctor`: is this machine, this config, this broker and these cameras ready?"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_agent.core.doctor.report import add_report_options, config_check, report
from edge_agent.doctor import edge_checks
from edge_agent.runtime.config import load_edge_config


def add_doctor(sub) -> None:
    p = sub.add_parser("doctor", help="check this machine, the model, the broker and the "
                                      "cameras; exit 1 when something the config needs is "
                                      "missing")
    p.add_argument("--config", type=Path, help="edge config (YAML); without it, this machine "
                                               "and the bundled model only")
    add_report_options(p)
    p.set_defaults(func=doctor_cmd)


def doctor_cmd(args: argparse.Namespace) -> int:
    checks, config = [], None
    if args.config:
        line, config = config_check(args.config, load_edge_config, "edge-agent")
        checks.append(line)
    return report(checks + edge_checks(config, timeout=args.timeout), args.json)
