"""`bench offload`'s cache part: the edge cache over long clips with recurring and
near-duplicate scenes, hits judged by the cloud and by the ground truth."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from cloud_fallback.recipe import Recipe, refine
from edge_agent.core.detector import FrameDetector
from edge_agent.core.detector.detections import Detections
from edge_agent.core.detector.nms import iou_matrix
from edge_agent.runtime.capture.frame import Frame
from edge_agent.runtime.config import EdgeCacheConfig, OffloadConfig
from edge_agent.runtime.offload.cache import (
    EdgeCache,
    agreement,
    agreement_counts,
    block_difference,
    fingerprint,
    fingerprint_frames,
    hamming,
)
from edge_agent.runtime.offload.keyframes import frame_uncertainty, pick, sharpness
from edge_agent.runtime.offload.policy import window_score
from edge_agent.runtime.tracker import Tracker
from edge_agent.runtime.window import SlidingWindow
from edge_agent.tools.evaluate import MAX_OCCLUSION, MIN_VISIBLE_PX
from edge_agent.tools.sim import SyntheticWorld, WorldOptions
from edge_agent.tools.sim.truth import FrameTruth


def scene_agreement(a: FrameTruth, b: FrameTruth) -> float:
    """F1 of two frames' scored objects (the ones mAP counts): same class, IoU >= 0.5. 1.0
    when neither has any: whether two frames show the same scene, by the ground truth."""
    def scored(t: FrameTruth) -> tuple[np.ndarray, list[str]]:
        objs = [o for o in t.objects if o.box is not None and o.visible_px >= MIN_VISIBLE_PX
                and o.occlusion <= MAX_OCCLUSION]
        return np.array([list(o.box) for o in objs], np.float32).reshape(-1, 4), \
            [o.cls for o in objs]

    (xa, ca), (xb, cb) = scored(a), scored(b)
    if not len(ca) and not len(cb):
        return 1.0
    if not len(ca) or not len(cb):
        return 0.0
    m = (iou_matrix(xa, xb) >= 0.5) & (np.array(ca)[:, None] == np.array(cb)[None, :])
    return float((m.any(axis=1).sum() + m.any(axis=0).sum()) / (len(ca) + len(cb)))


CACHE_SEEDS = (1137, 1138, 1139, 1140)
"""The cache clips' worlds (held out from every model's training): fresh scenes, some of
which come back unchanged later in the day (recurring) and some with one small new object
(near-duplicate). Several clips, because one clip's two dozen hits cannot tell a 2 % false-hit
rate from 4 %."""


def bench_cache_seeds(edge: FrameDetector, cloud: Any, seeds: list[int] | tuple[int, ...],
                      seconds: float, ratio: float, size: int, stride: int, k: int,
                      min_score: float, cfg: OffloadConfig,
                      progress: Callable[[str], None]) -> dict[str, Any]:
    """`bench_cache` on each seed's clip, its counts pooled (each clip has its own cache: a
    camera's scenes do not recur on another's), with each clip's figures under `per_seed` and
    a 95 % Wilson interval on the pooled false-hit rates."""
    runs = []
    for seed in seeds:
        progress(f"cache clip: seed {seed}")
        runs.append(bench_cache(edge, cloud, seed, seconds, ratio, size, stride, k, min_score,
                                cfg, progress))
    hits = sum(r["cache_hits"] for r in runs)

    def pooled(get: Callable[[dict], dict]) -> dict[str, Any]:
        oracle = sum(get(r)["oracle_reusable"] for r in runs)
        false = sum(get(r)["false_hits"] for r in runs)
        return {**_judged(oracle, hits - false, hits),
                "false_hit_rate_95": wilson(false, hits)}

    cloud_judged = pooled(lambda r: r)
    right, oracle = sum(r["reused_right"] for r in runs), cloud_judged["oracle_reusable"]
    cloud_judged["reused_right"] = right
    cloud_judged["reuse_captured"] = right / oracle if oracle else None
    alone = sum(r["cloud_alone"]["oracle_reusable"] for r in runs)
    truth_false = sum(r["truth"]["false_hits"] for r in runs)
    truth_oracle = sum(r["truth"]["same_scene_windows"] for r in runs)
    offloaded = sum(r["offloaded_windows"] for r in runs)
    return {
        "seeds": list(seeds), "seconds": seconds, "ratio": ratio,
        "offloaded_windows": offloaded, "cache_hits": hits,
        "cache_hit_rate": hits / max(1, offloaded), **cloud_judged,
        "cloud_alone": {"oracle_reusable": alone,
                        "reuse_captured": (hits - cloud_judged["false_hits"]) / alone
                        if alone else None},
        "every_keyframe": pooled(lambda r: r["every_keyframe"]),
        "single_frame": pooled(lambda r: r["single_frame"]),
        "truth": {"same_scene_windows": truth_oracle,
                  "reuse_captured": (hits - truth_false) / truth_oracle if truth_oracle else None,
                  "false_hits": truth_false, "false_hit_rate": truth_false / max(1, hits),
                  "false_hit_rate_95": wilson(truth_false, hits),
                  "cloud_differs_on_same_scene": sum(r["truth"]["cloud_differs_on_same_scene"]
                                                     for r in runs)},
        "near_duplicate_windows": sum(r["near_duplicate_windows"] for r in runs),
        "near_duplicate_hits": sum(r["near_duplicate_hits"] for r in runs),
        "per_seed": [{k: v for k, v in r.items() if k != "hits_detail"} for r in runs],
        "hits_detail": [dict(h, seed=r["seed"]) for r in runs for h in r["hits_detail"]],
    }


def answers_agree(stored: list[tuple[int, Detections]], fresh: list[Detections]
                  ) -> tuple[bool, bool]:
    """A stored answer (offset, detections per keyframe) against the cloud's fresh answer at
    the same offsets: (F1 >= 0.9 over the whole answer, F1 >= 0.9 on every keyframe)."""
    counts = [agreement_counts(a, b) for (_, a), b in zip(stored, fresh, strict=True)]
    found, total = sum(f for f, _ in counts), sum(t for _, t in counts)
    return ((found / total if total else 1.0) >= 0.9,
            all((f / t if t else 1.0) >= 0.9 for f, t in counts))


def wilson(k: int, n: int, z: float = 1.96) -> list[float] | None:
    """95 % Wilson score interval of a rate of k in n."""
    if n == 0:
        return None
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def bench_cache(edge: FrameDetector, cloud: Any, seed: int, seconds: float, ratio: float,
                size: int, stride: int, k: int, min_score: float, cfg: OffloadConfig,
                progress: Callable[[str], None]) -> dict[str, Any]:
    """The edge cache over a long clip with recurring and near-duplicate scenes, windows
    offloaded at `ratio` by the policy's score (rate mode).

    `reuse_captured` is the hits the cloud agrees with over the windows an oracle could have
    answered from the cache: those for which an answer stored for the same scene (by the
    ground truth) is still what the cloud says now. `cloud_alone` counts as reusable any
    window some stored answer agrees with, whatever scene it came from; that also counts
    near-duplicates, which the cache must refuse.

    Each hit is judged twice. By the cloud (`false_hit_rate`): the reused answer (the
    worker's fused keyframes of the window it was stored for) against the answer the worker
    gives now for this window's frames at the same offsets, false below F1 0.9 over the
    whole answer (`every_keyframe`: below 0.9 on any one keyframe). By the ground truth
    (`truth`): whether the window the answer came from showed the same scene (every scored
    object matched, F1 1.0, at the fingerprint's frames; F1 0.9 would let one new object
    among ten through, the near-duplicate the cache must refuse).
    The first also counts the cloud disagreeing with itself on an unchanged scene under other
    light and noise; the second counts only the cache's mistakes. `single_frame` judges by
    the cloud's raw, unfused detections at the fingerprint's frames instead: an answer no
    worker publishes, and the noisiest view of the cloud's self-disagreement."""
    world = SyntheticWorld(WorldOptions.from_preset("normal", seed=seed, recurring_fraction=0.4,
                                                    near_duplicate_fraction=0.2))
    n = round(seconds * world.options.fps)
    tracker = Tracker()
    sw = SlidingWindow("cache", size, stride, cfg.uncertain_band)
    summaries = []  # each holds its frames' images (a few MB per window: fine for a bench)
    truths: list[FrameTruth] = []
    for i in range(n):
        rendered, truth = world.render(i)
        truths.append(truth)
        summary = sw.push(Frame("cache", i, 0.0, 0.0, rendered.image),
                          tracker.update(edge(rendered.image), i).all)
        if summary is not None:
            summaries.append(summary)
        if i % 300 == 299:
            progress(f"cache clip: {i + 1}/{n} frames")
    scores = np.array([window_score(s, cfg.uncertain_band) for s in summaries])
    cut = np.quantile(scores, 1 - ratio)
    c = EdgeCacheConfig()
    cache = EdgeCache(c.max_entries, c.ttl_s, c.hamming_radius, c.block_threshold,
                      c.edge_agreement)
    stored: list[tuple[dict[int, Detections], dict[int, FrameTruth]]] = []
    count = dict.fromkeys(("hits", "correct", "false", "oracle", "offloaded", "truth_oracle",
                           "truth_correct", "truth_false", "cloud_differs_same_scene",
                           "near_duplicate_windows", "near_duplicate_hits", "single_oracle",
                           "single_correct", "frame_oracle", "frame_correct", "cloud_oracle",
                           "correct_same_scene"), 0)
    memo: dict[int, Detections] = {}
    diag: list[dict[str, Any]] = []

    def cloud_at(frame) -> Detections:
        if frame.index not in memo:
            memo[frame.index] = cloud(frame.image)
        return memo[frame.index]

    def same_scene(a: dict[int, FrameTruth], b: dict[int, FrameTruth]) -> float:
        return min(scene_agreement(a[o], b[o]) for o in a)

    def answer(frames, offsets: list[int]) -> list[Detections]:
        """What the worker answers for these frames of a window as its keyframes."""
        return refine([cloud_at(frames[o].frame) for o in offsets],
                      Recipe(min_score=min_score))[0]

    def agrees(stored_answer: list[tuple[int, Detections]], frames) -> tuple[bool, bool]:
        return answers_agree(stored_answer, answer(frames, [o for o, _ in stored_answer]))

    for summary, score in zip(summaries, scores, strict=True):
        if score < cut:
            continue
        count["offloaded"] += 1
        frames = list(summary.frames)
        unc = np.array([frame_uncertainty(f, cfg.uncertain_band) for f in frames])
        sharp = np.array([sharpness(f.frame.image) for f in frames])
        keys = pick(unc, sharp, k)  # offsets in the window
        fresh = answer(frames, keys)
        fp = fingerprint([frames[o].frame.image
                          for o in fingerprint_frames(list(range(len(frames))))])
        # What reuse is judged on: the cloud's view of this window at fixed places, and
        # the ground truth there.
        probe = fingerprint_frames(list(range(len(frames))))
        now = {o: cloud_at(frames[o].frame) for o in probe}
        truth_now = {o: truths[frames[o].frame.index] for o in probe}
        near_dup = truth_now[probe[0]].scene.kind == "near_duplicate"
        count["near_duplicate_windows"] += near_dup
        verdicts = [agrees(a, frames) for a, _, _ in stored]
        same = [same_scene(t, truth_now) == 1.0 for _, _, t in stored]
        # Reusable: an answer stored for this same scene that the cloud still gives now. An
        # answer of another scene that happens to agree (a near-duplicate whose new object
        # the cloud misses too) is not one to reuse: the cache must refuse those.
        count["oracle"] += any(whole and s for (whole, _), s in zip(verdicts, same,
                                                                   strict=True))
        count["cloud_oracle"] += any(whole for whole, _ in verdicts)
        count["frame_oracle"] += any(each for _, each in verdicts)
        count["single_oracle"] += any(min(agreement(p[o], now[o]) for o in probe) >= 0.9
                                      for _, p, _ in stored)
        count["truth_oracle"] += any(same_scene(t, truth_now) == 1.0 for _, _, t in stored)
        entry = cache.lookup(fp, lambda off, frames=frames: frames[off].detections)
        if entry is not None:
            count["hits"] += 1
            count["near_duplicate_hits"] += near_dup
            good, each = agrees(entry.answer, frames)
            count["frame_correct"] += each
            single = min(agreement(entry.meta["probe"][o], now[o]) for o in probe) >= 0.9
            count["single_correct"] += single
            scene = same_scene(entry.meta["truth"], truth_now)
            diag.append({
                "frame": int(frames[0].frame.index),
                "block_difference": round(max(block_difference(x, y) for x, y in zip(
                    entry.fp.thumbs, fp.thumbs, strict=True)), 2),
                "hamming": int(hamming(entry.fp.hashes, fp.hashes).max()),
                "light_ratio": round(float(fp.thumbs.mean())
                                     / max(1e-3, float(entry.fp.thumbs.mean())), 3),
                "light_then": entry.meta["light"], "light_now": truth_now[probe[0]].light,
                "cloud_agrees": bool(good), "scene_agreement": round(scene, 3)})
            count["correct"] += good
            count["correct_same_scene"] += good and scene == 1.0
            count["false"] += not good
            count["truth_correct"] += scene == 1.0
            count["truth_false"] += scene < 1.0
            count["cloud_differs_same_scene"] += scene == 1.0 and not good
        else:
            cache.put(fp, list(zip(keys, fresh, strict=True)), fresh[-1], keys[-1],
                      edge={o: frames[o].detections for o in probe}, probe=now,
                      truth=truth_now, light=truth_now[probe[0]].light)
            stored.append((list(zip(keys, fresh, strict=True)), now, truth_now))
    hits = count["hits"]
    return {"seed": seed, "seconds": seconds, "ratio": ratio,
            "offloaded_windows": count["offloaded"],
            "cache_hits": hits, "cache_hit_rate": hits / max(1, count["offloaded"]),
            "oracle_reusable": count["oracle"], "reused_right": count["correct_same_scene"],
            "reuse_captured": (count["correct_same_scene"] / count["oracle"]
                               if count["oracle"] else None),
            "cloud_alone": {"oracle_reusable": count["cloud_oracle"],
                            "reuse_captured": (count["correct"] / count["cloud_oracle"]
                                               if count["cloud_oracle"] else None)},
            "false_hits": count["false"], "false_hit_rate": count["false"] / max(1, hits),
            "every_keyframe": _judged(count["frame_oracle"], count["frame_correct"], hits),
            "single_frame": _judged(count["single_oracle"], count["single_correct"], hits),
            "truth": {
                "same_scene_windows": count["truth_oracle"],
                "reuse_captured": (count["truth_correct"] / count["truth_oracle"]
                                   if count["truth_oracle"] else None),
                "false_hits": count["truth_false"],
                "false_hit_rate": count["truth_false"] / max(1, hits),
                "cloud_differs_on_same_scene": count["cloud_differs_same_scene"],
            },
            "near_duplicate_windows": count["near_duplicate_windows"],
            "near_duplicate_hits": count["near_duplicate_hits"],
            "hits_detail": diag}


def _judged(oracle: int, correct: int, hits: int) -> dict[str, Any]:
    """Cache figures under one way of judging a hit: `oracle` windows it calls reusable,
    `correct` of the `hits` it calls right."""
    return {"oracle_reusable": oracle,
            "reuse_captured": correct / oracle if oracle else None,
            "false_hits": hits - correct, "false_hit_rate": (hits - correct) / max(1, hits)}
