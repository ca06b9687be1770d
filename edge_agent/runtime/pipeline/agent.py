"""The edge agent: cameras -> shared detector -> tracker -> sliding window -> MQTT.

Threads: one capture thread per camera (edge_agent.runtime.capture.camera); the detection
stages, a prepare thread and one detection thread shared by every camera (stages.py); one post
thread that decodes, tracks, makes events and window summaries, applies answers and publishes,
overlapping the next inference (post.py); the offload client's thread; and one stats thread.
Detections are published at once; window summaries go to listeners (the offload path), which
never wait on the cloud. This module wires them and runs their lifecycle.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from edge_agent.core.detector import FrameDetector
from edge_agent.runtime.capture.frame import FrameSource
from edge_agent.runtime.capture.opencv import report_capabilities, source_from_config
from edge_agent.runtime.config import CameraConfig, EdgeConfig
from edge_agent.runtime.live import LiveView
from edge_agent.runtime.metrics import AgentMetrics
from edge_agent.runtime.mqtt.homeassistant import HomeAssistant
from edge_agent.runtime.mqtt.payloads import camera_status_payload
from edge_agent.runtime.mqtt.publisher import Publisher
from edge_agent.runtime.offload.answer import Answer
from edge_agent.runtime.offload.manager import NoOffload, Offload, OffloadManager
from edge_agent.runtime.pipeline import stats
from edge_agent.runtime.pipeline.camera import CameraPipeline
from edge_agent.runtime.pipeline.post import Events, Flush, PostStage
from edge_agent.runtime.pipeline.stages import DetectionStages
from edge_agent.runtime.window import WindowSummary

log = logging.getLogger("osprey.agent")


def warn_domain(domain: str | None, model: str, cameras: list[CameraConfig]) -> bool:
    """Warn (once, at start) when a model trained only on Osprey's synthetic world watches
    real cameras: there it misses real objects and invents others."""
    real = [c.name for c in cameras if not c.url.startswith("synthetic://")]
    if domain != "synthetic" or not real:
        return False
    log.warning("model %s was trained on Osprey's synthetic world only; on real cameras (%s) "
                "it misses real objects and invents others: use a model trained on real "
                "footage (model.path; see docs/models.md, \"Which model where\")", model,
                ", ".join(real))
    return True


class Agent:
    def __init__(self, config: EdgeConfig, detector: FrameDetector, publisher: Publisher, *,
                 model_id: str, metrics: AgentMetrics | None = None,
                 openers: dict[str, Callable[[], FrameSource]] | None = None,
                 configuration_url: str | None = None, live: LiveView | None = None
                 ) -> None:
        """`configuration_url`: where a person sees this agent (its live page), for Home
        Assistant's device page."""
        self.config = config
        self.detector = detector
        self.publisher = publisher
        self.model_id = model_id
        self.metrics = metrics or AgentMetrics()
        self.metrics.watch(self.snapshot)
        self.topics = publisher.topics
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._stopped = False
        openers = openers or {}
        self.pipelines = [
            CameraPipeline(c, config, detector.class_names,
                           openers.get(c.name) or (lambda c=c: source_from_config(c)),
                           on_status=self._camera_status, on_frame=self._wake.set)
            for c in config.cameras if c.enabled
        ]
        if not self.pipelines:
            raise ValueError("every camera is disabled (enabled: false): enable at least one")
        self.by_name = {p.name: p for p in self.pipelines}
        self.started_at = time.monotonic()
        self.offload: Offload = NoOffload()
        if config.offload.enabled:
            self.offload = OffloadManager(
                config, publisher, detector.class_names, deliver=self.post_answer,
                scale_line=self._scale_line)
        self.stages = DetectionStages(self.pipelines, detector, emit=self._to_post,
                                      on_error=self._count_error, wake=self._wake,
                                      stop=self._stop)
        self.post = PostStage(config, detector, publisher, model_id=model_id,
                              metrics=self.metrics, pipelines=self.pipelines,
                              offload=self.offload, release=self.stages.ahead.release)
        self.stages.on_end = lambda: self.post.inbox.put(Flush())
        self.post.window_listeners.append(self.offload.on_window)
        self.post.live = live
        self.homeassistant: HomeAssistant | None = None
        if config.homeassistant.enabled:
            self.homeassistant = HomeAssistant(config, publisher, detector.class_names,
                                               configuration_url=configuration_url)
            self.post.frame_listeners.append(self.homeassistant.frame)
        self._stats = threading.Thread(target=self._stats_loop, name="stats", daemon=True)
        self._camera_states: dict[str, dict[str, Any]] = {}
        self.last_stats: dict[str, Any] | None = None
        publisher.on_connected.append(self._republish_status)

    @property
    def window_listeners(self) -> list[Callable[[WindowSummary], None]]:
        """Called (post thread) with each window summary; the offload path is one."""
        return self.post.window_listeners

    # lifecycle ---------------------------------------------------------------------------

    def start(self) -> Agent:
        report_capabilities([p.cfg for p in self.pipelines])
        if self.homeassistant is not None:
            self.homeassistant.start()
        warn_domain(getattr(self.detector, "domain", None), self.model_id,
                    [p.cfg for p in self.pipelines])
        for p in self.pipelines:
            p.camera.start()
        self.post.start()
        self.offload.start()
        self.stages.start()
        self._stats.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every camera's stream has ended and been processed, or stop();
        True if that happened within `timeout`."""
        return self.post.done.wait(timeout)

    def stop(self) -> None:
        """Stop cameras and threads; close open events with `end`; final stats. The caller
        stops the publisher afterwards (it sends the retained `stopped`). Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        self._wake.set()
        for p in self.pipelines:
            p.camera.stop()
        self.stages.join(10)
        self.offload.stop()
        for p in self.pipelines:
            self.post.inbox.put(Events(p, p.events.close_all()))
        self.post.inbox.put(None)
        self.post.join(10)
        self._stats.join(2)
        self.publish_stats()
        if self.homeassistant is not None:
            self.homeassistant.clear()

    # wiring ------------------------------------------------------------------------------

    def _to_post(self, item) -> None:
        self.post.inbox.put(item)

    def post_answer(self, answer: Answer) -> None:
        """Any thread: queue an answer (cloud or cache) for the post thread, which owns the
        tracks."""
        self.post.inbox.put(answer)

    def _count_error(self, p: CameraPipeline) -> None:
        self.metrics.errors.labels(p.name).inc()

    def _scale_line(self, camera: str) -> tuple[float, float] | None:
        p = self.by_name.get(camera)
        return p.perspective.line if p is not None else None

    def _camera_status(self, name: str, state: str, reason: str | None,
                       attempts: int = 0) -> None:
        before = self._camera_states.get(name)
        same = before is not None and before["state"] == state
        payload = camera_status_payload(state, reason, attempts,
                                        since=before["since"] if same else None)
        self._camera_states[name] = payload
        self.publisher.publish_json(self.topics.camera(name, "status"), payload, qos=1,
                                    retain=True)

    def _republish_status(self) -> None:
        """After a reconnect: the broker may have restarted and lost retained messages."""
        for name, payload in list(self._camera_states.items()):
            self.publisher.publish_json(self.topics.camera(name, "status"), payload, qos=1,
                                        retain=True)

    # stats and health --------------------------------------------------------------------

    def _stats_loop(self) -> None:
        interval = self.config.stats_interval_s
        while not self._stop.wait(interval):
            self.publish_stats()

    def stats_payload(self) -> dict[str, Any]:
        return stats.stats_payload(self.config.device_id, self.started_at, self.pipelines,
                                   self.publisher, self.offload)

    def publish_stats(self) -> dict[str, Any]:
        payload = self.stats_payload()
        self.publisher.publish_json(self.topics.stats, payload, qos=0)
        self.last_stats = payload
        return payload

    def snapshot(self) -> dict[str, Any]:
        """Counters for metrics, read without resetting the stats interval."""
        return stats.counters(self.pipelines, self.publisher, self.offload)

    def live_state(self) -> dict[str, Any]:
        """What the live view shows besides frames: counters now and the last stats."""
        return {"device": self.config.device_id, "counters": self.snapshot(),
                "stats": self.last_stats}

    def health(self) -> tuple[bool, dict[str, Any]]:
        return stats.health(self.pipelines, self.publisher, self.stages.heartbeat,
                            self.stages.alive, self.post.alive)
