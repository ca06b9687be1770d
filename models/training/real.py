"""Training samples from real clips labelled by the teacher, mixed with the synthetic world.

Real frames are decoded once at the frames the teacher labelled (edge_agent/tools/teacher.py)
and kept in memory, their longer side at most `max_side`. Labels are the teacher's confident
boxes of the student's classes; its uncertain boxes, and its boxes of other classes (on a
top-down car park it calls cars "cell phone"), are ignore regions (negative labels: the loss
neither rewards nor punishes detections there).
Synthetic frames come from the world with their classes mapped to the real names (a cyclist
is a person on a bicycle: the box is the person's; a dog stays a dog where the student has
dogs). Clips are split by scene, never by frame: `train` clips of the shared MANIFEST train,
the others only validate.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_agent.tools.sim import CLASSES as SYNTHETIC_CLASSES
from edge_agent.tools.sim.truth import FrameTruth
from models.training.data import FRAMES_PER_SEED, SyntheticSampler, truth_boxes

SYNTHETIC_TO_REAL = {"person": "person", "car": "car", "truck": "truck", "cyclist": "person",
                     "dog": "dog"}


def manifest_split(manifest: Path) -> dict[str, str]:
    """Clip stem -> `train` or `validate`, from the clips' MANIFEST.md table."""
    out = {}
    for line in manifest.read_text().splitlines():
        m = re.match(r"\|\s*([\w.-]+\.(?:mp4|avi|mkv|mov))\s*\|\s*(train|validate)\s*\|", line)
        if m:
            out[Path(m.group(1)).stem] = m.group(2)
    return out


@dataclass
class RealFrame:
    clip: str
    index: int
    image: np.ndarray
    boxes: np.ndarray
    """xyxy pixels of `image` (M, 4)."""
    labels: np.ndarray
    """1-based class ids; negative: an ignore region."""


def frame_labels(truth: FrameTruth, classes: tuple[str, ...], scale: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    boxes, labels = [], []
    for o in truth.objects:
        if o.box is None:
            continue
        boxes.append([v * scale for v in o.box])
        if o.cls not in classes:
            labels.append(-1)  # the teacher saw something else there: not a negative either
        else:
            labels.append((classes.index(o.cls) + 1) * (-1 if o.ignore else 1))
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64)


def load_clip_frames(pseudo: Path, classes: tuple[str, ...], max_side: int = 640
                     ) -> list[RealFrame]:
    """The labelled frames of one clip (`pseudo`: the teacher's folder for it)."""
    meta = json.loads((pseudo / "meta.json").read_text())
    truths = {t.frame: t for t in (FrameTruth.from_json(json.loads(line)) for line in
                                   (pseudo / "truth.jsonl").read_text().splitlines() if line)}
    cap = cv2.VideoCapture(meta["source"])
    out, index = [], 0
    last = max(truths) if truths else -1
    while index <= last:
        ok, image = cap.read()
        if not ok:
            break
        if index in truths:
            h, w = image.shape[:2]
            scale = min(1.0, max_side / max(h, w))
            if scale < 1:
                image = cv2.resize(image, (round(w * scale), round(h * scale)),
                                   interpolation=cv2.INTER_AREA)
            boxes, labels = frame_labels(truths[index], classes, scale)
            out.append(RealFrame(meta["clip"], index, image, boxes, labels))
        index += 1
    cap.release()
    return out


class MixedSampler:
    """Real frames with probability `real_share`, synthetic ones otherwise, both through the
    synthetic sampler's augmentation (crop, flip, photometric) to the input size."""

    def __init__(self, real: list[RealFrame], synthetic: SyntheticSampler,
                 classes: tuple[str, ...], real_share: float) -> None:
        if not real and real_share > 0:
            raise ValueError("no real frames: run the teacher first (models/training/teacher.py)")
        self.real, self.synthetic, self.classes = real, synthetic, classes
        self.real_share = real_share
        self.rng = synthetic.rng
        self._map = np.array([0] + [classes.index(SYNTHETIC_TO_REAL[c]) + 1
                                    if SYNTHETIC_TO_REAL.get(c) in classes else 0
                                    for c in SYNTHETIC_CLASSES], np.int64)

    def sample(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = self.rng
        if r.random() < self.real_share:
            f = self.real[int(r.integers(len(self.real)))]
            return self.synthetic.transform(f.image, f.boxes, f.labels)
        s = self.synthetic
        world = s.world(int(r.choice(s.seeds)), str(r.choice(s.presets)))
        rendered, truth = world.render(int(r.integers(FRAMES_PER_SEED)))
        boxes, labels = truth_boxes(truth)
        mapped = np.sign(labels) * self._map[np.abs(labels)]
        keep = mapped != 0
        return s.transform(rendered.image, boxes[keep], mapped[keep])
