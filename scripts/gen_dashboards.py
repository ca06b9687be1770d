"""Writes the Grafana dashboards of deploy/grafana/dashboards/ (the agent's and the cloud
worker's), built on the metrics both export; tests/deploy/test_dashboards.py checks that every
metric a panel queries is exported and that the files are up to date.

    python scripts/gen_dashboards.py
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}


def panel(title: str, exprs: list[tuple[str, str]], *, unit: str = "short",
          kind: str = "timeseries", description: str = "") -> dict:
    return {"type": kind, "title": title, "description": description, "datasource": DATASOURCE,
            "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
            "targets": [{"refId": chr(ord("A") + i), "expr": expr, "legendFormat": legend,
                         "datasource": DATASOURCE}
                        for i, (expr, legend) in enumerate(exprs)]}


def quantiles(histogram: str, selector: str, by: str = "") -> list[tuple[str, str]]:
    """p50 and p95 of a histogram over 5 minutes, per `by` label when given."""
    group = f"le{', ' + by if by else ''}"
    label = f"{{{{{by}}}}} " if by else ""
    return [(f"histogram_quantile({q}, sum by ({group}) "
             f"(rate({histogram}_bucket{{{selector}}}[5m])))", f"{label}p{round(q * 100)}")
            for q in (0.5, 0.95)]


def dashboard(uid: str, title: str, panels: list[dict], variables: list[dict]) -> dict:
    for i, p in enumerate(panels):
        p["id"] = i + 1
        p["gridPos"] = {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)}
    return {"uid": uid, "title": title, "tags": ["osprey"], "timezone": "browser",
            "schemaVersion": 39, "version": 1, "refresh": "10s",
            "time": {"from": "now-1h", "to": "now"}, "panels": panels,
            "templating": {"list": variables}, "annotations": {"list": []}}


def variable(name: str, query: str) -> dict:
    return {"name": name, "type": "query", "datasource": DATASOURCE, "refresh": 2,
            "query": {"query": query, "refId": "vars"}, "includeAll": True, "multi": True,
            "current": {"text": "All", "value": "$__all"}}


def agent() -> dict:
    sel = 'instance=~"$instance", camera=~"$camera"'
    inst = 'instance=~"$instance"'
    panels = [
        panel("Frames per second", [
            (f"sum by (camera) (rate(osprey_frames_in_total{{{sel}}}[1m]))", "{{camera}} in"),
            (f"sum by (camera) (rate(osprey_frames_processed_total{{{sel}}}[1m]))",
             "{{camera}} processed")], unit="fps"),
        panel("Frames dropped per second", [
            (f"sum by (camera, reason) (rate(osprey_frames_dropped_total{{{sel}}}[1m]))",
             "{{camera}} {{reason}}")], unit="fps",
              description="superseded: a newer frame came first; stale: older than "
                          "max_frame_age_ms"),
        panel("End-to-end latency (capture to publish)",
              quantiles("osprey_end_to_end_latency_seconds", sel, "camera"), unit="s"),
        panel("Detector time per frame",
              quantiles("osprey_inference_seconds", sel, "camera"), unit="s"),
        panel("Queues", [
            (f"osprey_capture_queue_depth{{{sel}}}", "{{camera}} capture slot"),
            (f"osprey_mqtt_queue_depth{{{inst}}}", "{{instance}} MQTT unacknowledged")]),
        panel("Cameras up and reconnects", [
            (f"osprey_camera_up{{{sel}}}", "{{camera}} up"),
            (f"sum by (camera) (increase(osprey_camera_reconnects_total{{{sel}}}[5m]))",
             "{{camera}} reconnects / 5 min"),
            (f"increase(osprey_mqtt_reconnects_total{{{inst}}}[5m])",
             "{{instance}} broker reconnects / 5 min")]),
        panel("Offload outcomes per minute", [
            (f"sum by (outcome) (rate(osprey_offload_windows_total{{{inst}}}[5m])) * 60",
             "{{outcome}}")], unit="short"),
        panel("Answers per minute by source", [
            (f"sum by (source) (rate(osprey_refined_total{{{sel}}}[5m])) * 60",
             "{{source}}")],
              description="cloud: a worker answered; cache: the edge cache did, nothing sent"),
        panel("Offload uplink", [
            (f"rate(osprey_offload_bytes_up_total{{{inst}}}[5m])", "{{instance}}")],
              unit="Bps"),
        panel("Offload in flight and breaker", [
            (f"osprey_offload_in_flight{{{inst}}}", "{{instance}} in flight"),
            (f"osprey_offload_breaker_open{{{inst}}}", "{{instance}} breaker open")]),
        panel("Events per minute", [
            (f"sum by (camera, type) (rate(osprey_events_total{{{sel}}}[5m])) * 60",
             "{{camera}} {{type}}")]),
        panel("MQTT messages", [
            (f"rate(osprey_mqtt_published_total{{{inst}}}[1m])", "{{instance}} published/s"),
            (f"increase(osprey_mqtt_dropped_total{{{inst}}}[5m])",
             "{{instance}} dropped / 5 min")]),
    ]
    return dashboard("osprey-agent", "Osprey edge agent", panels, [
        variable("instance", "label_values(osprey_frames_processed_total, instance)"),
        variable("camera", 'label_values(osprey_frames_processed_total{instance=~"$instance"}, '
                           "camera)")])


def worker() -> dict:
    inst = 'instance=~"$instance"'
    panels = [
        panel("Requests per second by outcome", [
            (f"sum by (outcome) (rate(osprey_cloud_requests_total{{{inst}}}[1m]))",
             "{{outcome}}")]),
        panel("Batch size (requests per model call)", [
            (f"sum(rate(osprey_cloud_batch_requests_sum{{{inst}}}[5m])) / "
             f"sum(rate(osprey_cloud_batch_requests_count{{{inst}}}[5m]))", "mean"),
            *quantiles("osprey_cloud_batch_requests", inst)]),
        panel("Model time per keyframe",
              quantiles("osprey_cloud_inference_seconds", inst), unit="s"),
        panel("Service time (arrival to answer)",
              quantiles("osprey_cloud_service_seconds", inst), unit="s"),
        panel("Queue depth", [(f"osprey_cloud_queue_depth{{{inst}}}", "{{instance}}")]),
        panel("Cache hits per second by level", [
            (f"sum by (level) (rate(osprey_cloud_cache_hits_total{{{inst}}}[5m]))",
             "{{level}}")]),
        panel("Text-query matches per minute", [
            (f"sum(rate(osprey_cloud_query_matches_total{{{inst}}}[5m])) * 60", "matches")]),
    ]
    return dashboard("osprey-cloud", "Osprey cloud workers", panels, [
        variable("instance", "label_values(osprey_cloud_requests_total, instance)")])


def render() -> dict[str, str]:
    return {name: json.dumps(d, indent=2) + "\n"
            for name, d in (("osprey-agent.json", agent()), ("osprey-cloud.json", worker()))}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
