"""One capture thread per camera: keeps only the freshest frame, reconnects forever.

The thread reads as fast as the source gives frames and overwrites a one-slot buffer, so a
slow consumer always gets the newest frame and latency never grows with time; every frame
overwritten before anyone took it is counted. A source that cannot be opened, or fails while
streaming, is retried with capped exponential backoff and jitter, sleeping in short slices so
stop() is seen within a fraction of a second. State changes go to `on_status`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from edge_agent.core.errors import SourceError
from edge_agent.core.logs import redact
from edge_agent.runtime.capture.frame import Frame, FrameSource

log = logging.getLogger("osprey.capture")

CameraState = Literal["streaming", "reconnecting", "down"]
STREAMING: CameraState = "streaming"
RECONNECTING: CameraState = "reconnecting"
DOWN: CameraState = "down"
_SLICE_S = 0.05
REMIND_AFTER_S = (60.0, 600.0, 3600.0)
"""A camera that stays unreachable is logged again this long after its first failure (then
every hour)."""


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Backoff:
    """Capped exponential backoff with jitter: initial, 2x, 4x ... up to `cap`, each plus a
    random share of up to `jitter`."""

    def __init__(self, initial: float, cap: float, jitter: float,
                 rng: random.Random | None = None) -> None:
        if initial <= 0 or cap < initial or not 0 <= jitter <= 1:
            raise ValueError(f"backoff needs 0 < initial <= cap and jitter in [0, 1], got "
                             f"{initial}, {cap}, {jitter}")
        self.initial, self.cap, self.jitter = initial, cap, jitter
        self.rng = rng or random.Random()
        self.attempt = 0

    def next(self) -> float:
        base = min(self.cap, self.initial * 2 ** self.attempt)
        self.attempt += 1
        return base * (1 + self.jitter * self.rng.random())

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class CaptureStats:
    frames_in: int = 0
    taken: int = 0
    dropped_unread: int = 0
    dropped_stale: int = 0
    reconnects: int = 0
    last_error: str | None = None


class Camera:
    """Owns a FrameSource made by `opener` and a thread that keeps its newest frame."""

    def __init__(self, name: str, opener: Callable[[], FrameSource], backoff: Backoff,
                 on_status: Callable[[str, str, str | None, int], None] | None = None,
                 on_frame: Callable[[], None] | None = None) -> None:
        self.name = name
        self._on_frame = on_frame or (lambda: None)
        self._opener = opener
        self._backoff = backoff
        self._on_status = on_status or (lambda *_: None)
        self.stats = CaptureStats()
        self.state: CameraState | None = None
        self.attempts = 0
        """Failed opens or reads since the camera last streamed."""
        self._failing_since = 0.0
        self._reminders = 0
        self._slot: Frame | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture-{name}", daemon=True)

    def start(self) -> Camera:
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def pending(self) -> bool:
        """A frame is waiting in the slot."""
        return self._slot is not None

    def latest(self, max_age_ms: float, timeout: float = 1.0) -> Frame | None:
        """The newest frame not taken yet, waiting up to `timeout`; None if none came or the
        newest is older than `max_age_ms` (then it is dropped and counted, never processed)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._slot is None and not self._stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, _SLICE_S * 4))
            frame, self._slot = self._slot, None
            if frame is None:
                return None
            if (time.monotonic() - frame.captured) * 1000 > max_age_ms:
                self.stats.dropped_stale += 1
                return None
            self.stats.taken += 1
            return frame

    def count_stale(self) -> None:
        """A frame taken from this camera went stale before the model could run on it."""
        with self._cond:
            self.stats.dropped_stale += 1

    def _status(self, state: CameraState, reason: str | None = None) -> None:
        if state != self.state:
            self.state = state
            quiet = state == STREAMING or (state == DOWN and reason in ("stopped", "end of stream"))
            log.log(logging.INFO if quiet else logging.WARNING,
                    "camera %s: %s%s", self.name, state, f" ({redact(reason)})" if reason else "")
            self._on_status(self.name, state, redact(reason) if reason else None, self.attempts)
        elif state == RECONNECTING:
            # the same state, one more attempt: the retained status says how many, and why
            self._on_status(self.name, state, redact(reason) if reason else None, self.attempts)

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < end:
            time.sleep(min(_SLICE_S, max(0.0, end - time.monotonic())))

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    source = self._opener()
                except (SourceError, OSError, ValueError) as exc:
                    self._failed(str(exc))
                    continue
                try:
                    self._stream(source)
                finally:
                    source.close()
        except Exception as exc:  # a bug must not take the agent down silently
            log.exception("camera %s: capture thread failed", self.name)
            self._status(DOWN, f"internal error: {exc}")
        finally:
            if self.state != DOWN:
                self._status(DOWN, "stopped")

    def _stream(self, source: FrameSource) -> None:
        while not self._stop.is_set():
            try:
                frame = source.read()
            except SourceError as exc:
                self._failed(str(exc))
                return
            if frame is None:
                self._status(DOWN, "end of stream")
                self._stop.set()
                return
            if self.state != STREAMING:
                self._backoff.reset()
                self.attempts = self._reminders = 0
                self._status(STREAMING)
            self.stats.frames_in += 1
            with self._cond:
                if self._slot is not None:
                    self.stats.dropped_unread += 1
                self._slot = frame
                self._cond.notify()
            self._on_frame()

    def _failed(self, reason: str) -> None:
        self.stats.last_error = redact(reason)
        self.stats.reconnects += 1
        now = time.monotonic()
        if self.attempts == 0:
            self._failing_since = now
        self.attempts += 1
        self._status(RECONNECTING, reason)
        self._remind(now, reason)
        self._sleep(self._backoff.next())

    def _remind(self, now: float, reason: str) -> None:
        """While the camera stays unreachable, say so again at a falling rate (after 1, 10
        and 60 minutes, then hourly), with the attempts so far: a log read hours later still
        shows the camera is down and why."""
        failing = now - self._failing_since
        due = REMIND_AFTER_S[self._reminders] if self._reminders < len(REMIND_AFTER_S) \
            else REMIND_AFTER_S[-1] * (self._reminders - len(REMIND_AFTER_S) + 2)
        if failing < due:
            return
        self._reminders += 1
        log.warning("camera %s: still %s after %d attempts over %s (%s)", self.name,
                    RECONNECTING, self.attempts, _duration(failing), redact(reason))
