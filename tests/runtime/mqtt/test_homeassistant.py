"""Home Assistant MQTT discovery against a real Mosquitto: every config payload as Home
Assistant reads it (required keys per component, unique ids, availability, the device block,
templates rendered on the agent's real payloads), discovery again after Home Assistant
restarts, and the entities of a removed camera cleared."""

from __future__ import annotations

import json
import re
import time
import uuid

import jinja2
import pytest
from agent_kit import shared_detector
from listener import Listener
from servers import wait_until

from edge_agent.runtime.config import EdgeConfig
from edge_agent.runtime.mqtt.publisher import Publisher
from edge_agent.runtime.pipeline import Agent

pytestmark = pytest.mark.integration

REQUIRED = {"sensor": {"state_topic"}, "image": {"image_topic"}}
COMMON = {"name", "unique_id", "object_id", "device", "availability"}


def start_agent(port: int, device: str, cameras: list[str]) -> tuple[Agent, Publisher]:
    config = EdgeConfig.model_validate({
        "device_id": device, "stats_interval_s": 1.0,
        "cameras": [{"name": c, "url": f"synthetic://?seed={40 + i}&preset=easy"}
                    for i, c in enumerate(cameras)],
        "mqtt": {"host": "127.0.0.1", "port": port, "reconnect_min_s": 1},
        "homeassistant": {"enabled": True, "classes": ["person", "car"]}})
    publisher = Publisher(config.mqtt, device).start()
    assert publisher.connected.wait(5)
    agent = Agent(config, shared_detector(), publisher, model_id="osprey_edge_ssdlite",
                  configuration_url="http://127.0.0.1:9108/")
    return agent.start(), publisher


def configs(messages) -> dict[str, dict]:
    """The latest config per discovery topic (empty payload: removed)."""
    out: dict[str, dict] = {}
    for m in messages:
        if m.topic.endswith("/config"):
            out[m.topic] = json.loads(m.payload) if m.payload else {}
    return out


def render(template: str, payload: bytes) -> str:
    """A template as Home Assistant renders it: `value` and `value_json` of the payload."""
    value = payload.decode()
    env = jinja2.Environment()
    return env.from_string(template).render(value=value, value_json=json.loads(value)).strip()


def test_discovery_as_home_assistant_reads_it(mosquitto):
    device = f"ha{uuid.uuid4().hex[:6]}"
    node = f"osprey_{device}"
    ha = Listener(mosquitto.port, "homeassistant/#")
    agent, publisher = start_agent(mosquitto.port, device, ["front.door", "yard"])
    state = Listener(mosquitto.port, f"osprey/{device}/#")
    try:
        found = ha.wait(lambda ms: len(configs(ms)) == 2 * 7, 15)
        # counts, stats and an event arrive for the templates below
        state.wait(lambda ms: {m.topic for m in ms} >= {
            f"osprey/{device}/stats", f"osprey/{device}/front.door/count/car",
            f"osprey/{device}/yard/count/person"}, 20)
        cfgs = configs(found)
        ids = [c["unique_id"] for c in cfgs.values()]
        assert len(set(ids)) == len(ids) == 14
        for topic, c in cfgs.items():
            component, node_id, oid = topic.split("/")[1:4]
            assert node_id == node and oid == c["unique_id"] == c["object_id"]
            assert re.fullmatch(r"[a-zA-Z0-9_-]+", oid), oid
            assert COMMON | REQUIRED[component] <= set(c), (topic, sorted(c))
            assert c["device"] == {"identifiers": [node], "name": f"Osprey {device}",
                                   "manufacturer": "Osprey", "model": "Osprey edge agent",
                                   "sw_version": c["device"]["sw_version"],
                                   "configuration_url": "http://127.0.0.1:9108/"}
            [avail] = c["availability"]
            assert avail["topic"] == f"osprey/{device}/status"
            for status, shown in ((b"online", "online"), (b"offline", "offline"),
                                  (b"stopped", "offline")):
                assert jinja2.Environment().from_string(avail["value_template"]).render(
                    value=status.decode()) == shown
        by_id = {c["unique_id"]: c for c in cfgs.values()}
        assert by_id[f"{node}_front_door_snapshot"]["image_topic"] == \
            f"osprey/{device}/front.door/snapshot"
        # every template renders on the agent's own payloads
        latest = {m.topic: m.payload for m in state.messages}
        for c in cfgs.values():
            if "value_template" in c and c["state_topic"] in latest:
                rendered = render(c["value_template"], latest[c["state_topic"]])
                assert rendered, c["unique_id"]
                if c.get("unit_of_measurement") == "%":
                    assert 0 <= float(rendered) <= 100
        assert render(by_id[f"{node}_yard_state"]["value_template"],
                      latest[f"osprey/{device}/yard/status"]) == "streaming"
        count = int(latest[f"osprey/{device}/yard/count/person"])
        assert count >= 0 and by_id[f"{node}_yard_person_count"]["state_topic"] == \
            f"osprey/{device}/yard/count/person"

        # Home Assistant restarts: offline, then its birth message; discovery comes again
        before = len([m for m in ha.messages if m.topic.endswith("/config")])
        publisher.client.publish("homeassistant/status", b"offline", qos=1).wait_for_publish(5)
        time.sleep(0.3)
        assert len([m for m in ha.messages if m.topic.endswith("/config")]) == before
        publisher.client.publish("homeassistant/status", b"online", qos=1).wait_for_publish(5)
        ha.wait(lambda ms: len([m for m in ms if m.topic.endswith("/config")]) >= before + 14,
                10)
    finally:
        agent.stop()
        publisher.stop()
        state.close()
    # at a clean stop the counts go to zero (nothing is watched any more)
    late = Listener(mosquitto.port, f"osprey/{device}/+/count/#")
    counts = late.wait(lambda ms: len(ms) == 4, 10)
    late.close()
    assert {m.payload for m in counts} == {b"0"} and all(m.retain for m in counts)

    # the yard camera leaves the config: its entities are removed, the others stay
    agent, publisher = start_agent(mosquitto.port, device, ["front.door"])
    try:
        ha.wait(lambda ms: sum(1 for t, c in configs(ms).items() if not c) == 7, 15)
    finally:
        agent.stop()
        publisher.stop()
        ha.close()
    fresh = Listener(mosquitto.port, f"homeassistant/+/{node}/#")
    kept = fresh.wait(lambda ms: len(ms) >= 7, 10)
    time.sleep(0.3)
    fresh.close()
    assert len(configs(kept)) == 7
    assert all("front_door" in t for t in configs(kept))
    assert wait_until(lambda: True)
