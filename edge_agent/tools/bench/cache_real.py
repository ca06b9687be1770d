"""`bench offload --real`'s cache part: the edge cache on real footage.

Real clips seldom show a scene twice within a minute; what matters there is that the cache
never serves a stale answer (a car that moved, a person who arrived). The bench builds "a day"
from held-out real clips: each clip's first `segment_s` seconds, and after the next clip the
previous one again, replayed under a change of light and sensor noise (x0.85 brightness,
Gaussian noise of sigma 3): scenes that come back, with another clip in between.

Windows are offloaded at `ratio` by the policy's score (as the synthetic bench does). Every hit
is judged by the cloud: the reused answer against the answer the worker gives now for this
window's frames at the same offsets, false below F1 0.9 over the whole answer
(`every_keyframe`: below 0.9 on any one keyframe), with a 95 % Wilson interval. Hits on
replayed segments, and the replayed windows the cache could have served (a stored answer of
the same place in the first pass that the cloud still agrees with), are counted apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cloud_fallback.recipe import Recipe, refine
from edge_agent.core.detector import FrameDetector
from edge_agent.core.detector.detections import Detections
from edge_agent.runtime.capture.frame import Frame
from edge_agent.runtime.config import EdgeCacheConfig, OffloadConfig
from edge_agent.runtime.offload.cache import (
    EdgeCache,
    fingerprint,
    fingerprint_frames,
)
from edge_agent.runtime.offload.keyframes import frame_uncertainty, pick, sharpness
from edge_agent.runtime.offload.policy import window_score
from edge_agent.runtime.tracker import Tracker
from edge_agent.runtime.window import SlidingWindow
from edge_agent.tools.bench.cache import answers_agree, wilson


def changed(image: np.ndarray, rng: np.random.Generator, light: float = 0.85,
            noise: float = 3.0) -> np.ndarray:
    """The frame under other light and sensor noise."""
    out = image.astype(np.float32) * light + rng.normal(0, noise, image.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def real_day(videos: list[Path], segment_s: float, seed: int = 0
             ) -> Iterator[tuple[np.ndarray, str, bool]]:
    """(frame, segment name, replayed) for the day: A, B, A', C, B', ... (X': X again,
    changed). Frames are resized to the first clip's size, as one camera would give them."""
    rng = np.random.default_rng(seed)
    size: tuple[int, int] | None = None

    def segment(video: Path) -> list[np.ndarray]:
        nonlocal size
        cap = cv2.VideoCapture(str(video))
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        out = []
        while len(out) < round(segment_s * fps):
            ok, img = cap.read()
            if not ok:
                break
            size = size or (img.shape[1], img.shape[0])
            if (img.shape[1], img.shape[0]) != size:
                img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            out.append(img)
        cap.release()
        return out

    previous: tuple[str, list[np.ndarray]] | None = None
    for video in videos:
        frames = segment(video)
        for img in frames:
            yield img, video.stem, False
        if previous is not None:
            name, old = previous
            for img in old:
                yield changed(img, rng), name, True
        previous = (video.stem, frames)


