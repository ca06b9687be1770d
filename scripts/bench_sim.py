#!/usr/bin/env python3
"""Synthetic-world generation speed per preset, rendering alone and rendering + encoding.

    python scripts/bench_sim.py [--frames 600] [--width 640 --height 360]

Prints a Markdown table for docs/benchmarks.md. Frames are rendered in order as `edge-agent
sim` does; "x real time" is frames per second over the world's 30 fps.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import date

from edge_agent.tools.sim import SyntheticWorld, WorldOptions
from edge_agent.tools.sim.clip import write_clip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args()
    print(f"date {date.today()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cpus, python {platform.python_version()}, "
          f"{args.width}x{args.height}, {args.frames} frames x {args.seeds} seeds")
    print("| preset | render frames/s | render + mp4v encode frames/s | x real time (30 fps) |")
    print("|---|---|---|---|")
    for preset in ("easy", "normal", "hard"):
        render_s = encode_s = 0.0
        for seed in range(args.seeds):
            opts = WorldOptions.from_preset(preset, seed=seed, width=args.width,
                                            height=args.height)
            world = SyntheticWorld(opts)
            start = time.perf_counter()
            for i in range(args.frames):
                world.render(i)
            render_s += time.perf_counter() - start
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                write_clip(SyntheticWorld(opts), args.frames / opts.fps, tmp, progress=False)
                encode_s += time.perf_counter() - start
        n = args.frames * args.seeds
        print(f"| {preset} | {n / render_s:.0f} | {n / encode_s:.0f} | "
              f"{n / encode_s / 30:.1f} |")


if __name__ == "__main__":
    main()
