"""Logging set up once per process, with credentials redacted from every line."""

from __future__ import annotations

import json
import logging
import re
import sys
import time

_URL_CREDENTIALS = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^:/@\s]+):(?P<pw>[^@/\s]+)@")
_KEY_VALUE = re.compile(
    r"(?i)(?P<key>password|passwd|pwd|secret|token|api_key)(?P<sep>\"?\s*[=:]\s*\"?)"
    r"(?P<value>[^\s,;&\"']+)"
)
_secrets: set[str] = set()
_configured = False

MASK = "***"


def register_secret(value: str | None) -> None:
    """Mask this exact value wherever it would appear in a log line from now on."""
    if value and len(value) >= 4:
        _secrets.add(value)


def redact(text: str) -> str:
    """Mask credentials: `rtsp://user:pass@host`, `password=...`, and registered secrets."""
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['head']}:{MASK}@", text)
    text = _KEY_VALUE.sub(lambda m: f"{m['key']}{m['sep']}{MASK}", text)
    for secret in _secrets:
        text = text.replace(secret, MASK)
    return text


class RedactingFormatter(logging.Formatter):
    """Redacts the whole formatted record, message arguments and tracebacks included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(RedactingFormatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(out))


class StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record is emitted, not what it was when the
    handler was made (a replaced or closed stream is not written to forever after)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Configure the root logger the first time; later calls only change the level."""
    global _configured
    root = logging.getLogger()
    root.setLevel(level.upper())
    if _configured:
        return
    handler = StderrHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        formatter = RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        formatter.converter = time.gmtime
        handler.setFormatter(formatter)
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    _configured = True
