"""The cache's "day" of real clips: each clip, then the one before it again, changed."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_agent.tools.bench.cache_real import changed, real_day


def _video(path, value: int, n: int = 10, size=(64, 48)):
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, size)
    for _ in range(n):
        out.write(np.full((size[1], size[0], 3), value, np.uint8))
    out.release()
    return path


def test_the_day_replays_each_clip_after_the_next_changed(tmp_path):
    a = _video(tmp_path / "a.mp4", 100)
    b = _video(tmp_path / "b.mp4", 200, size=(80, 60))
    c = _video(tmp_path / "c.mp4", 50)
    day = list(real_day([a, b, c], segment_s=0.5))
    order = []
    for _, name, replayed in day:
        if not order or order[-1] != (name, replayed):
            order.append((name, replayed))
    assert order == [("a", False), ("b", False), ("a", True), ("c", False), ("b", True)]
    assert all(img.shape == (48, 64, 3) for img, _, _ in day)   # one camera's size
    first = [img for img, n, r in day if n == "a" and not r]
    again = [img for img, n, r in day if n == "a" and r]
    assert len(first) == len(again) == 5
    # darker and noisy, not the same pixels
    assert 0.8 < again[0].mean() / first[0].mean() < 0.9
    assert not np.array_equal(again[0], first[0] * 0.85)


def test_the_change_is_light_and_noise_only():
    img = np.full((40, 40, 3), 120, np.uint8)
    out = changed(img, np.random.default_rng(0))
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert out.mean() == pytest.approx(102, abs=1) and 2 < out.std() < 4
