"""The broker configs in configs/mosquitto/ against a real Mosquitto, with accounts made by
scripts/broker_accounts.py: roles keep devices apart and let the workers read every device's
requests; a device can neither join the workers' shared subscription nor take over another
client's id; TLS refuses a client without the CA."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time

import pytest
from deploy_kit import (
    DYNSEC_PLUGIN,
    MOSQUITTO_CONFIGS,
    REPO,
    Probe,
    accounts,
    broker_from,
    dynsec_plugin,
    make_certs,
    tls_refusal,
)

pytestmark = pytest.mark.integration

DEVICES = {"dev-a": "pw-a", "dev-b": "pw-b"}
USERS = {**DEVICES, "cloud-worker": "pw-worker", "homeassistant": "pw-ha"}
GRANTED_QOS1, NOT_AUTHORIZED, SUCCESS = 1, 135, 0
DELIVERED = (0, 16)  # success, or success with "no matching subscribers"
SHARED = "$share/osprey-cloud/osprey/+/offload/request"


def secure_broker_in(tmp) -> object:
    """configs/mosquitto/mosquitto-tls.conf with accounts from scripts/broker_accounts.py and
    a fresh CA; only paths and the port differ from the file."""
    certs = make_certs(tmp / "certs", "localhost", "127.0.0.1")
    security = tmp / "security"
    accounts(security / "dynamic-security.json", DEVICES, {"cloud-worker": USERS["cloud-worker"]},
             homeassistant=USERS["homeassistant"])
    (tmp / "data").mkdir()
    server = broker_from(MOSQUITTO_CONFIGS / "mosquitto-tls.conf", tmp, {
        "/mosquitto/certs/": f"{certs}/",
        DYNSEC_PLUGIN: dynsec_plugin(),
        "/mosquitto/security/": f"{security}/",
        "/mosquitto/data/": f"{tmp / 'data'}/",
    }).start()
    server.ca = certs / "ca.crt"
    return server


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory):
    server = secure_broker_in(tmp_path_factory.mktemp("secure-broker"))
    yield server
    server.stop()


def client_id(user: str) -> str | None:
    """A device's account is bound to the agent's client id; the others take any."""
    return f"osprey-{user}" if user in DEVICES else None


@pytest.fixture
def connect(secure_broker):
    probes = []

    def make(user: str, cid: str | None = None, expect: int = SUCCESS) -> Probe:
        probe = Probe(secure_broker.port, user, USERS[user], ca=secure_broker.ca,
                      client_id=cid or client_id(user)).connect()
        assert probe.connack == expect, (user, probe.connack)
        probes.append(probe)
        return probe

    yield make
    for probe in probes:
        probe.close()


def test_a_worker_reads_every_devices_requests_through_the_shared_subscription(connect):
    worker, a, b = connect("cloud-worker"), connect("dev-a"), connect("dev-b")
    assert worker.subscribe(SHARED) == [GRANTED_QOS1]
    assert a.publish("osprey/dev-a/offload/request", b"from a") in DELIVERED
    assert b.publish("osprey/dev-b/offload/request", b"from b") in DELIVERED
    got = worker.wait_messages(2, 5)
    assert sorted(got) == [("osprey/dev-a/offload/request", b"from a"),
                           ("osprey/dev-b/offload/request", b"from b")]
    # and answers each device on its own response topic
    assert a.subscribe("osprey/dev-a/offload/response") == [GRANTED_QOS1]
    assert worker.publish("osprey/dev-a/offload/response", b"answer") == SUCCESS
    assert a.wait_messages(1, 5) == [("osprey/dev-a/offload/response", b"answer")]


def test_a_device_cannot_publish_to_another_devices_topics(connect):
    a, b = connect("dev-a"), connect("dev-b")
    assert b.subscribe("osprey/dev-b/offload/response") == [GRANTED_QOS1]
    # MQTT 5 tells the publisher (PUBACK 0x87); the message goes nowhere.
    assert a.publish("osprey/dev-b/offload/response", b"forged answer") == NOT_AUTHORIZED
    assert a.publish("osprey/dev-b/cam/detections", b"forged") == NOT_AUTHORIZED
    assert a.publish("osprey/dev-a/cam/detections", b"own topic") in DELIVERED
    time.sleep(0.5)
    assert b.messages == []


def test_a_device_subscribed_to_another_devices_topics_receives_nothing(connect):
    a, b = connect("dev-a"), connect("dev-b")
    for topic in ("osprey/dev-a/#", "osprey/+/offload/request", "osprey/#", "#"):
        assert b.subscribe(topic) == [NOT_AUTHORIZED], topic
    assert a.publish("osprey/dev-a/cam/detections", b"{}") in DELIVERED
    assert a.publish("osprey/dev-a/offload/request", b"keyframes") in DELIVERED
    assert a.publish("osprey/dev-a/status", b"online") in DELIVERED
    time.sleep(0.5)
    assert b.messages == []


def test_a_worker_cannot_write_device_topics_other_than_answers(connect):
    worker = connect("cloud-worker")
    assert worker.publish("osprey/dev-a/cam/detections", b"forged") == NOT_AUTHORIZED
    assert worker.publish("osprey/dev-a/status", b"offline") == NOT_AUTHORIZED
    assert worker.publish("osprey/cloud/worker-1/stats", b"{}") in DELIVERED


def test_anonymous_and_wrong_passwords_are_refused(secure_broker):
    anonymous = Probe(secure_broker.port, ca=secure_broker.ca).connect()
    wrong = Probe(secure_broker.port, "dev-a", "not-it", ca=secure_broker.ca).connect()
    try:
        assert anonymous.connack == NOT_AUTHORIZED
        # Mosquitto answers a wrong password with 0x87 too; others say 0x86 (bad password)
        assert wrong.connack in (134, NOT_AUTHORIZED)
    finally:
        anonymous.close()
        wrong.close()


def test_tls_refuses_a_client_without_the_ca(secure_broker):
    refused = tls_refusal(secure_broker.port, ca=None)  # the system's CAs only
    assert isinstance(refused, ssl.SSLCertVerificationError), refused
    assert "certificate verify failed" in str(refused)
    assert tls_refusal(secure_broker.port, secure_broker.ca) is None


def test_a_plain_client_gets_no_answer_on_the_tls_port(secure_broker):
    plain = Probe(secure_broker.port, "dev-a", USERS["dev-a"], tls=False).connect(timeout=2)
    try:
        assert plain.connack is None
    finally:
        plain.close()


def test_the_plain_config_serves_anonymous_clients(tmp_path):
    server = broker_from(MOSQUITTO_CONFIGS / "mosquitto.conf", tmp_path, {}).start()
    try:
        probe = Probe(server.port, tls=False).connect()
        assert probe.connack == SUCCESS
        assert probe.subscribe("osprey/#") == [GRANTED_QOS1]
        assert probe.publish("osprey/dev/status", b"online") == SUCCESS
        assert probe.wait_messages(1, 5) == [("osprey/dev/status", b"online")]
        probe.close()
    finally:
        server.stop()


def test_home_assistant_discovery_through_the_acl(connect):
    """A device announces its own entities and hears Home Assistant's birth message; it
    cannot announce (or clear) another device's; Home Assistant reads both."""
    a, ha = connect("dev-a"), connect("homeassistant")
    assert ha.subscribe("homeassistant/+/+/+/config") == [GRANTED_QOS1]
    assert ha.subscribe("osprey/dev-a/#") == [GRANTED_QOS1]
    assert a.subscribe("homeassistant/status") == [GRANTED_QOS1]
    own = "homeassistant/sensor/osprey_dev-a/osprey_dev-a_cam_state/config"
    assert a.publish(own, b"{}") in DELIVERED
    assert a.publish("homeassistant/sensor/osprey_dev-b/osprey_dev-b_cam_state/config",
                     b"") == NOT_AUTHORIZED
    assert a.publish("osprey/dev-a/cam/count/person", b"2") in DELIVERED
    assert sorted(ha.wait_messages(2, 5)) == [("homeassistant/sensor/osprey_dev-a/"
                                               "osprey_dev-a_cam_state/config", b"{}"),
                                              ("osprey/dev-a/cam/count/person", b"2")]
    assert ha.publish("homeassistant/status", b"online") in DELIVERED
    assert a.wait_messages(1, 5) == [("homeassistant/status", b"online")]


