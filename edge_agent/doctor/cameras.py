"""Camera checks: every camera opened at once with the agent's capture code, one frame each."""

from __future__ import annotations

import threading
import time

import numpy as np

from edge_agent.core.doctor.report import Check, fail, ok, skip
from edge_agent.core.logs import redact
from edge_agent.runtime.config import CameraConfig

_FIXES = {
    "stream": "check the URL, the network and the credentials (does ffplay open it from this "
              "machine?); raise cameras[].open_timeout_s for a slow camera",
    "gstreamer": "test the pipeline with gst-launch-1.0; it needs an OpenCV built with "
                 "GStreamer (JetPack's)",
    "usb": "is it plugged in (ls /dev/video*), and is the user in the video group?",
    "file": "check the path (relative paths start from the working directory)",
}


class _Grab:
    """Opens one camera and reads one frame in a daemon thread (a stuck open cannot hold up
    the doctor past its deadline)."""

    def __init__(self, camera: CameraConfig, timeout: float) -> None:
        self.camera = camera
        self.started = time.monotonic()
        self.deadline = self.started + timeout
        self.timeout = timeout
        self.frame = None
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._run, name=f"doctor-{camera.name}",
                                       daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from edge_agent.runtime.capture.opencv import source_from_config

        source = None
        try:
            source = source_from_config(self.camera)
            self.frame = source.read()
        except Exception as exc:  # a camera can fail in many ways; each is the answer
            self.error = exc
        finally:
            if source is not None:
                source.close()

    def result(self) -> tuple[Check, np.ndarray | None]:
        from edge_agent.runtime.capture.opencv import describe

        self.thread.join(max(0.0, self.deadline - time.monotonic()))
        name, url = f"camera {self.camera.name}", redact(self.camera.url)
        fix = _FIXES.get(describe(self.camera.url)[0], _FIXES["stream"])
        if self.thread.is_alive():
            return fail(name, f"{url}: no frame within {self.timeout:g} s", fix), None
        if self.error is not None:
            return fail(name, redact(str(self.error)).removeprefix(f"{name}: "), fix), None
        if self.frame is None:
            return fail(name, f"{url}: opened but gave no frame (empty file or stream?)",
                        fix), None
        h, w = self.frame.image.shape[:2]
        took = time.monotonic() - self.started
        return ok(name, f"{url}: {w}x{h} frame in {took:.1f} s"), self.frame.image


def check_cameras(cameras: list[CameraConfig], timeout: float
                  ) -> tuple[list[Check], tuple[str, np.ndarray] | None]:
    """A line per camera, and (name, image) of the first that gave a frame."""
    grabs = {c.name: _Grab(c, min(timeout, c.open_timeout_s + c.read_timeout_s))
             for c in cameras if c.enabled}
    checks, first = [], None
    for camera in cameras:
        if camera.name not in grabs:
            checks.append(skip(f"camera {camera.name}", "disabled in the config"))
            continue
        check, image = grabs[camera.name].result()
        checks.append(check)
        if first is None and image is not None:
            first = (camera.name, image)
    return checks, first
