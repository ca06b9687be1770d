"""`edge-agent bench offload`: what offloading buys, measured on held-out synthetic clips.

Each clip is rendered from its seed (exact ground truth), the edge model and its tracker run
on every frame, and the cloud model (as the worker runs it) on every frame, once. Then, with
no further inference:

- **edge-only** and **cloud-only** (every frame sent as JPEG) bound the range;
- the **policy** offloads the least confident windows (window_score, as the agent: above a
  threshold, never overlapping the last window offloaded) at ratios of 5/10/20/40 % of
  windows, each as `keyframes` keyframes; the cloud's fused answer is merged into every frame
  of the window exactly as the agent does (edge_agent.runtime.offload.merge);
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

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cloud_fallback.config import CloudConfig, CloudModelConfig
from cloud_fallback.opinion import TextOpinion
from cloud_fallback.recipe import Keyframes, Recipe, refine
from cloud_fallback.textimage import TextImageModel
from cloud_fallback.worker import Worker
from edge_agent.core.bundled import bundled_text_model
from edge_agent.core.config.common import DetectorModelConfig, RuntimeConfig
from edge_agent.core.detector import Detector, FrameDetector
from edge_agent.core.detector.detections import Detections, wider
from edge_agent.core.detector.nms import iou_matrix
from edge_agent.core.detector.tiling import TiledDetector
from edge_agent.core.errors import ModelError
from edge_agent.runtime.config import EdgeConfig, OffloadConfig
from edge_agent.runtime.mqtt.publisher import Publisher
from edge_agent.runtime.offload.answer import (
    Answer,
    answer_verifies,
    held_objects,
    refined_frames,
    relabel,
)
from edge_agent.runtime.offload.cache import agreement
from edge_agent.runtime.offload.hold import with_held
from edge_agent.runtime.offload.manager import OffloadManager
from edge_agent.runtime.pipeline import Agent
from edge_agent.tools.bench.cache import CACHE_SEEDS, bench_cache_seeds
from edge_agent.tools.bench.clips import (
    Clip,
    Window,
    clips_map,
    fused,
    load_clip,
    make_windows,
    request_bytes,
    save_clip,
    world_clip,
)
from edge_agent.tools.bench.pipeline import BenchBroker
from edge_agent.tools.evaluate import CLIP_ID_SPAN, MAX_OCCLUSION, MIN_VISIBLE_PX
from edge_agent.tools.sim import SyntheticWorld, WorldOptions
from edge_agent.tools.sim.truth import FrameTruth

RATIOS = (0.05, 0.10, 0.20, 0.40)


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
        answer = fused(clip, w.keys, min_score)
        images = []
        for k in w.keys:
            _, buf = cv2.imencode(".jpg", world.render(k)[0].image,
                                   [cv2.IMWRITE_JPEG_QUALITY, quality])
            images.append(cv2.imdecode(buf, cv2.IMREAD_COLOR))
        names = names or next((d.class_names for d in answer if d.class_names), None)
        keyframes = Keyframes(images=images, indices=list(w.keys),
                              scales=[(1.0, 1.0)] * len(w.keys))
        variants = {"detector": answer}
        for wt in weights:
            op = TextOpinion(text_model, names or (), label_weight=wt)
            # The worker's recipe with the opinion at this weight (its floor after the
            # opinion too), from the detector's raw detections on the keyframes.
            variants[f"text_w{wt:g}"] = refine(
                [clip.cloud[k] for k in w.keys], Recipe(min_score=min_score), opinion=op,
                keyframes=keyframes)[0]
        for name, frames in variants.items():
            for k, dets in zip(w.keys, frames, strict=True):
                for n, v in enumerate(_label_hits(clip.truths[k], dets)):
                    per[name][n] += v
                relabelled[name] += _relabelled_count(dets, answer[w.keys.index(k)])
    return {name: {"matched": m, "label_accuracy": round(r / m, 4) if m else None,
                   "objects": o, "label_accuracy_best_box": round(ro / o, 4) if o else None,
                   "relabelled": relabelled[name]} for name, (m, r, o, ro) in per.items()}


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
    return clips_map(clips, out), uplink


def _perfect_answers_map(clips: list[Clip], windows: list[Window], chosen: list[int],
                         min_score: float) -> float:
    """A bound on what offloading `chosen` can recover: every frame of those windows takes
    the cloud's own answer for that frame (a perfect merge), every other frame the edge's."""
    out = [list(c.edge) for c in clips]
    for i in chosen:
        w = windows[i]
        for f in w.frames:
            d = clips[w.clip].cloud[f]
            out[w.clip][f] = d[d.score >= min_score]
    return clips_map(clips, out)


def _answer(clip: Clip, w: Window, answer: list[Detections],
            window: list[tuple[int, Detections]] | None = None) -> Answer:
    """The agent's Answer for window `w` whose worker answer is `answer` (per keyframe)."""
    return Answer(camera=clip.name, window_id=f"{clip.name}-{w.start}", request_id="bench",
                  source="cloud", frames=list(zip(w.keys, answer, strict=True)),
                  edge=[clip.edge[k] for k in w.keys], rtt_ms=ANSWER_DELAY_S * 1000,
                  window=window or [])


