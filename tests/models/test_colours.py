"""Colours read from crops' pixels: flat patches of known colour, the part of the box looked
at, and no answer where the pixels disagree."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from models.training.colours import crop_colour, region


def patch(bgr, size=(80, 60), noise=4.0, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((size[1], size[0], 3), np.float32) + np.array(bgr, np.float32)
    return np.clip(img + rng.normal(0, noise, img.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name,bgr", [
    ("red", (30, 30, 200)), ("orange", (20, 120, 240)), ("yellow", (30, 210, 230)),
    ("green", (50, 160, 40)), ("blue", (190, 80, 20)), ("purple", (150, 40, 130)),
    ("white", (235, 235, 235)), ("grey", (120, 120, 120)), ("black", (25, 25, 25))])
def test_flat_colours(name, bgr):
    assert crop_colour(patch(bgr), np.array([0, 0, 80, 60]), "car") == name


def test_a_person_is_read_on_the_torso_not_the_legs():
    img = patch((40, 40, 40), (60, 160))                  # dark trousers and background
    x1, y1, x2, y2 = (round(v) for v in region(np.array([0, 0, 60, 160]), "person"))
    img[y1:y2, x1:x2] = (30, 30, 200)                     # a red top
    assert crop_colour(img, np.array([0, 0, 60, 160]), "person") == "red"
    assert crop_colour(img, np.array([0, 0, 60, 160]), "car") != "red"


def test_unclear_pixels_get_no_colour():
    half = patch((30, 30, 200), (80, 60))
    half[:, 40:] = patch((190, 80, 20), (40, 60))         # half red, half blue
    assert crop_colour(half, np.array([0, 0, 80, 60]), "car") is None
    assert crop_colour(patch((120, 120, 120)), np.array([0, 0, 4, 4]), "car") is None
    light_grey = cv2.cvtColor(np.full((60, 80), 158, np.uint8), cv2.COLOR_GRAY2BGR)
    assert crop_colour(light_grey, np.array([0, 0, 80, 60]), "car") == "white"
