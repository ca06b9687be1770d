"""Building an agent against a test broker, and reading what it published."""

from __future__ import annotations

import itertools
import json
from typing import Any

import jsonschema

from edge_agent.core.bundled import bundled_edge_model
from edge_agent.core.detector import Detector
from edge_agent.runtime.config import EdgeConfig
from edge_agent.runtime.mqtt.payloads import SCHEMAS
from edge_agent.runtime.mqtt.publisher import Publisher
from edge_agent.runtime.pipeline import Agent

_ids = itertools.count(1)
_detector: Detector | None = None


def shared_detector() -> Detector:
    """The bundled edge model, loaded once for the test session."""
    global _detector
    if _detector is None:
        cfg = EdgeConfig.model_validate({"cameras": [{"name": "c", "url": "x.mp4"}]})
        _detector = Detector.from_config(cfg.model, cfg.detector,
                                         default_path=bundled_edge_model())
    return _detector


def make_agent(port: int, cameras: list[dict[str, Any]], openers: dict | None = None,
               detector: Any = None, **overrides: Any) -> tuple[Agent, Publisher, EdgeConfig]:
    """An agent with a fresh device id (retained topics of other tests never leak in), on
    the bundled model unless `detector` is given."""
    mqtt = {"host": "127.0.0.1", "port": port, "reconnect_min_s": 1, "reconnect_max_s": 2,
            **overrides.pop("mqtt", {})}
    config = EdgeConfig.model_validate({
        "device_id": f"agent{next(_ids)}", "cameras": cameras, "mqtt": mqtt,
        "stats_interval_s": 1.0, **overrides})
    publisher = Publisher(config.mqtt, config.device_id).start()
    assert publisher.connected.wait(5), "agent did not connect to the test broker"
    agent = Agent(config, detector or shared_detector(), publisher,
                  model_id="osprey_edge_ssdlite", openers=openers)
    return agent, publisher, config


def decoded(messages, topic: str, schema: str | None = None) -> list[dict[str, Any]]:
    """JSON payloads on `topic`, each validated against its schema when one is named."""
    out = []
    for m in messages:
        if m.topic == topic:
            payload = json.loads(m.payload)
            if schema:
                jsonschema.validate(payload, SCHEMAS[schema])
            out.append(payload)
    return out
