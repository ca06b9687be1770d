"""The agent's Prometheus metrics (prometheus_client); the HTTP endpoints are
edge_agent.core.metrics.

Histograms and counters the pipeline updates as it goes live in `AgentMetrics`; counters that
other parts already keep (capture threads, the MQTT publisher) are read at scrape time by a
collector, so there is one count and never two that could disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from edge_agent.core.metrics import LATENCY_BUCKETS


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.inference = Histogram("osprey_inference_seconds",
                                   "Detector time per frame (preprocess, infer, decode)",
                                   ["camera"], buckets=LATENCY_BUCKETS, registry=r)
        self.latency = Histogram("osprey_end_to_end_latency_seconds",
                                 "From frame capture to its detections published",
                                 ["camera"], buckets=LATENCY_BUCKETS, registry=r)
        self.processed = Counter("osprey_frames_processed", "Frames the detector processed",
                                 ["camera"], registry=r)
        self.errors = Counter("osprey_detector_errors", "Frames the detector failed on",
                              ["camera"], registry=r)
        self.events = Counter("osprey_events", "Track events published", ["camera", "type"],
                              registry=r)
        self.windows = Counter("osprey_windows", "Sliding-window summaries", ["camera"],
                               registry=r)
        self.refined = Counter("osprey_refined", "Refined answers published",
                               ["camera", "source"], registry=r)
        self.matches = Counter("osprey_query_matches", "Detections a camera's text query "
                               "describes (cloud image-text model)", ["camera", "query"],
                               registry=r)

    def watch(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        """Expose the counters and gauges in `snapshot()` (see Agent.snapshot) at scrape time."""
        self.registry.register(_SnapshotCollector(snapshot))


class _SnapshotCollector:
    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        snap = self.snapshot()
        cams = snap["cameras"]
        frames_in = CounterMetricFamily("osprey_frames_in", "Frames read from the camera",
                                        labels=["camera"])
        dropped = CounterMetricFamily(
            "osprey_frames_dropped", "Frames never processed: superseded by a newer one, or "
            "older than max_frame_age_ms", labels=["camera", "reason"])
        reconnects = CounterMetricFamily("osprey_camera_reconnects",
                                         "Failed opens or reads that led to a retry",
                                         labels=["camera"])
        up = GaugeMetricFamily("osprey_camera_up", "1 while the camera is streaming",
                               labels=["camera"])
        slot = GaugeMetricFamily("osprey_capture_queue_depth",
                                 "Frames waiting for the detector (the slot holds at most 1)",
                                 labels=["camera"])
        tracks = GaugeMetricFamily("osprey_active_tracks", "Tracks alive now", labels=["camera"])
        for name, c in cams.items():
            frames_in.add_metric([name], c["frames_in"])
            dropped.add_metric([name, "superseded"], c["dropped_superseded"])
            dropped.add_metric([name, "stale"], c["dropped_stale"])
            reconnects.add_metric([name], c["reconnects"])
            up.add_metric([name], 1.0 if c["state"] == "streaming" else 0.0)
            slot.add_metric([name], c["queue_depth"])
            tracks.add_metric([name], c["tracks"])
        yield from (frames_in, dropped, reconnects, up, slot, tracks)
        m = snap["mqtt"]
        yield GaugeMetricFamily("osprey_mqtt_connected", "1 while connected to the broker",
                                value=1.0 if m["connected"] else 0.0)
        yield GaugeMetricFamily("osprey_mqtt_queue_depth",
                                "Messages published but not yet acknowledged by the broker",
                                value=m["pending"])
        yield CounterMetricFamily("osprey_mqtt_published", "Messages sent or queued",
                                  value=m["published"])
        yield CounterMetricFamily("osprey_mqtt_dropped", "Messages dropped: queue bound reached",
                                  value=m["dropped"])
        yield CounterMetricFamily("osprey_mqtt_reconnects", "Connections after the first",
                                  value=max(0, m["connects"] - 1))
        off = snap.get("offload")
        if off is not None:
            outcomes = CounterMetricFamily(
                "osprey_offload_windows", "Windows by offload outcome (sent, cache_hit, "
                "answered, timeout, error, below_threshold, budget, in_flight, breaker, ...)",
                labels=["outcome"])
            for name, n in sorted(off["counts"].items()):
                outcomes.add_metric([name], n)
            yield outcomes
            yield CounterMetricFamily("osprey_offload_bytes_up", "Bytes of offload requests",
                                      value=off["bytes_up"])
            yield GaugeMetricFamily("osprey_offload_in_flight", "Requests awaiting an answer",
                                    value=off["in_flight"])
            yield GaugeMetricFamily("osprey_offload_breaker_open",
                                    "1 while the circuit breaker keeps requests back",
                                    value=0.0 if off["breaker"] == "closed" else 1.0)
