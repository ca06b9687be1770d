"""`edge-agent run` and `edge-agent demo` as a user runs them: separate processes, a real broker
(or the embedded one), signals, exit codes."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import paho.mqtt.client as mqtt
import pytest
from agent_kit import decoded
from listener import Listener
from servers import free_port, mosquitto_server, wait_until

from edge_agent.runtime.mqtt.embedded import broker_reachable

pytestmark = pytest.mark.integration

EDGE = [sys.executable, "-m", "edge_agent"]


def test_run_with_a_config_file_over_mqtt_3_1_1(mosquitto, tmp_path):
    config = tmp_path / "edge.yaml"
    config.write_text(f"""
device_id: cli-v311
cameras:
  - name: gate
    url: "synthetic://?seed=31&seconds=3"
mqtt:
  host: 127.0.0.1
  port: {mosquitto.port}
  protocol: "3.1.1"
metrics:
  port: 0
""")
    listen = Listener(mosquitto.port, "osprey/cli-v311/#")
    done = subprocess.run([*EDGE, "run", "--config", str(config)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    msgs = listen.wait(lambda ms: any(m.payload == b"stopped" for m in ms), 10)
    listen.close()
    dets = decoded(msgs, "osprey/cli-v311/gate/detections", "detections")
    assert len(dets) >= 45 and [d["seq"] for d in dets] == list(range(1, len(dets) + 1))
    assert "mosquitto_sub -h 127.0.0.1" in done.stderr


def test_run_without_a_broker_address_says_what_to_do():
    done = subprocess.run([*EDGE, "run", "--source", "synthetic://?seconds=1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "mqtt.host is not set" in done.stderr and "--mqtt-host" in done.stderr


def test_run_with_a_missing_model_says_what_to_do(tmp_path):
    done = subprocess.run([*EDGE, "run", "--source", "synthetic://?seconds=1", "--model",
                           str(tmp_path / "nope.onnx"), "--mqtt-host", "127.0.0.1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "nope.onnx" in done.stderr and "Traceback" not in done.stderr


def test_sigterm_is_a_clean_stop(mosquitto):
    listen = Listener(mosquitto.port, "osprey/cli-term/#")
    proc = subprocess.Popen([*EDGE, "run", "--source", "synthetic://?seed=32", "--device",
                             "cli-term", "--mqtt-host", "127.0.0.1", "--mqtt-port",
                             str(mosquitto.port), "--metrics-port", "0"],
                            stderr=subprocess.PIPE, text=True)
    try:
        listen.wait(lambda ms: len(decoded(ms, "osprey/cli-term/cam0/detections")) >= 10, 30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        proc.kill()
    msgs = listen.wait(lambda ms: any(m.payload == b"stopped" for m in ms), 10)
    listen.close()
    assert [m.payload for m in msgs if m.topic == "osprey/cli-term/status"][-1] == b"stopped"
    assert "offline" not in [m.payload.decode() for m in msgs
                             if m.topic == "osprey/cli-term/status"]
    states = decoded(msgs, "osprey/cli-term/cam0/status", "camera_status")
    assert states[-1]["state"] == "down" and states[-1]["reason"] == "stopped"


def demo_subscriber(port: int, got: list) -> mqtt.Client:
    """A subscriber to everything the demo publishes (its broker speaks MQTT 3.1.1)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    client.on_connect = lambda c, *a: c.subscribe("osprey/demo/#", qos=1)
    client.on_message = lambda c, u, m: got.append(m)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def test_demo_starts_an_embedded_broker_when_none_answers():
    port = free_port()
    assert not broker_reachable("127.0.0.1", port)
    proc = subprocess.Popen([*EDGE, "demo", "--seconds", "8", "--mqtt-port", str(port),
                             "--metrics-port", "0", "--no-summary", "--no-cloud"],
                            stderr=subprocess.PIPE, text=True)
    got = []
    try:
        assert wait_until(lambda: broker_reachable("127.0.0.1", port), 30)
        client = demo_subscriber(port, got)
        assert wait_until(lambda: len(decoded(got, "osprey/demo/street/detections")) >= 20,
                          30)
        client.loop_stop()
        client.disconnect()
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert f"mosquitto_sub -h 127.0.0.1 -p {port} -t 'osprey/demo/#'" in err
    assert "embedded broker" in err and "offload:" not in err
    assert not any(m.topic.endswith(("/refined", "/offload/request")) for m in got)
    dets = decoded(got, "osprey/demo/street/detections", "detections")
    seq = [d["seq"] for d in dets]
    assert seq == list(range(seq[0], seq[0] + len(seq)))
    time.sleep(0.5)
    assert not broker_reachable("127.0.0.1", port), "the embedded broker outlived the demo"


