"""A soak of the agent and a cloud worker with offload on: resident memory of both over time.

    python scripts/soak.py --minutes 60 [--out soak.json]

A Mosquitto, a `cloud-fallback run` worker and an `edge-agent run` agent, each in its own
process: a synthetic camera at 15 fps whose scenes come back, every window offloaded that the
budget allows (rate policy at 100 %, 60 windows a minute), text queries on, the edge cache on.
Every 30 s the resident memory (VmRSS) of the agent and the worker is sampled. Reported: the
samples, and each process's mean RSS in minute 9-11 against the last two minutes (the target
is within 5 %).

    python scripts/soak.py --minutes 12 --trace /tmp/soak-trace --trace-every 2

also dumps tracemalloc snapshots of the agent every 2 minutes (read them with
`python scripts/soak.py --compare /tmp/soak-trace`: what grew between the first and the last,
by line); `--no-edge-cache` runs the agent with its edge cache off; `--camera FILE` streams
a video file, looped, at its own rate instead of the synthetic camera.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edge_agent.tools.bench.pipeline import BenchBroker


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


SYNTHETIC = "synthetic://?seed=7&preset=normal&fps=15&segment_seconds=10&recurring_fraction=0.5"
TRACED = """
import sys, threading, time, tracemalloc
from pathlib import Path
out, every = Path(sys.argv[1]), float(sys.argv[2]) * 60
tracemalloc.start(8)
def dump():
    i = 0
    while True:
        time.sleep(every)
        i += 1
        tracemalloc.take_snapshot().dump(str(out / f"agent-{i:03d}.tracemalloc"))
threading.Thread(target=dump, daemon=True).start()
from edge_agent.cli import main
sys.exit(main(sys.argv[3:]))
"""
"""The agent under tracemalloc: a snapshot every `every` minutes into `out`."""


def compare(folder: Path, top: int = 25) -> None:
    import tracemalloc

    snaps = sorted(folder.glob("agent-*.tracemalloc"))
    if len(snaps) < 2:
        raise SystemExit(f"{folder}: fewer than two snapshots")
    first, last = (tracemalloc.Snapshot.load(str(p)) for p in (snaps[0], snaps[-1]))
    print(f"{snaps[0].name} -> {snaps[-1].name}: traced "
          f"{sum(s.size for s in first.statistics('filename')) / 2**20:.1f} -> "
          f"{sum(s.size for s in last.statistics('filename')) / 2**20:.1f} MB")
    for stat in last.compare_to(first, "lineno")[:top]:
        print(stat)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--trace", type=Path, default=None,
                    help="dump tracemalloc snapshots of the agent into this folder")
    ap.add_argument("--trace-every", type=float, default=5.0, help="minutes between snapshots")
    ap.add_argument("--compare", type=Path, default=None,
                    help="only compare the first and last snapshots in this folder")
    ap.add_argument("--no-edge-cache", action="store_true", help="the agent's edge cache off")
    ap.add_argument("--edge-cache-entries", type=int, default=512,
                    help="the agent's cache.max_entries (default the agent's, 512)")
    ap.add_argument("--camera", default=SYNTHETIC,
                    help="the agent's camera URL (a video file is looped); default the demo's "
                         "synthetic camera")
    args = ap.parse_args()
    if args.compare:
        compare(args.compare)
        return
    # a stopped soak stops its agent, worker and broker too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    broker = BenchBroker()
    tmp = tempfile.TemporaryDirectory()
    cloud = Path(tmp.name) / "cloud.yaml"
    mqtt = f'{{host: 127.0.0.1, port: {broker.port}, protocol: "{broker.protocol}"}}'
    cloud.write_text(f"""mqtt: {mqtt}
cache: {{redis_url: null}}
metrics: {{enabled: false}}
""")
    edge = Path(tmp.name) / "edge.yaml"
    edge.write_text(f"""device_id: soak
cameras:
  - name: street
    url: {args.camera}
    loop: {str(not args.camera.startswith("synthetic:")).lower()}
    text_queries: ["red car", "person"]
window: {{size: 15, stride: 15}}
offload:
  enabled: true
  mode: rate
  rate_target: 1.0
  score_threshold: 0.0
  windows_per_minute: 60
mqtt: {mqtt}
metrics: {{enabled: false}}
cache: {{enabled: {str(not args.no_edge_cache).lower()}, max_entries: {args.edge_cache_entries}}}
""")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    logs = Path(tmp.name)
    worker = subprocess.Popen([sys.executable, "-m", "cloud_fallback", "run", "--config",
                               str(cloud)], stdout=(logs / "worker.log").open("wb"),
                              stderr=subprocess.STDOUT, env=env)
    time.sleep(5)
    run = ["run", "--config", str(edge)]
    if args.trace:
        args.trace.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-c", TRACED, str(args.trace), str(args.trace_every), *run]
    else:
        command = [sys.executable, "-m", "edge_agent", *run]
    agent = subprocess.Popen(command, stdout=(logs / "agent.log").open("wb"),
                             stderr=subprocess.STDOUT, env=env)
    samples: list[dict] = []
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < args.minutes * 60:
            time.sleep(args.every)
            if agent.poll() is not None or worker.poll() is not None:
                raise RuntimeError("a process ended: "
                                   + (logs / "agent.log").read_text()[-1500:]
                                   + (logs / "worker.log").read_text()[-1500:])
            row = {"minute": round((time.monotonic() - t0) / 60, 2),
                   "agent_mb": rss_mb(agent.pid), "worker_mb": rss_mb(worker.pid)}
            samples.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            if args.out:
                args.out.write_text(json.dumps({"samples": samples}, indent=1))
    finally:
        agent.terminate()
        worker.terminate()
        agent.wait(20)
        worker.wait(20)
        answered = (logs / "worker.log").read_text()[-400:]
        broker.stop()
        tmp.cleanup()

    def window(name: str, lo: float, hi: float) -> float:
        return statistics.mean(s[name] for s in samples if lo <= s["minute"] <= hi)

    end = samples[-1]["minute"]
    report = {"minutes": args.minutes, "samples": samples}
    for name in ("agent_mb", "worker_mb"):
        early = window(name, 9, 11)
        late = window(name, end - 2, end)
        report[name.replace("_mb", "")] = {"minute_9_11_mb": round(early, 1),
                                           "last_2_minutes_mb": round(late, 1),
                                           "change_pct": round(100 * (late / early - 1), 2)}
    report["worker_log_tail"] = answered
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