def published(clips: list[Clip], windows: list[Window], chosen: list[int], min_score: float,
              verify_min_score: float | None = None, hold_s: float | None = None,
              hold_score_factor: float | None = None) -> tuple[list[list[Detections]], int]:
    """Per clip and frame, what the agent publishes when `chosen` windows are offloaded, and
    the uplink bytes: `refined` (the merge) on the offloaded windows' frames; elsewhere the
    edge's detections, with the class the cloud verified for a track from the moment its
    answer arrives (`ANSWER_DELAY_S` after the window), as on the agent's `detections`, with
    the static objects of the latest answer held for `hold_s`. Each step is the agent's own
    (edge_agent.runtime.offload.answer)."""
    defaults = OffloadConfig()
    if verify_min_score is None:
        verify_min_score = defaults.verify_min_score
    hold_s = defaults.hold_s if hold_s is None else hold_s
    if hold_score_factor is None:
        hold_score_factor = defaults.hold_score_factor
    order = sorted(chosen, key=lambda i: (windows[i].clip, windows[i].start))
    answers = {i: fused(clips[windows[i].clip], windows[i].keys, min_score) for i in order}
    out = []
    for c, clip in enumerate(clips):
        overriding = sorted(
            (clip.truths[windows[i].frames[-1]].t + ANSWER_DELAY_S, v.track_id, v.class_id)
            for i in order if windows[i].clip == c
            for v in answer_verifies(_answer(clip, windows[i], answers[i]), verify_min_score))
        overrides: dict[int, int] = {}
        names = wider(*(d.class_names for d in clip.cloud))
        frames = []
        for truth, dets in zip(clip.truths, clip.edge, strict=True):
            while overriding and overriding[0][0] <= truth.t:
                _, tid, cls = overriding.pop(0)
                overrides[tid] = cls
            frames.append(relabel(dets, overrides, names))
        out.append(frames)
    held = _held(clips, windows, order, answers, hold_s, hold_score_factor)
    uplink = 0
    for wi in order:
        w = windows[wi]
        clip = clips[w.clip]
        answer = _answer(clip, w, answers[wi], [(f, out[w.clip][f]) for f in w.frames])
        for f, dets in refined_frames(answer):
            out[w.clip][f] = dets
        uplink += request_bytes(clip, w.keys)
    offloaded = {(windows[i].clip, f) for i in order for f in windows[i].frames}
    for (c, f), h in held.items():
        if (c, f) not in offloaded:  # there `refined` supersedes `detections`
            out[c][f] = with_held(out[c][f], h)
    return out, uplink


