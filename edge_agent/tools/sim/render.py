"""Renders object states over a fixed camera's background and measures what is visible.

Objects and scenery are composited far to near (by the row where they touch the ground), and
each object writes its index into a label map as it is drawn, so the ground truth (visible box,
occlusion, truncation) is read off the same pixels the frame shows. Lighting, noise and blur
come last and never change the labels.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np

from edge_agent.tools.sim.catalog import COLOURS, SIZES, SPECS, draw_object
from edge_agent.tools.sim.options import WorldOptions
from edge_agent.tools.sim.truth import ObjectState, ObjectTruth

HORIZON = 0.38
"""Horizon row as a share of the frame height."""

_GREY = np.array([110, 110, 110], np.float32)
_PHASES = 8
_NOISE_BANK = 6
_NOISE_PAD = 32
PATCH_CACHE_BYTES = 16 << 20
"""Drawn object patches kept for reuse (least recently used dropped first): a bound, so a
long-running synthetic camera reaches a steady memory within minutes."""


def pixels_per_metre(foot_y: float, height: int, zoom: float) -> float:
    """Scale of an object standing on row `foot_y`: a flat ground seen from above."""
    return zoom * height * (0.05 + (foot_y / height - 0.47) * (0.11 / 0.45))


@dataclass(frozen=True)
class Occluder:
    """A piece of fixed scenery (tree, pole, bush) that hides what stands behind it."""

    base_y: float
    x0: int
    y0: int
    mask: np.ndarray


@dataclass(frozen=True)
class Rendered:
    image: np.ndarray
    """BGR uint8 (H, W, 3)."""
    labels: np.ndarray
    """uint16 (H, W): 1 + index of the object owning each pixel, 0 for background."""
    objects: tuple[ObjectTruth, ...]


class Renderer:
    """Draws frames of one world. Holds the background and a cache of object patches."""

    def __init__(self, options: WorldOptions) -> None:
        self.options = options
        self.width, self.height = options.width, options.height
        self.background, self.occluders = _build_background(options)
        self._patches: OrderedDict[tuple, tuple[np.ndarray, np.ndarray, int]] = OrderedDict()
        self._patch_bytes = 0
        self._noise = _noise_bank(options)

    def object_patch(self, s: ObjectState) -> tuple[np.ndarray, np.ndarray, int, int, int]:
        """(image, mask, total mask pixels, x0, y0) of an object at its place in the frame."""
        spec = SPECS[s.cls]
        ppm = pixels_per_metre(s.foot_y, self.height, self.options.zoom) * SIZES[s.size]
        w, h = max(3, round(spec.width_m * ppm)), max(3, round(spec.height_m * ppm))
        phase = round(s.phase * _PHASES) % _PHASES if s.moving else 0
        key = (s.cls, s.colour, w, h, phase, s.variant % 3, s.facing_left)
        hit = self._patches.get(key)
        if hit is None:
            img, mask = draw_object(
                s.cls, COLOURS[s.colour], w, h, phase / _PHASES, s.variant, s.facing_left
            )
            c = self.options.contrast_loss
            if c > 0:
                img = (img * (1 - c) + _GREY * c).astype(np.uint8)
            hit = (img, mask, int(mask.sum()))
            self._patches[key] = hit
            self._patch_bytes += img.nbytes + mask.nbytes
            while len(self._patches) > 2048 or self._patch_bytes > PATCH_CACHE_BYTES:
                _, (old_img, old_mask, _) = self._patches.popitem(last=False)
                self._patch_bytes -= old_img.nbytes + old_mask.nbytes
        else:
            self._patches.move_to_end(key)
        img, mask, area = hit
        return img, mask, area, round(s.x - w / 2), round(s.foot_y) - h

    def render(
        self, states: list[ObjectState], t: float = 0.0, frame_index: int = 0
    ) -> Rendered:
        image = self.background.copy()
        labels = np.zeros((self.height, self.width), np.uint16)
        patches = [self.object_patch(s) for s in states]
        layers = [(s.foot_y, 0, i) for i, s in enumerate(states)]
        layers += [(o.base_y, 1, j) for j, o in enumerate(self.occluders)]
        layers.sort()
        inframe = [0] * len(states)
        for _, kind, i in layers:
            if kind == 0:
                img, mask, _, x0, y0 = patches[i]
            else:
                occ = self.occluders[i]
                img, mask, x0, y0 = None, occ.mask, occ.x0, occ.y0
            clip = self._clip(x0, y0, mask.shape[1], mask.shape[0])
            if clip is None:
                continue
            roi, sub = clip
            m = mask[sub]
            if kind == 0:
                np.copyto(image[roi], img[sub], where=m[..., None])
                labels[roi][m] = i + 1
                inframe[i] = int(m.sum())
            else:
                np.copyto(image[roi], self.background[roi], where=m[..., None])
                labels[roi][m] = 0
        truths = self._measure(states, patches, labels, inframe)
        return Rendered(self._effects(image, t, frame_index), labels, truths)

    def light(self, t: float) -> float:
        o = self.options
        mid, amp = (o.light_max + o.light_min) / 2, (o.light_max - o.light_min) / 2
        phase0 = (o.seed % 97) / 97 * 2 * np.pi
        wave = 0.8 * np.sin(2 * np.pi * t / o.light_period_s + phase0)
        wave += 0.2 * np.sin(2 * np.pi * t / (o.light_period_s * 0.37) + 2 * phase0)
        return float(mid + amp * wave)

    def _effects(self, image: np.ndarray, t: float, frame_index: int) -> np.ndarray:
        o = self.options
        if o.light_min != 1.0 or o.light_max != 1.0:
            g = self.light(t)
            tint = 0.06 * np.sin(2 * np.pi * t / (o.light_period_s * 1.7))
            image = cv2.multiply(image, (g * (1 + tint), g, g * (1 - tint), 0.0))
        if self._noise is not None:
            pos, neg = self._noise
            r = np.random.default_rng([o.seed, 7, frame_index])
            k, dy, dx = (int(v) for v in r.integers(0, [_NOISE_BANK, _NOISE_PAD, _NOISE_PAD]))
            win = (slice(dy, dy + self.height), slice(dx, dx + self.width))
            image = cv2.subtract(cv2.add(image, pos[k][win]), neg[k][win])
        if o.blur_sigma > 0:
            image = cv2.GaussianBlur(image, (0, 0), o.blur_sigma)
        return image

    def _clip(self, x0: int, y0: int, w: int, h: int):
        x1, y1 = max(x0, 0), max(y0, 0)
        x2, y2 = min(x0 + w, self.width), min(y0 + h, self.height)
        if x1 >= x2 or y1 >= y2:
            return None
        return (slice(y1, y2), slice(x1, x2)), (slice(y1 - y0, y2 - y0), slice(x1 - x0, x2 - x0))

    def _measure(self, states, patches, labels, inframe) -> tuple[ObjectTruth, ...]:
        counts = np.bincount(labels.ravel(), minlength=len(states) + 1)
        out = []
        for i, s in enumerate(states):
            _img, mask, area, x0, y0 = patches[i]
            if inframe[i] == 0:
                continue
            ys, xs = np.nonzero(mask)
            full = (x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1,
                    y0 + int(ys.max()) + 1)
            visible = int(counts[i + 1])
            box = None
            if visible:
                roi, _ = self._clip(*full[:2], full[2] - full[0], full[3] - full[1])
                own = labels[roi] == i + 1
                rows, cols = np.nonzero(own.any(axis=1))[0], np.nonzero(own.any(axis=0))[0]
                box = (roi[1].start + int(cols[0]), roi[0].start + int(rows[0]),
                       roi[1].start + int(cols[-1]) + 1, roi[0].start + int(rows[-1]) + 1)
            out.append(ObjectTruth(
                track_id=s.track_id, cls=s.cls, colour=s.colour, size=s.size,
                state="moving" if s.moving else "stationary",
                facing="left" if s.facing_left else "right",
                box=box, full_box=full, visible_px=visible,
                occlusion=round(1.0 - visible / inframe[i], 4),
                truncation=round(1.0 - inframe[i] / area, 4),
            ))
        return tuple(out)


def _noise_bank(o: WorldOptions):
    if o.noise_sigma <= 0:
        return None
    r = np.random.default_rng([o.seed, 3])
    shape = (_NOISE_BANK, o.height + _NOISE_PAD, o.width + _NOISE_PAD, 3)
    n = np.rint(r.standard_normal(shape, np.float32) * o.noise_sigma)
    return np.clip(n, 0, 255).astype(np.uint8), np.clip(-n, 0, 255).astype(np.uint8)


def _build_background(o: WorldOptions) -> tuple[np.ndarray, tuple[Occluder, ...]]:
    """A street seen from a fixed, elevated camera: sky, buildings, sidewalks, a road."""
    r = np.random.default_rng([o.seed, 1])
    w, h = o.width, o.height
    hy = int(HORIZON * h)
    img = np.zeros((h, w, 3), np.float32)
    top = np.array([200, 170, 140]) + r.integers(-25, 25, 3)
    low = np.array([230, 215, 200]) + r.integers(-20, 20, 3)
    a = np.linspace(0, 1, hy, dtype=np.float32)[:, None, None]
    img[:hy] = top * (1 - a) + low * a
    x = 0
    while x < w:
        bw = int(r.uniform(0.06, 0.18) * w)
        bh = int(r.uniform(0.06, 0.3) * h)
        shade = r.uniform(70, 170)
        col = np.array([shade, shade * r.uniform(0.9, 1.05), shade * r.uniform(0.95, 1.2)])
        img[hy - bh:hy, x:x + bw] = col
        for wy in range(hy - bh + 4, hy - 6, max(6, h // 40)):
            for wx in range(x + 3, x + bw - 4, max(6, w // 60)):
                img[wy:wy + 3, wx:wx + 3] = col * r.choice([0.6, 1.35])
        x += bw + int(r.uniform(0, 0.03) * w)
    bands = [(HORIZON, 0.5, (150, 155, 162)), (0.5, 0.8, (88, 86, 90)), (0.8, 1.0, (140, 152, 160))]
    for y1, y2, col in bands:
        img[int(y1 * h):int(y2 * h)] = np.array(col) + r.integers(-12, 12, 3)
    for yc in (0.5, 0.8):
        img[int(yc * h) - 1:int(yc * h) + 1] = (185, 190, 195)
    dash = max(8, w // 24)
    for x in range(int(r.integers(0, dash)), w, 2 * dash):
        img[int(0.665 * h):int(0.665 * h) + max(1, h // 180), x:x + dash] = (220, 225, 230)
    tex = r.normal(0, 7, (h // 8 + 1, w // 8 + 1)).astype(np.float32)
    img += cv2.resize(tex, (w, h), interpolation=cv2.INTER_CUBIC)[..., None]
    img = np.clip(img, 0, 255).astype(np.uint8)
    occluders = tuple(_occluder(img, r, o) for _ in range(o.occluders))
    return img, occluders


def _occluder(img: np.ndarray, r: np.random.Generator, o: WorldOptions) -> Occluder:
    h, w = img.shape[:2]
    base = float(r.choice([0.5, 0.805, 0.995])) * h
    ppm = pixels_per_metre(base, h, o.zoom)
    kind = r.choice(["tree", "pole", "bush"])
    cx = float(r.uniform(0.05, 0.95)) * w
    if kind == "bush":
        bw, bh = r.uniform(1.5, 3.0) * ppm, r.uniform(0.7, 1.2) * ppm
    else:
        bw, bh = (3.0 * ppm, 5.0 * ppm) if kind == "tree" else (0.6 * ppm, 5.5 * ppm)
    pw, ph = max(3, int(bw)), max(3, int(bh))
    mask = np.zeros((ph, pw), np.uint8)
    patch = np.zeros((ph, pw, 3), np.uint8)
    green = (int(r.integers(40, 70)), int(r.integers(100, 140)), int(r.integers(40, 70)))
    if kind == "bush":
        for m, c in ((mask, 255), (patch, green)):
            cv2.ellipse(m, (pw // 2, ph // 2), (pw // 2, ph // 2), 0, 0, 360, c, -1)
    elif kind == "tree":
        trunk = (40, 60, 80)
        for m, c1, c2 in ((mask, 255, 255), (patch, trunk, green)):
            cv2.rectangle(m, (int(pw * 0.44), int(ph * 0.45)), (int(pw * 0.56), ph - 1), c1, -1)
            cv2.circle(m, (pw // 2, int(ph * 0.3)), int(min(pw, ph) * 0.3), c2, -1)
    else:
        metal = (95, 100, 105)
        for m, c in ((mask, 255), (patch, metal)):
            cv2.rectangle(m, (int(pw * 0.4), int(ph * 0.05)), (int(pw * 0.6), ph - 1), c, -1)
            cv2.rectangle(m, (0, 0), (pw - 1, int(ph * 0.06)), c, -1)
    x0, y0 = int(cx - pw / 2), int(base) - ph
    x1, y1, x2, y2 = max(x0, 0), max(y0, 0), min(x0 + pw, w), min(y0 + ph, h)
    m = mask[y1 - y0:y2 - y0, x1 - x0:x2 - x0] > 0
    np.copyto(img[y1:y2, x1:x2], patch[y1 - y0:y2 - y0, x1 - x0:x2 - x0], where=m[..., None])
    return Occluder(base_y=base, x0=x0, y0=y0, mask=mask > 0)
