"""Frame sources: cameras and files through OpenCV, other schemes through the registry."""

from edge_agent.runtime.capture.frame import Frame, FrameSource

__all__ = ["Frame", "FrameSource"]
