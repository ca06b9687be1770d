"""`edge-agent bench pipeline --json`: runs end to end and reports what the docs quote. The
figures themselves are measured by hand and kept in docs/benchmarks.md, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_bench_pipeline_json(mosquitto):  # the fixture makes sure Mosquitto is installed
    done = subprocess.run([sys.executable, "-m", "edge_agent", "--log-level", "WARNING",
                           "bench", "pipeline", "--seconds", "1", "--json"],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)
    for key in ("fps_ratio", "latency_overhead_p50_ms", "latency_overhead_p99_ms", "pure_fps"):
        assert isinstance(r[key], float), key
    assert r["broker"] == "mosquitto" and r["model"] == "osprey_edge_ssdlite.onnx"
    for run in ("saturated", "realtime_1", "realtime_2"):
        x = r[run]
        assert 0 < x["fps"] <= x["fps_in"] * 1.05 and x["messages"] > 0
        assert x["latency_p99_ms"] >= x["latency_p50_ms"] > 0
    # The saturated camera runs at twice the model's pure rate, so frames must be dropped
    # (by how much depends on the machine's load).
    assert r["saturated"]["fps_in"] > 1.1 * r["saturated"]["fps"]
    assert r["fps_ratio"] == pytest.approx(r["saturated"]["fps"] / r["pure_fps"])
