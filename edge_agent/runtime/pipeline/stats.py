"""The agent's stats payload (per interval, published on `stats`), its counters for metrics
(read at scrape time, never resetting the interval) and its health."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edge_agent.runtime.mqtt.payloads import SCHEMA_VERSION
from edge_agent.runtime.mqtt.publisher import Publisher
from edge_agent.runtime.offload.manager import Offload
from edge_agent.runtime.pipeline.camera import CameraPipeline, Interval

HEARTBEAT_STALE_S = 10.0
"""/healthz fails when the detection loop has not gone round for this long."""


def _percentile(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values.size else None


def interval_stats(pipelines: list[CameraPipeline], now: float) -> tuple[dict[str, Any], float]:
    """Each camera's figures since its last interval (which this starts anew), and the
    interval's length."""
    cameras: dict[str, Any] = {}
    span = 0.0
    for p in pipelines:
        s = p.camera.stats
        iv = p.interval
        span = max(1e-9, now - iv.at)
        dropped = s.dropped_unread + s.dropped_stale
        with p.samples_lock:
            lat = np.array(p.latencies, dtype=np.float64)
            inf = np.array(p.infer_ms, dtype=np.float64)
            p.latencies.clear()
            p.infer_ms.clear()
        cameras[p.name] = {
            "state": p.state,
            "fps_in": round((s.frames_in - iv.frames_in) / span, 2),
            "fps_processed": round((p.processed - iv.processed) / span, 2),
            "fps_dropped": round((dropped - iv.dropped) / span, 2),
            "frames_in": s.frames_in, "processed": p.processed,
            "dropped_superseded": s.dropped_unread, "dropped_stale": s.dropped_stale,
            "reconnects": s.reconnects,
            "inference_ms": round(float(inf.mean()), 2) if inf.size else None,
            "latency_ms_p50": _percentile(lat, 50),
            "latency_ms_p95": _percentile(lat, 95),
            "tracks": len(p.tracker.tracks), "windows": p.windows,
            "refined": p.answers.get("cloud", 0), "cache_hits": p.answers.get("cache", 0),
            "errors": p.errors + p.unpublished,
        }
        p.interval = Interval(now, s.frames_in, p.processed, dropped)
    return cameras, span


def stats_payload(device: str, started_at: float, pipelines: list[CameraPipeline],
                  publisher: Publisher, offload: Offload) -> dict[str, Any]:
    now = time.monotonic()
    cameras, span = interval_stats(pipelines, now)
    out = {"v": SCHEMA_VERSION, "device": device,
           "at": round(time.time(), 3), "uptime_s": round(now - started_at, 1),
           "interval_s": round(span, 2), "cameras": cameras,
           "mqtt": publisher.snapshot()}
    offload_stats = offload.snapshot()
    if offload_stats is not None:
        out["offload"] = offload_stats
    return out


def counters(pipelines: list[CameraPipeline], publisher: Publisher, offload: Offload
             ) -> dict[str, Any]:
    """Counters for metrics, read without resetting the stats interval."""
    cams = {}
    for p in pipelines:
        s = p.camera.stats
        cams[p.name] = {"state": p.state, "frames_in": s.frames_in,
                        "processed": p.processed, "last_latency_ms": p.last_latency_ms,
                        "last_infer_ms": p.last_infer_ms,
                        "events": p.events.counts.new + p.events.counts.update
                        + p.events.counts.end,
                        "dropped_superseded": s.dropped_unread,
                        "dropped_stale": s.dropped_stale, "reconnects": s.reconnects,
                        "queue_depth": int(p.camera.pending),
                        "tracks": len(p.tracker.tracks),
                        "refined": p.answers.get("cloud", 0),
                        "cache_hits": p.answers.get("cache", 0),
                        "matches": p.answers.get("matches", 0)}
    snap: dict[str, Any] = {"cameras": cams, "mqtt": publisher.snapshot()}
    client = offload.counters()
    if client is not None:
        snap["offload"] = client
    return snap


def health(pipelines: list[CameraPipeline], publisher: Publisher, heartbeat: float,
           stages_alive: bool, post_alive: bool) -> tuple[bool, dict[str, Any]]:
    age = time.monotonic() - heartbeat
    loop_ok = stages_alive and post_alive and age < HEARTBEAT_STALE_S
    return loop_ok, {
        "detection_loop": "running" if loop_ok else (
            "stopped" if not stages_alive else f"stalled for {age:.0f}s"),
        "cameras": {p.name: p.state for p in pipelines},
        "mqtt_connected": publisher.connected.is_set(),
    }
