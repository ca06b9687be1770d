"""`edge-agent bench offload --json` runs end to end on tiny clips and reports every figure the
docs quote (the figures themselves come from full runs, recorded in docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_bench_offload_json(mosquitto, tmp_path):  # the fixture makes sure Mosquitto is here
    png = tmp_path / "g.png"
    done = subprocess.run([sys.executable, "-m", "edge_agent", "--log-level", "WARNING",
                           "bench", "offload", "--seeds", "1000", "--presets", "hard",
                           "--clip-seconds", "3", "--cache-seconds", "4", "--live-seconds",
                           "4", "--plot", str(png), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)
    for name in ("policy", "random", "periodic"):
        assert set(r[name]) == {"0.05", "0.10", "0.20", "0.40"}
        for row in r[name].values():
            assert {"map50", "gap_recovery", "uplink_bytes", "uplink_ratio_vs_cloud_only"} \
                <= set(row)
            assert 0 < row["uplink_ratio_vs_cloud_only"] < 1
    assert r["edge_only"]["gap_recovery"] == 0 and r["cloud_only"]["gap_recovery"] == 1
    ratios = [r["policy"][k]["uplink_bytes"] for k in ("0.05", "0.10", "0.20", "0.40")]
    assert ratios == sorted(ratios)
    assert {"cache_hit_rate", "reuse_captured", "false_hit_rate", "near_duplicate_hits",
            "near_duplicate_windows"} <= set(r["cache"])
    assert {"reuse_captured", "false_hit_rate", "cloud_differs_on_same_scene"} \
        <= set(r["cache"]["truth"])
    for judged in ("single_frame", "every_keyframe"):
        assert {"reuse_captured", "false_hit_rate"} <= set(r["cache"][judged])
    # Keyframe by keyframe is stricter than over the whole answer.
    assert r["cache"]["every_keyframe"]["false_hits"] >= r["cache"]["false_hits"]
    # Hits are judged both ways, each a share of the same hits.
    c = r["cache"]
    assert c["false_hits"] <= c["cache_hits"] and c["single_frame"]["false_hits"] <= c["cache_hits"]
    assert {"p50_ms", "p95_ms"} <= set(r["refined_latency"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
