"""A model trained only on the synthetic world, started on a real camera, is warned about."""

from __future__ import annotations

import logging

from edge_agent.core.bundled import bundled_edge_model
from edge_agent.core.config.common import DetectorModelConfig
from edge_agent.core.detector import Detector
from edge_agent.runtime.config import CameraConfig
from edge_agent.runtime.pipeline.agent import warn_domain


def _cameras(*urls: str) -> list[CameraConfig]:
    return [CameraConfig(name=f"c{i}", url=u) for i, u in enumerate(urls)]


def test_the_shipped_models_say_they_are_synthetic():
    assert Detector.from_config(DetectorModelConfig(path=bundled_edge_model())).domain \
        == "synthetic"


def test_a_synthetic_model_on_a_real_camera_is_warned_about(caplog):
    caplog.set_level(logging.WARNING, "osprey.agent")
    assert warn_domain("synthetic", "edge", _cameras("synthetic://?seed=1", "rtsp://cam/s"))
    [record] = caplog.records
    assert "synthetic world only" in record.getMessage() and "c1" in record.getMessage()
    assert "c0" not in record.getMessage()


def test_no_warning_where_the_model_fits(caplog):
    caplog.set_level(logging.WARNING, "osprey.agent")
    assert not warn_domain("synthetic", "edge", _cameras("synthetic://?seed=1"))
    assert not warn_domain("real", "edge", _cameras("rtsp://cam/s"))
    assert not warn_domain(None, "user-model", _cameras("rtsp://cam/s"))
    assert not caplog.records
