"""Real parts for the deployment tests: linters, a private CA, Mosquitto started from the
configs in configs/mosquitto/, and an MQTT client that records every acknowledgement."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from servers import Server, free_port, in_ci, require_binary

REPO = Path(__file__).resolve().parents[2]
MOSQUITTO_CONFIGS = REPO / "configs" / "mosquitto"


def dev_tool(name: str, pip_package: str) -> str:
    """A linter from the dev tools (on PATH or next to this Python); skip when absent, fail
    under CI=true."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found:
        return found
    msg = f"{name} not found: pip install {pip_package}"
    if in_ci():
        pytest.fail(f"{msg} (CI=true: a missing tool is a failure, not a skip)")
    pytest.skip(msg)


def make_certs(out: Path, *hosts: str) -> Path:
    """A throwaway CA and broker certificate made by the script users run."""
    require_binary("openssl", "openssl")
    subprocess.run(["bash", str(REPO / "deploy/compose/gen-certs.sh"), str(out), *hosts],
                   check=True, capture_output=True)
    return out


def password_file(path: Path, users: dict[str, str]) -> Path:
    exe = require_binary("mosquitto_passwd", "mosquitto")
    for i, (user, password) in enumerate(users.items()):
        subprocess.run([exe, "-b", *(["-c"] if i == 0 else []), str(path), user, password],
                       check=True, capture_output=True)
    path.chmod(0o600)
    return path


DYNSEC_PLUGIN = "/usr/lib/mosquitto_dynamic_security.so"
"""The plugin's path in the eclipse-mosquitto image (the shipped TLS config's)."""


def dynsec_plugin() -> str:
    """The dynamic-security plugin of the Mosquitto installed here (Debian's package ships it
    under the multiarch library folder)."""
    found = [*sorted(Path("/usr/lib").glob("*/mosquitto_dynamic_security.so")),
             Path(DYNSEC_PLUGIN)]
    for path in found:
        if path.exists():
            return str(path)
    pytest.skip("Mosquitto's dynamic-security plugin is not installed (it comes with the "
                "mosquitto package, 2.0 or later)")


def accounts(path: Path, devices: dict[str, str], workers: dict[str, str] | None = None,
             homeassistant: str | None = None) -> Path:
    """A dynamic-security file made by scripts/broker_accounts.py, the way users make it."""
    script = [sys.executable, str(REPO / "scripts" / "broker_accounts.py"), str(path)]

    def run(*args: str, password: str | None = None) -> None:
        env = {**os.environ, "OSPREY_ACCOUNT_PASSWORD": password or ""}
        extra = ["--password-env", "OSPREY_ACCOUNT_PASSWORD"] if password else []
        subprocess.run([*script, *args, *extra], check=True, capture_output=True, env=env)

    run("init")
    for device, password in devices.items():
        run("device", device, password=password)
    for worker, password in (workers or {}).items():
        run("worker", worker, password=password)
    if homeassistant:
        run("homeassistant", password=homeassistant)
    return path


def broker_from(conf: Path, workdir: Path, replace: dict[str, str]) -> Server:
    """Mosquitto run from one of the repository's configs, its paths and port replaced so it
    runs in `workdir` on a free port; every other line is the file's own."""
    exe = require_binary("mosquitto", "mosquitto")
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    lines = []
    for line in conf.read_text().splitlines():
        if line.startswith("listener "):
            line = f"listener {port} 127.0.0.1"
        for old, new in replace.items():
            line = line.replace(old, new)
        lines.append(line)
    # As root, Mosquitto would switch to its own user, who cannot read pytest's tmp.
    lines += ["log_dest stdout", "log_type all"] + (["user root"] if os.geteuid() == 0 else [])
    path = workdir / "mosquitto.conf"
    path.write_text("\n".join(lines) + "\n")
    return Server("mosquitto", [exe, "-c", str(path)], port, workdir)


class Probe:
    """An MQTT v5 client that records messages, CONNACK, SUBACK and PUBACK reason codes."""

    def __init__(self, port: int, user: str | None = None, password: str | None = None, *,
                 ca: Path | None = None, tls: bool = True, client_id: str | None = None) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.acks: dict[object, list[int]] = {}
        self.cond = threading.Condition()
        self.connack: int | None = None
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5,
                                  client_id=client_id or f"probe-{user}-{id(self)}")
        self.disconnected: int | None = None
        self.client.on_disconnect = self._on_disconnect
        if user:
            self.client.username_pw_set(user, password)
        if tls:
            self.client.tls_set(ca_certs=str(ca) if ca else None)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda c, u, mid, codes, p: self._ack(mid, codes)
        self.client.on_publish = lambda c, u, mid, code, p: self._ack(("pub", mid), [code])
        self.port = port

    def connect(self, timeout: float = 5.0) -> Probe:
        self.client.connect("localhost", self.port)
        self.client.loop_start()
        with self.cond:
            self.cond.wait_for(lambda: self.connack is not None, timeout)
        return self

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        with self.cond:
            self.connack = reason_code.value
            self.cond.notify_all()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self.cond:
            self.disconnected = reason_code.value
            self.cond.notify_all()

    def _on_message(self, client, userdata, msg) -> None:
        with self.cond:
            self.messages.append((msg.topic, msg.payload))
            self.cond.notify_all()

    def _ack(self, key, codes) -> None:
        with self.cond:
            self.acks[key] = [c.value for c in codes]
            self.cond.notify_all()

    def subscribe(self, topic: str) -> list[int]:
        _, mid = self.client.subscribe(topic, qos=1)
        return self._wait_ack(mid)

    def publish(self, topic: str, payload: bytes) -> int:
        info = self.client.publish(topic, payload, qos=1)
        return self._wait_ack(("pub", info.mid))[0]

    def _wait_ack(self, key, timeout: float = 5.0) -> list[int]:
        with self.cond:
            assert self.cond.wait_for(lambda: key in self.acks, timeout), f"no ack for {key}"
            return self.acks[key]

    def wait_messages(self, count: int, timeout: float) -> list[tuple[str, bytes]]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def tls_refusal(port: int, ca: Path | None) -> Exception | None:
    """The exception a TLS connect raises (None when it succeeds)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(ca) if ca else None)
    try:
        client.connect("localhost", port)
    except (ssl.SSLError, OSError) as exc:
        return exc
    client.disconnect()
    return None
