"""URL schemes served by a source other than OpenCV, found by name and imported only when a
camera asks for one.

A scheme maps to `"module:function"`; the function is called as
`open(name, url, realtime=...)` and returns a `FrameSource`. The runtime names its entries as
strings, so `synthetic://` (the simulator, a tool) is loaded only by a camera that uses it and
the runtime never imports the simulator otherwise.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from edge_agent.runtime.capture.frame import FrameSource

Opener = Callable[..., FrameSource]

_SOURCES: dict[str, str | Opener] = {
    "synthetic": "edge_agent.tools.sim.source:open_synthetic",
}


def register_source(scheme: str, opener: str | Opener) -> None:
    """Serve `scheme://` URLs with `opener` (a callable or a "module:function" string)."""
    _SOURCES[scheme] = opener


def has_opener(url: str) -> bool:
    """Whether the URL's scheme is served by a registered source (nothing is imported)."""
    scheme, sep, _ = url.partition("://")
    return bool(sep) and scheme in _SOURCES


def source_opener(url: str) -> Opener | None:
    """The opener registered for the URL's scheme, imported on first use; None for a URL
    OpenCV opens (files, RTSP, HTTP, USB, GStreamer)."""
    scheme, sep, _ = url.partition("://")
    entry = _SOURCES.get(scheme) if sep else None
    if entry is None or callable(entry):
        return entry
    module, _, name = entry.partition(":")
    opener = getattr(importlib.import_module(module), name)
    _SOURCES[scheme] = opener
    return opener