def test_the_broker_refuses_messages_over_the_workers_cap(connect):
    """max_packet_size: a 5 MB request never reaches the workers (the device is told the limit
    in its CONNACK, and disconnected if it sends more); a 1 MB one does."""
    import paho.mqtt.client as mqtt

    worker, a = connect("cloud-worker"), connect("dev-a")
    assert worker.subscribe(SHARED) == [GRANTED_QOS1]
    info = a.client.publish("osprey/dev-a/offload/request", b"\0" * (5 << 20), qos=1)
    assert info.rc in (mqtt.MQTT_ERR_PAYLOAD_SIZE, mqtt.MQTT_ERR_SUCCESS)
    time.sleep(1.0)
    assert worker.messages == []
    b = connect("dev-b")
    assert b.publish("osprey/dev-b/offload/request", b"\1" * (1 << 20)) in DELIVERED
    [(topic, payload)] = worker.wait_messages(1, 5)
    assert topic == "osprey/dev-b/offload/request" and len(payload) == 1 << 20


def test_a_device_cannot_join_the_workers_shared_subscription(connect):
    """A device that subscribes to the workers' shared subscription is refused at SUBSCRIBE:
    the broker never routes a share of the requests to it (with an ACL file it was granted,
    and every request routed to it was dropped unanswered)."""
    worker, a, b = connect("cloud-worker"), connect("dev-a"), connect("dev-b")
    assert worker.subscribe(SHARED) == [GRANTED_QOS1]
    assert b.subscribe(SHARED) == [NOT_AUTHORIZED]
    assert b.subscribe("$share/another-group/osprey/+/offload/request") == [NOT_AUTHORIZED]
    for i in range(6):
        assert a.publish("osprey/dev-a/offload/request", b"%d" % i) in DELIVERED
    got = worker.wait_messages(6, 5)
    assert sorted(p for _, p in got) == [b"%d" % i for i in range(6)]
    assert b.messages == []