@pytest.mark.slow
def test_demo_shows_the_whole_mission_within_a_minute():
    """`edge-agent demo` as a newcomer runs it: its own broker, the agent and a cloud worker in
    one process; a real subscriber sees detections, a `refined` answer from the cloud, one
    from the edge cache and a `matches` message, and Ctrl-C stops it cleanly."""
    port = free_port()
    proc = subprocess.Popen([*EDGE, "demo", "--mqtt-port", str(port), "--metrics-port", "0"],
                            stderr=subprocess.PIPE, text=True)
    got: list = []
    started = time.monotonic()
    try:
        assert wait_until(lambda: broker_reachable("127.0.0.1", port), 30)
        client = demo_subscriber(port, got)

        def refined(source):
            return [r for r in decoded(got, "osprey/demo/street/refined", "refined")
                    if r["source"] == source]

        def seen_all():
            return (decoded(got, "osprey/demo/street/detections") and refined("cloud")
                    and refined("cache") and decoded(got, "osprey/demo/street/matches"))

        # a minute of the newcomer's time, with room for a busy CI machine
        assert wait_until(seen_all, 100), sorted({m.topic for m in got})
        within = time.monotonic() - started
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        client.loop_stop()
        client.disconnect()
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    print(f"detections, refined (cloud and cache) and matches within {within:.0f} s")
    cloud, cache = refined("cloud"), refined("cache")
    assert all(r["model"] == "osprey_cloud_ssdlite" for r in cloud + cache)
    assert any(d["detections"] for r in cache for d in r["frames"])
    matches = [m for msg in decoded(got, "osprey/demo/street/matches", "matches")
               for m in msg["matches"]]
    assert {m["query"] for m in matches} <= {"red car", "person"}
    assert "offload:" in err and "cloud worker in this process" in err
    assert "-T 'osprey/demo/+/snapshot'" in err
    last = [line for line in err.splitlines() if line.startswith("street ")][-1]
    counted = {k: int(v) for k, v in re.findall(r"(refined|cache hits|matches) (\d+)", last)}
    assert counted["refined"] >= len(cloud) and counted["cache hits"] >= len(cache) >= 1
    assert "Traceback" not in err
    assert [m.payload for m in got if m.topic == "osprey/demo/status"][-1] == b"stopped"


def _file_run_config(tmp_path, port: int, device: str, flush_s: float):
    config = tmp_path / f"{device}.yaml"
    config.write_text(f"""
device_id: {device}
cameras:
  - name: cam
    url: "synthetic://?seed=33&seconds=1&width=320&height=180"
mqtt:
  host: 127.0.0.1
  port: {port}
  reconnect_min_s: 1
  reconnect_max_s: 1
  flush_timeout_s: {flush_s}
metrics:
  port: 0
""")
    return config


def test_a_run_without_its_broker_says_nothing_was_delivered(tmp_path):
    config = _file_run_config(tmp_path, free_port(), "nobroker", 1)
    done = subprocess.run([*EDGE, "run", "--config", str(config)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    said = re.search(r"(\d+) messages \(detections, events, stats\) were never delivered to "
                     r"the broker 127\.0\.0\.1:\d+", done.stderr)
    assert said and int(said.group(1)) >= 15, done.stderr  # 30 frames of detections at least
    assert "mqtt.flush_timeout_s" in done.stderr


def test_a_stop_waits_for_a_late_broker_and_delivers_everything(tmp_path):
    """The broker comes back while the agent, its file done, waits to deliver: every held
    message arrives, in order, `stopped` last, and the run ends well."""
    broker = mosquitto_server(tmp_path / "b")
    config = _file_run_config(tmp_path, broker.port, "late", 60)
    proc = subprocess.Popen([*EDGE, "run", "--config", str(config)], stderr=subprocess.PIPE,
                            text=True)
    try:
        line = ""
        while "before stopping" not in line:
            line = proc.stderr.readline()
            assert line, "the agent ended without waiting to deliver"
        waiting = int(re.search(r"delivering (\d+) messages", line).group(1))
        broker.start()
        listen = Listener(broker.port, "osprey/late/#")
        msgs = listen.wait(lambda ms: any(m.payload == b"stopped" for m in ms), 30)
        assert proc.wait(30) == 0, proc.stderr.read()
        listen.close()
    finally:
        proc.kill()
        broker.stop()
    dets = decoded(msgs, "osprey/late/cam/detections", "detections")
    assert len(dets) >= 15 and [d["seq"] for d in dets] == list(range(1, len(dets) + 1))
    assert len(msgs) >= waiting  # the held messages, `online` and `stopped`
    assert msgs[-1].payload == b"stopped"
