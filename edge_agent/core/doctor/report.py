"""One check's verdict, and the report made of them: text lines for people, JSON for tools."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from edge_agent.core.config.loader import ConfigFileError
from edge_agent.core.errors import ConfigError
from edge_agent.core.logs import redact

Verdict = Literal["ok", "warn", "FAIL", "skip"]
"""ok: fine. warn: works, but worse than it could (the agent runs). FAIL: something this config
needs is missing or broken (the agent would not do its job). skip: not applicable here."""

EXIT_HEALTHY, EXIT_FAILED = 0, 1


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str
    fix: str | None = None

    def line(self) -> str:
        text = f"{self.verdict:<4}  {self.name:<14} {self.detail}"
        if self.fix:
            text += f" -> fix: {self.fix}"
        return redact(text)


def ok(name: str, detail: str) -> Check:
    return Check(name, "ok", detail)


def warn(name: str, detail: str, fix: str | None = None) -> Check:
    return Check(name, "warn", detail, fix)


def fail(name: str, detail: str, fix: str | None = None) -> Check:
    return Check(name, "FAIL", detail, fix)


def skip(name: str, detail: str) -> Check:
    return Check(name, "skip", detail)


def exit_code(checks: list[Check]) -> int:
    return EXIT_FAILED if any(c.verdict == "FAIL" for c in checks) else EXIT_HEALTHY


def summary(checks: list[Check]) -> str:
    counts = Counter(c.verdict for c in checks)
    parts = [f"{counts[v]} {v}" for v in ("FAIL", "warn", "ok", "skip") if counts[v]]
    verdict = "problems found" if exit_code(checks) else "ready"
    return f"doctor: {verdict} ({', '.join(parts)})"


def render_text(checks: list[Check]) -> str:
    return "\n".join([*(c.line() for c in checks), summary(checks)])


def render_json(checks: list[Check]) -> str:
    return redact(json.dumps({"ok": exit_code(checks) == EXIT_HEALTHY,
                              "checks": [asdict(c) for c in checks]}, indent=2))


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
