"""The agent's MQTT connection (paho-mqtt 2): last will, retained status, bounded queue.

One paho client, its network loop in paho's thread, publishes under a lock. QoS>0 messages
published while the broker is away are held here (at most `max_queued_messages`; past that
they are dropped and counted) and handed to paho after the reconnect by a flusher thread, in
order, with their expiry shortened by the time they waited (expired ones are skipped). They are
not handed to paho while it is offline: paho sends every message queued that way at once on
reconnect, past the broker's Receive Maximum, and an MQTT v5 broker then drops the connection,
again on every reconnect. Detections carry an MQTT v5 message expiry so a queue drained late
does not deliver stale results as fresh.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from edge_agent.core.config.common import MqttConfig
from edge_agent.core.mqtt.client import agent_client_id, make_client, publish_properties
from edge_agent.core.mqtt.topics import Topics

log = logging.getLogger("osprey.mqtt")


@dataclass
class _Held:
    topic: str
    data: bytes
    qos: int
    retain: bool
    expiry_s: float | None
    at: float
    response_topic: str | None = None
    correlation: bytes | None = None


HELD = object()
"""publish_raw's answer for a message held while the broker is away."""


@dataclass
class PublishStats:
    published: int = 0
    acked: int = 0
    skipped: int = 0
    """QoS 0 messages (stats) not sent while the broker was away, and held messages that
    expired before the broker came back: by design, not a loss."""
    unsent_held: int = 0
    """Held messages (counted as published) that never went out: expired, or refused."""
    dropped: int = 0
    connects: int = 0
    disconnects: int = 0


