"""Frame sources: cameras, files and the synthetic world."""

from edge_agent.capture.frame import Frame, FrameSource
from edge_agent.capture.synthetic import SyntheticSource, parse_synthetic_url

__all__ = ["Frame", "FrameSource", "SyntheticSource", "parse_synthetic_url"]
