"""`edge-agent bench offload`: what offloading buys, measured on held-out synthetic clips.

Each clip is rendered from its seed (exact ground truth), the edge model and its tracker run
on every frame, and the cloud model (as the worker runs it) on every frame, once. Then, with
no further inference:

- **edge-only** and **cloud-only** (every frame sent as JPEG) bound the range;
- the **policy** offloads the least confident windows (window_score, as the agent: above a
  threshold, never overlapping the last window offloaded) at ratios of 5/10/20/40 % of
  windows, each as `keyframes` keyframes; the cloud's fused answer is merged into every frame
  of the window exactly as the agent does (edge_agent.offload.merge);
- baselines at the same ratios: **random** windows (5 seeds) and **periodic** windows.

For each: mAP@0.5 over all frames, gap recovery G(r) = (mAP - mAP_edge) / (mAP_cloud -
mAP_edge), uplink bytes (the msgpack requests the agent would send) and their ratio to
cloud-only. Which window score predicts the cloud's corrections best is reported as rank
correlations. The edge cache runs over a long clip with recurring and near-duplicate scenes:
hit rate, reuse captured (correct hits over the windows an oracle could have reused) and false
hits (reused answers below F1 0.9 against a fresh cloud answer). A live run through a real
broker and worker gives the round-trip latency of refined results.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_agent.capture.frame import Frame
from edge_agent.config.common import DetectorModelConfig, RuntimeConfig
from edge_agent.config.edge import OffloadConfig
from edge_agent.detector import Detector
from edge_agent.detector.detections import Detections
from edge_agent.detector.nms import iou_matrix
from edge_agent.detector.tiling import TiledDetector
from edge_agent.errors import ModelError
from edge_agent.evaluate import CLIP_ID_SPAN, MAX_OCCLUSION, MIN_VISIBLE_PX, evaluate
from edge_agent.offload.cache import (
    EdgeCache,
    agreement,
    agreement_counts,
    block_difference,
    fingerprint,
    fingerprint_frames,
    hamming,
)
from edge_agent.offload.hold import HOLD_MIN_SCORE, HOLD_STATIC_IOU, static_objects, with_held
from edge_agent.offload.keyframes import frame_uncertainty, pick, sharpness
from edge_agent.offload.merge import merge_window
from edge_agent.offload.policy import score_parts, window_score
from edge_agent.offload.protocol import Keyframe, OffloadRequest, encode, to_wire
from edge_agent.sim import SyntheticWorld, WorldOptions
from edge_agent.sim.truth import FrameTruth
from edge_agent.tracker import Tracker
from edge_agent.window import SlidingWindow

RATIOS = (0.05, 0.10, 0.20, 0.40)
_TINY = np.zeros((2, 2, 3), np.uint8)


@dataclass
class Clip:
    name: str
    truths: list[FrameTruth]
    edge: list[Detections]
    cloud: list[Detections]
    jpeg: np.ndarray
    sharp: np.ndarray
    base: int
    """Frame ids of this clip start at base (pooled evaluation)."""


@dataclass
class Window:
    clip: int
    start: int
    frames: list[int]
    scores: dict[str, float]
    keys: list[int] = field(default_factory=list)


def _world_clip(seed: int, preset: str, seconds: float, k: int, edge: Detector,
                cloud: Any, progress: Callable[[str], None]) -> Clip:
    world = SyntheticWorld(WorldOptions.from_preset(preset, seed=seed))
    n = round(seconds * world.options.fps)
    tracker = Tracker()
    truths, edge_d, cloud_d, sizes, sharp = [], [], [], [], []
    t0 = time.monotonic()
    for i in range(n):
        rendered, truth = world.render(i)
        img = rendered.image
        truths.append(truth)
        edge_d.append(tracker.update(edge(img), i).all)
        cloud_d.append(cloud(img))
        sizes.append(len(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])[1]))
        sharp.append(sharpness(img))
        if i % 150 == 149:
            progress(f"{preset}-{seed}: {i + 1}/{n} frames ({time.monotonic() - t0:.0f} s)")
    return Clip(f"{preset}-{seed}", truths, edge_d, cloud_d, np.array(sizes),
                np.array(sharp), k * CLIP_ID_SPAN)


def _windows(clips: list[Clip], size: int, stride: int, k: int,
             band: tuple[float, float]) -> list[Window]:
    out = []
    for c, clip in enumerate(clips):
        sw = SlidingWindow(clip.name, size, stride, band)
        for i, dets in enumerate(clip.edge):
            summary = sw.push(Frame(clip.name, i, 0.0, 0.0, _TINY), dets)
            if summary is None:
                continue
            frames = [f.frame.index for f in summary.frames]
            unc = np.array([frame_uncertainty(f, band)
                            for f in summary.frames])
            keys = [frames[j] for j in pick(unc, clip.sharp[frames], k)]
            out.append(Window(c, frames[0], frames, {
                "combined": window_score(summary, band), **score_parts(summary, band),
            }, keys))
    return out


def causal_policy(windows: list[Window], scores: np.ndarray, n: int) -> list[int]:
    """The agent's rule, in time order per clip: offload a window whose score reaches the
    threshold unless it overlaps the last window offloaded. The threshold is the one that
    offloads `n` windows (bisection over the scores), as rate mode aims to."""
    def select(threshold: float) -> list[int]:
        chosen, last = [], {}
        for i, w in enumerate(windows):
            if scores[i] >= threshold and w.start > last.get(w.clip, -1):
                chosen.append(i)
                last[w.clip] = w.frames[-1]
        return chosen

    cands = np.unique(scores)[::-1]
    lo, hi = 0, len(cands) - 1
    while lo < hi:  # fewest candidates (highest threshold) that reach n windows
        mid = (lo + hi) // 2
        if len(select(float(cands[mid]))) >= n:
            hi = mid
        else:
            lo = mid + 1
    return select(float(cands[lo]))[:n] if len(cands) else []


def _fused(clip: Clip, keys: list[int], min_score: float) -> list[Detections]:
    from cloud_fallback.fusion import fuse_keyframes

    fused = fuse_keyframes([clip.cloud[k] for k in keys])  # the worker's default weight
    return [d[d.score >= min_score] for d in fused]


def _label_hits(truth: FrameTruth, dets: Detections) -> tuple[int, int, int, int]:
    """Labels against clearly visible objects, two ways: (1) every detection, compared with
    the object it overlaps most (IoU >= 0.5, any class): a second box of another class on the
    same object counts, since a subscriber sees it; (2) one detection per object, the highest
    scored. Returns (matched, right) for each."""
    objs = [o for o in truth.visible()
            if o.visible_px >= MIN_VISIBLE_PX and o.occlusion <= MAX_OCCLUSION]
    if not objs or not len(dets):
        return 0, 0, 0, 0
    iou = iou_matrix(dets.xyxy, np.array([o.box for o in objs], np.float32))
    best = iou.argmax(axis=1)
    hit = iou[np.arange(len(dets)), best] >= 0.5
    right = [dets.class_names[int(c)] == objs[int(j)].cls
             for c, j in zip(dets.class_id[hit], best[hit], strict=True)]
    used: set[int] = set()
    first = first_right = 0
    for i in np.argsort(-dets.score, kind="stable"):
        free = np.where([k in used for k in range(len(objs))], -1.0, iou[i])
        j = int(free.argmax())
        if free[j] < 0.5:
            continue
        used.add(j)
        first += 1
        first_right += dets.class_names[int(dets.class_id[i])] == objs[j].cls
    return int(hit.sum()), int(sum(right)), first, int(first_right)


def second_opinion(clips: list[Clip], windows: list[Window], chosen: list[int],
                   min_score: float, text_model: Any, weights=(0.1, 0.2, 0.3, 0.5),
                   quality: int = 85) -> dict[str, Any]:
    """Label accuracy of the cloud's answers for the `chosen` windows, on clearly visible
    objects (every detection, and the best box per object), with the detector alone and with
    the image-text model's second opinion at each weight; the keyframes are rendered again and
    JPEG-compressed as the agent sends them."""
    from cloud_fallback.opinion import TextOpinion

    worlds: dict[int, SyntheticWorld] = {}
    per = {"detector": [0, 0, 0, 0], **{f"text_w{w:g}": [0, 0, 0, 0] for w in weights}}
    relabelled = dict.fromkeys(per, 0)
    names = None
    for wi in chosen:
        w = windows[wi]
        clip = clips[w.clip]
        preset, seed = clip.name.rsplit("-", 1)
        world = worlds.setdefault(w.clip, SyntheticWorld(
            WorldOptions.from_preset(preset, seed=int(seed))))
        fused = _fused(clip, w.keys, min_score)
        images = []
        for k in w.keys:
            _, buf = cv2.imencode(".jpg", world.render(k)[0].image,
                                   [cv2.IMWRITE_JPEG_QUALITY, quality])
            images.append(cv2.imdecode(buf, cv2.IMREAD_COLOR))
        names = names or next((d.class_names for d in fused if d.class_names), None)
        variants = {"detector": fused}
        for wt in weights:
            op = TextOpinion(text_model, names or (), label_weight=wt)
            variants[f"text_w{wt:g}"] = op.apply(images, fused, list(w.keys),
                                                 [(1.0, 1.0)] * len(w.keys), [])[0]
        for name, frames in variants.items():
            for k, dets, base in zip(w.keys, frames, fused, strict=True):
                for n, v in enumerate(_label_hits(clip.truths[k], dets)):
                    per[name][n] += v
                relabelled[name] += int((dets.class_id != base.class_id).sum())
    return {name: {"matched": m, "label_accuracy": round(r / m, 4) if m else None,
                   "objects": o, "label_accuracy_best_box": round(ro / o, 4) if o else None,
                   "relabelled": relabelled[name]} for name, (m, r, o, ro) in per.items()}


def _request_bytes(clip: Clip, keys: list[int]) -> int:
    """Size of the msgpack request the agent would send: the JPEGs plus the envelope (edge
    detections, ids), measured by encoding one with placeholder bytes of the right length."""
    frames = [Keyframe(index=k, captured_at=0.0, width=640, height=360,
                       jpeg=b"\xff\xd8" + b"\0" * (int(clip.jpeg[k]) - 2)) for k in keys]
    req = OffloadRequest(id="0" * 32, device="bench", camera="cam", window="cam-1",
                         sent_at=0.0, expires_at=0.0, reply_to="osprey/bench/offload/response",
                         corr=b"0" * 32, frames=frames,
                         edge=[to_wire(clip.edge[k]) for k in keys])
    return len(encode(req))


ANSWER_DELAY_S = 1.0
"""How long after its window ends an answer reaches the agent: the live round trip on this
CPU (p50 about 1 s, `refined_latency`). Labels the cloud verified apply to the edge's
detections of those tracks from then on, as the agent applies them."""


def _system_map(clips: list[Clip], windows: list[Window], chosen: list[int],
                min_score: float, verify_min_score: float | None = None
                ) -> tuple[float, int]:
    """mAP@0.5 of what the agent would publish when `chosen` windows are offloaded, and the
    uplink bytes."""
    out, uplink = published(clips, windows, chosen, min_score, verify_min_score)
    return _map(clips, out), uplink


def published(clips: list[Clip], windows: list[Window], chosen: list[int], min_score: float,
              verify_min_score: float | None = None, hold_s: float | None = None,
              hold_score_factor: float | None = None) -> tuple[list[list[Detections]], int]:
    """Per clip and frame, what the agent publishes when `chosen` windows are offloaded, and
    the uplink bytes: `refined` (the merge) on the offloaded windows' frames; elsewhere the
    edge's detections, with the class the cloud verified for a track from the moment its
    answer arrives (`ANSWER_DELAY_S` after the window), as on the agent's `detections`, with
    the static objects of the latest answer held for `hold_s` (edge_agent.offload.hold)."""
    from edge_agent.offload.manager import verified_tracks

    defaults = OffloadConfig()
    if verify_min_score is None:
        verify_min_score = defaults.verify_min_score
    hold_s = defaults.hold_s if hold_s is None else hold_s
    if hold_score_factor is None:
        hold_score_factor = defaults.hold_score_factor
    order = sorted(chosen, key=lambda i: (windows[i].clip, windows[i].start))
    fused = {i: _fused(clips[windows[i].clip], windows[i].keys, min_score) for i in order}
    out = []
    for c, clip in enumerate(clips):
        relabel = sorted(
            (clip.truths[windows[i].frames[-1]].t + ANSWER_DELAY_S, tid, cls)
            for i in order if windows[i].clip == c
            for tid, cls, _ in verified_tracks(clip.edge[windows[i].keys[-1]], fused[i][-1],
                                               verify_min_score))
        overrides: dict[int, int] = {}
        frames = []
        for truth, dets in zip(clip.truths, clip.edge, strict=True):
            while relabel and relabel[0][0] <= truth.t:
                _, tid, cls = relabel.pop(0)
                overrides[tid] = cls
            frames.append(_relabelled(dets, overrides) if overrides else dets)
        out.append(frames)
    held = _held(clips, windows, order, fused, hold_s, hold_score_factor)
    uplink = 0
    for wi in order:
        w = windows[wi]
        clip = clips[w.clip]
        answer = list(zip(w.keys, fused[wi], strict=True))
        for f, dets in merge_window([(f, out[w.clip][f]) for f in w.frames], answer):
            out[w.clip][f] = dets
        uplink += _request_bytes(clip, w.keys)
    offloaded = {(windows[i].clip, f) for i in order for f in windows[i].frames}
    for (c, f), h in held.items():
        if (c, f) not in offloaded:  # there `refined` supersedes `detections`
            out[c][f] = with_held(out[c][f], h)
    return out, uplink


def _held(clips: list[Clip], windows: list[Window], order: list[int],
          fused: dict[int, list[Detections]], hold_s: float, factor: float
          ) -> dict[tuple[int, int], Detections]:
    """(clip, frame) -> the static cloud objects held on it: each answer's from its arrival
    (`ANSWER_DELAY_S` after its window) for `hold_s`, until the next answer replaces them."""
    out: dict[tuple[int, int], Detections] = {}
    if hold_s <= 0:
        return out
    for c, clip in enumerate(clips):
        answers = [(clip.truths[windows[i].frames[-1]].t + ANSWER_DELAY_S,
                    static_objects(fused[i][0], fused[i][-1], HOLD_MIN_SCORE, HOLD_STATIC_IOU,
                                   factor))
                   for i in order if windows[i].clip == c]
        answers.sort(key=lambda a: a[0])
        k = -1
        for f, truth in enumerate(clip.truths):
            while k + 1 < len(answers) and answers[k + 1][0] <= truth.t:
                k += 1
            if k >= 0 and truth.t < answers[k][0] + hold_s and len(answers[k][1]):
                out[(c, f)] = answers[k][1]
    return out


def _relabelled(d: Detections, overrides: dict[int, int]) -> Detections:
    if d.track_id is None or not len(d):
        return d
    cls = d.class_id.copy()
    for i, tid in enumerate(d.track_id.tolist()):
        cls[i] = overrides.get(tid, cls[i])
    return Detections(d.xyxy, d.score, cls, d.class_names, d.track_id)


def _map(clips: list[Clip], per_clip: list[list[Detections]]) -> float:
    from dataclasses import replace

    truths, dets = [], []
    for clip, frames in zip(clips, per_clip, strict=True):
        for t, d in zip(clip.truths, frames, strict=True):
            truths.append(replace(t, frame=clip.base + t.frame))
            dets.append((clip.base + t.frame, d))
    return evaluate(truths, dets).map50


def _rank_corr(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


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


def bench_cache_seeds(edge: Detector, cloud: Any, seeds: list[int] | tuple[int, ...],
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


def wilson(k: int, n: int, z: float = 1.96) -> list[float] | None:
    """95 % Wilson score interval of a rate of k in n."""
    if n == 0:
        return None
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def bench_cache(edge: Detector, cloud: Any, seed: int, seconds: float, ratio: float,
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
    from cloud_fallback.fusion import fuse_keyframes

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
    from edge_agent.config.edge import EdgeCacheConfig

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
        return [d[d.score >= min_score]
                for d in fuse_keyframes([cloud_at(frames[o].frame) for o in offsets])]

    def agrees(stored_answer: list[tuple[int, Detections]], frames) -> tuple[bool, bool]:
        """(F1 >= 0.9 over the whole answer, F1 >= 0.9 on every keyframe of it)."""
        fresh_now = answer(frames, [o for o, _ in stored_answer])
        counts = [agreement_counts(a, b) for (_, a), b
                  in zip(stored_answer, fresh_now, strict=True)]
        found, total = sum(f for f, _ in counts), sum(t for _, t in counts)
        whole = (found / total if total else 1.0) >= 0.9
        return whole, all((f / t if t else 1.0) >= 0.9 for f, t in counts)

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


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def bench_offload(edge_path: Path, cloud_path: Path, seeds: list[int], presets: list[str],
                  seconds: float, cache_seconds: float, live_seconds: float,
                  progress: Callable[[str], None] = lambda _: None,
                  work_dir: Path | None = None,
                  cache_seeds: list[int] | tuple[int, ...] = CACHE_SEEDS) -> dict[str, Any]:
    """`work_dir` keeps each clip's detections (keyed by both models' hashes, seed, preset
    and length), so a rerun that changes only the policy or the merge takes seconds."""
    import pickle

    cfg = OffloadConfig(enabled=True)
    from cloud_fallback.config import CloudModelConfig

    # The worker's defaults: its answers keep detections down to min_score.
    size, stride, k, min_score = 16, 8, cfg.keyframes, CloudModelConfig().min_score
    edge = Detector.from_config(DetectorModelConfig(path=edge_path), RuntimeConfig())
    # The cloud detector as the worker runs it by default: whole frame plus 2x2 tiles.
    cloud = TiledDetector(Detector.from_config(
        DetectorModelConfig(path=cloud_path, score_threshold=0.1), RuntimeConfig()), 2, 2)
    models = f"{_sha(edge_path)}-{_sha(cloud_path)}-tiled2x2"
    clips = []
    for preset in presets:
        for seed in seeds:
            saved = (work_dir / f"{preset}-{seed}-{seconds:g}s-{models}.pkl"
                     if work_dir else None)
            if saved is not None and saved.is_file():
                clip = pickle.loads(saved.read_bytes())
                clip.base = len(clips) * CLIP_ID_SPAN
            else:
                clip = _world_clip(seed, preset, seconds, len(clips), edge, cloud, progress)
                if saved is not None:
                    saved.parent.mkdir(parents=True, exist_ok=True)
                    saved.write_bytes(pickle.dumps(clip))
            clips.append(clip)
    windows = _windows(clips, size, stride, k, cfg.uncertain_band)
    progress(f"{len(windows)} windows; scoring")
    edge_map = _map(clips, [c.edge for c in clips])
    # Cloud-only is what the worker answers for every frame: its detections down to the
    # answers' floor (`min_score`, the worker's default), like the policy's answers.
    cloud_map = _map(clips, [[d[d.score >= min_score] for d in c.cloud] for c in clips])
    detector_map = _map(clips, [c.cloud for c in clips])
    cloud_bytes = int(sum(c.jpeg.sum() for c in clips))
    gap = cloud_map - edge_map

    def row(chosen: list[int]) -> dict[str, float]:
        m, up = _system_map(clips, windows, chosen, min_score)
        return {"map50": m, "gap_recovery": (m - edge_map) / gap if gap > 0 else 0.0,
                "uplink_bytes": up, "uplink_ratio_vs_cloud_only": up / cloud_bytes}

    # Which score predicts the cloud's corrections: disagreement between the edge and the
    # cloud on each window's keyframes (1 - F1).
    correction = np.array([1 - np.mean([agreement(clips[w.clip].edge[f], d) for f, d in zip(
        w.keys, _fused(clips[w.clip], w.keys, min_score), strict=True)]) for w in windows])
    predictors = {name: _rank_corr(np.array([w.scores[name] for w in windows]), correction)
                  for name in windows[0].scores}
    scores = np.array([w.scores["combined"] for w in windows])
    result: dict[str, Any] = {
        "clips": [c.name for c in clips], "seconds_per_clip": seconds, "windows": len(windows),
        "window": {"size": size, "stride": stride, "keyframes": k},
        "edge_only": {"map50": edge_map, "gap_recovery": 0.0, "uplink_bytes": 0,
                      "uplink_ratio_vs_cloud_only": 0.0},
        "cloud_only": {"map50": cloud_map, "gap_recovery": 1.0, "uplink_bytes": cloud_bytes,
                       "uplink_ratio_vs_cloud_only": 1.0,
                       "detector_map50_all_scores": detector_map},
        "score_vs_correction_rank_corr": predictors,
        "policy": {}, "random": {}, "periodic": {},
    }
    for r in RATIOS:
        n = max(1, round(r * len(windows)))
        progress(f"ratio {r:.0%}: policy, random x5, periodic")
        result["policy"][f"{r:.2f}"] = row(causal_policy(windows, scores, n))
        rand = [row(list(np.random.default_rng(s).choice(len(windows), n, replace=False)))
                for s in range(5)]
        result["random"][f"{r:.2f}"] = {key: float(np.mean([x[key] for x in rand]))
                                        for key in rand[0]}
        step = len(windows) / n
        result["periodic"][f"{r:.2f}"] = row([int(i * step) for i in range(n)])
    try:
        from cloud_fallback.textimage import TextImageModel
        from edge_agent.bundled import bundled_text_model

        text_model = TextImageModel.load(bundled_text_model())
    except (ImportError, ModelError) as exc:
        result["second_opinion"] = {"skipped": str(exc)}
    else:
        progress("second opinion: labels of the policy's answers at 20 %")
        chosen = causal_policy(windows, scores, max(1, round(0.2 * len(windows))))
        result["second_opinion"] = {"windows": len(chosen), **second_opinion(
            clips, windows, chosen, min_score, text_model)}
    if cache_seconds > 0:
        result["cache"] = bench_cache_seeds(edge, cloud, cache_seeds, cache_seconds, 0.2, size,
                                            stride, k, min_score, cfg, progress)
    if live_seconds > 0:
        progress(f"live: {live_seconds:g} s through a broker and a worker")
        result["refined_latency"] = live_latency(edge, cloud_path, live_seconds)
    return result


def live_latency(edge: Detector, cloud_path: Path, seconds: float) -> dict[str, Any]:
    """Round trip of refined results: agent -> broker -> worker -> broker -> agent."""
    from cloud_fallback.config import CloudConfig
    from cloud_fallback.worker import Worker
    from edge_agent.agent import Agent
    from edge_agent.bench import BenchBroker
    from edge_agent.config.edge import EdgeConfig
    from edge_agent.mqtt.publisher import Publisher

    broker = BenchBroker()
    try:
        mqtt = {"host": "127.0.0.1", "port": broker.port, "protocol": broker.protocol}
        worker = Worker(CloudConfig.model_validate({
            "worker_id": "bench", "mqtt": mqtt,
            "model": {"detector": {"path": str(cloud_path), "score_threshold": 0.1}}})).start()
        config = EdgeConfig.model_validate({
            "device_id": "bench-offload", "mqtt": mqtt, "stats_interval_s": 3600,
            "cameras": [{"name": "cam", "url": "synthetic://?seed=1200&preset=hard"}],
            "offload": {"enabled": True, "mode": "rate", "rate_target": 0.2,
                        "windows_per_minute": 120},
            "cache": {"enabled": False}})
        publisher = Publisher(config.mqtt, config.device_id).start()
        publisher.connected.wait(5)
        agent = Agent(config, edge, publisher, model_id="bench").start()
        time.sleep(seconds)
        agent.stop()
        publisher.stop()
        worker.stop()
        snap = agent.offload.client.snapshot()
        rtts = np.array(agent.offload.client.stats.rtts or [0.0])
        return {"seconds": seconds, "answered": snap["counts"].get("answered", 0),
                "p50_ms": float(np.percentile(rtts, 50)),
                "p95_ms": float(np.percentile(rtts, 95)), "broker": broker.kind}
    finally:
        broker.stop()


def plot(result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, style in (("policy", "o-"), ("random", "s--"), ("periodic", "^:")):
        rs = sorted(result[name], key=float)
        a.plot([float(r) * 100 for r in rs], [result[name][r]["gap_recovery"] for r in rs],
               style, label=name)
        b.plot([result[name][r]["uplink_bytes"] / 1e6 for r in rs],
               [result[name][r]["map50"] for r in rs], style, label=name)
    a.axhline(1.0, color="grey", lw=0.8)
    a.axhline(0.6, color="grey", lw=0.8, ls="--")
    a.set(xlabel="windows offloaded (%)", ylabel="gap recovery G(r)",
          title="Share of the edge-cloud mAP gap recovered")
    for key, marker in (("edge_only", "x"), ("cloud_only", "*")):
        b.plot([max(result[key]["uplink_bytes"] / 1e6, 1e-3)], [result[key]["map50"]], marker,
               ms=10, label=key.replace("_", "-"))
    b.set_xscale("log")
    b.set(xlabel="uplink (MB, log)", ylabel="mAP@0.5", title="Accuracy against uplink")
    for ax in (a, b):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def bench_sizes(edge: Detector, cloud: Any, seeds: list[int], preset: str, seconds: float,
                progress: Callable[[str], None] = lambda _: None, fit_every: int = 2,
                judge_every: int = 30, min_seconds: float = 180.0) -> dict[str, Any]:
    """Sizes in text queries, as the system reads them: the camera's scale line learned by
    `Perspective` from the edge's detections of every `fit_every`-th frame over `seconds`,
    then the size of each cloud detection (score >= 0.5) of every `judge_every`-th frame
    in the last third, against the true size of the whole object it covers (IoU >= 0.5,
    same class, under 10 % occluded, inside the frame)."""
    from edge_agent.offload.sizes import (
        SIZES,
        Perspective,
        class_heights,
        size_class,
        size_ratio,
    )

    total = np.zeros((3, 3), int)
    per_seed = []
    for seed in seeds:
        world = SyntheticWorld(WorldOptions.from_preset(preset, seed=seed))
        persp = Perspective(edge.class_names, min_seconds=min_seconds)
        n = round(seconds * world.options.fps)
        judged = []
        for i in range(0, n, fit_every):
            rendered, truth = world.render(i)
            persp.add(edge(rendered.image), world.options.width, world.options.height,
                      t=truth.t)
            if i >= 2 * n // 3 and i % judge_every == 0:
                judged.append((i, cloud(rendered.image), truth))
            if i % 1800 < fit_every:
                progress(f"sizes: seed {seed}, {i / world.options.fps:.0f} s")
        line = persp.line
        conf = np.zeros((3, 3), int)
        for _, dets, truth in judged if line is not None else []:
            dets = dets[dets.score >= 0.5]
            objs = [o for o in truth.objects if o.box is not None and o.occlusion < 0.1
                    and o.truncation == 0]
            if not len(dets) or not objs:
                continue
            read = size_class(size_ratio(dets, line, class_heights(dets.class_names),
                                         (world.options.width, world.options.height)))
            m = iou_matrix(np.array([o.box for o in objs], np.float32), dets.xyxy)
            for k, o in enumerate(objs):
                j = int(m[k].argmax())
                if m[k, j] < 0.5 or dets.class_names[int(dets.class_id[j])] != o.cls \
                        or read[j] is None:
                    continue
                conf[SIZES.index(o.size), SIZES.index(read[j])] += 1
        total += conf
        per_seed.append({"seed": seed, "line": line, "horizon_row": (
            round(-line[1] / line[0], 1) if line else None), "samples": persp.samples,
            **_size_figures(conf)})
    return {"preset": preset, "seconds": seconds, "seeds": list(seeds),
            **_size_figures(total), "per_seed": per_seed}


def _size_figures(conf: np.ndarray) -> dict[str, Any]:
    from edge_agent.offload.sizes import SIZES

    n = int(conf.sum())
    return {"judged": n, "accuracy": round(float(np.trace(conf)) / n, 4) if n else None,
            "commonest_size": round(float(conf.sum(axis=1).max()) / n, 4) if n else None,
            "confusion": {t: dict(zip(SIZES, map(int, row), strict=True))
                          for t, row in zip(SIZES, conf, strict=True)}}