def test_a_device_cannot_take_over_another_clients_id(connect, secure_broker):
    """Each device's account is bound to its own client id: connecting with a worker's or
    another device's id is refused and the victim stays connected (with an ACL file it was
    accepted, the victim was disconnected and its last will published)."""
    a = connect("dev-a")
    worker = connect("cloud-worker", cid="osprey-cloud-w1")
    assert worker.subscribe(SHARED) == [GRANTED_QOS1]
    connect("dev-b", cid="osprey-dev-a", expect=NOT_AUTHORIZED)
    connect("dev-b", cid="osprey-cloud-w1", expect=NOT_AUTHORIZED)
    connect("dev-b", cid="anything-else", expect=NOT_AUTHORIZED)
    time.sleep(0.5)
    assert a.disconnected is None and worker.disconnected is None
    assert a.publish("osprey/dev-a/offload/request", b"still here") in DELIVERED
    assert worker.wait_messages(1, 5) == [("osprey/dev-a/offload/request", b"still here")]
    # its own id still works, and a second connection with it takes over the first (MQTT's
    # rule, and the only takeover left: by whoever holds the same device's password)
    b = connect("dev-b")
    again = connect("dev-b")
    assert b.client._client_id == again.client._client_id == b"osprey-dev-b"
    with b.cond:  # (Mosquitto 2.0.11 closes the socket; later ones say 0x8E first)
        assert b.cond.wait_for(lambda: b.disconnected is not None, 5)


def test_the_accounts_script_says_what_is_wrong(tmp_path):
    script = [sys.executable, str(REPO / "scripts" / "broker_accounts.py")]
    path = tmp_path / "dynamic-security.json"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*script, str(path), *args], capture_output=True, text=True)

    done = run("device", "cam-1")
    assert done.returncode == 2 and "no such file: make it first with" in done.stderr
    assert run("init").returncode == 0
    assert "exists" in run("init").stderr
    done = run("device", "cam-1")
    assert done.returncode == 0 and "password for cam-1: " in done.stdout
    assert "pass --replace" in run("device", "cam-1").stderr
    assert "--password-env NOPE" in run("device", "cam-2", "--password-env", "NOPE").stderr
    assert "topic level" in run("device", "cams/+").stderr
    clash = run("device", "cam-3", "--client-id", "osprey-cam-1")
    assert clash.returncode == 2 and "already bound to account 'cam-1'" in clash.stderr
    assert "osprey-cam-1" in run("list").stdout
    assert "reserved" in run("device", "cloud").stderr  # osprey/cloud/ is the workers'
    # the agent's node id rule for Home Assistant (runs of other characters: one _)
    from edge_agent.runtime.mqtt.homeassistant import object_id
    assert run("device", "gate..01.", "--password-env", "HOME").returncode == 0
    doc = json.loads(path.read_text())
    role = next(r for r in doc["roles"] if r["rolename"] == "device-gate..01.")
    node = object_id("osprey", "gate..01.")
    assert node == "osprey_gate_01"
    assert {a["topic"] for a in role["acls"]} >= {f"homeassistant/+/{node}/+/config"}
    assert run("remove", "cam-1").returncode == 0
    assert "no account 'cam-1'" in run("remove", "cam-1").stderr
    assert path.stat().st_mode & 0o777 == 0o600
