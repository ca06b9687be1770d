"""Exceptions for runtime conditions. Caller mistakes raise ValueError with the value."""

from __future__ import annotations


class OspreyError(Exception):
    """Base of Osprey's runtime errors; the message says what is wrong and what to do."""


class ConfigError(OspreyError):
    """A configuration file or override is invalid (see edge_agent.core.config.loader)."""


class SourceError(OspreyError):
    """A camera or video source cannot be opened or read."""


class ModelError(OspreyError):
    """A model is missing, unreadable, or has a layout Osprey does not support."""


class OffloadError(OspreyError):
    """Offloading a window to the cloud failed."""
