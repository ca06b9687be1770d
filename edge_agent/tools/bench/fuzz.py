"""`edge-agent bench fuzz`: hostile requests against a real cloud worker.

A Mosquitto on a free port and a `cloud-fallback run` worker in its own process (memory cache,
the bundled models). An attacker device sends `--requests` adversarial requests of many kinds
(cut short, wrong types, huge or lying JPEG headers, progressive JPEGs, too many frames,
queries or detections, bad versions, another device's name, reply topic or request id, long
correlation data, ...) as fast as the broker takes them, while a victim device sends a valid
request every half second and times each answer. Reported: whether the worker survived
(process alive, answering at the end), the longest a valid request of the victim waited, its
unanswered requests, answers that reached a device that did not ask (foreign answers), and the
worker's resident memory before, at its peak, and `--settle` seconds after the run.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import msgpack
import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.core.protocol import (
    Keyframe,
    OffloadRequest,
    decode_response,
    encode,
    new_request_id,
)
from edge_agent.tools.bench.pipeline import BenchBroker
from edge_agent.tools.sim import SyntheticWorld, WorldOptions


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    i = next(i for i in range(2, len(data)) if data[i] == 0xFF and data[i + 1] == 0xC0)
    data[i + 5:i + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    return bytes(data)


def _request(device: str, image: np.ndarray, rid: str | None = None) -> OffloadRequest:
    now = time.time()
    jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
    h, w = image.shape[:2]
    return OffloadRequest(
        id=rid or new_request_id(), device=device, camera="cam", window="cam-1", sent_at=now,
        expires_at=now + 30, reply_to=f"osprey/{device}/offload/response",
        corr=(rid or "c").encode()[:64],
        frames=[Keyframe(index=1, captured_at=now, width=w, height=h, jpeg=jpeg)], edge=[[]])


def attacks(image: np.ndarray, victim_ids: list[str]) -> dict[str, Any]:
    """Kind -> a function (rng) -> (payload, MQTT v5 properties or None, weight)."""
    small = cv2.resize(image, (160, 90))
    progressive = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()

    def base(**changes):
        m = msgpack.unpackb(encode(_request("attacker", small)))
        m["id"] = new_request_id()
        m.update(changes)
        return msgpack.packb(m)

    frame = msgpack.unpackb(encode(_request("attacker", small)))["frames"][0]
    kinds = {
        "cut short": lambda r: encode(_request("attacker", small))[: r.randrange(1, 400)],
        "random bytes": lambda r: r.randbytes(r.randrange(1, 6000)),
        "empty": lambda r: b"",
        "not a map": lambda r: msgpack.packb([1, "two", b"3"]),
        "nested deep": lambda r: msgpack.packb(
            {"id": new_request_id(), "frames": [[[[[[[[[[]]]]]]]]]]}),
        "wrong types": lambda r: base(frames="nope", edge=7),
        "missing id": lambda r: msgpack.packb(
            {k: v for k, v in msgpack.unpackb(base()).items() if k != "id"}),
        "long id": lambda r: base(id="x" * 5000),
        "version 2": lambda r: base(v=2),
        "version 1.0": lambda r: base(v=1.0),
        "version true": lambda r: base(v=True),
        "expired": lambda r: base(expires_at=time.time() - 10),
        "far future": lambda r: base(expires_at=1e18),
        "nan times": lambda r: base(sent_at=float("nan")),
        "huge jpeg header": lambda r: base(frames=[{**frame, "jpeg": _jpeg_claiming(
            60000, 60000)}]),
        "lying size": lambda r: base(frames=[{**frame, "width": 10**9, "height": -5}]),
        "progressive jpeg": lambda r: base(frames=[{**frame, "jpeg": progressive}]),
        "garbage jpeg": lambda r: base(frames=[{**frame, "jpeg": b"\xff\xd8\xff\xc0\x00\x11"
                                                + r.randbytes(300)}]),
        "not a jpeg": lambda r: base(frames=[{**frame, "jpeg": b"GIF89a" + r.randbytes(50)}]),
        "too many frames": lambda r: base(frames=[frame] * 40, edge=[[]] * 40),
        "edge count": lambda r: base(edge=[]),
        "too many detections": lambda r: base(edge=[[{"class_id": 1, "label": "car",
                                                      "score": 0.5, "box": [0, 0, 1, 1],
                                                      "track_id": 1}] * 5000]),
        "bad detection": lambda r: base(edge=[[{"class_id": -1, "label": "x" * 999,
                                                "score": float("inf"), "box": [1, 2],
                                                "track_id": "a"}]]),
        "too many queries": lambda r: base(queries=["red car"] * 100),
        "long query": lambda r: base(queries=["x" * 10_000]),
        "bad perspective": lambda r: base(perspective=[float("nan"), 1e308]),
        "other device": lambda r: base(device="victim",
                                       reply_to="osprey/victim/offload/response"),
        "other reply topic": lambda r: base(reply_to="osprey/victim/offload/response"),
        "victim's request id": lambda r: base(id=r.choice(victim_ids) if victim_ids
                                              else new_request_id()),
        "extra fields": lambda r: base(admin=True, exec="rm -rf /"),
        "oversized": lambda r: base() + b"\0" * (5 << 20),
    }
    out: dict[str, Any] = {name: (fn, None, 1.0) for name, fn in kinds.items()}

    def long_corr(r):
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = r.randbytes(65_000)
        return props

    def foreign_reply(r):
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "osprey/victim/offload/response"
        return props

    out["long correlation data"] = (lambda r: base(), long_corr, 1.0)
    out["reply property to victim"] = (lambda r: base(), foreign_reply, 1.0)
    # valid but costly (a model call each): few of them
    out["valid, unknown query words"] = (lambda r: base(queries=["a zorbly flimflam"]),
                                         None, 0.02)
    out["valid, max queries"] = (lambda r: base(queries=["red car", "person"] * 16), None,
                                 0.02)
    return out


@dataclass
class _Device:
    name: str
    port: int
    answers: dict[str, float] = field(default_factory=dict)
    foreign: int = 0
    asked: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"fuzz-{self.name}",
                                  protocol=mqtt.MQTTv5)
        self.client.max_queued_messages_set(0)
        self.client.max_inflight_messages_set(1000)
        topic = f"osprey/{self.name}/offload/response"
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        if not ready.wait(10):
            raise RuntimeError(f"fuzz device {self.name} could not subscribe")

    def _on(self, client, userdata, msg) -> None:
        try:
            resp = decode_response(msg.payload)
        except Exception:
            with self.lock:
                self.foreign += 1
            return
        with self.lock:
            if resp.id not in self.asked or resp.device != self.name:
                self.foreign += 1
            else:
                self.answers.setdefault(resp.id, time.monotonic())

    def send(self, payload: bytes, props=None) -> None:
        self.client.publish(f"osprey/{self.name}/offload/request", payload, qos=1,
                            properties=props)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def bench_fuzz(requests: int = 10_000, settle_s: float = 60.0, seed: int = 0,
               rate_limit: bool = True, progress=lambda _: None) -> dict[str, Any]:
    rng = random.Random(seed)
    image = SyntheticWorld(WorldOptions.from_preset("normal", seed=4242)).frame(300)
    broker = BenchBroker()
    tmp = tempfile.TemporaryDirectory()
    config = Path(tmp.name) / "cloud.yaml"
    config.write_text(f"""worker_id: fuzz-worker
