"""What lives in the synthetic world: object classes, colours, sizes and how each is drawn.

Objects are drawn side-on into a small patch (colour image plus a binary mask) with
non-antialiased OpenCV primitives, so the mask is exact and the ground truth can be
computed from it pixel for pixel.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

CLASSES: tuple[str, ...] = ("person", "car", "truck", "cyclist", "dog")
"""Class names; a class id is the index into this tuple."""

COLOURS: dict[str, tuple[int, int, int]] = {
    # BGR, as OpenCV draws.
    "red": (40, 40, 205),
    "orange": (30, 135, 245),
    "yellow": (40, 215, 235),
    "green": (60, 165, 45),
    "blue": (195, 90, 30),
    "purple": (155, 50, 140),
    "white": (235, 235, 235),
    "black": (35, 35, 35),
}

SIZES: dict[str, float] = {"small": 0.78, "medium": 1.0, "large": 1.28}
"""Size attribute -> multiplier on the class's metric dimensions."""


@dataclass(frozen=True)
class ClassSpec:
    name: str
    width_m: float
    height_m: float
    speed_mps: tuple[float, float]


SPECS: dict[str, ClassSpec] = {
    "person": ClassSpec("person", 0.55, 1.75, (0.9, 1.8)),
    "car": ClassSpec("car", 4.3, 1.5, (5.0, 11.0)),
    "truck": ClassSpec("truck", 7.5, 3.2, (4.0, 8.0)),
    "cyclist": ClassSpec("cyclist", 1.8, 1.8, (3.0, 6.0)),
    "dog": ClassSpec("dog", 1.0, 0.65, (1.2, 2.6)),
}

_SKIN = ((90, 130, 190), (60, 95, 150), (130, 170, 220))
_DARK = (45, 45, 50)
_TYRE = (25, 25, 25)
_GLASS = (170, 150, 120)


class _Pen:
    """Draws the same primitive into the colour patch and its mask (no antialiasing)."""

    def __init__(self, w: int, h: int) -> None:
        self.w, self.h = w, h
        self.img = np.zeros((h, w, 3), np.uint8)
        self.mask = np.zeros((h, w), np.uint8)

    def _p(self, x: float, y: float) -> tuple[int, int]:
        return round(x * (self.w - 1)), round(y * (self.h - 1))

    def rect(self, x1: float, y1: float, x2: float, y2: float, colour) -> None:
        a, b = self._p(x1, y1), self._p(x2, y2)
        cv2.rectangle(self.img, a, b, colour, -1, cv2.LINE_8)
        cv2.rectangle(self.mask, a, b, 255, -1, cv2.LINE_8)

    def poly(self, pts: list[tuple[float, float]], colour) -> None:
        arr = np.array([self._p(x, y) for x, y in pts], np.int32)
        cv2.fillPoly(self.img, [arr], colour, cv2.LINE_8)
        cv2.fillPoly(self.mask, [arr], 255, cv2.LINE_8)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, colour) -> None:
        c = self._p(cx, cy)
        axes = (max(1, round(rx * (self.w - 1))), max(1, round(ry * (self.h - 1))))
        cv2.ellipse(self.img, c, axes, 0, 0, 360, colour, -1, cv2.LINE_8)
        cv2.ellipse(self.mask, c, axes, 0, 0, 360, 255, -1, cv2.LINE_8)

    def line(self, x1: float, y1: float, x2: float, y2: float, colour, width: float) -> None:
        t = max(1, round(width * self.h))
        a, b = self._p(x1, y1), self._p(x2, y2)
        cv2.line(self.img, a, b, colour, t, cv2.LINE_8)
        cv2.line(self.mask, a, b, 255, t, cv2.LINE_8)


def _person(pen: _Pen, colour, phase: float, variant: int) -> None:
    swing = 0.28 * np.sin(2 * np.pi * phase)
    pen.line(0.5, 0.56, 0.5 + swing, 0.99, _DARK, 0.06)
    pen.line(0.5, 0.56, 0.5 - swing, 0.99, _DARK, 0.06)
    pen.rect(0.18, 0.19, 0.82, 0.6, colour)
    pen.line(0.5, 0.24, 0.5 - swing * 0.8, 0.55, colour, 0.05)
    pen.ellipse(0.5, 0.1, 0.3, 0.09, _SKIN[variant % len(_SKIN)])


