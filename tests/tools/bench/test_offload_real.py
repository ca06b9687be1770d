"""`edge-agent bench offload --real`: the cascade on real clips, the cloud-only answer as the
reference, train clips refused."""

from __future__ import annotations

import pytest

pytest.importorskip("ensemble_boxes", reason="the real cloud config fuses with ensemble-boxes")

from edge_agent.core.bundled import bundled_edge_model
from edge_agent.core.errors import OspreyError
from edge_agent.tools.bench.real import bench_offload_real

CONFIG = "configs/cloud-real.yaml"


@pytest.fixture
def cloud_env(real_data, monkeypatch):
    monkeypatch.setenv("OSPREY_CLOUD_MODEL", str(real_data / "yolox_nano_416.onnx"))
    monkeypatch.setenv("OSPREY_CLOUD_CLASSES", str(real_data / "coco_classes.txt"))
    monkeypatch.chdir(__import__("pathlib").Path(__file__).resolve().parents[3])
    return real_data


def test_the_cascade_on_a_held_out_real_clip(cloud_env, tmp_path):
    clip = cloud_env / "clips" / "window_street_bus_cars.mp4"
    result = bench_offload_real(bundled_edge_model("fp32", "real"), CONFIG, [clip], 4.0,
                                tmp_path)
    assert result["frames"] == 40 and result["windows"] >= 3
    assert result["cloud_only"]["map50"] == pytest.approx(1.0)   # the reference itself
    assert result["edge_only"]["map50"] < 0.9
    policy = result["policy"]
    uplinks = [policy[r]["uplink_bytes"] for r in sorted(policy, key=float)]
    assert uplinks == sorted(uplinks) and uplinks[0] > 0
    assert all(p["uplink_ratio_vs_cloud_only"] < 0.6 for p in policy.values())
    # cached detections: a second run computes nothing and gives the same figures
    again = bench_offload_real(bundled_edge_model("fp32", "real"), CONFIG, [clip], 4.0,
                               tmp_path)
    assert again["policy"] == policy


def test_a_clip_a_model_trained_on_is_refused_unless_tuning(cloud_env, tmp_path):
    clip = cloud_env / "clips" / "indoor_hall_walker.mp4"
    with pytest.raises(OspreyError, match="`train` clip"):
        bench_offload_real(bundled_edge_model("fp32", "real"), CONFIG, [clip], 2.0)
    tuned = bench_offload_real(bundled_edge_model("fp32", "real"), CONFIG, [clip], 2.0,
                               tmp_path, tuning=True)
    assert tuned["clips_kind"] == "train (tuning only)" and tuned["frames"] == 20


def test_the_cache_day_on_real_clips_counts_its_replays(cloud_env, tmp_path):
    clips = [cloud_env / "clips" / "window_street_bus_cars.mp4",
             cloud_env / "clips" / "dual_carriageway_approach.mp4"]
    result = bench_offload_real(bundled_edge_model("fp32", "real"), CONFIG, clips, 1.0,
                                tmp_path, cache_segment_s=3.0)
    cache = result["cache"]
    # 3 s of each (10 and 24.75 fps), then the first again, changed
    assert cache["frames"] == 30 + 74 + 30 and cache["replayed_frames"] == 30
    assert cache["offloaded_windows"] >= 2
    assert cache["cache_hits"] == cache["first_pass_hits"] + cache["replayed"]["hits"]
    assert 0 <= cache["false_hits"] <= cache["cache_hits"]


def test_human_labels_are_scored_beside_the_reference(cloud_env, tmp_path):
    """MOT gt.txt of a clip (here written from the cloud's own confident people, so the
    cloud-only answer must score 1 on it) is scored for edge-only, cloud-only and the policy."""
    from cloud_fallback.config import load_cloud_config
    from cloud_fallback.model import build_detector
    from edge_agent.tools.bench.real import cloud_reference

    clip = cloud_env / "pedestrian_survaillance.mp4"
    cloud = build_detector(load_cloud_config(CONFIG).model)
    _, truths, _ = cloud_reference(clip, cloud, ("person",), 0.2, 2.0, lambda _: None)
    rows = [f"{t.frame + 1},{k},{o.box[0]},{o.box[1]},{o.box[2] - o.box[0]},"
            f"{o.box[3] - o.box[1]},1,1,1"
            for t in truths for k, o in enumerate(t.objects)
            if o.cls == "person" and not o.ignore]
    assert rows, "the clip shows people"
    gt = tmp_path / "gt.txt"
    gt.write_text("\n".join(rows) + "\n")
    result = bench_offload_real(bundled_edge_model("fp32", "real"), CONFIG, [clip], 2.0,
                                tmp_path, human={clip.stem: gt})
    human = result["human"]
    assert human["cloud_only"] == pytest.approx(1.0, abs=0.02)
    assert human["edge_only"] < human["cloud_only"]
    assert set(human["policy"]) == {"0.05", "0.10", "0.20", "0.40"}
