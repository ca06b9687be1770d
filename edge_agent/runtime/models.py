"""Which bundled edge model a config gets when it names none: the real-camera model when any
camera is real, the synthetic-world model when every camera is `synthetic://`."""

from __future__ import annotations

from pathlib import Path

from edge_agent.core.bundled import bundled_edge_model
from edge_agent.core.errors import ModelError
from edge_agent.runtime.capture.registry import has_opener
from edge_agent.runtime.config import EdgeConfig


def pick_edge_model(config: EdgeConfig) -> tuple[Path, str]:
    """(model path, why it was chosen), for the start line."""
    if config.model.path:
        return Path(config.model.path), "model.path"
    precision = config.detector.precision
    real = [c.name for c in config.cameras if c.enabled and not has_opener(c.url)]
    if not real:
        return bundled_edge_model(precision), "every camera is synthetic://"
    try:
        return bundled_edge_model(precision, "real"), f"real camera(s): {', '.join(real)}"
    except ModelError:
        return bundled_edge_model(precision), ("the real-camera model is not installed; "
                                               "the synthetic-world model runs")
