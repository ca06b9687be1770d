"""Image -> model input tensor, and model boxes -> frame pixels. Vectorised, one copy.

Each letterbox is the arithmetic of the reference it serves, to the pixel:

- YOLOX `yolox/data/data_augment.py` preproc: r = min(H/h, W/w), size floored (`int(w * r)`),
  pasted at the top-left; boxes / r.
- Ultralytics `LetterBox` + `ops.scale_boxes`: size rounded (`round(w * r)`), pasted at
  `round(dw / 2 - 0.1)` (= (W - nw) // 2); boxes mapped back with one gain and the pad
  `round((W - w * gain) / 2 - 0.1)`, which scale_boxes recomputes from the unrounded size.
- super-gradients `DetectionLongestMaxSizeRescale` + `DetectionCenterPadding`: r fitted to a
  smaller box (636 in 640), size rounded, pad (W - nw) // 2; boxes (b - pad) / r.
- NanoDet `warp_and_resize`: one cv2.warpPerspective of the frame by a 3x3 matrix (see `warp`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np


@dataclass(frozen=True)
class Transform:
    """How frame pixels map to model-input pixels: input = frame * scale + pad."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float
    input_size: tuple[int, int] = (0, 0)
    """(width, height) of the tensor the model was fed."""

    def to_frame(self, xyxy: np.ndarray) -> np.ndarray:
        """Boxes in model-input pixels back to frame pixels."""
        out = np.empty_like(xyxy, dtype=np.float32)
        out[:, 0::2] = (xyxy[:, 0::2] - self.pad_x) / self.scale_x
        out[:, 1::2] = (xyxy[:, 1::2] - self.pad_y) / self.scale_y
        return out


def warp_matrix(w: int, h: int, size: tuple[int, int], keep_ratio: bool) -> np.ndarray:
    """NanoDet's `get_resize_matrix` (nanodet/data/transform/warp.py), float64 3x3: with
    keep_ratio the frame is centred (C), scaled by one ratio (Rs) and moved to the centre of
    the input (T), M = T @ Rs @ C; without, a plain scale per axis."""
    tw, th = size
    rs = np.eye(3)
    if not keep_ratio:
        rs[0, 0] *= tw / w
        rs[1, 1] *= th / h
        return rs
    c = np.eye(3)
    c[0, 2], c[1, 2] = -w / 2, -h / 2
    ratio = th / h if w / h < tw / th else tw / w
    rs[0, 0] *= ratio
    rs[1, 1] *= ratio
    t = np.eye(3)
    t[0, 2], t[1, 2] = 0.5 * tw, 0.5 * th
    return t @ rs @ c


@dataclass(frozen=True)
class Preprocess:
    """One model's input recipe. `size` is (width, height) of the input."""

    size: tuple[int, int]
    resize: Literal["stretch", "letterbox", "warp", "none"] = "stretch"
    pad: Literal["top-left", "center"] = "center"
    """Letterbox: where the resized frame goes; center is (W - nw) // 2, (H - nh) // 2."""
    pad_value: int = 114
    """Letterbox canvas and warp border value."""
    rounding: Literal["round", "floor"] = "round"
    """Letterbox: the resized size is round(w * r) (Ultralytics, super-gradients) or
    int(w * r) (YOLOX)."""
    fit: tuple[int, int] | None = None
    """Letterbox: (width, height) the frame is scaled to fit inside the input (super-gradients'
    YOLO-NAS: 636 in 640); None: the input size."""
    pad_back: Literal["placed", "ultralytics"] = "placed"
    """Letterbox: the pad boxes are mapped back with: where the frame was placed, or
    Ultralytics' scale_boxes pad round((W - w * r) / 2 - 0.1)."""
    keep_ratio: bool = True
    """Warp: keep the aspect ratio (centred, border `pad_value`) or scale each axis."""
    rgb: bool = True
    scale: float = 1.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    dtype: type = np.float32

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, Transform]:
        """BGR uint8 (H, W, 3) -> (batched input tensor, transform back to the frame)."""
        h, w = image.shape[:2]
        tw, th = self.size
        if self.resize == "none":
            canvas, t = image, Transform(1.0, 1.0, 0.0, 0.0, (w, h))
        elif self.resize == "stretch":
            canvas = cv2.resize(image, (tw, th), interpolation=cv2.INTER_LINEAR)
            t = Transform(tw / w, th / h, 0.0, 0.0, (tw, th))
        elif self.resize == "warp":
            m = warp_matrix(w, h, self.size, self.keep_ratio)
            canvas = cv2.warpPerspective(image, m, (tw, th),
                                         borderValue=(self.pad_value,) * 3)
            t = Transform(float(m[0, 0]), float(m[1, 1]), float(m[0, 2]), float(m[1, 2]),
                          (tw, th))
        else:
            canvas, t = self._letterbox(image)
        if self.rgb:
            canvas = canvas[:, :, ::-1]  # a view; the copy below reorders the channels
        if self.layout == "NCHW":
            canvas = canvas.transpose(2, 0, 1)
        if self.dtype == np.uint8:
            return np.ascontiguousarray(canvas[None]), t
        # One pass: x * scale, minus mean, over std, folded into x * a + b per channel.
        std = np.asarray(self.std, np.float32)
        a = np.float32(self.scale) / std
        b = -np.asarray(self.mean, np.float32) / std
        shape = (3, 1, 1) if self.layout == "NCHW" else (3,)
        x = np.empty((1, *canvas.shape), np.float32)
        np.multiply(canvas, a.reshape(shape), out=x[0])
        if b.any():
            x[0] += b.reshape(shape)
        return (x if self.dtype == np.float32 else x.astype(self.dtype)), t

    def _letterbox(self, image: np.ndarray) -> tuple[np.ndarray, Transform]:
        """Scale by one ratio r, paste on a `pad_value` canvas; boxes map back by that r."""
        h, w = image.shape[:2]
        tw, th = self.size
        fw, fh = self.fit or self.size
        r = min(fh / h, fw / w)
        if self.rounding == "floor":
            nw, nh = int(w * r), int(h * r)
        else:
            nw, nh = round(w * r), round(h * r)
        nw, nh = max(1, nw), max(1, nh)
        px, py = ((tw - nw) // 2, (th - nh) // 2) if self.pad == "center" else (0, 0)
        canvas = np.full((th, tw, 3), self.pad_value, np.uint8)
        canvas[py:py + nh, px:px + nw] = (
            image if (nw, nh) == (w, h)
            else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR))
        if self.pad_back == "ultralytics":
            px, py = round((tw - w * r) / 2 - 0.1), round((th - h * r) / 2 - 0.1)
        return canvas, Transform(r, r, float(px), float(py), (tw, th))
