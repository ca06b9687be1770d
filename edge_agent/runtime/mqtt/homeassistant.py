"""Home Assistant MQTT discovery: the agent as one device, each camera as a set of entities.

Per camera: a count sensor per class of interest (fed by a retained count topic,
`osprey/<device>/<camera>/count/<class>`, as Frigate's users know it), the camera's state, its
last event, the latest snapshot as an `image` entity, and the shares of windows answered by
the cloud and by the edge cache. Every entity is available while the agent's status topic says
`online`. Discovery is retained and sent at start, after every reconnect to the broker (one
without persistence forgets it) and whenever Home Assistant says `online` on
`<prefix>/status` (its birth message after a restart). Entities of a camera no longer in the
config are removed: the agent reads back the retained configs of its own node and empties
those it did not announce this time.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import Counter
from typing import Any

from edge_agent import __version__
from edge_agent.core.detector.detections import Detections
from edge_agent.core.mqtt.topics import Topics
from edge_agent.runtime.config import EdgeConfig
from edge_agent.runtime.mqtt.publisher import Publisher

log = logging.getLogger("osprey.homeassistant")

_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]+")


def object_id(*parts: str) -> str:
    """An id Home Assistant takes in a discovery topic: only [a-zA-Z0-9_-]."""
    return _UNSAFE.sub("_", "_".join(parts)).strip("_")


class HomeAssistant:
    def __init__(self, config: EdgeConfig, publisher: Publisher, class_names: tuple[str, ...],
                 *, configuration_url: str | None = None) -> None:
        self.config = config
        self.ha = config.homeassistant
        self.publisher = publisher
        self.topics: Topics = publisher.topics
        self.classes = tuple(self.ha.classes) if self.ha.classes else tuple(class_names)
        self.node = object_id("osprey", config.device_id)
        self.configuration_url = configuration_url
        self.cameras = [c.name for c in config.cameras if c.enabled]
        self._counts: dict[str, dict[str, int]] = {c: {} for c in self.cameras}
        self._announced: set[str] = set()
        self._lock = threading.Lock()

    # discovery ---------------------------------------------------------------------------

    def start(self) -> HomeAssistant:
        prefix = self.ha.prefix
        self.publisher.on_connected.append(self.announce)
        self.publisher.subscribe(f"{prefix}/status", self._on_ha_status)
        self.publisher.subscribe(f"{prefix}/+/{self.node}/+/config", self._on_retained_config)
        if self.publisher.connected.is_set():
            self.announce()
        return self

    def configs(self) -> dict[str, dict[str, Any]]:
        """Discovery topic -> config payload, for every entity of this agent."""
        out: dict[str, dict[str, Any]] = {}
        for cam in self.cameras:
            for component, oid, body in self._camera_entities(cam):
                payload = {**body, "unique_id": oid, "object_id": oid,
                           "device": self._device(), **self._availability()}
                out[f"{self.ha.prefix}/{component}/{self.node}/{oid}/config"] = payload
        return out

    def announce(self) -> None:
        """Publish every entity's config (retained)."""
        configs = self.configs()
        with self._lock:
            self._announced = set(configs)
        for topic, payload in configs.items():
            self.publisher.publish_raw(topic, json.dumps(payload).encode(), qos=1, retain=True)
        log.info("Home Assistant discovery: %d entities of %d camera(s) under %s/", len(configs),
                 len(self.cameras), self.ha.prefix)

    def _on_ha_status(self, client, userdata, msg) -> None:
        if msg.payload.strip().lower() == b"online":
            log.info("Home Assistant is online: sending discovery again")
            self.announce()

    def _on_retained_config(self, client, userdata, msg) -> None:
        """A config of this node the broker kept: emptied when this agent no longer has it
        (a camera removed from the config)."""
        if not msg.retain or not msg.payload:
            return
        with self._lock:
            ours = msg.topic in self._announced
        if not ours:
            log.info("Home Assistant: removing %s (not in this config any more)", msg.topic)
            self.publisher.publish_raw(msg.topic, b"", qos=1, retain=True)

    def _device(self) -> dict[str, Any]:
        device = {"identifiers": [self.node],
                  "name": self.ha.name or f"Osprey {self.config.device_id}",
                  "manufacturer": "Osprey", "model": "Osprey edge agent",
                  "sw_version": __version__}
        if self.configuration_url:
            device["configuration_url"] = self.configuration_url
        return device

    def _availability(self) -> dict[str, Any]:
        # `stopped` (a clean stop) and `offline` (the last will) both mean unavailable
        return {"availability": [{
            "topic": self.topics.status, "payload_available": "online",
            "payload_not_available": "offline",
            "value_template": "{{ 'online' if value == 'online' else 'offline' }}"}]}

    def _camera_entities(self, cam: str) -> list[tuple[str, str, dict[str, Any]]]:
        t, title = self.topics, cam.replace("_", " ").title()
        stats = (f"value_json.cameras[{json.dumps(cam)}]")
        share = ("{{% set c = {s} %}}{{{{ (100 * c.{k} / c.windows) | round(1) "
                 "if c.windows else 0 }}}}")
        entities = [
            ("sensor", object_id(self.node, cam, "state"), {
                "name": f"{title} camera state", "state_topic": t.camera(cam, "status"),
                "value_template": "{{ value_json.state }}",
                "json_attributes_topic": t.camera(cam, "status"), "icon": "mdi:cctv"}),
            ("sensor", object_id(self.node, cam, "last_event"), {
                "name": f"{title} last event", "state_topic": t.camera(cam, "events"),
                "value_template": "{{ value_json.type }} {{ value_json.label }}",
                "json_attributes_topic": t.camera(cam, "events"), "icon": "mdi:motion-sensor"}),
            ("image", object_id(self.node, cam, "snapshot"), {
                "name": f"{title} snapshot", "image_topic": t.camera(cam, "snapshot"),
                "content_type": "image/jpeg"}),
            ("sensor", object_id(self.node, cam, "offload_share"), {
                "name": f"{title} windows answered by the cloud", "state_topic": t.stats,
                "value_template": share.format(s=stats, k="refined"),
                "unit_of_measurement": "%", "state_class": "measurement",
                "icon": "mdi:cloud-upload"}),
            ("sensor", object_id(self.node, cam, "cache_share"), {
                "name": f"{title} windows answered by the edge cache", "state_topic": t.stats,
                "value_template": share.format(s=stats, k="cache_hits"),
                "unit_of_measurement": "%", "state_class": "measurement",
                "icon": "mdi:cached"}),
        ]
        for cls in self.classes:
            entities.append(("sensor", object_id(self.node, cam, cls, "count"), {
                "name": f"{title} {cls} count", "state_topic": self.count_topic(cam, cls),
                "unit_of_measurement": "objects", "state_class": "measurement",
                "icon": "mdi:counter"}))
        return entities

    # counts ------------------------------------------------------------------------------

    def count_topic(self, camera: str, cls: str) -> str:
        return self.topics.camera(camera, f"count/{cls}")

    def frame(self, camera: str, shown: Detections) -> None:
        """The objects tracked on a camera's latest frame (post thread): each class's count
        goes out, retained, when it changes."""
        names = shown.class_names
        seen = Counter(names[c] if c < len(names) else f"class_{c}" for c in shown.class_id)
        self._publish_counts(camera, {cls: seen.get(cls, 0) for cls in self.classes})

    def clear(self) -> None:
        """Counts to zero (at stop: nothing is watched any more)."""
        for cam in self.cameras:
            self._publish_counts(cam, dict.fromkeys(self.classes, 0))

    def _publish_counts(self, camera: str, counts: dict[str, int]) -> None:
        last = self._counts.setdefault(camera, {})
        for cls, n in counts.items():
            if last.get(cls) != n:
                last[cls] = n
                self.publisher.publish_raw(self.count_topic(camera, cls), str(n).encode(),
                                           qos=1, retain=True)
