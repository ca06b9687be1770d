#!/usr/bin/env python3
"""Throughput of a model served by Triton: concurrent clients (the dynamic batcher gathers
their requests) against one client at a time, side by side in one run, with the in-process
ONNX Runtime backend as the baseline.

    python deploy/triton/pytriton_onnx.py --model models/cloud/osprey_cloud_ssdlite.onnx \
        --name osprey_cloud_ssdlite --threads 2 &
    python scripts/bench_triton.py --model models/cloud/osprey_cloud_ssdlite.onnx \
        --url localhost:8001 [--clients 1,4,8] [--requests 64]

Each client is one Detector with `runtime.backend: triton` calling it in a loop on synthetic
frames (the whole call: preprocess, gRPC, decode); requests per second over all clients and
the mean batch the server ran (from Triton's metrics, when --metrics is given).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import threading
import time
import urllib.request
from datetime import date
from pathlib import Path

from edge_agent.core.config.common import (
    CloudRuntimeConfig,
    DetectorModelConfig,
    RuntimeConfig,
)
from edge_agent.core.detector import Detector
from edge_agent.tools.sim import SyntheticWorld, WorldOptions


def counter(url: str | None, name: str, model: str) -> float:
    if not url:
        return 0.0
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return sum(float(m.group(1)) for m in re.finditer(
        rf'^{name}{{[^}}]*model="{model}"[^}}]*}} ([0-9.e+]+)$', text, re.M))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True, help="the ONNX file Triton serves")
    ap.add_argument("--name", default=None, help="its name in Triton (default: file stem)")
    ap.add_argument("--url", default="localhost:8001")
    ap.add_argument("--metrics", default="http://localhost:8002/metrics")
    ap.add_argument("--clients", default="1,4,8")
    ap.add_argument("--requests", type=int, default=64, help="per client count")
    args = ap.parse_args()
    name = args.name or args.model.stem
    world = SyntheticWorld(WorldOptions.from_preset("normal", seed=1005))
    frames = [world.render(i)[0].image for i in range(200, 216)]
    cfg = DetectorModelConfig(path=args.model)
    local = Detector.from_config(cfg, RuntimeConfig(providers=["cpu"]))
    for f in frames[:4]:
        local(f)
    t0 = time.perf_counter()
    for i in range(args.requests):
        local(frames[i % len(frames)])
    base = args.requests / (time.perf_counter() - t0)
    rows = [("in-process onnxruntime, 1 caller", base, 1.0)]
    for n in (int(v) for v in args.clients.split(",")):
        dets = [Detector.from_config(cfg, CloudRuntimeConfig(backend="triton", triton_url=args.url,
                                                        triton_model=name)) for _ in range(n)]
        for d in dets:
            d(frames[0])
        time.sleep(2.5)  # Triton refreshes its metrics every 2 s
        req0 = counter(args.metrics, "nv_inference_request_success", name)
        run0 = counter(args.metrics, "nv_inference_exec_count", name)
        barrier = threading.Barrier(n)

        def loop(d: Detector, barrier: threading.Barrier) -> None:
            barrier.wait()
            for i in range(args.requests):
                d(frames[i % len(frames)])

        threads = [threading.Thread(target=loop, args=(d, barrier)) for d in dets]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rate = n * args.requests / (time.perf_counter() - t0)
        time.sleep(2.5)
        runs = counter(args.metrics, "nv_inference_exec_count", name) - run0
        reqs = counter(args.metrics, "nv_inference_request_success", name) - req0
        rows.append((f"Triton, {n} client(s)", rate, reqs / runs if runs else float("nan")))
    print(f"{date.today()} · {platform.node()} · {os.cpu_count()} CPUs · {args.model.name}")
    print("| caller | requests/s | x in-process | mean server batch |")
    print("|---|---|---|---|")
    for label, rate, batch in rows:
        print(f"| {label} | {rate:.1f} | {rate / base:.2f} | {batch:.2f} |")


if __name__ == "__main__":
    main()
