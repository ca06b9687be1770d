"""Writing the synthetic world to disk: a video file, per-frame ground truth, metadata."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
from tqdm import tqdm

from edge_agent import __version__
from edge_agent.core.errors import SourceError
from edge_agent.tools.sim.catalog import CLASSES, COLOURS, SIZES
from edge_agent.tools.sim.truth import FrameTruth
from edge_agent.tools.sim.world import SyntheticWorld

CODECS = {"mp4v": ".mp4", "MJPG": ".avi", "FFV1": ".mkv"}
"""FourCC -> container. mp4v plays everywhere; FFV1 is lossless (exact pixels)."""

VIDEO_STEM = "video"
TRUTH_FILE = "truth.jsonl"
META_FILE = "meta.json"


@dataclass(frozen=True)
class ClipInfo:
    video: Path
    truth: Path
    meta: Path
    frames: int


def write_clip(world: SyntheticWorld, seconds: float, out_dir: str | Path,
               codec: str = "mp4v", progress: bool = True) -> ClipInfo:
    """Render `seconds` of the world into out_dir/video.*, truth.jsonl and meta.json."""
    if codec not in CODECS:
        raise ValueError(f"unknown codec {codec!r}; valid: {', '.join(CODECS)}")
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    o = world.options
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    video = out / f"{VIDEO_STEM}{CODECS[codec]}"
    frames = max(1, round(seconds * o.fps))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*codec), o.fps,
                             (o.width, o.height))
    if not writer.isOpened():
        raise SourceError(
            f"OpenCV cannot write {codec} video to {video}: this OpenCV build lacks the codec; "
            f"try --codec mp4v"
        )
    truth_path = out / TRUTH_FILE
    try:
        with truth_path.open("w", encoding="utf-8") as truth_file:
            for i in tqdm(range(frames), desc="sim", unit="frame", disable=not progress):
                rendered, truth = world.render(i)
                writer.write(rendered.image)
                truth_file.write(truth.to_line() + "\n")
    finally:
        writer.release()
    meta = out / META_FILE
    meta.write_text(json.dumps({
        "generator": f"osprey {__version__}",
        "options": o.model_dump(mode="json"),
        "frames": frames,
        "video": video.name,
        "codec": codec,
        "truth": TRUTH_FILE,
        "classes": list(CLASSES),
        "colours": list(COLOURS),
        "sizes": list(SIZES),
        "box_format": "x1,y1,x2,y2 pixel edges, x2/y2 exclusive",
    }, indent=2) + "\n")
    return ClipInfo(video, truth_path, meta, frames)


def read_truth(path: str | Path) -> Iterator[FrameTruth]:
    """Frames of a truth.jsonl file, in order."""
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield FrameTruth.from_json(json.loads(line))