def _held(clips: list[Clip], windows: list[Window], order: list[int],
          answers: dict[int, list[Detections]], hold_s: float, factor: float
          ) -> dict[tuple[int, int], Detections]:
    """(clip, frame) -> the static cloud objects held on it: each answer's from its arrival
    (`ANSWER_DELAY_S` after its window) for `hold_s`, until the next answer replaces them."""
    out: dict[tuple[int, int], Detections] = {}
    if hold_s <= 0:
        return out
    for c, clip in enumerate(clips):
        arrivals = [(clip.truths[windows[i].frames[-1]].t + ANSWER_DELAY_S,
                     held_objects(_answer(clip, windows[i], answers[i]), factor))
                    for i in order if windows[i].clip == c]
        arrivals.sort(key=lambda a: a[0])
        k = -1
        for f, truth in enumerate(clip.truths):
            while k + 1 < len(arrivals) and arrivals[k + 1][0] <= truth.t:
                k += 1
            if k >= 0 and truth.t < arrivals[k][0] + hold_s and arrivals[k][1] is not None \
                    and len(arrivals[k][1]):
                out[(c, f)] = arrivals[k][1]
    return out


def _relabelled_count(dets: Detections, base: Detections) -> int:
    """Detections whose class the opinion changed (matched by box; the floor after the
    opinion may drop some)."""
    if not len(dets) or not len(base):
        return 0
    iou = iou_matrix(dets.xyxy, base.xyxy)
    j = iou.argmax(axis=1)
    same = iou[np.arange(len(dets)), j] > 0.999
    return int((same & (dets.class_id != base.class_id[j])).sum())