def _car(pen: _Pen, colour, phase: float, variant: int) -> None:
    pen.poly([(0.22, 0.38), (0.32, 0.02), (0.7, 0.02), (0.8, 0.38)], colour)
    pen.poly([(0.3, 0.34), (0.36, 0.09), (0.49, 0.09), (0.49, 0.34)], _GLASS)
    pen.poly([(0.53, 0.34), (0.53, 0.09), (0.66, 0.09), (0.73, 0.34)], _GLASS)
    pen.rect(0.0, 0.36, 1.0, 0.8, colour)
    pen.rect(0.95, 0.45, 1.0, 0.55, (200, 240, 250))
    pen.ellipse(0.2, 0.79, 0.075, 0.2, _TYRE)
    pen.ellipse(0.8, 0.79, 0.075, 0.2, _TYRE)


def _truck(pen: _Pen, colour, phase: float, variant: int) -> None:
    pen.rect(0.0, 0.0, 0.7, 0.8, colour)
    cab = tuple(int(c * 0.75) for c in colour)
    pen.rect(0.72, 0.3, 1.0, 0.8, cab)
    pen.rect(0.8, 0.36, 0.97, 0.55, _GLASS)
    pen.rect(0.0, 0.76, 1.0, 0.86, _DARK)
    for x in (0.14, 0.5, 0.86):
        pen.ellipse(x, 0.86, 0.055, 0.13, _TYRE)


def _cyclist(pen: _Pen, colour, phase: float, variant: int) -> None:
    for x in (0.2, 0.8):
        pen.ellipse(x, 0.8, 0.19, 0.19, _TYRE)
        pen.ellipse(x, 0.8, 0.14, 0.14, (0, 0, 0))
    pen.line(0.2, 0.8, 0.45, 0.55, colour, 0.035)
    pen.line(0.45, 0.55, 0.8, 0.8, colour, 0.035)
    pen.line(0.45, 0.55, 0.72, 0.5, colour, 0.035)
    pen.line(0.42, 0.5, 0.55 + 0.08 * np.sin(2 * np.pi * phase), 0.8, _DARK, 0.05)
    pen.poly([(0.33, 0.52), (0.45, 0.16), (0.62, 0.18), (0.52, 0.52)], colour)
    pen.line(0.55, 0.22, 0.72, 0.45, colour, 0.04)
    pen.ellipse(0.56, 0.08, 0.09, 0.08, _SKIN[variant % len(_SKIN)])


def _dog(pen: _Pen, colour, phase: float, variant: int) -> None:
    swing = 0.05 * np.sin(2 * np.pi * phase)
    for x in (0.25, 0.33, 0.62, 0.7):
        s = swing if x in (0.25, 0.62) else -swing
        pen.line(x, 0.55, x + s, 0.99, colour, 0.09)
    pen.ellipse(0.47, 0.48, 0.3, 0.2, colour)
    pen.line(0.18, 0.42, 0.02, 0.2, colour, 0.07)
    pen.ellipse(0.82, 0.26, 0.13, 0.22, colour)
    pen.poly([(0.88, 0.2), (1.0, 0.3), (0.9, 0.38)], colour)
    pen.ellipse(0.77, 0.1, 0.05, 0.1, tuple(int(c * 0.6) for c in colour))


DRAW: dict[str, Callable[[_Pen, tuple, float, int], None]] = {
    "person": _person,
    "car": _car,
    "truck": _truck,
    "cyclist": _cyclist,
    "dog": _dog,
}


def draw_object(
    cls: str, colour_bgr: tuple[int, int, int], w: int, h: int, phase: float, variant: int,
    facing_left: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (patch BGR (h,w,3), mask bool (h,w)) of one object, facing right unless told."""
    pen = _Pen(max(w, 3), max(h, 3))
    DRAW[cls](pen, colour_bgr, phase, variant)
    img, mask = pen.img, pen.mask > 0
    if facing_left:
        img, mask = img[:, ::-1], mask[:, ::-1]
    return np.ascontiguousarray(img), np.ascontiguousarray(mask)