class Publisher:
    def __init__(self, config: MqttConfig, device: str, host: str | None = None,
                 port: int | None = None) -> None:
        self.config = config
        self.topics = Topics(config.topic_prefix, device)
        self.host = host or config.host
        self.port = port or config.port
        if self.host is None:
            raise ValueError("no broker host: set mqtt.host (or run the demo, which starts one)")
        self.v5 = config.protocol == "5"
        self.client = make_client(config, agent_client_id(config, device))
        self.client.will_set(self.topics.status, "offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.stats = PublishStats()
        self.connected = threading.Event()
        self._stopping = False
        self.undelivered = 0
        """After stop(): messages that never reached the broker."""
        self._held: deque[_Held] = deque()
        self._subscriptions: dict[str, int] = {}
        self.on_connected: list[Callable[[], None]] = []
        """Called (in paho's thread) after each connect, e.g. to republish retained state a
        restarted broker without persistence has lost."""
        self._lock = threading.Lock()

    def subscribe(self, topic: str, on_message: Callable[..., None], qos: int = 1) -> None:
        """Deliver messages on `topic` to `on_message(client, userdata, msg)` (in paho's
        thread), subscribing again after every reconnect."""
        self.client.message_callback_add(topic, on_message)
        self._subscriptions[topic] = qos
        if self.connected.is_set():
            self.client.subscribe(topic, qos=qos)

    def start(self) -> Publisher:
        self.client.connect_async(self.host, self.port, self.config.keepalive_s)
        self.client.loop_start()
        return self

    def stop(self, timeout: float | None = None) -> int:
        """Clean exit: the messages not yet delivered first (waiting up to `timeout`, default
        mqtt.flush_timeout_s, also for a broker that is away to come back), then retained
        `stopped`, then disconnect (the will is not sent). Returns how many messages were
        never delivered (also kept in `undelivered`). Idempotent."""
        if self._stopping:
            return self.undelivered
        self._stopping = True
        timeout = self.config.flush_timeout_s if timeout is None else timeout
        end = time.monotonic() + timeout
        waiting = self.unsent()
        if waiting and timeout > 0:
            log.info("delivering %d messages before stopping (up to %g s%s)", waiting, timeout,
                     "" if self.connected.is_set() else "; the broker is away")
        while self.unsent() and time.monotonic() < end:
            time.sleep(0.02)  # held messages first, so `stopped` is the last word
        info = self.publish_raw(self.topics.status, b"stopped", qos=1, retain=True)
        if info is not None and info is not HELD and self.connected.is_set():
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(max(0.1, end - time.monotonic()))
        self.client.disconnect()
        self.client.loop_stop()
        with self._lock:
            # not `stopped` itself: without a broker it could not go out either way
            self.undelivered = max(0, self.unsent() - 1) if info is HELD or (
                info is not None and not info.is_published()) else self.unsent()
        if self.undelivered:
            log.warning("%d messages were never delivered: the broker %s:%d %s (%d dropped "
                        "earlier when the queue was full); raise mqtt.flush_timeout_s to "
                        "wait longer on stop", self.undelivered, self.host, self.port,
                        "was unreachable" if not self.stats.connects else
                        "did not take them in time", self.stats.dropped)
        return self.undelivered

    def unsent(self) -> int:
        """Messages published here that the broker has not acknowledged: held while it was
        away, or handed to paho and unacknowledged (QoS > 0)."""
        s = self.stats
        return max(len(self._held), s.published - s.acked - s.unsent_held)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker %s:%d refused the connection: %s", self.host, self.port,
                      reason_code)
            return
        self.stats.connects += 1
        self.connected.set()
        log.info("connected to broker %s:%d", self.host, self.port)
        client.publish(self.topics.status, b"online", qos=1, retain=True)
        self.stats.published += 1
        for topic, qos in list(self._subscriptions.items()):
            client.subscribe(topic, qos=qos)
        for hook in self.on_connected:
            try:
                hook()
            except Exception:
                log.exception("on-connect hook failed")
        if self._held:
            threading.Thread(target=self._flush, name="mqtt-flush", daemon=True).start()

    def _flush(self) -> None:
        """Hand the held messages to paho, oldest first, once connected (paho then keeps at
        most its in-flight limit unacknowledged and queues the rest)."""
        time.sleep(0.05)  # let paho finish the CONNACK (it resends its own in-flight first)
        sent = expired = 0
        while self.connected.is_set():
            with self._lock:
                if not self._held:
                    break
                m = self._held.popleft()
                left = None
                if m.expiry_s:
                    left = m.expiry_s - (time.monotonic() - m.at)
                    if left < 1:
                        self.stats.skipped += 1
                        self.stats.unsent_held += 1
                        expired += 1
                        continue
                props = publish_properties(self.v5, expiry_s=left,
                                           response_topic=m.response_topic,
                                           correlation=m.correlation)
                info = self.client.publish(m.topic, m.data, qos=m.qos, retain=m.retain,
                                           properties=props)
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                self.stats.dropped += 1
                self.stats.unsent_held += 1
            else:
                sent += 1
        log.info("sent %d messages held while the broker was away (%d had expired)", sent,
                 expired)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        self.stats.disconnects += 1
        if self._stopping:
            log.info("disconnected from broker %s:%d", self.host, self.port)
            return
        log.warning("disconnected from broker %s:%d (%s); reconnecting", self.host, self.port,
                    reason_code)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self.stats.acked += 1

    def snapshot(self) -> dict[str, int | bool]:
        s = self.stats
        return {"connected": self.connected.is_set(), "published": s.published,
                "dropped": s.dropped, "skipped": s.skipped,
                "pending": max(0, s.published - s.acked - s.unsent_held),
                "connects": s.connects, "disconnects": s.disconnects}

    def publish_json(self, topic: str, payload: dict[str, Any], *, qos: int | None = None,
                     retain: bool = False, expiry_s: int | None = None) -> bool:
        data = json.dumps(payload, separators=(",", ":")).encode()
        return self.publish_raw(topic, data, qos=qos, retain=retain, expiry_s=expiry_s) \
            is not None

    def publish_raw(self, topic: str, data: bytes, *, qos: int | None = None,
                    retain: bool = False, expiry_s: float | None = None,
                    response_topic: str | None = None, correlation: bytes | None = None):
        """MQTTMessageInfo when sent or queued; HELD while the broker is away; None when
        dropped (counted). `response_topic` and `correlation` are MQTT v5 properties (a
        request's reply topic and correlation data)."""
        qos = self.config.qos if qos is None else qos
        props = publish_properties(self.v5, expiry_s=expiry_s, response_topic=response_topic,
                                   correlation=correlation)
        with self._lock:
            if qos > 0 and (not self.connected.is_set() or self._held):
                # Offline, or still flushing: hold it here, behind the others.
                if len(self._held) >= self.config.max_queued_messages:
                    self.stats.dropped += 1
                    if self.stats.dropped in (1, 10, 100) or self.stats.dropped % 1000 == 0:
                        log.warning("broker away and %d messages held: dropping new ones "
                                    "(%d so far); raise mqtt.max_queued_messages to hold "
                                    "more", len(self._held), self.stats.dropped)
                    return None
                self._held.append(_Held(topic, data, qos, retain, expiry_s, time.monotonic(),
                                        response_topic, correlation))
                self.stats.published += 1
                return HELD
            info = self.client.publish(topic, data, qos=qos, retain=retain, properties=props)
        queued = info.rc == mqtt.MQTT_ERR_NO_CONN and qos > 0
        if info.rc == mqtt.MQTT_ERR_SUCCESS or queued:
            self.stats.published += 1
            return info
        if info.rc == mqtt.MQTT_ERR_NO_CONN:  # QoS 0 is never held: skipped while offline
            self.stats.skipped += 1
            return None
        self.stats.dropped += 1
        log.warning("dropped a message on %s: %s", topic, mqtt.error_string(info.rc))
        return None
