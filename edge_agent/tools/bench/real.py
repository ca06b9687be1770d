"""`edge-agent bench offload --real`: what offloading buys on real clips.

The edge is the real-camera edge model with the agent's tracker on every frame; the cloud is a
cloud config (by default configs/cloud-real.yaml) run on every frame as the worker runs it on a
keyframe, its answers read by label as the agent reads them. The reference is the cloud-only
answer on every frame (the DDS convention): its boxes at the label score or more are the
objects, those between the answers' floor and the label score are ignore regions. Where a
human-labelled sequence is given (MOT `gt.txt`), the same runs are also scored against it.
Then the same table as the synthetic bench: edge-only, cloud-only, and the policy, random and
periodic windows at 5/10/20/40 %, with G(r) and uplink.

Clips a shipped model trained on are refused: a clip whose folder's MANIFEST.md marks it
`train` is not held out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cloud_fallback.config import load_cloud_config
from cloud_fallback.model import build_detector, model_id
from edge_agent.core.config.common import DetectorModelConfig, RuntimeConfig
from edge_agent.core.detector import Detector
from edge_agent.core.detector.detections import Detections
from edge_agent.core.errors import OspreyError
from edge_agent.core.protocol import from_wire, to_wire
from edge_agent.runtime.config import OffloadConfig
from edge_agent.runtime.offload.keyframes import sharpness
from edge_agent.runtime.tracker import Tracker
from edge_agent.tools.bench.cache_real import bench_cache_real
from edge_agent.tools.bench.clips import Clip, _pack, _unpack, load_clip, save_clip
from edge_agent.tools.bench.offload import (
    RATIOS,
    _sha,
    cascade,
    causal_policy,
    live_latency,
    published,
)
from edge_agent.tools.evaluate import CLIP_ID_SPAN, evaluate
from edge_agent.tools.labels import manifest_split, read_mot
from edge_agent.tools.sim.truth import FrameTruth
from edge_agent.tools.teacher import frame_truth

LABEL_SCORE = 0.5
"""A cloud-only box at this score or more is an object of the reference."""


def held_out(videos: list[Path]) -> None:
    """Refuse clips their folder's MANIFEST.md marks `train` (a shipped model saw them)."""
    for v in videos:
        manifest = v.parent / "MANIFEST.md"
        if manifest.is_file() and manifest_split(manifest).get(v.stem) == "train":
            raise OspreyError(f"{v.name} is a `train` clip in {manifest}: the bench takes "
                              "clips no model trained on")


def cloud_reference(video: Path, cloud, edge_names: tuple[str, ...], min_score: float,
                    seconds: float | None, progress: Callable[[str], None],
                    saved: Path | None = None) -> tuple[list[Detections], list, float]:
    """The cloud's answer on every frame of `video` (its first `seconds`), as the agent reads
    it (by label, the edge's names first), and the reference truths made of it; kept at
    `saved` (npz + JSON) so that another edge model reuses them."""
    if saved is not None and saved.with_suffix(".json").is_file():
        info = json.loads(saved.with_suffix(".json").read_text())
        with np.load(saved.with_suffix(".npz"), allow_pickle=False) as z:
            dets = _unpack({k: z[k] for k in z.files}, tuple(info["names"]))
        return dets, [FrameTruth.from_json(t) for t in info["truths"]], info["fps"]
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise OspreyError(f"cannot open {video}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    limit = round(seconds * fps) if seconds else None
    names, seen_all, truths = edge_names, [], []
    t0 = time.monotonic()
    while limit is None or len(seen_all) < limit:
        ok, img = cap.read()
        if not ok:
            break
        raw = cloud(img)
        wire = to_wire(raw[raw.score >= min_score])
        for d in wire:
            if d.label not in names:
                names = (*names, d.label)
        seen = from_wire(wire, names)
        i = len(seen_all)
        seen_all.append(seen)
        truths.append(frame_truth(i, fps, video.stem, seen, seen.score >= LABEL_SCORE))
        if (i + 1) % 100 == 0:
            progress(f"{video.stem}: cloud on {i + 1} frames ({time.monotonic() - t0:.0f} s)")
    cap.release()
    if not seen_all:
        raise OspreyError(f"{video}: no frames decoded")
    dets = [Detections(d.xyxy, d.score, d.class_id, names, d.track_id) for d in seen_all]
    if saved is not None:
        saved.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(saved.with_suffix(".npz"), **_pack(dets))
        saved.with_suffix(".json").write_text(json.dumps({
            "names": list(names), "fps": fps, "truths": [t.to_json() for t in truths]}))
    return dets, truths, fps


def real_clip(video: Path, k: int, edge, cloud, edge_names: tuple[str, ...], min_score: float,
              seconds: float | None, progress: Callable[[str], None],
              cloud_saved: Path | None = None) -> Clip:
    """Edge (with the agent's tracker) and cloud on every frame of `video` (its first
    `seconds`), the reference from the cloud's answers."""
    cloud_d, truths, _ = cloud_reference(video, cloud, edge_names, min_score, seconds,
                                         progress, cloud_saved)
    cap = cv2.VideoCapture(str(video))
    tracker = Tracker()
    edge_d, sizes, sharp = [], [], []
    while len(edge_d) < len(truths):
        ok, img = cap.read()
        if not ok:
            break
        edge_d.append(tracker.update(edge(img), len(edge_d)).all)
        sizes.append(len(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])[1]))
        sharp.append(sharpness(img))
    cap.release()
    n = len(edge_d)
    return Clip(video.stem, truths[:n], edge_d, cloud_d[:n], np.array(sizes), np.array(sharp),
                k * CLIP_ID_SPAN, tuple(edge_names))


