"""Detector runtime shared by the edge agent and the cloud worker."""

from edge_agent.core.detector.detections import Detections
from edge_agent.core.detector.detector import (
    Detector,
    FrameDetector,
    StagedDetector,
    Timings,
)

__all__ = ["Detections", "Detector", "FrameDetector", "StagedDetector", "Timings"]
