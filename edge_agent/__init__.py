"""Osprey edge agent: real-time object detection on edge devices, with a cloud fallback."""

__version__ = "0.1.0"
