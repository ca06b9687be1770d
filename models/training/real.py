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
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_agent.tools.sim import CLASSES as SYNTHETIC_CLASSES
from edge_agent.tools.sim.truth import FrameTruth
from models.training.data import FRAMES_PER_SEED, SyntheticSampler, truth_boxes

SYNTHETIC_TO_REAL = {"person": "person", "car": "car", "truck": "truck", "cyclist": "person",
                     "dog": "dog"}


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


def repeat_factors(frames: list[RealFrame], threshold: float) -> np.ndarray:
    """Sampling weights of real frames. With `threshold` > 0: repeat-factor sampling (LVIS),
    a frame drawn max(1, sqrt(t / f)) times as often, f the share of frames holding its
    rarest labelled class (the few buses and trucks of the train scenes), and each clip's
    frames weighted by 1/sqrt(its frame count), so a long clip of one hall does not outweigh
    ten short clips of roads. `threshold` 0: every frame alike."""
    weights = np.ones(len(frames))
    if threshold <= 0 or not frames:
        return weights / max(1, len(frames))
    present = [set(int(v) for v in f.labels[f.labels > 0]) for f in frames]
    share: dict[int, float] = {}
    for c in set().union(*present):
        share[c] = sum(c in p for p in present) / len(frames)
    per_clip: dict[str, int] = {}
    for f in frames:
        per_clip[f.clip] = per_clip.get(f.clip, 0) + 1
    for i, (f, p) in enumerate(zip(frames, present, strict=True)):
        repeat = max([1.0] + [float(np.sqrt(threshold / share[c])) for c in p])
        weights[i] = repeat / np.sqrt(per_clip[f.clip])
    return weights / weights.sum()


def _cut(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, w: int, h: int,
         rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A (w, h) piece of `image` scaled to cover it (a little zoom), its boxes moved along;
    boxes cut to less than half their area become ignore regions."""
    ih, iw = image.shape[:2]
    s = max(w / iw, h / ih) * float(rng.uniform(1.0, 1.3))
    x0 = float(rng.uniform(0, iw * s - w))
    y0 = float(rng.uniform(0, ih * s - h))
    m = np.array([[s, 0, -x0], [0, s, -y0]], np.float32)
    piece = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    b = boxes * s - np.array([x0, y0, x0, y0], np.float32)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    b[:, 0::2] = b[:, 0::2].clip(0, w)
    b[:, 1::2] = b[:, 1::2].clip(0, h)
    kept = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    valid = kept > 1.0
    lab = np.where(kept > 0.5 * np.maximum(area, 1e-6), labels, -np.abs(labels))
    return piece, b[valid], lab[valid]


class MixedSampler:
    """Real frames with probability `real_share`, synthetic ones otherwise, both through the
    synthetic sampler's augmentation (crop, flip, photometric) to the input size.

    `mosaic`: the share of real samples made of four real frames (four scenes) in a 2x2
    mosaic split at a random point, the mosaic 1.5 times the input size: more scenes, objects
    and scales per sample, where the train scenes are few. `repeat`: the repeat-factor
    threshold (`repeat_factors`)."""

    def __init__(self, real: list[RealFrame], synthetic: SyntheticSampler,
                 classes: tuple[str, ...], real_share: float, mosaic: float = 0.0,
                 repeat: float = 0.0) -> None:
        if not real and real_share > 0:
            raise ValueError("no real frames: run the teacher first (models/training/teacher.py)")
        self.real, self.synthetic, self.classes = real, synthetic, classes
        self.real_share, self.mosaic = real_share, mosaic
        self.weights = repeat_factors(real, repeat)
        self.rng = synthetic.rng
        self._map = np.array([0] + [classes.index(SYNTHETIC_TO_REAL[c]) + 1
                                    if SYNTHETIC_TO_REAL.get(c) in classes else 0
                                    for c in SYNTHETIC_CLASSES], np.int64)

    def _frame(self) -> RealFrame:
        return self.real[int(self.rng.choice(len(self.real), p=self.weights))]

    def _mosaic(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = self.rng
        tw, th = self.synthetic.size
        w, h = round(tw * 1.5), round(th * 1.5)
        cx, cy = round(w * r.uniform(0.3, 0.7)), round(h * r.uniform(0.3, 0.7))
        canvas = np.zeros((h, w, 3), np.uint8)
        boxes, labels = [], []
        for x0, y0, x1, y1 in ((0, 0, cx, cy), (cx, 0, w, cy), (0, cy, cx, h), (cx, cy, w, h)):
            f = self._frame()
            piece, b, lab = _cut(f.image, f.boxes, f.labels, x1 - x0, y1 - y0, r)
            canvas[y0:y1, x0:x1] = piece
            boxes.append(b + np.array([x0, y0, x0, y0], np.float32))
            labels.append(lab)
        return canvas, np.concatenate(boxes), np.concatenate(labels)

    def sample(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = self.rng
        if r.random() < self.real_share:
            if self.mosaic and r.random() < self.mosaic:
                return self.synthetic.transform(*self._mosaic())
            f = self._frame()
            return self.synthetic.transform(f.image, f.boxes, f.labels)
        s = self.synthetic
        world = s.world(int(r.choice(s.seeds)), str(r.choice(s.presets)))
        rendered, truth = world.render(int(r.integers(FRAMES_PER_SEED)))
        boxes, labels = truth_boxes(truth)
        mapped = np.sign(labels) * self._map[np.abs(labels)]
        keep = mapped != 0
        return s.transform(rendered.image, boxes[keep], mapped[keep])
