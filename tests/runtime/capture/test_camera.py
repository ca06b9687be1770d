"""The capture thread: freshest frame only, drops counted, reconnects with backoff, stops fast."""

from __future__ import annotations

import itertools
import random
import shutil
import threading
import time

import pytest
from servers import wait_until

from edge_agent.core.errors import SourceError
from edge_agent.runtime.capture.camera import DOWN, RECONNECTING, STREAMING, Backoff, Camera
from edge_agent.runtime.capture.opencv import OpenCVSource, stream_failure
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
        self.attempts: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, name: str, state: str, reason: str | None, attempts: int) -> None:
        with self.lock:
            self.events.append((state, reason))
            self.attempts.append(attempts)

    def states(self) -> list[str]:
        """The states in order, each run of one state once."""
        out: list[str] = []
        for s, _ in self.events:
            if not out or out[-1] != s:
                out.append(s)
        return out


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


def test_an_unreachable_camera_counts_attempts_and_says_so_again_at_a_falling_rate(
        tmp_path, monkeypatch, caplog):
    import logging

    import edge_agent.runtime.capture.camera as camera_module

    # 1, 10, 60 minutes in production; here the same rule in tenths of a second
    monkeypatch.setattr(camera_module, "REMIND_AFTER_S", (0.3, 0.9, 1.5))
    caplog.set_level(logging.WARNING, "osprey.capture")
    rec = Recorder()
    cam = Camera("door", lambda: OpenCVSource("door", str(tmp_path / "none.mp4")),
                 Backoff(0.05, 0.05, 0.0), on_status=rec).start()
    try:
        assert wait_until(lambda: cam.attempts >= 1)
        started = time.monotonic()
        # past 1.5 s of failing (the third reminder), well before 3 s (the fourth)
        assert wait_until(lambda: time.monotonic() - started >= 2.0, 5)
    finally:
        cam.stop()
    # every attempt updates the status with its count and reason
    counted = [a for (s, _), a in zip(rec.events, rec.attempts, strict=True)
               if s == RECONNECTING]
    assert counted[:5] == [1, 2, 3, 4, 5] and counted == sorted(counted)
    assert all("not found" in r for s, r in rec.events if s == RECONNECTING)
    lines = [r.getMessage() for r in caplog.records if r.name == "osprey.capture"]
    first = [ln for ln in lines if ln.startswith("camera door: reconnecting")]
    again = [ln for ln in lines if "still reconnecting" in ln]
    assert len(first) == 1, lines
    # three reminders, not one per attempt, each with the attempts so far and the reason
    assert len(again) == 3, lines
    counts = [int(ln.split(" after ")[1].split()[0]) for ln in again]
    assert counts == sorted(counts) and counts[0] >= 3 and "not found" in again[-1]


def test_attempts_start_again_after_the_camera_streams(tmp_path, real_data):
    clip = tmp_path / "later.mp4"
    rec = Recorder()
    cam = Camera("door", lambda: OpenCVSource("door", str(clip)), Backoff(0.05, 0.05, 0.0),
                 on_status=rec).start()
    try:
        assert wait_until(lambda: cam.attempts >= 3)
        shutil.copy(real_data / "pedestrian_survaillance.mp4", clip)
        assert wait_until(lambda: cam.state == STREAMING)
        assert cam.attempts == 0
    finally:
        cam.stop()
    at = [s for s, _ in rec.events].index(STREAMING)
    assert rec.attempts[at] == 0 and rec.attempts[at - 1] >= 3


def test_a_stream_that_does_not_open_says_why(monkeypatch):
    """A server that takes the connection and sends nothing (timed out), a closed port
    (refused) and a name that does not resolve: three reasons, each with what to check."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    silent = server.getsockname()[1]
    closed_sock = socket.socket()
    closed_sock.bind(("127.0.0.1", 0))
    closed = closed_sock.getsockname()[1]
    closed_sock.close()
    try:
        start = time.monotonic()
        with pytest.raises(SourceError) as info:
            OpenCVSource("cam", f"rtsp://127.0.0.1:{silent}/live", open_timeout_s=1.0)
        assert time.monotonic() - start < 5
        assert "timed out: no video within open_timeout_s (1 s)" in str(info.value)
        with pytest.raises(SourceError) as info:
            OpenCVSource("cam", f"rtsp://127.0.0.1:{closed}/live", open_timeout_s=1.0)
        assert f"connection refused by 127.0.0.1:{closed}" in str(info.value)
    finally:
        server.close()
    assert "unknown host 'no-such-camera.invalid'" in stream_failure(
        "rtsp://no-such-camera.invalid/live", 0.01, 10.0)
    assert stream_failure("rtsp://user:pw@127.0.0.1:9/x", 10.0, 10.0).startswith("timed out")


def test_a_file_damaged_in_the_middle_is_read_past_the_damage(tmp_path, caplog):
    """Bytes zeroed in the middle of a video: the frames after the damage are still read
    (seeking past it), with a warning that says where and how many were skipped."""
    import logging
    import subprocess
    import sys

    from edge_agent.runtime.capture.opencv import open_source

    # in a child process: the command line's logging setup would replace caplog's handler
    subprocess.run([sys.executable, "-m", "edge_agent", "sim", "--seconds", "10", "--fps", "10",
                    "--width", "320", "--height", "180", "--out", str(tmp_path),
                    "--no-progress"], check=True, capture_output=True, timeout=120)
    data = bytearray((tmp_path / "video.mp4").read_bytes())
    middle = len(data) // 2
    data[middle:middle + 3000] = bytes(3000)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(data)
    caplog.set_level(logging.WARNING, "osprey.capture")
    src = open_source("cam", str(broken), realtime=False)
    indices = []
    while (frame := src.read()) is not None:
        indices.append(frame.index)
    src.close()
    assert indices[-1] >= 95 and len(indices) >= 90, "the frames after the damage were lost"
    gaps = [b - a for a, b in itertools.pairwise(indices) if b - a > 1]
    assert gaps and src.damaged == sum(g - 1 for g in gaps) >= 1
    text = caplog.text
    assert "does not decode (the file is damaged there); skipping ahead" in text
    assert f"({src.damaged} frames skipped)" in text
