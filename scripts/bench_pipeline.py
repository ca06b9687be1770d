#!/usr/bin/env python3
"""The agent's pipeline against pure inference, measured side by side in one run.

    python scripts/bench_pipeline.py --seconds 20

1. inference: the detector alone over pre-rendered frames (the ceiling);
2. saturated: one synthetic camera that renders as fast as it can, through the whole agent
   (capture thread, detector, tracker, window, events, MQTT to a real broker);
3. real time: cameras at 30 fps each (1 and 2 cameras), what a deployment sees;
4. overload: a camera at twice the inference rate, latency at the start and at the end.

Latency is read from the published messages by a subscriber (capture to message built). The
broker is a Mosquitto started on a free port when the binary is there, else the embedded one.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edge_agent.agent import Agent
from edge_agent.bundled import bundled_edge_model
from edge_agent.config.edge import EdgeConfig
from edge_agent.detector import Detector
from edge_agent.mqtt.embedded import EmbeddedBroker, broker_reachable
from edge_agent.mqtt.publisher import Publisher
from edge_agent.sim import SyntheticWorld, WorldOptions


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self) -> None:
        self.port = free_port()
        exe = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
        self.proc = self.embedded = None
        if exe:
            self.kind = "mosquitto"
            self.tmp = tempfile.TemporaryDirectory()
            conf = Path(self.tmp.name) / "m.conf"
            conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                            "persistence false\n")
            self.proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        else:
            self.kind = "embedded (amqtt)"
            self.embedded = EmbeddedBroker("127.0.0.1", self.port).start()
        end = time.monotonic() + 10
        while not broker_reachable("127.0.0.1", self.port) and time.monotonic() < end:
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            self.proc.wait(5)
        if self.embedded:
            self.embedded.stop()


class Latencies:
    def __init__(self, port: int, device: str, protocol: int) -> None:
        self.values: list[tuple[float, float]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=protocol)
        ready = threading.Event()
        self.client.on_connect = lambda c, *a: c.subscribe(f"osprey/{device}/+/detections")
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.on_message = self._on
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        ready.wait(5)

    def _on(self, client, userdata, msg) -> None:
        d = json.loads(msg.payload)
        self.values.append((time.monotonic(), d["latency_ms"]))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def pure_inference(detector: Detector, seconds: float) -> float:
    world = SyntheticWorld(WorldOptions.from_preset("normal", seed=4242))
    frames = [world.render(i)[0].image for i in range(0, 300, 3)]
    for img in frames[:5]:
        detector(img)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        detector(frames[n % len(frames)])
        n += 1
    return n / (time.perf_counter() - t0)


def run_agent(detector: Detector, broker: Broker, urls: list[str], seconds: float,
              device: str, protocol: str) -> dict:
    config = EdgeConfig.model_validate({
        "device_id": device, "stats_interval_s": 3600,
        "cameras": [{"name": f"c{i}", "url": u, "max_frame_age_ms": 1000}
                    for i, u in enumerate(urls)],
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "protocol": protocol}})
    publisher = Publisher(config.mqtt, device).start()
    publisher.connected.wait(5)
    lat = Latencies(broker.port, device, mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311)
    agent = Agent(config, detector, publisher, model_id="bench").start()
    time.sleep(1.0)  # warm up: first frames, first tracks
    start = {p.name: (p.processed, p.camera.stats.frames_in) for p in agent.pipelines}
    t0 = time.monotonic()
    lat.values.clear()
    time.sleep(seconds)
    span = time.monotonic() - t0
    done = {p.name: (p.processed, p.camera.stats.frames_in) for p in agent.pipelines}
    agent.stop()
    publisher.stop()
    time.sleep(0.3)
    lat.close()
    processed = sum(done[k][0] - start[k][0] for k in done)
    frames_in = sum(done[k][1] - start[k][1] for k in done)
    values = [v for t, v in lat.values if t <= t0 + span]
    arr = np.array(values) if values else np.zeros(1)
    third = max(1, len(values) // 3)
    return {"fps_in": frames_in / span, "fps": processed / span,
            "p50": float(np.percentile(arr, 50)), "p95": float(np.percentile(arr, 95)),
            "p99": float(np.percentile(arr, 99)),
            "first_third_p50": float(np.median(arr[:third])),
            "last_third_p50": float(np.median(arr[-third:]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="default: the bundled edge model")
    ap.add_argument("--seconds", type=float, default=20.0, help="per measurement")
    ap.add_argument("--protocol", choices=["5", "3.1.1"], default="5")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    model = args.model or bundled_edge_model()
    cfg = EdgeConfig.model_validate({"cameras": [{"name": "x", "url": "x.mp4"}]})
    detector = Detector.from_config(cfg.model, cfg.detector, default_path=model)
    broker = Broker()
    protocol = args.protocol if broker.kind == "mosquitto" else "3.1.1"
    try:
        inf = pure_inference(detector, args.seconds)
        runs = {
            "saturated, 1 camera": ["synthetic://?seed=51&realtime=0"],
            "real time, 1 camera at 30 fps": ["synthetic://?seed=52"],
            "real time, 2 cameras at 30 fps": ["synthetic://?seed=53", "synthetic://?seed=54"],
            f"overload, 1 camera at {2 * inf:.0f} fps":
                [f"synthetic://?seed=55&fps={min(240, round(2 * inf))}"],
        }
        results = {name: run_agent(detector, broker, urls, args.seconds, f"bench{i}", protocol)
                   for i, (name, urls) in enumerate(runs.items())}
    finally:
        broker.stop()
    if args.json:
        print(json.dumps({"inference_fps": inf, "runs": results}, indent=2))
        return
    print(f"{time.strftime('%Y-%m-%d')}, {platform.node()}, {platform.processor() or 'cpu'}, "
          f"model {Path(model).name}, broker {broker.kind}, MQTT {protocol}, "
          f"{args.seconds:.0f} s per row\n")
    print(f"pure inference: {inf:.1f} fps ({1000 / inf:.2f} ms per frame)\n")
    print("| run | fps in | fps processed | / inference | latency p50 | p95 | p99 | "
          "p50 first third | p50 last third |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['fps_in']:.1f} | {r['fps']:.1f} | {r['fps'] / inf:.2f} | "
              f"{r['p50']:.1f} ms | {r['p95']:.1f} ms | {r['p99']:.1f} ms | "
              f"{r['first_third_p50']:.1f} ms | {r['last_third_p50']:.1f} ms |")


if __name__ == "__main__":
    main()
