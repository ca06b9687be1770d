"""A test subscriber: collects every message on a topic filter from a real broker."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt


class Listener:
    def __init__(self, port: int, topic: str) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.cond = threading.Condition()
        ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert ready.wait(5)

    def _on_message(self, client, userdata, msg) -> None:
        with self.cond:
            self.messages.append(msg)
            self.cond.notify_all()

    def wait(self, predicate, timeout: float = 10.0) -> list[mqtt.MQTTMessage]:
        with self.cond:
            assert self.cond.wait_for(lambda: predicate(self.messages), timeout), \
                [(m.topic, m.payload[:60]) for m in self.messages]
            return list(self.messages)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def payloads(msgs, topic):
    return [m.payload for m in msgs if m.topic == topic]
