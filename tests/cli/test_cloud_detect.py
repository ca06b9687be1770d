"""`cloud-fallback detect` writes the cloud model's answer per frame in `edge-agent detect`'s
format, and `edge-agent eval --detections` scores it: the same figure as running the model."""

from __future__ import annotations

import json

import pytest

from cloud_fallback.cli import main as cloud_main
from edge_agent.cli import main as edge_main

pytest.importorskip("ensemble_boxes", reason="the real cloud config fuses with ensemble-boxes")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    assert edge_main(["sim", "--seed", "1003", "--seconds", "2", "--fps", "5", "--out", str(out),
                      "--no-progress"]) == 0
    return out


def _config(tmp_path, model: dict) -> str:
    path = tmp_path / "cloud.json"
    path.write_text(json.dumps({"mqtt": {"host": "127.0.0.1"}, "model": model}))
    return str(path)


def test_cloud_detect_lines_score_as_the_model_does(clip, tmp_path, capsys):
    from edge_agent.core.bundled import bundled_cloud_model

    model = str(bundled_cloud_model())
    config = _config(tmp_path, {"detector": {"path": model, "score_threshold": 0.05},
                                "tiles": None, "text": {"enabled": False}})
    lines = tmp_path / "cloud.jsonl"
    video = str(next(clip.glob("*.mp4")))
    assert cloud_main(["detect", "--config", config, "--source", video, "--score", "0.05",
                       "--out", str(lines)]) == 0
    rows = [json.loads(x) for x in lines.read_text().splitlines()]
    assert [r["frame"] for r in rows] == list(range(10))
    assert {"frame", "timestamp", "width", "height", "detections"} <= set(rows[0])
    assert any(d["label"] == "car" for r in rows for d in r["detections"])
    capsys.readouterr()
    assert edge_main(["eval", "--detections", str(lines), "--data", str(clip), "--json"]) == 0
    recorded = json.loads(capsys.readouterr().out)
    assert edge_main(["eval", "--model", model, "--data", str(clip), "--json"]) == 0
    ran = json.loads(capsys.readouterr().out)
    assert recorded["frames"] == ran["frames"] == 10
    assert recorded["map50"] == pytest.approx(ran["map50"], abs=1e-3)
    assert recorded["map50"] > 0.3


def test_the_wbf_recipe_runs_from_config_and_eval_refuses_gaps(clip, tmp_path, capsys):
    from edge_agent.core.bundled import bundled_cloud_model

    config = _config(tmp_path, {"detector": {"path": str(bundled_cloud_model()),
                                             "score_threshold": 0.05},
                                "merge": "wbf", "flip": True, "tiles": "2x1",
                                "text": {"enabled": False}})
    lines = tmp_path / "wbf.jsonl"
    video = str(next(clip.glob("*.mp4")))
    assert cloud_main(["detect", "--config", config, "--source", video, "--every", "2",
                       "--score", "0.05", "--out", str(lines)]) == 0
    rows = [json.loads(x) for x in lines.read_text().splitlines()]
    assert [r["frame"] for r in rows] == [0, 2, 4, 6, 8]
    assert all(d["score"] >= 0.05 for r in rows for d in r["detections"])
    capsys.readouterr()
    # The synthetic clip labels every frame: frames 1, 3... have no line, a gap eval names.
    assert edge_main(["eval", "--detections", str(lines), "--data", str(clip)]) == 1
    assert "no line for labelled frame(s) 1, 3" in capsys.readouterr().err
    assert edge_main(["eval", "--detections", str(lines), "--data", str(clip), "--stride",
                      "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["map50"] > 0.3


def test_a_broken_detections_file_and_a_missing_video_say_what_is_wrong(clip, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"frame": 0, "detections": []}\n{"frame": 1, "detections": [{"label": 3}]}\n')
    assert edge_main(["eval", "--detections", str(bad), "--data", str(clip)]) == 1
    assert f"{bad}:2: not a detections line" in capsys.readouterr().err
    config = _config(tmp_path, {"text": {"enabled": False}})
    assert cloud_main(["detect", "--config", config, "--source", str(tmp_path / "no.mp4")]) == 1
    assert "cannot open" in capsys.readouterr().err
