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


def _run(module: str, *args: str, block: str | None = None) -> subprocess.CompletedProcess:
    """A command in a fresh interpreter; `block`: a package made unimportable, as on a
    machine without the extra that installs it."""
    code = (f"import sys; sys.modules[{block!r}] = None; " if block else "import sys; ") + \
        f"from {module}.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("args,flag,fix", [
    (["--source", "htp://cam/stream"], "--source", "unknown scheme 'htp'; valid: rtsp://"),
    (["--source", "synthetic://", "--mqtt-port", "99999"], "--mqtt-port",
     "mqtt.port = 99999: must be less than or equal to 65535"),
    (["--source", "synthetic://", "--metrics-port", "-1"], "--metrics-port",
     "metrics.port = -1: must be greater than or equal to 0"),
    (["--source", "synthetic://", "--model", "."], "--model",
     "model.path = '.': is a directory: give the model file in it"),
])
def test_bad_flags_are_reported_like_config_errors(args, flag, fix):
    done = _run("edge_agent", "run", "--mqtt-host", "127.0.0.1", *args)
    assert done.returncode == 1
    assert f"  - command line ({flag}): " in done.stderr and fix in done.stderr, done.stderr
    assert "pydantic" not in done.stderr and "Traceback" not in done.stderr


def test_a_model_flag_that_is_not_a_model_file(tmp_path):
    for cmd in (["detect", "--source", "synthetic://?seconds=1"], ["eval", "--data", "x"]):
        done = _run("edge_agent", *cmd, "--model", str(tmp_path))
        assert done.returncode == 1 and f"command line (--model): path = '{tmp_path}': is a " \
            "directory" in done.stderr, done.stderr
        assert "pydantic" not in done.stderr


def test_cloud_worker_flags_and_missing_extra_say_what_to_do():
    done = _run("cloud_fallback", "run", "--config", "configs/cloud.yaml", "--mqtt-port", "0")
    assert done.returncode == 1
    assert "command line (--mqtt-port): mqtt.port = 0: must be greater than or equal to 1" \
        in done.stderr, done.stderr
    done = _run("cloud_fallback", "run", "--config", "configs/cloud.yaml", block="cachetools")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "the cloud worker needs the cloud extra (cachetools is not installed): pip install " \
           "'osprey[cloud]'" in done.stderr, done.stderr


def test_eval_without_the_tools_extra_stops_before_reading_anything():
    # --data does not exist: had eval run first, that would be the error
    done = _run("edge_agent", "eval", "--model", "models/edge/osprey_edge_ssdlite.onnx",
                "--data", "no/such/clip", block="pycocotools")
    assert done.returncode == 1
    assert done.stderr.strip() == "edge-agent: error: edge-agent eval needs pycocotools: " \
                                  "pip install 'osprey[tools]'"


def test_the_demo_config_file_is_the_demos_defaults():
    """configs/demo.yaml (for `run --config` against a real broker and worker) and what
    `edge-agent demo` runs without a config are the same camera, window and offload."""
    import argparse

    from edge_agent.cli.demo import demo_config
    from edge_agent.runtime.config import EdgeConfig, load_edge_config

    defaults = EdgeConfig.model_validate(demo_config(argparse.Namespace(
        config=None, source=None, cloud=True)))
    file = load_edge_config("configs/demo.yaml")
    for part in ("device_id", "cameras", "window", "offload"):
        assert getattr(file, part) == getattr(defaults, part), part
    assert file.offload.enabled and file.cameras[0].text_queries
