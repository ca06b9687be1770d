"""JSON payloads of the MQTT API, and the JSON Schema of each (published in docs/mqtt-api.md)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from edge_agent.core.detector.detections import Detections

if TYPE_CHECKING:
    from edge_agent.runtime.offload.answer import Answer, Verified

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
        "held": {"const": True, "description": "a static object the cloud found on the last "
                 "answer's keyframes and the edge model misses, held for offload.hold_s"},
    },
    "additionalProperties": False,
}

_ANSWER_FIELDS: dict[str, Any] = {
    "v": {"const": SCHEMA_VERSION},
    "device": {"type": "string"},
    "camera": {"type": "string"},
    "window_id": {"type": "string"},
    "request_id": {"type": "string"},
    "source": {"enum": ["cloud", "cache"]},
}
"""What `refined` and `matches` both say about the window and the answer they come from."""

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
    "events": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "osprey/{d}/{c}/events",
        "description": "Track lifecycle: `new` when a track is confirmed, `update` when its "
                       "best score rises (a better snapshot) at most every "
                       "events.update_interval_s, `end` when it is gone or the agent stops.",
        "type": "object",
        "required": ["v", "type", "device", "camera", "event_id", "track_id", "label",
                     "class_id", "score", "top_score", "box", "frame", "start_time",
                     "end_time", "snapshot", "verified"],
        "properties": {
            "v": {"const": SCHEMA_VERSION},
            "type": {"enum": ["new", "update", "end"]},
            "device": {"type": "string"},
            "camera": {"type": "string"},
            "event_id": {"type": "string", "description": "unique across restarts"},
            "track_id": {"type": "integer", "minimum": 1},
            "label": {"type": "string"},
            "class_id": {"type": "integer", "minimum": 0},
            "score": {"type": "number", "minimum": 0, "maximum": 1,
                      "description": "on the track's latest frame"},
            "top_score": {"type": "number", "minimum": 0, "maximum": 1},
            "box": _BOX,
            "frame": {"type": "integer", "minimum": 0, "description": "latest frame seen"},
            "start_time": {"type": "number", "description": "unix seconds"},
            "end_time": {"type": ["number", "null"], "description": "set on `end`"},
            "snapshot": {"type": "boolean",
                         "description": "a snapshot of this event went to .../snapshot"},
            "verified": {"type": "boolean",
                         "description": "the cloud confirmed the label (offload)"},
        },
        "additionalProperties": False,
    },
    "stats": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "osprey/{d}/stats",
        "description": "Every stats_interval_s. Rates are over the last interval; counters "
                       "since start.",
        "type": "object",
        "required": ["v", "device", "at", "uptime_s", "interval_s", "cameras", "mqtt"],
        "properties": {
            "v": {"const": SCHEMA_VERSION},
            "device": {"type": "string"},
            "at": {"type": "number", "description": "unix seconds"},
            "uptime_s": {"type": "number", "minimum": 0},
            "interval_s": {"type": "number", "minimum": 0},
            "cameras": {"type": "object", "additionalProperties": {"$ref": "#/$defs/camera"}},
            "offload": {
                "type": "object",
                "description": "present when offload is enabled; counts since start",
                "required": ["counts", "bytes_up", "in_flight", "breaker", "rtt_ms_p50",
                             "rtt_ms_p95", "mode", "threshold"],
                "properties": {
                    "counts": {"type": "object",
                               "additionalProperties": {"type": "integer", "minimum": 0},
                               "description": "windows, sent, cache_hit, answered, retried, "
                                              "timeout, overlap, error, late, below_threshold, "
                                              "budget, "
                                              "in_flight, breaker, busy, too_large, failed"},
                    "bytes_up": {"type": "integer", "minimum": 0},
                    "in_flight": {"type": "integer", "minimum": 0},
                    "breaker": {"enum": ["closed", "open", "half-open"]},
                    "rtt_ms_p50": {"type": ["number", "null"]},
                    "rtt_ms_p95": {"type": ["number", "null"]},
                    "phases_ms": {
                        "type": "object",
                        "description": "the round trip split by the worker's timestamps (p50 "
                                       "and p95 ms): upload, queue, model, download; empty "
                                       "until an answer carries them",
                        "additionalProperties": {
                            "type": "object", "required": ["p50", "p95"],
                            "properties": {"p50": {"type": "number"},
                                           "p95": {"type": "number"}}}},
                    "mode": {"enum": ["threshold", "rate"]},
                    "threshold": {"type": "number"},
                    "cache": {"type": "object"},
                },
                "additionalProperties": False,
            },
            "mqtt": {
                "type": "object",
                "required": ["connected", "published", "dropped", "skipped", "pending",
                             "connects", "disconnects"],
                "properties": {
                    "connected": {"type": "boolean"},
                    "published": {"type": "integer", "minimum": 0},
                    "dropped": {"type": "integer", "minimum": 0,
                                "description": "not queued: the queue bound was reached"},
                    "skipped": {"type": "integer", "minimum": 0,
                                "description": "QoS 0 (stats) not sent while offline"},
                    "pending": {"type": "integer", "minimum": 0,
                                "description": "published, not yet acknowledged"},
                    "connects": {"type": "integer", "minimum": 0},
                    "disconnects": {"type": "integer", "minimum": 0},
                },
                "additionalProperties": False,
            },
        },
        "additionalProperties": False,
        "$defs": {
            "camera": {
                "type": "object",
                "required": ["state", "fps_in", "fps_processed", "fps_dropped", "frames_in",
                             "processed", "dropped_superseded", "dropped_stale", "reconnects",
                             "inference_ms", "latency_ms_p50", "latency_ms_p95", "tracks",
                             "windows", "errors"],
                "properties": {
                    "state": {"enum": ["streaming", "reconnecting", "down", "starting"]},
                    "fps_in": {"type": "number", "minimum": 0},
                    "fps_processed": {"type": "number", "minimum": 0},
                    "fps_dropped": {"type": "number", "minimum": 0},
                    "frames_in": {"type": "integer", "minimum": 0},
                    "processed": {"type": "integer", "minimum": 0},
                    "dropped_superseded": {
                        "type": "integer", "minimum": 0,
                        "description": "replaced by a newer frame before the detector took it"},
                    "dropped_stale": {"type": "integer", "minimum": 0,
                                      "description": "older than max_frame_age_ms"},
                    "reconnects": {"type": "integer", "minimum": 0},
                    "inference_ms": {"type": ["number", "null"],
                                     "description": "mean over the interval"},
                    "latency_ms_p50": {"type": ["number", "null"],
                                       "description": "capture to publish"},
                    "latency_ms_p95": {"type": ["number", "null"]},
                    "tracks": {"type": "integer", "minimum": 0, "description": "active now"},
                    "windows": {"type": "integer", "minimum": 0},
                    "refined": {"type": "integer", "minimum": 0,
                                "description": "cloud answers applied (since start)"},
                    "cache_hits": {"type": "integer", "minimum": 0,
                                   "description": "windows answered by the edge cache"},
                    "errors": {"type": "integer", "minimum": 0,
                               "description": "frames the detector failed on, or whose "
                                              "results could not be published"},
                },
                "additionalProperties": False,
            },
        },
    },
    "refined": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "osprey/{d}/{c}/refined",
        "description": "The cloud's answer for an offloaded window (source `cloud`), or a "
                       "cached answer for a recurring scene (source `cache`, nothing sent), "
                       "merged into every frame of the window: keyframes carry the cloud's "
                       "detections, other frames the edge's with the cloud's verdict on their "
                       "tracks. Boxes in frame pixels.",
        "type": "object",
        "required": ["v", "device", "camera", "window_id", "request_id", "source", "rtt_ms",
                     "model", "worker", "frames", "verified_tracks"],
        "properties": {
            **_ANSWER_FIELDS,
            "rtt_ms": {"type": "number", "minimum": 0},
            "model": {"type": "string"},
            "worker": {"type": "string"},
            "frames": {"type": "array", "items": {
                "type": "object", "required": ["frame", "keyframe", "detections"],
                "properties": {"frame": {"type": "integer", "minimum": 0},
                               "keyframe": {"type": "boolean",
                                            "description": "the cloud saw this frame; other "
                                                           "frames are merged from it"},
                               "detections": {"type": "array", "items": _DETECTION}},
                "additionalProperties": False}},
            "verified_tracks": {"type": "array", "items": {
                "type": "object", "required": ["track_id", "label", "class_id", "score"],
                "properties": {"track_id": {"type": "integer"}, "label": {"type": "string"},
                               "class_id": {"type": "integer"},
                               "score": {"type": "number"}},
                "additionalProperties": False}},
        },
        "additionalProperties": False,
    },
    "matches": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "osprey/{d}/{c}/matches",
        "description": "Detections of an offloaded (or cached) window that one of the camera's "
                       "text queries (`cameras[].text_queries`) describes, by the cloud's "
                       "image-text model; one message per window with at least one match. "
                       "Boxes in frame pixels; `frame` is a keyframe's index.",
        "type": "object",
        "required": ["v", "device", "camera", "window_id", "request_id", "source",
                     "text_model", "matches"],
        "properties": {
            **_ANSWER_FIELDS,
            "text_model": {"type": "string"},
            "matches": {"type": "array", "minItems": 1, "items": {
                "type": "object",
                "required": ["query", "score", "frame", "box", "label", "class_id"],
                "properties": {
                    "query": {"type": "string"},
                    "score": {"type": "number", "minimum": 0, "maximum": 1,
                              "description": "probability that the query is true of the "
                                             "detection's crop"},
                    "frame": {"type": "integer", "minimum": 0},
                    "box": _BOX,
                    "label": {"type": "string", "description": "after the text model's "
                                                               "second opinion"},
                    "class_id": {"type": "integer", "minimum": 0},
                    "size": {"enum": ["small", "medium", "large", None],
                             "description": "the object's size for its class where it stands, "
                                            "by the camera's scale line the agent learns; "
                                            "null until it is known"}},
                "additionalProperties": False}},
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
            "since": {"type": "number", "description": "when the camera entered this state"},
            "attempts": {"type": "integer", "minimum": 0,
                         "description": "failed opens or reads since it last streamed"},
        },
        "additionalProperties": False,
    },
}

DEVICE_STATES = ("online", "offline", "stopped")
"""osprey/{d}/status is plain text (retained): online, offline (last will) or stopped."""


def detections_payload(*, device: str, camera: str, seq: int, frame: int, captured_at: float,
                       latency_ms: float, model: str, width: int, height: int,
                       dets: Detections, held: int = 0) -> dict[str, Any]:
    """`held`: the last that many detections are held cloud objects, marked so."""
    items = dets.to_json()
    for item in items[len(items) - held:] if held else ():
        item["held"] = True
    return {"v": SCHEMA_VERSION, "device": device, "camera": camera, "seq": seq,
            "frame": frame, "captured_at": round(captured_at, 6),
            "published_at": round(time.time(), 6), "latency_ms": round(latency_ms, 2),
            "model": model, "width": width, "height": height, "detections": items}


def camera_status_payload(state: str, reason: str | None, attempts: int = 0,
                          since: float | None = None) -> dict[str, Any]:
    """`since`: when the camera entered `state` (now when None); `attempts`: failed opens or
    reads since it last streamed."""
    return {"v": SCHEMA_VERSION, "state": state, "reason": reason,
            "since": round(time.time() if since is None else since, 3), "attempts": attempts}


def _answer_head(device: str, answer: Answer) -> dict[str, Any]:
    return {"v": SCHEMA_VERSION, "device": device, "camera": answer.camera,
            "window_id": answer.window_id, "request_id": answer.request_id,
            "source": answer.source}


def refined_payload(*, device: str, answer: Answer, frames: list[tuple[int, Detections]],
                    verified: list[Verified], class_names: tuple[str, ...]) -> dict[str, Any]:
    """`refined`: the answer merged into every frame of its window (`frames`), and the tracks
    it verified."""
    keys = {idx for idx, _ in answer.frames}
    return {
        **_answer_head(device, answer), "rtt_ms": round(answer.rtt_ms, 2),
        "model": answer.model, "worker": answer.worker,
        "frames": [{"frame": idx, "keyframe": idx in keys, "detections": dets.to_json()}
                   for idx, dets in frames],
        "verified_tracks": [{"track_id": v.track_id, "label": class_name(class_names,
                                                                          v.class_id),
                             "class_id": v.class_id, "score": round(v.score, 4)}
                            for v in verified]}


def matches_payload(*, device: str, answer: Answer) -> dict[str, Any]:
    """`matches`: the detections the camera's text queries describe."""
    return {**_answer_head(device, answer), "text_model": answer.text_model,
            "matches": [{"query": m.query, "score": m.score, "frame": m.index, "box": m.box,
                         "label": m.label, "class_id": m.class_id, "size": m.size}
                        for m in answer.matches]}


def class_name(names: tuple[str, ...], class_id: int) -> str:
    return names[class_id] if class_id < len(names) else f"class_{class_id}"
