"""The agent's MQTT connection against a real Mosquitto: status and last will, schemas,
messages held while the broker is away."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import jsonschema
import numpy as np
import pytest
from listener import Listener, payloads
from servers import mosquitto_server, wait_until

from edge_agent.core.config.common import MqttConfig
from edge_agent.core.detector.detections import Detections
from edge_agent.runtime.mqtt.payloads import SCHEMAS, camera_status_payload, detections_payload
from edge_agent.runtime.mqtt.publisher import Publisher

pytestmark = pytest.mark.integration


def test_online_then_stopped_and_payloads_match_their_schemas(mosquitto):
    listen = Listener(mosquitto.port, "osprey/dev1/#")
    pub = Publisher(MqttConfig(host="127.0.0.1", port=mosquitto.port), "dev1").start()
    try:
        listen.wait(lambda m: b"online" in payloads(m, "osprey/dev1/status"))
        d = Detections(np.array([[1, 2, 30, 40]], np.float32), np.array([0.8], np.float32),
                       np.array([1]), ("person", "car"), np.array([7]))
        det = detections_payload(device="dev1", camera="gate", seq=1, frame=12,
                                 captured_at=time.time(), latency_ms=35.2, model="edge",
                                 width=640, height=360, dets=d)
        status = camera_status_payload("streaming", None)
        assert pub.publish_json(pub.topics.camera("gate", "detections"), det, expiry_s=60)
        assert pub.publish_json(pub.topics.camera("gate", "status"), status, retain=True)
        msgs = listen.wait(lambda m: len(payloads(m, "osprey/dev1/gate/status")) == 1)
        [raw] = payloads(msgs, "osprey/dev1/gate/detections")
        jsonschema.validate(json.loads(raw), SCHEMAS["detections"])
        jsonschema.validate(json.loads(payloads(msgs, "osprey/dev1/gate/status")[0]),
                            SCHEMAS["camera_status"])
        got = next(m for m in msgs if m.topic.endswith("/detections"))
        assert 0 < got.properties.MessageExpiryInterval <= 60
    finally:
        pub.stop()
    listen.wait(lambda m: payloads(m, "osprey/dev1/status")[-1:] == [b"stopped"])
    listen.close()


AGENT = """
import sys, time
from edge_agent.core.config.common import MqttConfig
from edge_agent.runtime.mqtt.publisher import Publisher
pub = Publisher(MqttConfig(host="127.0.0.1", port=int(sys.argv[1]), keepalive_s=5), "dev2")
pub.start()
pub.connected.wait(5)
print("up", flush=True)
time.sleep(60)
"""


def test_a_killed_agent_leaves_offline_through_its_last_will(mosquitto):
    proc = subprocess.Popen([sys.executable, "-c", AGENT, str(mosquitto.port)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "up"
        listen = Listener(mosquitto.port, "osprey/dev2/status")
        listen.wait(lambda m: payloads(m, "osprey/dev2/status") == [b"online"])
        proc.kill()  # no clean disconnect: the broker sends the will
        listen.wait(lambda m: b"offline" in payloads(m, "osprey/dev2/status"), 15)
        listen.close()
        late = Listener(mosquitto.port, "osprey/dev2/status")  # the will is retained
        [msg] = late.wait(lambda m: len(m) == 1)
        assert msg.payload == b"offline" and msg.retain
        late.close()
    finally:
        proc.kill()
        proc.wait(5)


def test_messages_wait_while_the_broker_is_away(tmp_path):
    broker = mosquitto_server(tmp_path / "b").start()
    pub = Publisher(MqttConfig(host="127.0.0.1", port=broker.port, reconnect_min_s=1,
                               reconnect_max_s=2), "dev3").start()
    try:
        assert pub.connected.wait(5)
        broker.stop()
        assert wait_until(lambda: not pub.connected.is_set())
        for i in range(5):
            assert pub.publish_json("osprey/dev3/cam/events", {"i": i}, qos=1)
        broker.start()
        listen = Listener(broker.port, "osprey/dev3/cam/events")
        msgs = listen.wait(lambda m: len(m) == 5, 20)
        assert [json.loads(m.payload)["i"] for m in msgs] == [0, 1, 2, 3, 4]
        assert pub.stats.disconnects >= 1 and pub.stats.connects >= 2
        listen.close()
    finally:
        pub.stop()
        broker.stop()


def test_a_full_queue_drops_and_counts(tmp_path):
    pub = Publisher(MqttConfig(host="127.0.0.1", port=1, max_queued_messages=3), "dev4")
    results = [pub.publish_json("osprey/dev4/x", {"i": i}, qos=1) for i in range(5)]
    assert results == [True, True, True, False, False]
    assert pub.stats.dropped == 2


def test_username_and_password_from_the_config(tmp_path, caplog):
    exe = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not os.path.exists(exe):
        pytest.skip("mosquitto_passwd not installed (it comes with the mosquitto package)")
    passwords = tmp_path / "passwd"
    subprocess.run([exe, "-b", "-c", str(passwords), "edge1", "s3cret-pw"], check=True)
    passwords.chmod(0o600)
    # As root Mosquitto would switch to its own user, who cannot read pytest's private tmp.
    as_root = "user root\n" if os.geteuid() == 0 else ""
    broker = mosquitto_server(tmp_path / "auth", f"allow_anonymous false\n"
                              f"password_file {passwords}\n{as_root}").start()
    secret_file = tmp_path / "pw.txt"
    secret_file.write_text("s3cret-pw\n")
    try:
        good = Publisher(MqttConfig(host="127.0.0.1", port=broker.port, username="edge1",
                                    password_file=secret_file), "auth1").start()
        assert good.connected.wait(5)
        good.stop()
        bad = Publisher(MqttConfig(host="127.0.0.1", port=broker.port, username="edge1",
                                   password="wrong"), "auth2").start()
        assert not bad.connected.wait(2)
        assert "refused the connection" in caplog.text
        assert "wrong" not in caplog.text and "s3cret-pw" not in caplog.text
        bad.stop()
    finally:
        broker.stop()


def test_online_is_said_once_per_connect(tmp_path):
    broker = mosquitto_server(tmp_path / "b").start()
    first = Listener(broker.port, "osprey/dev6/status")
    pub = Publisher(MqttConfig(host="127.0.0.1", port=broker.port, reconnect_min_s=1,
                               reconnect_max_s=1), "dev6").start()
    try:
        first.wait(lambda m: b"online" in payloads(m, "osprey/dev6/status"))
        time.sleep(1.0)  # a second `online` would have come by now
        assert payloads(first.messages, "osprey/dev6/status") == [b"online"]
        first.close()
        broker.stop()
        assert wait_until(lambda: not pub.connected.is_set())
        broker.start()
        again = Listener(broker.port, "osprey/dev6/status")  # before the agent's reconnect
        again.wait(lambda m: b"online" in payloads(m, "osprey/dev6/status"), 15)
        time.sleep(1.0)
        assert payloads(again.messages, "osprey/dev6/status") == [b"online"]
        assert pub.stats.connects == 2
        again.close()
    finally:
        pub.stop()
        broker.stop()