def bench_cache_real(edge: FrameDetector, cloud: Any, videos: list[Path], segment_s: float,
                     ratio: float, size: int, stride: int, k: int, min_score: float,
                     cfg: OffloadConfig, progress: Callable[[str], None],
                     cache_cfg: EdgeCacheConfig | None = None) -> dict[str, Any]:
    """`cache_cfg`: the edge cache's settings (default the agent's)."""
    tracker = Tracker()
    sw = SlidingWindow("day", size, stride, cfg.uncertain_band)
    windows: list[tuple[Any, str, bool]] = []
    names: dict[int, tuple[str, bool]] = {}
    for i, (img, name, replayed) in enumerate(real_day(videos, segment_s)):
        names[i] = (name, replayed)
        summary = sw.push(Frame("day", i, 0.0, 0.0, img), tracker.update(edge(img), i).all)
        if summary is not None:
            windows.append((summary, name, replayed))
        if i % 300 == 299:
            progress(f"cache day: {i + 1} frames")
    scores = np.array([window_score(s, cfg.uncertain_band) for s, _, _ in windows])
    cut = np.quantile(scores, 1 - ratio) if len(scores) else 0.0
    c = cache_cfg or EdgeCacheConfig()
    cache = EdgeCache(c.max_entries, c.ttl_s, c.hamming_radius, c.block_threshold,
                      c.edge_agreement)
    memo: dict[int, Detections] = {}

    def cloud_at(frame: Frame) -> Detections:
        if frame.index not in memo:
            memo[frame.index] = cloud(frame.image)
        return memo[frame.index]

    def answer(frames, offsets: list[int]) -> list[Detections]:
        return refine([cloud_at(frames[o].frame) for o in offsets],
                      Recipe(min_score=min_score))[0]

    def agrees(stored: list[tuple[int, Detections]], frames) -> tuple[bool, bool]:
        return answers_agree(stored, answer(frames, [o for o, _ in stored]))

    n = dict.fromkeys(("offloaded", "hits", "false", "false_keyframe", "replayed_offloaded",
                       "replayed_hits", "replayed_reusable", "first_pass_hits"), 0)
    stored: list[tuple[str, list[tuple[int, Detections]]]] = []
    for (summary, name, replayed), score in zip(windows, scores, strict=True):
        if score < cut:
            continue
        n["offloaded"] += 1
        n["replayed_offloaded"] += replayed
        frames = list(summary.frames)
        unc = np.array([frame_uncertainty(f, cfg.uncertain_band) for f in frames])
        sharp = np.array([sharpness(f.frame.image) for f in frames])
        keys = pick(unc, sharp, k)
        probe = fingerprint_frames(list(range(len(frames))))
        fp = fingerprint([frames[o].frame.image for o in probe])
        if replayed:
            n["replayed_reusable"] += any(seg == name and agrees(a, frames)[0]
                                          for seg, a in stored)
        entry = cache.lookup(fp, lambda off, frames=frames: frames[off].detections)
        if entry is not None:
            n["hits"] += 1
            n["replayed_hits"] += replayed
            n["first_pass_hits"] += not replayed
            whole, each = agrees(entry.answer, frames)
            n["false"] += not whole
            n["false_keyframe"] += not each
        else:
            fresh = answer(frames, keys)
            kept = list(zip(keys, fresh, strict=True))
            cache.put(fp, kept, fresh[-1], keys[-1],
                      edge={o: frames[o].detections for o in probe})
            stored.append((name, kept))
    hits = n["hits"]
    replays = sum(1 for _, r in names.values() if r)
    return {
        "clips": [v.stem for v in videos], "segment_s": segment_s, "frames": len(names),
        "replayed_frames": replays, "ratio": ratio, "offloaded_windows": n["offloaded"],
        "cache_hits": hits, "cache_hit_rate": hits / max(1, n["offloaded"]),
        "false_hits": n["false"], "false_hit_rate": n["false"] / max(1, hits),
        "false_hit_rate_95": wilson(n["false"], hits),
        "every_keyframe": {"false_hits": n["false_keyframe"],
                           "false_hit_rate": n["false_keyframe"] / max(1, hits),
                           "false_hit_rate_95": wilson(n["false_keyframe"], hits)},
        "first_pass_hits": n["first_pass_hits"],
        "settings": {"hamming_radius": c.hamming_radius, "block_threshold": c.block_threshold,
                     "edge_agreement": c.edge_agreement},
        # misses: no entry served; of them, a fingerprint matched but the edge's detections
        # did not agree with the entry's (the entry is dropped)
        "lookups": {"misses": cache.stats.misses, "edge_disagreed": cache.stats.invalidated},
        "replayed": {"offloaded_windows": n["replayed_offloaded"], "hits": n["replayed_hits"],
                     "reusable": n["replayed_reusable"],
                     "hit_rate": n["replayed_hits"] / max(1, n["replayed_offloaded"])},
    }
