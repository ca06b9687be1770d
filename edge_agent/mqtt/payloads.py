"""JSON payloads of the MQTT API, and the JSON Schema of each (published in docs/mqtt-api.md)."""

from __future__ import annotations

import time
from typing import Any

from edge_agent.detector.detections import Detections

SCHEMA_VERSION = 1

_BOX = {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4}
_DETECTION = {
    "type": "object",
    "required": ["label", "class_id", "score", "box"],
    "properties": {
        "track_id": {"type": "integer"},
        "label": {"type": "string"},
        "class_id": {"type": "integer", "minimum": 0},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "box": _BOX,
    },
    "additionalProperties": False,
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "detections": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "osprey/{d}/{c}/detections",
        "type": "object",
        "required": ["v", "device", "camera", "seq", "frame", "captured_at", "published_at",
                     "latency_ms", "model", "width", "height", "detections"],
        "properties": {
            "v": {"const": SCHEMA_VERSION},
            "device": {"type": "string"},
            "camera": {"type": "string"},
            "seq": {"type": "integer", "minimum": 1,
                    "description": "per camera, +1 per message, no gaps"},
            "frame": {"type": "integer", "minimum": 0},
            "captured_at": {"type": "number", "description": "unix seconds"},
            "published_at": {"type": "number", "description": "unix seconds"},
            "latency_ms": {"type": "number", "minimum": 0},
            "model": {"type": "string"},
            "width": {"type": "integer", "minimum": 1},
            "height": {"type": "integer", "minimum": 1},
            "detections": {"type": "array", "items": _DETECTION},
        },
        "additionalProperties": False,
    },
    "camera_status": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "osprey/{d}/{c}/status (retained)",
        "type": "object",
        "required": ["v", "state", "reason", "since"],
        "properties": {
            "v": {"const": SCHEMA_VERSION},
            "state": {"enum": ["streaming", "reconnecting", "down"]},
            "reason": {"type": ["string", "null"]},
            "since": {"type": "number"},
        },
        "additionalProperties": False,
    },
}

DEVICE_STATES = ("online", "offline", "stopped")
"""osprey/{d}/status is plain text (retained): online, offline (last will) or stopped."""


def detections_payload(device: str, camera: str, seq: int, frame: int, captured_at: float,
                       latency_ms: float, model: str, width: int, height: int,
                       dets: Detections) -> dict[str, Any]:
    return {"v": SCHEMA_VERSION, "device": device, "camera": camera, "seq": seq,
            "frame": frame, "captured_at": round(captured_at, 6),
            "published_at": round(time.time(), 6), "latency_ms": round(latency_ms, 2),
            "model": model, "width": width, "height": height, "detections": dets.to_json()}


def camera_status_payload(state: str, reason: str | None) -> dict[str, Any]:
    return {"v": SCHEMA_VERSION, "state": state, "reason": reason, "since": round(time.time(), 3)}
