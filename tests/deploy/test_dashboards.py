"""The Grafana dashboards and the Prometheus config of the compose stack: every metric a panel
queries is one the agent or the worker exports (their real registries, every family), the
dashboards are what scripts/gen_dashboards.py makes, and the provisioning points at them."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "deploy" / "grafana"


def exported() -> set[str]:
    """Every sample name the agent's and the worker's registries can expose."""
    from prometheus_client import CollectorRegistry

    from cloud_fallback.worker import WorkerMetrics
    from edge_agent.runtime.metrics import AgentMetrics

    snapshot = {
        "cameras": {"cam": {"state": "streaming", "frames_in": 1, "processed": 1,
                            "dropped_superseded": 0, "dropped_stale": 0, "reconnects": 0,
                            "queue_depth": 0, "tracks": 0}},
        "mqtt": {"connected": True, "published": 1, "dropped": 0, "pending": 0, "connects": 1},
        "offload": {"counts": {"sent": 1}, "bytes_up": 1, "in_flight": 0,
                    "breaker": "closed"}}
    agent = AgentMetrics(CollectorRegistry())
    agent.watch(lambda: snapshot)
    names: set[str] = set()
    for registry in (agent.registry, WorkerMetrics().registry):
        for family in registry.collect():
            if family.type == "counter":
                names.add(family.name + "_total")
            elif family.type == "histogram":
                names |= {family.name + s for s in ("_bucket", "_sum", "_count")}
            else:
                names.add(family.name)
    return names


def queried(dashboard: dict) -> set[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"]]
    return {m for e in exprs for m in re.findall(r"\b(osprey_[a-z_]+)", e)}


def test_every_metric_a_panel_queries_is_exported():
    names = exported()
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        wanted = queried(dashboard)
        assert wanted, path
        assert wanted <= names, f"{path.name}: not exported: {sorted(wanted - names)}"
    # and the dashboards cover what the issue names: frames, drops, latency, queues,
    # reconnects, offload outcomes, cache hits, batch sizes and model time
    agent = queried(json.loads((GRAFANA / "dashboards" / "osprey-agent.json").read_text()))
    cloud = queried(json.loads((GRAFANA / "dashboards" / "osprey-cloud.json").read_text()))
    assert {"osprey_frames_in_total", "osprey_frames_dropped_total",
            "osprey_end_to_end_latency_seconds_bucket", "osprey_capture_queue_depth",
            "osprey_mqtt_queue_depth", "osprey_camera_reconnects_total",
            "osprey_mqtt_reconnects_total", "osprey_offload_windows_total",
            "osprey_refined_total"} <= agent
    assert {"osprey_cloud_batch_requests_bucket", "osprey_cloud_inference_seconds_bucket",
            "osprey_cloud_cache_hits_total", "osprey_cloud_queue_depth",
            "osprey_cloud_requests_total"} <= cloud


def test_dashboards_are_up_to_date_and_provisioned():
    spec = importlib.util.spec_from_file_location("gen", REPO / "scripts" / "gen_dashboards.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    for name, text in gen.render().items():
        assert (GRAFANA / "dashboards" / name).read_text() == text, \
            f"{name} is stale: run python scripts/gen_dashboards.py"
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/osprey.yml").read_text())
    source = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    [p] = provider["providers"]
    [ds] = source["datasources"]
    compose = yaml.safe_load((REPO / "deploy/compose/docker-compose.yml").read_text())
    mounts = dict(v.split(":")[:2][::-1] for v in compose["services"]["grafana"]["volumes"]
                  if v.startswith("../"))
    assert mounts[p["options"]["path"]] == "../grafana/dashboards"
    for path in (GRAFANA / "dashboards").glob("*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            assert panel["datasource"]["uid"] == ds["uid"]
    assert ds["url"] == "http://prometheus:9090"
    prom = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    assert jobs["osprey-cloud"]["dns_sd_configs"][0]["names"] == ["worker"]
    assert jobs["osprey-cloud"]["dns_sd_configs"][0]["port"] == 9109
    agents = yaml.safe_load((REPO / "deploy/prometheus/agents.yml").read_text())
    assert all(t.endswith(":9108") for group in agents for t in group["targets"])
