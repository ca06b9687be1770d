"""The broker configs in configs/mosquitto/ against a real Mosquitto: the ACL keeps devices
apart and lets the workers read every device's requests; TLS refuses a client without the CA."""

from __future__ import annotations

import ssl
import time

import pytest
from deploy_kit import (
    MOSQUITTO_CONFIGS,
    Probe,
    broker_from,
    make_certs,
    password_file,
    tls_refusal,
)

pytestmark = pytest.mark.integration

USERS = {"dev-a": "pw-a", "dev-b": "pw-b", "cloud-worker": "pw-worker",
         "homeassistant": "pw-ha"}
GRANTED_QOS1, NOT_AUTHORIZED, SUCCESS = 1, 135, 0
DELIVERED = (0, 16)  # success, or success with "no matching subscribers"
SHARED = "$share/osprey-cloud/osprey/+/offload/request"


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory):
    """configs/mosquitto/mosquitto-tls.conf with the repository's acl.conf, a password file and
    a fresh CA; only paths and the port differ from the file."""
    tmp = tmp_path_factory.mktemp("secure-broker")
    certs = make_certs(tmp / "certs", "localhost", "127.0.0.1")
    passwords = password_file(tmp / "passwords", USERS)
    (tmp / "data").mkdir()
    server = broker_from(MOSQUITTO_CONFIGS / "mosquitto-tls.conf", tmp, {
        "/mosquitto/certs/": f"{certs}/",
        "/mosquitto/config/passwords": str(passwords),
        "/mosquitto/config/acl.conf": str(MOSQUITTO_CONFIGS / "acl.conf"),
        "/mosquitto/data/": f"{tmp / 'data'}/",
    }).start()
    server.ca = certs / "ca.crt"
    yield server
    server.stop()


@pytest.fixture
def connect(secure_broker):
    probes = []

    def make(user: str) -> Probe:
        probe = Probe(secure_broker.port, user, USERS[user], ca=secure_broker.ca).connect()
        assert probe.connack == SUCCESS, (user, probe.connack)
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
    # Mosquitto 2.0's acl_file applies read rules at delivery, not at SUBSCRIBE: the SUBACK
    # may grant the subscription, or (other versions) refuse it; either way nothing arrives.
    codes = b.subscribe("osprey/dev-a/#") + b.subscribe("osprey/+/offload/request")
    assert all(c in (GRANTED_QOS1, 0x80, NOT_AUTHORIZED) for c in codes), codes
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
