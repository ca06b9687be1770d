"""The test harness itself: real servers answer, the real material is what it claims."""

from __future__ import annotations

import threading

import cv2
import onnxruntime as ort
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

pytestmark = pytest.mark.integration


def connect(port: int, client_id: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def test_mosquitto_round_trip_with_mqtt5_properties(mosquitto):
    got: list[mqtt.MQTTMessage] = []
    subscribed, arrived = threading.Event(), threading.Event()
    sub = connect(mosquitto.port, "harness-sub")
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_message = lambda c, u, m: (got.append(m), arrived.set())
    sub.subscribe("osprey/test/+/status", qos=1)
    assert subscribed.wait(5)
    pub = connect(mosquitto.port, "harness-pub")
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "osprey/test/reply"
    props.CorrelationData = b"\x01\x02"
    pub.publish("osprey/test/cam1/status", b"streaming", qos=1, retain=True,
                properties=props).wait_for_publish(5)
    assert arrived.wait(5)
    msg = got[0]
    assert msg.payload == b"streaming" and msg.topic == "osprey/test/cam1/status"
    assert msg.properties.ResponseTopic == "osprey/test/reply"
    assert msg.properties.CorrelationData == b"\x01\x02"
    for c in (sub, pub):
        c.loop_stop()
        c.disconnect()


def test_mosquitto_keeps_retained_messages_for_late_subscribers(mosquitto):
    pub = connect(mosquitto.port, "harness-retain")
    pub.publish("osprey/test/retained", b"online", qos=1, retain=True).wait_for_publish(5)
    got, arrived = [], threading.Event()
    late = connect(mosquitto.port, "harness-late")
    late.on_message = lambda c, u, m: (got.append((m.payload, m.retain)), arrived.set())
    late.subscribe("osprey/test/retained", qos=1)
    assert arrived.wait(5)
    assert got[0] == (b"online", True)
    for c in (pub, late):
        c.loop_stop()
        c.disconnect()


def test_redis_set_get_expire(redis):
    import redis as redis_py

    r = redis_py.Redis(host=redis.host, port=redis.port)
    assert r.ping()
    r.set("osprey:test", b"value", ex=60)
    assert r.get("osprey:test") == b"value"
    assert 0 < r.ttl("osprey:test") <= 60


@pytest.mark.parametrize("clip,size,frames", [
    ("pedestrian_survaillance.mp4", (626, 360), 242),
    ("vehicle_survaillance.mp4", (640, 352), 265),
    ("intel_car-detection.mp4", (768, 432), 377),
])
def test_real_clips_decode_with_opencv(real_data, clip, size, frames):
    cap = cv2.VideoCapture(str(real_data / clip))
    assert cap.isOpened()
    ok, frame = cap.read()
    assert ok and (frame.shape[1], frame.shape[0]) == size
    count = 1
    while cap.read()[0]:
        count += 1
    cap.release()
    assert abs(count - frames) <= 2


def test_real_yolox_model_loads(real_data):
    session = ort.InferenceSession(str(real_data / "yolox_nano_416.onnx"),
                                   providers=["CPUExecutionProvider"])
    [inp] = session.get_inputs()
    assert inp.name == "images" and inp.shape == [1, 3, 416, 416]
    assert session.get_outputs()[0].shape == [1, 3549, 85]
    classes = (real_data / "coco_classes.txt").read_text().split("\n")
    assert classes[0] == "person" and len([c for c in classes if c]) == 80