def _rank_corr(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def bench_offload(edge_path: Path, cloud_path: Path, seeds: list[int], presets: list[str],
                  seconds: float, cache_seconds: float, live_seconds: float,
                  progress: Callable[[str], None] = lambda _: None,
                  work_dir: Path | None = None,
                  cache_seeds: list[int] | tuple[int, ...] = CACHE_SEEDS) -> dict[str, Any]:
    """`work_dir` keeps each clip's detections (keyed by both models' hashes, seed, preset
    and length), so a rerun that changes only the policy or the merge takes seconds."""
    cfg = OffloadConfig(enabled=True)
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
            saved = work_dir / f"{preset}-{seed}-{seconds:g}s-{models}" if work_dir else None
            clip = load_clip(saved, len(clips) * CLIP_ID_SPAN) if saved else None
            if clip is None:
                clip = world_clip(seed, preset, seconds, len(clips), edge, cloud, progress)
                if saved is not None:
                    save_clip(clip, saved)
            clips.append(clip)
    result, windows, scores = cascade(clips, size, stride, k, min_score, cfg.uncertain_band,
                                      progress)
    result["seconds_per_clip"] = seconds
    try:
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


def cascade(clips: list[Clip], size: int, stride: int, k: int, min_score: float,
            band: tuple[float, float], progress: Callable[[str], None] = lambda _: None
            ) -> tuple[dict[str, Any], list[Window], np.ndarray]:
    """Edge-only, cloud-only, and the policy, random and periodic windows at each ratio of
    RATIOS over `clips` (synthetic or real): mAP@0.5 against the clips' truths, G(r) and
    uplink; with the windows and their scores."""
    windows = make_windows(clips, size, stride, k, band)
    progress(f"{len(windows)} windows; scoring")
    edge_map = clips_map(clips, [c.edge for c in clips])
    # Cloud-only is what the worker answers for every frame: its detections down to the
    # answers' floor (`min_score`, the worker's default), like the policy's answers.
    cloud_map = clips_map(clips, [[d[d.score >= min_score] for d in c.cloud] for c in clips])
    detector_map = clips_map(clips, [c.cloud for c in clips])
    cloud_bytes = int(sum(c.jpeg.sum() for c in clips))
    gap = cloud_map - edge_map

    def row(chosen: list[int]) -> dict[str, float]:
        m, up = _system_map(clips, windows, chosen, min_score)
        return {"map50": m, "gap_recovery": (m - edge_map) / gap if gap > 0 else 0.0,
                "uplink_bytes": up, "uplink_ratio_vs_cloud_only": up / cloud_bytes}

    # Which score predicts the cloud's corrections: disagreement between the edge and the
    # cloud on each window's keyframes (1 - F1).
    correction = np.array([1 - np.mean([agreement(clips[w.clip].edge[f], d) for f, d in zip(
        w.keys, fused(clips[w.clip], w.keys, min_score), strict=True)]) for w in windows])
    predictors = {name: _rank_corr(np.array([w.scores[name] for w in windows]), correction)
                  for name in windows[0].scores}
    scores = np.array([w.scores["combined"] for w in windows])
    result: dict[str, Any] = {
        "clips": [c.name for c in clips], "windows": len(windows),
        "window": {"size": size, "stride": stride, "keyframes": k},
        "edge_only": {"map50": edge_map, "gap_recovery": 0.0, "uplink_bytes": 0,
                      "uplink_ratio_vs_cloud_only": 0.0},
        "cloud_only": {"map50": cloud_map, "gap_recovery": 1.0, "uplink_bytes": cloud_bytes,
                       "uplink_ratio_vs_cloud_only": 1.0,
                       "detector_map50_all_scores": detector_map},
        "score_vs_correction_rank_corr": predictors,
        "policy": {}, "random": {}, "periodic": {},
        "policy_bound": {},
    }
    for r in RATIOS:
        n = max(1, round(r * len(windows)))
        progress(f"ratio {r:.0%}: policy, random x5, periodic")
        chosen = causal_policy(windows, scores, n)
        result["policy"][f"{r:.2f}"] = row(chosen)
        # the same windows answered perfectly on each of their frames: how much of the gap
        # offloading them could recover at best, and the share of frames they cover
        bound = _perfect_answers_map(clips, windows, chosen, min_score)
        result["policy_bound"][f"{r:.2f}"] = {
            "gap_recovery": (bound - edge_map) / gap if gap > 0 else 0.0,
            "frames_covered": len({(windows[i].clip, f) for i in chosen
                                   for f in windows[i].frames})
            / sum(len(c.truths) for c in clips)}
        rand = [row(list(np.random.default_rng(s).choice(len(windows), n, replace=False)))
                for s in range(5)]
        result["random"][f"{r:.2f}"] = {key: float(np.mean([x[key] for x in rand]))
                                        for key in rand[0]}
        step = len(windows) / n
        result["periodic"][f"{r:.2f}"] = row([int(i * step) for i in range(n)])
    return result, windows, scores


def live_latency(edge: FrameDetector, cloud_path: Path | None, seconds: float,
                 camera: dict[str, Any] | None = None,
                 cloud_model: dict[str, Any] | None = None) -> dict[str, Any]:
    """Round trip of refined results: agent -> broker -> worker -> broker -> agent, and its
    phases (upload, queue, model, download) from the worker's timestamps. `camera`: the
    agent's camera (default a hard synthetic world); `cloud_model`: the worker's `model`
    config (default the detector at `cloud_path`)."""

    broker = BenchBroker()
    try:
        mqtt = {"host": "127.0.0.1", "port": broker.port, "protocol": broker.protocol}
        model = cloud_model or {"detector": {"path": str(cloud_path), "score_threshold": 0.1}}
        worker = Worker(CloudConfig.model_validate({
            "worker_id": "bench", "mqtt": mqtt, "model": model})).start()
        config = EdgeConfig.model_validate({
            "device_id": "bench-offload", "mqtt": mqtt, "stats_interval_s": 3600,
            "cameras": [camera or {"name": "cam", "url": "synthetic://?seed=1200&preset=hard"}],
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
        assert isinstance(agent.offload, OffloadManager)
        snap = agent.offload.client.snapshot()
        rtts = np.array(agent.offload.client.stats.rtts or [0.0])
        return {"seconds": seconds, "answered": snap["counts"].get("answered", 0),
                "counts": snap["counts"],
                "p50_ms": float(np.percentile(rtts, 50)),
                "p95_ms": float(np.percentile(rtts, 95)), "phases_ms": snap["phases_ms"],
                "broker": broker.kind}
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
