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
                           "--clip-seconds", "3", "--cache-seconds", "4", "--cache-seeds",
                           "1137,1138", "--live-seconds", "4", "--plot", str(png), "--json"],
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
    # the bound: the policy's windows answered perfectly on every one of their frames
    covered = [r["policy_bound"][k]["frames_covered"] for k in ("0.05", "0.10", "0.20", "0.40")]
    assert covered == sorted(covered) and covered[0] > 0 and covered[-1] <= 1
    assert all(r["policy_bound"][k]["gap_recovery"] > 0 for k in r["policy_bound"])
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
    # Pooled over the cache clips: the sums of each clip's counts.
    assert [p["seed"] for p in c["per_seed"]] == c["seeds"] == [1137, 1138]
    for key in ("cache_hits", "false_hits", "oracle_reusable", "reused_right",
                "near_duplicate_windows"):
        assert c[key] == sum(p[key] for p in c["per_seed"]), key
    # The oracle wants the same scene and the cloud's agreement: never more windows than
    # either alone, and the hits it counts right are hits.
    assert c["oracle_reusable"] <= min(c["cloud_alone"]["oracle_reusable"],
                                       c["truth"]["same_scene_windows"])
    assert c["reused_right"] <= c["cache_hits"] - c["false_hits"]
    assert c["every_keyframe"]["false_hits"] == sum(
        p["every_keyframe"]["false_hits"] for p in c["per_seed"])
    assert {"p50_ms", "p95_ms"} <= set(r["refined_latency"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("k, n, low, high", [
    (1, 25, 0.0071, 0.1954),   # one false hit in 25: anywhere from 0.7 % to 20 %
    (0, 100, 0.0, 0.037),
    (2, 100, 0.0055, 0.0700),
])
def test_wilson_interval(k, n, low, high):
    from edge_agent.tools.bench.cache import wilson

    lo, hi = wilson(k, n)
    assert lo == pytest.approx(low, abs=2e-4) and hi == pytest.approx(high, abs=2e-4)
    assert wilson(0, 0) is None
