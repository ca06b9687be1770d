"""The offload path of one agent: window summaries in (post thread), answers out.

For each window of a camera that may offload: score it, ask the policy, pick keyframes, look
in the edge cache (a hit costs no upload and no budget), otherwise hand it to the client.
Answers from the cache and from the cloud reach the agent the same way, through `deliver`
(the post thread's queue), and are applied there, where the tracks live.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from edge_agent.runtime.config import EdgeConfig
from edge_agent.runtime.offload.answer import Answer
from edge_agent.runtime.offload.cache import EdgeCache, fingerprint, fingerprint_frames
from edge_agent.runtime.offload.client import OffloadClient, Transport
from edge_agent.runtime.offload.keyframes import select_keyframes
from edge_agent.runtime.offload.policy import OffloadPolicy, window_score
from edge_agent.runtime.window import WindowSummary


class Offload(Protocol):
    """What the agent asks of its offload path (OffloadManager, or NoOffload when off)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def on_window(self, summary: WindowSummary) -> None: ...

    def remember(self, answer: Answer) -> None: ...

    def snapshot(self) -> dict[str, Any] | None: ...

    def counters(self) -> dict[str, Any] | None: ...


class NoOffload:
    """Offload off: windows go nowhere, nothing is counted."""

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def on_window(self, summary: WindowSummary) -> None:
        pass

    def remember(self, answer: Answer) -> None:
        pass

    def snapshot(self) -> None:
        return None

    def counters(self) -> None:
        return None


class OffloadManager:
    def __init__(self, config: EdgeConfig, transport: Transport, class_names: tuple[str, ...],
                 *, deliver: Callable[[Answer], None],
                 scale_line: Callable[[str], tuple[float, float] | None] = lambda _: None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`transport` publishes requests and receives answers (the agent's Publisher);
        `deliver` takes every answer, from the cloud or the cache, to the post thread;
        `scale_line(camera)` is the camera's learned scale (sizes in text queries)."""
        self.o = config.offload
        self.clock = clock
        self.deliver = deliver
        self.scale_line = scale_line
        self.policy = OffloadPolicy(config.offload, clock=clock)
        c = config.cache
        self.cache = EdgeCache(c.max_entries, c.ttl_s, c.hamming_radius, c.block_threshold,
                               c.edge_agreement, clock=clock) if c.enabled else None
        self.client = OffloadClient(config, transport, self.policy, deliver, class_names,
                                    clock=clock)
        self.queries = {c.name: list(c.text_queries) for c in config.cameras}
        self.cameras = {c.name for c in config.cameras if c.offload}

    def start(self) -> None:
        self.client.start()

    def stop(self) -> None:
        self.client.stop()

    def on_window(self, summary: WindowSummary) -> None:
        if summary.camera not in self.cameras:
            return
        self.client.count("windows")
        score = window_score(summary, self.o.uncertain_band)
        with self.client.lock:
            decision = self.policy.decide(score, self.client.in_flight[summary.camera],
                                          summary.camera, summary.first_index)
            if decision.send:
                self.policy.cover(summary.camera, summary.last_index)
        if not decision.send:
            self.client.count(decision.reason)
            return
        started = self.clock()
        keyframes = select_keyframes(summary, self.o.keyframes, self.o.uncertain_band)
        fp = None
        if self.cache is not None:
            frames = list(summary.frames)
            at = {f.frame.index: f for f in frames}
            fp = fingerprint([at[i].frame.image for i in fingerprint_frames(list(at))])
            entry = self.cache.lookup(fp, lambda off: frames[off].detections)
            if entry is not None:
                with self.client.lock:
                    self.policy.breaker.trial = False  # nothing was sent to try the cloud
                self.client.count("cache_hit")
                # The cached answer, frame for frame at the same places in this window.
                used = [(off, dets) for off, dets in entry.answer if off < len(frames)]
                matches = [m.model_copy(update={"index": frames[off].frame.index})
                           for off, m in entry.meta.get("matches", []) if off < len(frames)]
                self.deliver(Answer(
                    camera=summary.camera, window_id=summary.window_id,
                    request_id=f"cache-{summary.window_id}", source="cache",
                    frames=[(frames[off].frame.index, dets) for off, dets in used],
                    edge=[frames[off].detections for off, _ in used],
                    rtt_ms=(self.clock() - started) * 1000,
                    window=[(f.frame.index, f.detections) for f in frames],
                    model=entry.meta.get("model", ""), matches=matches,
                    text_model=entry.meta.get("text_model", "")))
                return
        queries = self.queries.get(summary.camera, [])
        line = self.scale_line(summary.camera) if queries else None
        self.client.submit(summary, keyframes, queries, fp, line)

    def remember(self, answer: Answer) -> None:
        """Keep a cloud answer for recurring scenes (post thread)."""
        if self.cache is not None and answer.fingerprint is not None and answer.frames \
                and answer.window:
            # Places in the window (frames may have been dropped between its indices), as a
            # hit reads them back.
            place = {idx: k for k, (idx, _) in enumerate(answer.window)}
            offsets = [place[idx] for idx, _ in answer.frames]
            self.cache.put(answer.fingerprint, list(zip(offsets, [d for _, d in answer.frames],
                                                        strict=True)),
                           answer.frames[-1][1], offsets[-1],
                           edge={off: answer.window[off][1]
                                 for off in fingerprint_frames(list(range(len(answer.window))))},
                           model=answer.model,
                           matches=[(place[m.index], m) for m in answer.matches
                                    if m.index in place],
                           text_model=answer.text_model)

    def snapshot(self) -> dict[str, Any]:
        snap = self.client.snapshot()
        snap["mode"] = self.o.mode
        snap["threshold"] = round(self.policy.threshold(), 4)
        if self.cache is not None:
            s = self.cache.stats
            snap["cache"] = {"entries": len(self.cache), "hits": s.hits, "misses": s.misses,
                             "invalidated": s.invalidated}
        return snap

    def counters(self) -> dict[str, Any]:
        return self.client.snapshot()
