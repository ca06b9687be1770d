"""The bundled edge model a config gets: the real-camera one for real cameras, the
synthetic-world one for synthetic:// only, and a fallback that says why."""

from __future__ import annotations

import shutil

import pytest

from edge_agent.core import bundled
from edge_agent.runtime.config import EdgeConfig
from edge_agent.runtime.models import pick_edge_model


def _config(*urls: str) -> EdgeConfig:
    return EdgeConfig.model_validate({"cameras": [{"name": f"c{i}", "url": u}
                                                  for i, u in enumerate(urls)]})


@pytest.fixture
def models(tmp_path, monkeypatch):
    (tmp_path / "edge").mkdir()
    shutil.copy(bundled.bundled_edge_model(), tmp_path / "edge" / bundled.EDGE_FP32)
    monkeypatch.setattr(bundled, "model_dirs", lambda kind="edge": [tmp_path / kind])
    return tmp_path / "edge"


def test_synthetic_cameras_get_the_synthetic_model(models):
    path, why = pick_edge_model(_config("synthetic://?seed=1"))
    assert path.name == bundled.EDGE_FP32 and "synthetic" in why


def test_a_real_camera_gets_the_real_model_when_installed(models):
    (models / bundled.EDGE_REAL_FP32).write_bytes(b"stand-in")
    path, why = pick_edge_model(_config("synthetic://?seed=1", "rtsp://cam/stream"))
    assert path.name == bundled.EDGE_REAL_FP32 and "c1" in why and "c0" not in why


def test_without_the_real_model_the_synthetic_one_runs_and_says_why(models):
    path, why = pick_edge_model(_config("rtsp://cam/stream"))
    assert path.name == bundled.EDGE_FP32 and "not installed" in why


def test_model_path_wins(models, tmp_path):
    config = _config("rtsp://cam/stream")
    config = config.model_copy(update={"model": config.model.model_copy(
        update={"path": tmp_path / "mine.onnx"})})
    assert pick_edge_model(config) == (tmp_path / "mine.onnx", "model.path")
