"""The capture thread: freshest frame only, drops counted, reconnects with backoff, stops fast."""

from __future__ import annotations

import random
import shutil
import threading
import time

import pytest
from servers import wait_until

from edge_agent.runtime.capture.camera import DOWN, RECONNECTING, STREAMING, Backoff, Camera
from edge_agent.runtime.capture.opencv import OpenCVSource
from edge_agent.tools.sim.source import SyntheticSource


def test_backoff_doubles_up_to_the_cap_with_jitter():
    b = Backoff(0.5, 4.0, 0.0)
    assert [b.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    b.reset()
    assert b.next() == 0.5
    j = Backoff(1.0, 8.0, 0.25, random.Random(0))
    delays = [j.next() for _ in range(5)]
    for d, base in zip(delays, [1, 2, 4, 8, 8], strict=True):
        assert base <= d <= base * 1.25
    with pytest.raises(ValueError, match="0 < initial <= cap"):
        Backoff(2.0, 1.0, 0.1)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str | None]] = []
        self.lock = threading.Lock()

    def __call__(self, name: str, state: str, reason: str | None) -> None:
        with self.lock:
            self.events.append((state, reason))

    def states(self) -> list[str]:
        return [s for s, _ in self.events]


def test_slow_consumer_gets_fresh_frames_and_drops_are_counted():
    url = "synthetic://?seed=1&fps=60&width=160&height=90"
    cam = Camera("street", lambda: SyntheticSource.from_url("street", url),
                 Backoff(0.1, 1.0, 0.0)).start()
    try:
        ages = []
        for _ in range(8):
            time.sleep(0.1)  # a consumer slower than the 60 fps camera
            frame = cam.latest(max_age_ms=1000)
            assert frame is not None
            ages.append(time.monotonic() - frame.captured)
        assert max(ages) < 0.1, "the frame handed out is always the newest one"
        assert cam.stats.dropped_unread > 20
        assert cam.stats.taken == 8
        assert cam.stats.frames_in >= cam.stats.taken + cam.stats.dropped_unread
    finally:
        cam.stop()


def test_frames_older_than_max_age_are_never_handed_out():
    url = "synthetic://?seed=1&fps=5&width=160&height=90"
    cam = Camera("slow", lambda: SyntheticSource.from_url("slow", url),
                 Backoff(0.1, 1.0, 0.0)).start()
    try:
        assert wait_until(lambda: cam.stats.frames_in >= 1)
        time.sleep(0.15)
        assert cam.latest(max_age_ms=50, timeout=0.01) is None
        assert cam.stats.dropped_stale == 1
    finally:
        cam.stop()


def test_unreachable_camera_is_retried_until_it_appears(tmp_path, real_data):
    clip = tmp_path / "later.mp4"
    rec = Recorder()
    cam = Camera("door", lambda: OpenCVSource("door", str(clip)), Backoff(0.05, 0.2, 0.1),
                 on_status=rec).start()
    try:
        assert wait_until(lambda: cam.stats.reconnects >= 3)
        assert cam.state == RECONNECTING and "not found" in cam.stats.last_error
        assert cam.latest(1000, timeout=0.05) is None
        shutil.copy(real_data / "pedestrian_survaillance.mp4", clip)
        assert wait_until(lambda: STREAMING in rec.states())
        assert rec.states()[:2] == [RECONNECTING, STREAMING]
    finally:
        cam.stop()
    assert not cam.alive and cam.state == DOWN


def test_stop_is_seen_within_a_second_even_during_backoff(tmp_path):
    cam = Camera("gone", lambda: OpenCVSource("gone", str(tmp_path / "never.mp4")),
                 Backoff(30.0, 60.0, 0.0)).start()
    assert wait_until(lambda: cam.stats.reconnects == 1)
    start = time.monotonic()
    cam.stop()
    assert not cam.alive and time.monotonic() - start < 1.0


def test_credentials_are_redacted_in_status_reasons():
    rec = Recorder()

    def opener():
        raise OSError("cannot open rtsp://admin:hunter22@10.0.0.9/s")

    cam = Camera("gate", opener, Backoff(0.05, 0.1, 0.0), on_status=rec).start()
    try:
        assert wait_until(lambda: rec.events)
    finally:
        cam.stop()
    assert "hunter22" not in rec.events[0][1] and "admin:***@" in rec.events[0][1]
    assert "hunter22" not in cam.stats.last_error


def test_a_looped_file_plays_at_its_own_rate_and_wraps(tmp_path):
    from edge_agent.cli import main
    from edge_agent.runtime.capture.opencv import open_source

    main(["sim", "--seconds", "1", "--fps", "10", "--width", "160", "--height", "90",
          "--out", str(tmp_path), "--no-progress"])
    src = open_source("loop", str(tmp_path / "video.mp4"), realtime=True, loop=True)
    start = time.monotonic()
    frames = [src.read() for _ in range(15)]
    took = time.monotonic() - start
    src.close()
    assert all(f is not None for f in frames), "a looped file never ends"
    assert [f.index for f in frames] == list(range(15))
    assert took >= 1.35, "15 frames of a 10 fps file take 1.4 s, never less"
    once = open_source("once", str(tmp_path / "video.mp4"), realtime=False)
    assert sum(1 for _ in iter(once.read, None)) == 10


@pytest.mark.parametrize("text,expected", [
    ("  Video I/O:\n    FFMPEG:      YES\n    GStreamer:   YES (1.20.3)\n", True),
    ("  Video I/O:\n    FFMPEG:      YES\n    GStreamer:   NO\n", False),
    ("  Video I/O:\n    FFMPEG:      YES\n", False),
])
def test_gstreamer_support_is_read_from_the_build_information(text, expected):
    from edge_agent.runtime.capture.opencv import gstreamer_in_build_info

    assert gstreamer_in_build_info(text) is expected
