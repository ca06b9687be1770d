"""The command lines: every product subcommand is there; unbuilt ones say so."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edge_agent.cli import main as edge_main

SUBCOMMANDS = ["run", "demo", "detect", "eval", "sim", "quantize", "build-engine", "bench",
               "validate-config", "doctor"]


def test_help_lists_every_subcommand():
    done = subprocess.run([sys.executable, "-m", "edge_agent", "--help"],
                          capture_output=True, text=True, check=True)
    for name in SUBCOMMANDS:
        assert f"    {name} " in done.stdout, name


def test_cloud_help():
    done = subprocess.run([sys.executable, "-m", "cloud_fallback", "--help"],
                          capture_output=True, text=True, check=True)
    for name in ("run", "validate-config", "doctor"):
        assert f"    {name} " in done.stdout, name


def test_doctor_checks_this_machine_without_a_config(capsys):
    """Without --config: Python, OpenCV, ONNX Runtime and the bundled model (tests/deploy
    has the doctor against brokers and cameras)."""
    assert edge_main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    verdicts = {c["name"]: c["verdict"] for c in report["checks"]}
    assert report["ok"] and verdicts["python"] == "ok"
    # the bundled synthetic-world model is checked, and invents objects on a blank frame
    assert verdicts["model"] == "warn"
    assert verdicts["broker"] == "skip"


def test_no_subcommand_prints_usage(capsys):
    assert edge_main([]) == 2
    assert "usage: edge-agent" in capsys.readouterr().err


def test_sim_bad_arguments_are_clear(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        edge_main(["sim", "--preset", "nightmare", "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert "invalid choice: 'nightmare'" in capsys.readouterr().err
    assert edge_main(["sim", "--seconds", "-1", "--out", str(tmp_path), "--no-progress"]) == 1
    assert "seconds must be > 0, got -1" in capsys.readouterr().err
