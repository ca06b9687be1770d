"""Detector runtime shared by the edge agent and the cloud worker."""

from edge_agent.detector.detections import Detections
from edge_agent.detector.detector import Detector, Timings

__all__ = ["Detections", "Detector", "Timings"]
