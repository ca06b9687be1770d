"""OpenCV sources: video files, RTSP/HTTP streams (FFmpeg), USB cameras, GStreamer pipelines."""

from __future__ import annotations

import logging
import re
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

from edge_agent.core.errors import SourceError
from edge_agent.core.logs import redact
from edge_agent.runtime.capture.frame import Frame, FrameSource
from edge_agent.runtime.capture.registry import source_opener
from edge_agent.runtime.config import CameraConfig

log = logging.getLogger("osprey.capture")


def describe(url: str) -> tuple[str, object, int]:
    """(kind, what to hand cv2.VideoCapture, API preference) of a camera URL."""
    if url.startswith("gst://"):
        return "gstreamer", url[len("gst://"):], cv2.CAP_GSTREAMER
    m = re.fullmatch(r"(?:usb://|/dev/video)?(\d+)", url)
    if m:
        return "usb", int(m.group(1)), cv2.CAP_ANY
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("rtsp", "rtsps", "rtmp", "http", "https"):
        return "stream", url, cv2.CAP_FFMPEG
    path = url[len("file://"):] if scheme == "file" else url
    return "file", path, cv2.CAP_ANY


class OpenCVSource:
    """A FrameSource over cv2.VideoCapture. Opening fails with a SourceError that says why."""

    def __init__(self, name: str, url: str, *, open_timeout_s: float = 10.0,
                 read_timeout_s: float = 5.0, realtime: bool = False, loop: bool = False) -> None:
        self.name = name
        self.url = url
        self.realtime = realtime
        self.loop = loop
        self.kind, target, api = describe(url)
        if self.kind == "file" and not Path(str(target)).is_file():
            raise SourceError(f"camera {name}: video file {target} not found")
        params = []
        if self.kind == "stream":
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_s * 1000),
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout_s * 1000)]
        started = time.monotonic()
        self.cap = cv2.VideoCapture(target, api, params)
        if not self.cap.isOpened():
            hint = {
                "gstreamer": "this OpenCV may lack GStreamer (see `edge-agent doctor`)",
                "usb": "is the camera plugged in, and is the user in the video group?",
                "stream": "is the address reachable and are the credentials right?",
                "file": "OpenCV cannot decode it",
            }[self.kind]
            if self.kind == "stream":
                hint = stream_failure(url, time.monotonic() - started, open_timeout_s) or hint
            raise SourceError(redact(f"camera {name}: cannot open {url}: {hint}"))
        self.fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self._index = 0
        self.damaged = 0
        """Frames of a damaged file that did not decode and were skipped."""
        self._t0: float | None = None

    def read(self) -> Frame | None:
        if self.kind == "file" and self.realtime and self.fps > 0:
            self._pace()
        ok, image = self.cap.read()
        if not ok and self.kind == "file":
            ok, image = self._past_damage()
        if not ok and self.kind == "file" and self.loop and self._index > 0:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self.cap.read()
        if not ok:
            if self.kind == "file":
                return None
            raise SourceError(redact(f"camera {self.name}: read failed on {self.url}"))
        frame = Frame(self.name, self._index, time.monotonic(), time.time(), image)
        self._index += 1
        return frame

    def _past_damage(self) -> tuple[bool, np.ndarray | None]:
        """A file that stops reading before its last frame is damaged there: say so, and go
        on at the next frame that decodes (seeking ahead, as far as the container's index
        allows). (False, None) at the real end, or when nothing after the damage reads."""
        total = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        at = int(self.cap.get(cv2.CAP_PROP_POS_FRAMES) or self._index)
        if total <= 0 or at >= total - 1:
            return False, None
        log.warning("camera %s: frame %d of %d of %s does not decode (the file is damaged "
                    "there); skipping ahead", self.name, at, total, redact(self.url))
        for nxt in range(at + 1, total):
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, nxt)
            ok, image = self.cap.read()
            if ok:
                self.damaged += nxt - at
                log.warning("camera %s: went on at frame %d (%d frames skipped)", self.name,
                            nxt, nxt - at)
                self._index = nxt
                return True, image
        self.damaged += total - at
        log.warning("camera %s: frames %d to %d of %s do not decode: the file ends there for "
                    "Osprey", self.name, at, total - 1, redact(self.url))
        return False, None

    def _pace(self) -> None:
        """Play a file at its own frame rate, like the camera it was recorded from."""
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        due = self._t0 + self._index / self.fps
        if due > now:
            time.sleep(due - now)

    def close(self) -> None:
        self.cap.release()


def stream_failure(url: str, elapsed_s: float, timeout_s: float) -> str | None:
    """Why a stream did not open, where it can be told: the server did not answer in time,
    refused the connection, or its host name is unknown. None: no better reason than OpenCV's
    silence (a wrong path or credentials, an unsupported codec)."""
    if elapsed_s >= 0.9 * timeout_s:
        return (f"timed out: no video within open_timeout_s ({timeout_s:g} s); the server "
                "took the connection but sent nothing: is it streaming, and is the path right?")
    parts = urlsplit(url)
    default = {"rtsp": 554, "rtsps": 322, "rtmp": 1935, "http": 80, "https": 443}
    try:
        host, port = parts.hostname, parts.port or default.get(parts.scheme)
    except ValueError:
        return None
    if not host or not port:
        return None
    try:
        with socket.create_connection((host, port), timeout=min(2.0, timeout_s)):
            return None
    except socket.gaierror:
        return f"unknown host {host!r}: check the address (DNS)"
    except ConnectionRefusedError:
        return f"connection refused by {host}:{port}: is the server running on that port?"
    except OSError as exc:
        return f"cannot reach {host}:{port} ({exc.strerror or exc})"


def gstreamer_in_build_info(text: str) -> bool:
    for line in text.splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line.split(":", 1)[1]
    return False


def opencv_has_gstreamer() -> bool:
    """Whether this OpenCV was built with GStreamer (JetPack's is; pip wheels are not)."""
    return gstreamer_in_build_info(cv2.getBuildInformation())


def report_capabilities(cameras: list[CameraConfig]) -> bool:
    """Log whether this OpenCV has GStreamer, and an error for each gst:// camera it cannot
    open. Returns whether GStreamer is there."""
    has = opencv_has_gstreamer()
    log.info("OpenCV %s: GStreamer %s", cv2.__version__, "yes" if has else "no")
    for cam in cameras:
        if cam.url.startswith("gst://") and not has:
            log.error("camera %s: a GStreamer pipeline needs an OpenCV built with GStreamer and "
                      "this one is not (pip wheels never are); on a Jetson use JetPack's "
                      "python3-opencv (see README, 'On a Jetson')", cam.name)
    return has


def open_source(name: str, url: str, *, realtime: bool = True, loop: bool = False,
                open_timeout_s: float = 10.0, read_timeout_s: float = 5.0) -> FrameSource:
    """A FrameSource for any camera URL the config accepts. With `realtime` a file plays at
    its own frame rate (as a camera would); without it, as fast as it decodes."""
    opener = source_opener(url)
    if opener is not None:
        return opener(name, url, realtime=realtime)
    return OpenCVSource(name, url, open_timeout_s=open_timeout_s, read_timeout_s=read_timeout_s,
                        realtime=realtime, loop=loop)


def source_from_config(camera: CameraConfig) -> FrameSource:
    return open_source(camera.name, camera.url, realtime=True, loop=camera.loop,
                       open_timeout_s=camera.open_timeout_s,
                       read_timeout_s=camera.read_timeout_s)
