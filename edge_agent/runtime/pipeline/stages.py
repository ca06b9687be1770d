"""The detection stages: a prepare thread and a detection thread shared by every camera.

The prepare thread serves the cameras in turn, taking a camera's freshest frame and turning it
into the model's input while the model runs on the one before; the detection thread does only
inference. The model thus runs back to back, never waiting on the Python around it. The prepare
thread holds at most one frame ready (so a frame waits at most one inference) and the detection
thread may run at most AHEAD frames ahead of the post thread. Each camera's freshest frame is
taken (never one older than its `max_frame_age_ms`, checked again just before inference), at
most `detect_fps` per camera, so a camera faster than the model costs dropped frames, counted,
and never a growing latency.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge_agent.core.detector import FrameDetector, StagedDetector
from edge_agent.core.detector.adapters.base import Transform
from edge_agent.core.detector.detections import Detections
from edge_agent.core.detector.detector import Feeds, Outputs
from edge_agent.runtime.capture.frame import Frame
from edge_agent.runtime.pipeline.camera import CameraPipeline

log = logging.getLogger("osprey.agent")

AHEAD = 2
"""Frames the detection thread may run ahead of the post-processing thread; past that it waits
up to AHEAD_WAIT_S, then drops that frame's results (counted as an error)."""
AHEAD_WAIT_S = 1.0


@dataclass
class Prepared:
    """A frame turned into the model's input, waiting for the detection thread."""

    pipe: CameraPipeline
    frame: Frame
    feeds: Feeds | None
    """The model's input (a staged detector); None for a detector that prepares its own."""
    transform: Transform | None
    prepare_ms: float


@dataclass
class Inferred:
    """A frame through the model, waiting for decoding, tracking and publishing."""

    pipe: CameraPipeline
    frame: Frame
    outputs: Outputs | None
    """Raw model outputs (a staged detector), to be finished in the post thread."""
    detections: Detections | None
    """Finished detections (a detector that prepares its own input)."""
    transform: Transform | None
    pre_infer_ms: float


class DetectionStages:
    """The prepare and detection threads. Results go to `emit` (the post thread's queue)."""

    def __init__(self, pipelines: list[CameraPipeline], detector: FrameDetector,
                 emit: Callable[[Inferred], None], on_error: Callable[[CameraPipeline], None],
                 wake: threading.Event, stop: threading.Event) -> None:
        self.pipelines = pipelines
        self.detector = detector
        self.staged: StagedDetector | None = (
            detector if isinstance(detector, StagedDetector) else None)
        self._emit = emit
        self._on_error = on_error
        self._wake = wake
        self._stop = stop
        self.heartbeat = time.monotonic()
        self.ahead = threading.BoundedSemaphore(AHEAD)
        """Released by the post thread as it finishes each frame."""
        self._ready: queue.Queue[Prepared | None] = queue.Queue()
        self._slot = threading.Semaphore(1)
        """Held from the moment the prepare thread picks a frame until the detection thread
        takes it: one frame prepared ahead, never more."""
        self._prepare = threading.Thread(target=self._prepare_loop, name="prepare", daemon=True)
        self._detect = threading.Thread(target=self._detect_loop, name="detect", daemon=True)
        self.on_end: Callable[[], None] = lambda: None
        """Called by the detection thread when it ends (every camera ended, or stop)."""

    def start(self) -> None:
        self._detect.start()
        self._prepare.start()

    def join(self, timeout: float) -> None:
        self._prepare.join(timeout)
        self._detect.join(timeout)

    @property
    def alive(self) -> bool:
        return self._detect.is_alive() and self._prepare.is_alive()

    # prepare thread ----------------------------------------------------------------------

    def _prepare_loop(self) -> None:
        """The next due camera's freshest frame, made into the model's input as soon as the
        detection thread has taken the last one, so at most one frame waits (for at most one
        inference) and it is the freshest there was when the model came free."""
        turn = 0  # cameras take turns: the next search starts after the last one served
        try:
            while not self._stop.is_set():
                if not self._slot.acquire(timeout=0.1):
                    continue
                self._wake.clear()
                item = None
                n = len(self.pipelines)
                for k in range(n):
                    p = self.pipelines[(turn + k) % n]
                    now = time.monotonic()
                    if not p.due(now):
                        continue
                    frame = p.camera.latest(p.cfg.max_frame_age_ms, timeout=0)
                    if frame is None:
                        continue
                    p.mark(now)
                    turn = (turn + k + 1) % n
                    item = self._prepared(p, frame)
                    if item is not None:
                        break
                if item is not None:
                    self._ready.put(item)
                    continue
                self._slot.release()
                if all(not p.camera.alive and not p.camera.pending for p in self.pipelines):
                    log.info("every camera has ended")
                    break
                self._wake.wait(self._idle_wait())
        except Exception:
            log.exception("prepare loop failed")
            raise
        finally:
            self._ready.put(None)

    def _prepared(self, p: CameraPipeline, frame: Frame) -> Prepared | None:
        t0 = time.perf_counter()
        feeds = transform = None
        if self.staged is not None:
            try:
                feeds, transform = self.staged.prepare(frame.image)
            except Exception as exc:  # one bad frame must not stop every camera
                self.failed(p, frame, exc)
                return None
        return Prepared(p, frame, feeds, transform, (time.perf_counter() - t0) * 1000)

    def _idle_wait(self) -> float:
        now = time.monotonic()
        waits = [p.next_due - now for p in self.pipelines if p.period and p.next_due > now]
        return min([0.1, *waits]) if waits else 0.1

    # detection thread --------------------------------------------------------------------

    def _detect_loop(self) -> None:
        """The model, back to back on what the prepare thread hands over."""
        try:
            while True:
                self.heartbeat = time.monotonic()
                try:
                    item = self._ready.get(timeout=0.1)
                except queue.Empty:
                    if self._stop.is_set():
                        break
                    continue
                if item is None:
                    self._slot.release()
                    break
                if self.staged is not None:  # the prepare thread may pick the next frame now
                    self._slot.release()
                    self._infer(item)
                else:
                    # A detector that prepares its own input (tiles, say): nothing to overlap,
                    # so the next frame is picked when the model is free, as fresh as can be.
                    try:
                        self._infer(item)
                    finally:
                        self._slot.release()
        except Exception:
            log.exception("detection loop failed")
            raise
        finally:
            self.on_end()

    def failed(self, p: CameraPipeline, frame: Frame, exc: Exception) -> None:
        p.errors += 1
        self._on_error(p)
        log.error("camera %s: detector failed on frame %d: %s", p.name, frame.index, exc)

    def _infer(self, item: Prepared) -> None:
        """The model only; the rest of the frame's work is the post thread's, so it overlaps
        the next inference."""
        p, frame = item.pipe, item.frame
        if (time.monotonic() - frame.captured) * 1000 > p.cfg.max_frame_age_ms:
            p.camera.count_stale()  # it waited too long for the model
            return
        t0 = time.perf_counter()
        outputs = detections = None
        try:
            if self.staged is not None and item.feeds is not None:
                outputs = self.staged.run(item.feeds)
            else:
                detections = self.detector(frame.image)
        except Exception as exc:  # one bad frame must not stop every camera
            self.failed(p, frame, exc)
            return
        took = item.prepare_ms + (time.perf_counter() - t0) * 1000
        if not self.ahead.acquire(timeout=AHEAD_WAIT_S):
            p.unpublished += 1
            log.error("camera %s: post-processing is stuck; frame %d's results dropped", p.name,
                      frame.index)
            return
        self._emit(Inferred(p, frame, outputs, detections, item.transform, took))
