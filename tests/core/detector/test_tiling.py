"""Tiled inference: tiles cover the frame, cut boxes are dropped, boxes come back in frame
pixels, duplicates merge."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from edge_agent.core.detector.adapters import DecodeOptions
from edge_agent.core.detector.detections import Detections
from edge_agent.core.detector.tiling import TiledDetector, tile_grid


@pytest.mark.parametrize("w,h,cols,rows,overlap", [(640, 360, 2, 2, 0.25), (640, 360, 3, 2, 0.2),
                                                    (100, 50, 1, 1, 0.0), (641, 361, 2, 3, 0.1)])
def test_tiles_cover_the_frame_and_overlap(w, h, cols, rows, overlap):
    tiles = tile_grid(w, h, cols, rows, overlap)
    assert len(tiles) == cols * rows
    covered = np.zeros((h, w), int)
    for x1, y1, x2, y2 in tiles:
        covered[y1:y2, x1:x2] += 1
    assert covered.min() >= 1
    if cols > 1:
        assert tiles[1][0] < tiles[0][2], "neighbouring tiles overlap"


def test_bad_grid_is_refused():
    with pytest.raises(ValueError, match="at least 1x1 with overlap"):
        tile_grid(640, 360, 0, 2, 0.2)


class BlobDetector:
    """Finds white rectangles (a real, if simple, detector) and reports them as class 0."""

    adapter = SimpleNamespace(options=DecodeOptions(0.3, 0.45, 100))

    def __call__(self, image: np.ndarray) -> Detections:
        _, _, stats, _ = cv2.connectedComponentsWithStats((image[..., 0] > 200).astype(np.uint8))
        boxes = np.array([[x, y, x + w, y + h] for x, y, w, h, _ in stats[1:]],
                         np.float32).reshape(-1, 4)
        return Detections(boxes, np.full(len(boxes), 0.9, np.float32),
                          np.zeros(len(boxes), np.int32), ("thing",))


def test_objects_across_tile_borders_are_found_once_and_whole():
    image = np.zeros((360, 640, 3), np.uint8)
    image[150:200, 290:350] = 255   # straddles the vertical tile border
    image[20:26, 30:36] = 255       # small, inside one tile
    out = TiledDetector(BlobDetector(), 2, 2, 0.25)(image)
    boxes = sorted(out.xyxy.tolist())
    assert boxes == [[30, 20, 36, 26], [290, 150, 350, 200]]
