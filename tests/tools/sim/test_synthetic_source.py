"""`synthetic://` as a live camera."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.runtime.capture import Frame, FrameSource
from edge_agent.tools.sim import SyntheticWorld, WorldOptions
from edge_agent.tools.sim.source import SyntheticSource, parse_synthetic_url


def test_url_options():
    u = parse_synthetic_url("synthetic://?seed=3&preset=hard&fps=15&width=320&height=180")
    assert (u.seed, u.preset, u.fps, u.width, u.height) == (3, "hard", 15.0, 320, 180)
    assert u.world_options() == WorldOptions.from_preset("hard", seed=3, fps=15, width=320,
                                                         height=180)
    assert parse_synthetic_url("synthetic://").preset == "normal"


@pytest.mark.parametrize("url,words", [
    ("synthetic://?preset=nightmare", "preset='nightmare'"),
    ("synthetic://?sed=3", "sed='3': Extra inputs are not permitted. Valid options: seed"),
    ("synthetic://?fps=0", "fps='0'"),
    ("synthetic://?seed=1&seed=2", "given twice"),
    ("synthetic://hard", "put options in the query"),
])
def test_bad_urls_say_what_is_wrong(url, words):
    with pytest.raises(ValueError, match=r"Valid options|given twice|query") as exc:
        parse_synthetic_url(url)
    assert words in str(exc.value)


def test_source_serves_the_world_frames_and_ends():
    src = SyntheticSource.from_url("street", "synthetic://?seed=2&fps=10&seconds=1&realtime=0")
    assert isinstance(src, FrameSource)
    world = SyntheticWorld(WorldOptions.from_preset("normal", seed=2, fps=10))
    frames = []
    while (f := src.read()) is not None:
        frames.append(f)
    assert [f.index for f in frames] == list(range(10))
    assert all(isinstance(f, Frame) and f.camera == "street" for f in frames)
    assert np.array_equal(frames[7].image, world.frame(7))
    assert src.last_truth.frame == 9
    assert [f.captured for f in frames] == sorted(f.captured for f in frames)


def test_realtime_source_is_paced():
    import time

    src = SyntheticSource.from_url("s", "synthetic://?fps=50&seconds=0.2&width=160&height=90")
    start = time.monotonic()
    n = 0
    while src.read() is not None:
        n += 1
    # 10 frames at 50 fps: the last is due 180 ms after the first; never earlier.
    assert n == 10 and time.monotonic() - start >= 0.18


def test_frame_rejects_bad_images():
    with pytest.raises(ValueError, match=r"uint8 BGR \(H, W, 3\), got float32"):
        Frame("c", 0, 0.0, 0.0, np.zeros((4, 4, 3), np.float32))
