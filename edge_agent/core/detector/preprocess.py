"""Image -> model input tensor, and model boxes -> frame pixels. Vectorised, one copy."""

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


@dataclass(frozen=True)
class Preprocess:
    """One model's input recipe. `size` is (width, height) of the input."""

    size: tuple[int, int]
    resize: Literal["stretch", "letterbox", "none"] = "stretch"
    pad: Literal["top-left", "center"] = "center"
    pad_value: int = 114
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
        else:
            r = min(tw / w, th / h)
            nw, nh = max(1, round(w * r)), max(1, round(h * r))
            px, py = ((tw - nw) // 2, (th - nh) // 2) if self.pad == "center" else (0, 0)
            canvas = np.full((th, tw, 3), self.pad_value, np.uint8)
            canvas[py:py + nh, px:px + nw] = cv2.resize(image, (nw, nh),
                                                        interpolation=cv2.INTER_LINEAR)
            t = Transform(nw / w, nh / h, float(px), float(py), (tw, th))
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
