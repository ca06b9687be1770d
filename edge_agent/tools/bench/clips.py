"""The benchmark's clips: synthetic-world clips with the edge's and the cloud detector's
detections on every frame, computed once and kept on disk (npz arrays and JSON, never pickle),
and the sliding windows over them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cloud_fallback.recipe import Recipe, refine
from edge_agent.core.detector import FrameDetector
from edge_agent.core.detector.detections import Detections
from edge_agent.core.protocol import Keyframe, OffloadRequest, encode, to_wire
from edge_agent.runtime.capture.frame import Frame
from edge_agent.runtime.offload.keyframes import frame_uncertainty, pick, sharpness
from edge_agent.runtime.offload.policy import score_parts, window_score
from edge_agent.runtime.tracker import Tracker
from edge_agent.runtime.window import SlidingWindow
from edge_agent.tools.evaluate import CLIP_ID_SPAN, evaluate
from edge_agent.tools.sim import CLASSES, SyntheticWorld, WorldOptions
from edge_agent.tools.sim.truth import FrameTruth

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
    classes: tuple[str, ...] | None = None
    """The classes scored (a real clip: the edge model's); None: the synthetic world's."""


@dataclass
class Window:
    clip: int
    start: int
    frames: list[int]
    scores: dict[str, float]
    keys: list[int] = field(default_factory=list)


CLIP_FORMAT = 1
"""Version of the files `save_clip` writes; older files are computed again."""


def _pack(dets: list[Detections]) -> dict[str, np.ndarray]:
    tracked = all(d.track_id is not None for d in dets)
    return {
        "counts": np.array([len(d) for d in dets], np.int64),
        "xyxy": np.concatenate([d.xyxy for d in dets]).astype(np.float32).reshape(-1, 4),
        "score": np.concatenate([d.score for d in dets]).astype(np.float32),
        "class_id": np.concatenate([d.class_id for d in dets]).astype(np.int64),
        "track_id": (np.concatenate([d.track_id for d in dets]).astype(np.int64) if tracked
                     else np.zeros(0, np.int64)),
    }


def _unpack(a: dict[str, np.ndarray], names: tuple[str, ...]) -> list[Detections]:
    ends = np.cumsum(a["counts"])
    starts = ends - a["counts"]
    tracked = len(a["track_id"]) == int(ends[-1]) if len(ends) else False
    return [Detections(a["xyxy"][s:e].copy(), a["score"][s:e].copy(), a["class_id"][s:e].copy(),
                       names, a["track_id"][s:e].copy() if tracked else None)
            for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]


def save_clip(clip: Clip, path: Path) -> None:
    """`path`.npz (detections, JPEG sizes, sharpness) and `path`.json (name, class names,
    ground truth): plain arrays and JSON, safe to load from any folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"jpeg": clip.jpeg, "sharp": clip.sharp}
    for key, dets in (("edge", clip.edge), ("cloud", clip.cloud)):
        arrays.update({f"{key}_{k}": v for k, v in _pack(dets).items()})
    np.savez_compressed(path.with_suffix(".npz"), **arrays)
    names = {key: list(next((d.class_names for d in dets if d.class_names), ()))
             for key, dets in (("edge", clip.edge), ("cloud", clip.cloud))}
    path.with_suffix(".json").write_text(json.dumps({
        "format": CLIP_FORMAT, "name": clip.name, "class_names": names,
        "classes": list(clip.classes) if clip.classes else None,
        "truths": [t.to_json() for t in clip.truths]}))


def load_clip(path: Path, base: int) -> Clip | None:
    """The clip `save_clip` wrote at `path`, its frame ids starting at `base`; None when it
    is missing or of another format."""
    npz, meta = path.with_suffix(".npz"), path.with_suffix(".json")
    if not npz.is_file() or not meta.is_file():
        return None
    info = json.loads(meta.read_text())
    if info.get("format") != CLIP_FORMAT:
        return None
    with np.load(npz, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}

    def dets(key: str) -> list[Detections]:
        return _unpack({k: arrays[f"{key}_{k}"] for k in
                        ("counts", "xyxy", "score", "class_id", "track_id")},
                       tuple(info["class_names"][key]))

    classes = tuple(info["classes"]) if info.get("classes") else None
    return Clip(info["name"], [FrameTruth.from_json(t) for t in info["truths"]], dets("edge"),
                dets("cloud"), arrays["jpeg"], arrays["sharp"], base, classes)


def world_clip(seed: int, preset: str, seconds: float, k: int, edge: FrameDetector,
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


def make_windows(clips: list[Clip], size: int, stride: int, k: int,
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


def fused(clip: Clip, keys: list[int], min_score: float) -> list[Detections]:
    """The worker's answer for a window whose keyframes are `keys`: its recipe (fusion at the
    worker's default weight, the score floor) over the cloud detector's detections there."""
    return refine([clip.cloud[k] for k in keys], Recipe(min_score=min_score))[0]


def request_bytes(clip: Clip, keys: list[int]) -> int:
    """Size of the msgpack request the agent would send: the JPEGs plus the envelope (edge
    detections, ids), measured by encoding one with placeholder bytes of the right length."""
    frames = [Keyframe(index=k, captured_at=0.0, width=640, height=360,
                       jpeg=b"\xff\xd8" + b"\0" * (int(clip.jpeg[k]) - 2)) for k in keys]
    req = OffloadRequest(id="0" * 32, device="bench", camera="cam", window="cam-1",
                         sent_at=0.0, expires_at=0.0, reply_to="osprey/bench/offload/response",
                         corr=b"0" * 32, frames=frames,
                         edge=[to_wire(clip.edge[k]) for k in keys])
    return len(encode(req))


def clips_map(clips: list[Clip], per_clip: list[list[Detections]]) -> float:
    truths, dets = [], []
    for clip, frames in zip(clips, per_clip, strict=True):
        for t, d in zip(clip.truths, frames, strict=True):
            truths.append(replace(t, frame=clip.base + t.frame))
            dets.append((clip.base + t.frame, d))
    classes = next((c.classes for c in clips if c.classes), None)
    return evaluate(truths, dets, classes or CLASSES).map50
