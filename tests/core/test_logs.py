"""Credentials never reach a log line."""

from __future__ import annotations

import logging

import pytest

from edge_agent.core.logs import RedactingFormatter, redact, register_secret


@pytest.mark.parametrize("text,expected", [
    ("opening rtsp://admin:hunter22@10.0.0.5:554/s1", "opening rtsp://admin:***@10.0.0.5:554/s1"),
    ("http://u:p%40ss@cam/x.mjpg", "http://u:***@cam/x.mjpg"),
    ("rtsp://10.0.0.5/s1 (no credentials)", "rtsp://10.0.0.5/s1 (no credentials)"),
    ("password=abc123 user=x", "password=*** user=x"),
    ('{"password": "abc123"}', '{"password": "***"}'),
    ("token: eyJhbGci", "token: ***"),
])
def test_redact(text, expected):
    assert redact(text) == expected


def test_registered_secret_is_masked_in_messages_and_tracebacks():
    register_secret("s3cr3t-value")
    formatter = RedactingFormatter("%(message)s")
    try:
        raise RuntimeError("auth failed for s3cr3t-value")
    except RuntimeError:
        import sys

        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "login %s", ("s3cr3t-value",),
                                   sys.exc_info())
    out = formatter.format(record)
    assert "s3cr3t-value" not in out and "login ***" in out and "auth failed for ***" in out


def test_log_lines_go_to_the_stderr_of_the_moment(monkeypatch):
    import io
    import sys

    from edge_agent.core.logs import StderrHandler

    handler = StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("osprey-test-stderr")
    log.addHandler(handler)
    log.propagate = False
    try:
        first, second = io.StringIO(), io.StringIO()
        monkeypatch.setattr(sys, "stderr", first)
        log.warning("one")
        first.close()  # a closed stream is not written to again
        monkeypatch.setattr(sys, "stderr", second)
        log.warning("two")
        assert second.getvalue() == "two\n"
    finally:
        log.removeHandler(handler)
