"""Training samples drawn live from the synthetic world, with augmentation."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from edge_agent.tools.evaluate import MAX_OCCLUSION, MIN_VISIBLE_PX
from edge_agent.tools.sim import SyntheticWorld, WorldOptions
from edge_agent.tools.sim.truth import FrameTruth

FRAMES_PER_SEED = 30 * 60 * 10  # draw frames from the first ten minutes of each world


def truth_boxes(truth: FrameTruth) -> tuple[np.ndarray, np.ndarray]:
    """(boxes xyxy pixels (M,4), labels (M,) 1-based, negative = ignore) of one frame.
    Barely visible objects are ignored in training exactly as evaluation ignores them."""
    boxes, labels = [], []
    for o in truth.visible():
        boxes.append(o.box)
        keep = o.visible_px >= MIN_VISIBLE_PX and o.occlusion <= MAX_OCCLUSION
        labels.append((o.class_id + 1) * (1 if keep else -1))
    return (np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(labels, np.int64))


@dataclass
class Augment:
    min_crop: float = 0.55
    flip: bool = True
    photometric: bool = True


class SyntheticSampler:
    """Random frames of random training seeds and presets, cropped, flipped, jittered, and
    resized to the model's input (width, height)."""

    def __init__(self, seeds: list[int], presets: list[str], size: tuple[int, int],
                 augment: Augment | None, rng: np.random.Generator) -> None:
        self.seeds, self.presets, self.size = seeds, presets, size
        self.augment = augment
        self.rng = rng
        self._worlds: dict[tuple[int, str], SyntheticWorld] = {}

    def world(self, seed: int, preset: str) -> SyntheticWorld:
        key = (seed, preset)
        if key not in self._worlds:
            if len(self._worlds) > 400:
                self._worlds.pop(next(iter(self._worlds)))
            self._worlds[key] = SyntheticWorld(WorldOptions.from_preset(preset, seed=seed))
        return self._worlds[key]

    def sample(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = self.rng
        world = self.world(int(r.choice(self.seeds)), str(r.choice(self.presets)))
        rendered, truth = world.render(int(r.integers(FRAMES_PER_SEED)))
        boxes, labels = truth_boxes(truth)
        return self.transform(rendered.image, boxes, labels)

    def transform(self, image, boxes, labels):
        """-> (RGB uint8 at the input size, boxes normalised xyxy, labels)."""
        h, w = image.shape[:2]
        a, r = self.augment, self.rng
        x0, y0, cw, ch = 0.0, 0.0, float(w), float(h)
        if a and a.min_crop < 1:
            s = float(np.sqrt(r.uniform(a.min_crop, 1.0)))
            cw, ch = w * s, h * s
            x0, y0 = float(r.uniform(0, w - cw)), float(r.uniform(0, h - ch))
        tw, th = self.size
        m = np.array([[tw / cw, 0, -x0 * tw / cw], [0, th / ch, -y0 * th / ch]], np.float32)
        out = cv2.warpAffine(image, m, (tw, th), flags=cv2.INTER_LINEAR)
        b = boxes.copy()
        if len(b):
            b[:, 0::2] = (b[:, 0::2] - x0) * tw / cw
            b[:, 1::2] = (b[:, 1::2] - y0) * th / ch
            area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
            b[:, 0::2] = b[:, 0::2].clip(0, tw)
            b[:, 1::2] = b[:, 1::2].clip(0, th)
            kept = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
            inside = kept > 0.5 * np.maximum(area, 1e-6)
            labels = np.where(inside | (kept <= 0), labels, -np.abs(labels))
            valid = kept > 1.0
            b, labels = b[valid], labels[valid]
        if a and a.flip and r.random() < 0.5:
            out = out[:, ::-1]
            if len(b):
                b[:, [0, 2]] = tw - b[:, [2, 0]]
        if a and a.photometric:
            alpha = r.uniform(0.7, 1.3)
            beta = r.uniform(-25, 25)
            out = cv2.convertScaleAbs(out, alpha=alpha, beta=beta)
            if r.random() < 0.3:
                hsv = cv2.cvtColor(out, cv2.COLOR_BGR2HSV)
                hsv[..., 1] = cv2.convertScaleAbs(hsv[..., 1], alpha=r.uniform(0.6, 1.3))
                out = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        rgb = cv2.cvtColor(np.ascontiguousarray(out), cv2.COLOR_BGR2RGB)
        b = b / np.array([tw, th, tw, th], np.float32) if len(b) else b.reshape(0, 4)
        return rgb, b.astype(np.float32), labels


def to_tensor(rgb_batch: list[np.ndarray]) -> torch.Tensor:
    """RGB uint8 images -> the model's input: (x/255 - 0.5)/0.5, NCHW float32."""
    x = torch.from_numpy(np.stack(rgb_batch)).permute(0, 3, 1, 2).float()
    return x.div_(127.5).sub_(1.0)


def batch(sampler: SyntheticSampler, n: int):
    imgs, targets = [], []
    for _ in range(n):
        img, b, lab = sampler.sample()
        imgs.append(img)
        targets.append((torch.from_numpy(b), torch.from_numpy(lab)))
    return to_tensor(imgs), targets