mqtt: {{host: 127.0.0.1, port: {broker.port}, protocol: "{broker.protocol}"}}
cache: {{redis_url: null}}
metrics: {{enabled: false}}
stats_interval_s: 1
""")
    if not rate_limit:  # every hostile request read and validated
        with config.open("a") as f:
            f.write("limits: {per_device_rate: 1000000, per_device_burst: 1000000}\n")
    exe = shutil.which("cloud-fallback")
    cmd = [exe] if exe else [sys.executable, "-m", "cloud_fallback"]
    log = Path(tmp.name) / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*cmd, "run", "--config", str(config)], stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ,
                                                               "PYTHONUNBUFFERED": "1"})
    victim = attacker = None
    stats: dict[str, Any] = {}
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fuzz-stats")
    watcher.on_connect = lambda c, *a: c.subscribe("osprey/cloud/fuzz-worker/stats")
    watcher.on_message = lambda c, u, m: stats.update(json.loads(m.payload))
    try:
        watcher.connect("127.0.0.1", broker.port)
        watcher.loop_start()
        victim, attacker = _Device("victim", broker.port), _Device("attacker", broker.port)
        waits: list[float] = []
        sent_at: dict[str, float] = {}

        def ask() -> str:
            req = _request("victim", image)
            with victim.lock:
                victim.asked.add(req.id)
            sent_at[req.id] = time.monotonic()
            victim.send(encode(req))
            return req.id

        # the worker is up and answering before anything hostile comes (asked again until
        # it has subscribed: a request before that reaches nobody)
        deadline = time.monotonic() + 60
        while True:
            first, asked_at = ask(), time.monotonic()
            while first not in victim.answers and time.monotonic() - asked_at < 2:
                time.sleep(0.05)
            if first in victim.answers:
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the worker never answered: {log.read_text()[-2000:]}")
        sent_at.clear()  # the warm-up is not part of the measurement
        time.sleep(1.0)
        rss_before = _rss_mb(proc.pid)
        kinds = attacks(image, list(victim.asked))
        names = list(kinds)
        weights = [kinds[n][2] for n in names]
        counts: dict[str, int] = dict.fromkeys(names, 0)
        peak = rss_before
        t0 = time.monotonic()
        next_valid = t0
        stop_victim = threading.Event()

        def victim_loop() -> None:
            nonlocal next_valid
            while not stop_victim.is_set():
                ask()
                stop_victim.wait(0.5)

        vt = threading.Thread(target=victim_loop, daemon=True)
        vt.start()
        for k in range(requests):
            name = rng.choices(names, weights)[0]
            fn, props, _ = kinds[name]
            attacker.send(fn(rng), props(rng) if props else None)
            counts[name] += 1
            if k % 200 == 0:
                peak = max(peak, _rss_mb(proc.pid))
                progress(f"{k}/{requests} hostile requests, worker RSS {_rss_mb(proc.pid):.0f} "
                         "MB")
                time.sleep(0.01)  # let the broker breathe: its queue is not under test
        sent_s = time.monotonic() - t0
        # the victim keeps asking until the worker has worked off what it was sent
        quiet = time.monotonic() + 30
        while time.monotonic() < quiet:
            peak = max(peak, _rss_mb(proc.pid))
            with victim.lock:
                open_ids = [i for i in victim.asked if i not in victim.answers]
            if len(open_ids) <= 1:
                break
            time.sleep(0.5)
        stop_victim.set()
        vt.join(2)
        time.sleep(2)
        with victim.lock:
            for rid, t in sent_at.items():
                if rid in victim.answers:
                    waits.append(victim.answers[rid] - t)
            unanswered = sum(1 for rid in sent_at if rid not in victim.answers)
        progress(f"settling {settle_s:g} s")
        t_settle = time.monotonic()
        while time.monotonic() - t_settle < settle_s:
            peak = max(peak, _rss_mb(proc.pid))
            time.sleep(1.0)
        rss_after = _rss_mb(proc.pid)
        alive = proc.poll() is None
        last = ask() if alive else None
        end = time.monotonic() + 20
        while alive and last not in victim.answers and time.monotonic() < end:
            time.sleep(0.05)
        time.sleep(1.5)  # the worker's next stats
        return {
            "rate_limit": rate_limit,
            "worker_outcomes": stats.get("requests"),
            "requests": requests, "kinds": len(names), "by_kind": counts,
            "sent_seconds": round(sent_s, 1),
            "worker_alive": alive, "answers_after_run": bool(last and last in victim.answers),
            "valid_requests": len(sent_at), "valid_unanswered": unanswered,
            "valid_wait_max_s": round(max(waits), 3) if waits else None,
            "valid_wait_p50_s": round(float(np.median(waits)), 3) if waits else None,
            "foreign_answers": victim.foreign,
            "rss_before_mb": round(rss_before, 1), "rss_peak_mb": round(peak, 1),
            "rss_after_mb": round(rss_after, 1),
            "rss_after_vs_before_pct": round(100 * (rss_after / rss_before - 1), 1),
            "settle_s": settle_s, "broker": broker.kind,
        }
    finally:
        watcher.loop_stop()
        watcher.disconnect()
        for d in (victim, attacker):
            if d is not None:
                d.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        broker.stop()
        tmp.cleanup()
