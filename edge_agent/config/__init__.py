"""Validated configuration: pydantic models loaded from YAML with env overrides."""

from __future__ import annotations

from pathlib import Path

from edge_agent.config.common import (
    DetectorModelConfig,
    EdgeRuntimeConfig,
    LoggingConfig,
    MetricsConfig,
    MqttConfig,
    RuntimeConfig,
    TlsConfig,
)
from edge_agent.config.edge import CameraConfig, EdgeConfig, OffloadConfig, WindowConfig
from edge_agent.config.loader import ConfigFileError, dump_config, load_config

EDGE_ENV_PREFIX = "OSPREY_EDGE"


def load_edge_config(path: str | Path, environ=None) -> EdgeConfig:
    return load_config(EdgeConfig, path, EDGE_ENV_PREFIX, environ)


__all__ = [
    "EDGE_ENV_PREFIX",
    "CameraConfig",
    "ConfigFileError",
    "DetectorModelConfig",
    "EdgeConfig",
    "EdgeRuntimeConfig",
    "LoggingConfig",
    "MetricsConfig",
    "MqttConfig",
    "OffloadConfig",
    "RuntimeConfig",
    "TlsConfig",
    "WindowConfig",
    "dump_config",
    "load_config",
    "load_edge_config",
]
