"""A cloud worker killed with requests in flight: what the edge loses, with and without its
retry (offload.retries), side by side in one run.

    python scripts/bench_worker_kill.py [--kills 6] [--retries 0,1]

For each retries setting: a Mosquitto, an agent offloading every window of a synthetic camera
(the rate policy at 100 %, 4 requests in flight), and two `cloud-fallback run` workers on the
shared subscription. Every few seconds, while requests are in flight, one worker is killed
(SIGKILL: the broker does not redeliver a shared subscription's in-flight QoS 1 messages to
the other) and a fresh one started in its place. Reported per setting: requests sent, answered,
sent again, timed out, and the share of requests lost (timed out / sent).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edge_agent.core.config.common import DetectorModelConfig
from edge_agent.core.detector import Detector
from edge_agent.runtime.config import EdgeConfig, EdgeRuntimeConfig
from edge_agent.runtime.mqtt.publisher import Publisher
from edge_agent.runtime.pipeline import Agent
from edge_agent.tools.bench.pipeline import BenchBroker


def start_worker(config: Path, name: str, log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "cloud_fallback", "run", "--config",
                                 str(config), "--worker-id", name], stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ})


def run(retries: int, kills: int, every_s: float, detector: Detector) -> dict:
    broker = BenchBroker()
    tmp = tempfile.TemporaryDirectory()
    config = Path(tmp.name) / "cloud.yaml"
    config.write_text(f"""mqtt: {{host: 127.0.0.1, port: {broker.port},
       protocol: "{broker.protocol}"}}
cache: {{redis_url: null}}
model: {{tiles: null}}
metrics: {{enabled: false}}
""")
    log = Path(tmp.name) / "workers.log"
    workers = [start_worker(config, f"w{i}", log) for i in range(2)]
    time.sleep(8)  # models loaded, subscribed
    device = f"kill-r{retries}"
    edge = EdgeConfig.model_validate({
        "device_id": device, "stats_interval_s": 3600,
        "cameras": [{"name": "cam", "url": "synthetic://?seed=61&preset=hard&fps=15"}],
        "window": {"size": 8, "stride": 8},
        "cache": {"enabled": False},
        "offload": {"enabled": True, "mode": "rate", "rate_target": 1.0,
                    "score_threshold": 0.0, "windows_per_minute": 600,
                    "bytes_per_minute": 50_000_000, "max_in_flight": 4, "timeout_s": 4,
                    "retries": retries, "breaker_failures": 1000},
        "mqtt": {"host": "127.0.0.1", "port": broker.port, "protocol": broker.protocol}})
    publisher = Publisher(edge.mqtt, device).start()
    publisher.connected.wait(5)
    agent = Agent(edge, detector, publisher, model_id="bench").start()
    killed = 0
    try:
        time.sleep(4)
        for k in range(kills):
            end = time.monotonic() + 5
            while agent.offload.client.snapshot()["in_flight"] < 2 and time.monotonic() < end:
                time.sleep(0.02)
            victim = workers[k % 2]
            victim.send_signal(signal.SIGKILL)
            victim.wait(5)
            killed += 1
            workers[k % 2] = start_worker(config, f"w{k % 2}-{k}", log)
            time.sleep(every_s)
        time.sleep(10)  # the last requests answered, retried or timed out
    finally:
        agent.stop()
        publisher.stop()
        for w in workers:
            w.terminate()
            w.wait(10)
        broker.stop()
        tmp.cleanup()
    c = agent.offload.client.snapshot()["counts"]
    sent = c.get("sent", 0)
    return {"retries": retries, "workers_killed": killed, "sent": sent,
            "answered": c.get("answered", 0), "sent_again": c.get("retried", 0),
            "timed_out": c.get("timeout", 0), "late": c.get("late", 0),
            "lost_share": round(c.get("timeout", 0) / sent, 4) if sent else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=6)
    ap.add_argument("--every", type=float, default=6.0, help="seconds between kills")
    ap.add_argument("--retries", default="0,1")
    args = ap.parse_args()
    from edge_agent.core.bundled import bundled_edge_model

    detector = Detector.from_config(DetectorModelConfig(path=bundled_edge_model()),
                                    EdgeRuntimeConfig())
    rows = [run(int(r), args.kills, args.every, detector) for r in args.retries.split(",")]
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