def bench_offload_real(edge_path: Path, cloud_config: Path, videos: list[Path],
                       seconds: float | None, work_dir: Path | None = None,
                       human: dict[str, Path] | None = None,
                       progress: Callable[[str], None] = lambda _: None,
                       live_seconds: float = 0.0, cache_segment_s: float = 0.0,
                       tuning: bool = False) -> dict[str, Any]:
    """`human`: clip stem -> MOT gt.txt of that clip, scored as well (people only).
    `live_seconds`: also run the agent on the first clip (looped, at its frame rate) with the
    worker on the cloud config through a broker: the refined answers' latency, by phase.
    `cache_segment_s`: also run the edge cache over "a day" of the clips' first seconds with
    each scene replayed later, changed (edge_agent/tools/bench/cache_real.py).
    `tuning`: `train` clips allowed, for choosing settings (the result says so); figures to
    report come from held-out clips only."""
    if not tuning:
        held_out(videos)
    cfg = OffloadConfig(enabled=True)
    cloud_cfg = load_cloud_config(cloud_config)
    size, stride, k, min_score = 16, 8, cfg.keyframes, cloud_cfg.model.min_score
    edge = Detector.from_config(DetectorModelConfig(path=edge_path), RuntimeConfig())
    cloud = build_detector(cloud_cfg.model)
    cloud_key = f"{_sha(cloud_config)}-{model_id(cloud_cfg.model)}"
    key = f"{_sha(edge_path)}-{cloud_key}"
    clips = []
    for v in videos:
        stem = f"{v.stem}-{seconds or 0:g}s"
        saved = work_dir / f"{stem}-{key}" if work_dir else None
        clip = load_clip(saved, len(clips) * CLIP_ID_SPAN) if saved else None
        if clip is None:
            clip = real_clip(v, len(clips), edge, cloud, edge.class_names, min_score, seconds,
                             progress, work_dir / f"{stem}-cloud-{cloud_key}" if work_dir
                             else None)
            if saved is not None:
                save_clip(clip, saved)
        clips.append(clip)
    result, windows, scores = cascade(clips, size, stride, k, min_score, cfg.uncertain_band,
                                      progress)
    result.update({"reference": "cloud-only answer on every frame (label score "
                                f"{LABEL_SCORE}, ignore from {min_score})",
                   "edge_model": str(edge_path), "cloud_config": str(cloud_config),
                   "seconds_per_clip": seconds,
                   "clips_kind": "train (tuning only)" if tuning else "held out",
                   "frames": int(sum(len(c.truths) for c in clips))})
    if human:
        result["human"] = _human(clips, windows, scores, human, min_score)
    if cache_segment_s > 0:
        progress(f"cache: a day of {len(videos)} clips, {cache_segment_s:g} s each, replayed")
        result["cache"] = bench_cache_real(edge, cloud, videos, cache_segment_s, 0.2, size,
                                           stride, k, min_score, cfg, progress)
    if live_seconds > 0:
        progress(f"live: {live_seconds:g} s of {videos[0].name} through a broker and a worker")
        model = cloud_cfg.model.model_dump(mode="json")
        result["refined_latency"] = live_latency(
            edge, None, live_seconds, camera={"name": "cam", "url": str(videos[0]),
                                              "loop": True},
            cloud_model=model)
    return result


def _human(clips: list[Clip], windows, scores: np.ndarray, human: dict[str, Path],
           min_score: float) -> dict[str, Any]:
    """Edge-only, cloud-only and the policy at each ratio against human labels (people)."""
    wanted = [c for c, clip in enumerate(clips) if clip.name in human]
    if not wanted:
        return {"skipped": "no clip of the bench has human labels"}
    truths = {}
    for c in wanted:
        clip = clips[c]
        fps = 1.0 / max(clip.truths[1].t - clip.truths[0].t, 1e-6) if len(clip.truths) > 1 \
            else 25.0
        read = read_mot(human[clip.name], ("person",), {"pedestrian": "person"}, 1.0, fps)
        truths[c] = {i: t for i, t in read.items() if i < len(clip.truths)}

    def score(per_clip: list[list[Detections]]) -> float:
        ts, ds = [], []
        for c in wanted:
            clip = clips[c]
            for i, t in truths[c].items():
                ts.append(replace(t, frame=clip.base + i))
                ds.append((clip.base + i, per_clip[c][i]))
        return evaluate(ts, ds, ("person",)).map50

    out = {"edge_only": score([c.edge for c in clips]),
           "cloud_only": score([c.cloud for c in clips]), "policy": {}}
    for r in RATIOS:
        n = max(1, round(r * len(windows)))
        shown, _ = published(clips, windows, causal_policy(windows, scores, n), min_score)
        out["policy"][f"{r:.2f}"] = score(shown)
    return out

