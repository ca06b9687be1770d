"""Offload end to end with real parts: an edge agent, two `cloud-fallback run` worker
processes on one shared subscription, a real Mosquitto and a real Redis. One worker is killed
mid-run, then the other is stopped: the edge counts the timeouts, opens its breaker, and never
stops publishing detections."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from agent_kit import decoded, make_agent
from listener import Listener
from servers import wait_until

pytestmark = pytest.mark.integration


def start_worker(tmp_path, name: str, port: int, redis_port: int) -> subprocess.Popen:
    cfg = tmp_path / f"{name}.yaml"
    cfg.write_text(f"""
worker_id: {name}
mqtt: {{host: 127.0.0.1, port: {port}}}
cache: {{redis_url: "redis://127.0.0.1:{redis_port}/0", redis_prefix: "e2e-{time.time()}:"}}
batching: {{max_wait_ms: 5}}
metrics: {{enabled: false}}
""")
    return subprocess.Popen([sys.executable, "-m", "cloud_fallback", "run", "--config",
                             str(cfg)], stderr=subprocess.PIPE, text=True)


def test_two_workers_share_the_load_and_the_edge_survives_losing_them(
        tmp_path, mosquitto, redis):
    workers = {n: start_worker(tmp_path, n, mosquitto.port, redis.port) for n in ("wa", "wb")}
    agent, publisher, cfg = make_agent(
        mosquitto.port, [{"name": "cam", "url": "synthetic://?seed=1010&preset=hard"}],
        window={"size": 8, "stride": 4},
        offload={"enabled": True, "score_threshold": 0.0, "windows_per_minute": 600,
                 "bytes_per_minute": 50_000_000, "max_in_flight": 2, "keyframes": 2,
                 # a worker on a busy machine may take seconds to answer: not a failure
                 "timeout_s": 6.0, "breaker_failures": 3, "breaker_cooldown_s": 60},
        cache={"enabled": False})
    base = f"osprey/{cfg.device_id}"
    listen = Listener(mosquitto.port, f"{base}/#")
    off = agent.offload.client
    try:
        time.sleep(2.0)  # workers load their model and subscribe
        agent.start()

        def refined(ms):
            return decoded(ms, f"{base}/cam/refined", "refined")

        # Both workers answer: the broker shares the requests between them.
        listen.wait(lambda ms: {r["worker"] for r in refined(ms)} == {"wa", "wb"}, 60)
        workers["wa"].send_signal(signal.SIGKILL)
        workers["wa"].wait(5)
        n = len(refined(listen.messages))
        # The other carries on alone.
        listen.wait(lambda ms: len([r for r in refined(ms)[n:] if r["worker"] == "wb"]) >= 5,
                    60)
        workers["wb"].terminate()
        workers["wb"].wait(10)
        # No worker left: requests time out, are counted, and the breaker opens.
        assert wait_until(lambda: off.snapshot()["counts"].get("timeout", 0) >= 3, 45)
        assert wait_until(lambda: off.policy.breaker.state == "open", 10)
        seq_then = agent.pipelines[0].seq
        assert wait_until(lambda: off.snapshot()["counts"].get("breaker", 0) >= 2, 20)
        assert wait_until(lambda: agent.pipelines[0].seq > seq_then + 30, 10), \
            "detections must keep flowing"
        agent.stop()
        publisher.stop()
        msgs = listen.wait(lambda ms: any(m.payload == b"stopped" for m in ms), 10)
    finally:
        listen.close()
        for p in workers.values():
            p.kill()
        agent.stop()
        publisher.stop()
    dets = decoded(msgs, f"{base}/cam/detections", "detections")
    assert [d["seq"] for d in dets] == list(range(1, len(dets) + 1))
    answers = refined(msgs)
    assert all(r["source"] == "cloud" and r["rtt_ms"] > 0 for r in answers)
    # Each answer covers the whole window (8 frames), of which at most 2 went up as keyframes.
    assert all(len(r["frames"]) == 8 and 1 <= sum(f["keyframe"] for f in r["frames"]) <= 2
               for r in answers)
    counts = off.snapshot()["counts"]
    assert counts["answered"] == len(answers)
    assert counts["sent"] >= counts["answered"] + counts["timeout"]
    stats = decoded(msgs, f"{base}/stats", "stats")[-1]
    assert stats["offload"]["counts"]["timeout"] >= 3
    assert stats["offload"]["breaker"] == "open"
    assert stats["offload"]["bytes_up"] > 0
