"""The paho-mqtt client both sides use, and the MQTT v5 properties of a publish."""

from __future__ import annotations

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.core.config.common import MqttConfig


def agent_client_id(config: MqttConfig, device: str) -> str:
    """The client id an agent connects with (the one the shipped broker accounts bind a
    device's account to)."""
    return config.client_id or f"osprey-{device}"


def worker_client_id(config: MqttConfig, worker_id: str) -> str:
    """The client id a cloud worker connects with."""
    return config.client_id or f"osprey-cloud-{worker_id}"


def make_client(config: MqttConfig, client_id: str) -> mqtt.Client:
    """A paho client set up from the config: protocol, credentials, TLS, the bound on queued
    QoS>0 messages, reconnect backoff. Shared by the agent and the cloud worker."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5 if config.protocol == "5" else mqtt.MQTTv311)
    if config.username:
        client.username_pw_set(config.username, config.resolved_password())
    if config.tls.enabled:
        t = config.tls
        client.tls_set(ca_certs=str(t.ca_file) if t.ca_file else None,
                       certfile=str(t.cert_file) if t.cert_file else None,
                       keyfile=str(t.key_file) if t.key_file else None)
        client.tls_insecure_set(t.insecure)
    client.max_queued_messages_set(config.max_queued_messages)
    client.reconnect_delay_set(max(1, round(config.reconnect_min_s)),
                               max(1, round(config.reconnect_max_s)))
    return client


def publish_properties(v5: bool, *, expiry_s: float | None = None,
                       response_topic: str | None = None,
                       correlation: bytes | None = None) -> Properties | None:
    """The MQTT v5 PUBLISH properties for these settings; None under 3.1.1 or when none is
    set (3.1.1 carries reply topic and correlation data inside the offload envelope)."""
    if not v5 or not (expiry_s or response_topic or correlation):
        return None
    props = Properties(PacketTypes.PUBLISH)
    if expiry_s:
        props.MessageExpiryInterval = max(1, int(expiry_s))
    if response_topic:
        props.ResponseTopic = response_topic
    if correlation:
        props.CorrelationData = correlation
    return props


def sent(rc: int) -> bool:
    """Whether paho took a message: sent, or queued while the connection is down."""
    return rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN)
