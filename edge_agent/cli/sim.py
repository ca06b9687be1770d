"""`edge-agent sim`: write synthetic-world video and ground truth."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from edge_agent.core.cli import EXIT_OK
from edge_agent.tools.sim.clip import CODECS, write_clip
from edge_agent.tools.sim.options import PRESETS, WorldOptions
from edge_agent.tools.sim.world import SyntheticWorld

log = logging.getLogger("osprey.sim")


def add_sim(sub) -> None:
    p = sub.add_parser("sim", help="write synthetic-world video and per-frame ground truth")
    p.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    p.add_argument("--seconds", type=float, default=10.0, help="length (default 10)")
    p.add_argument("--preset", choices=list(PRESETS), default="normal")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--codec", choices=list(CODECS), default="mp4v",
                   help="mp4v (default), MJPG, or FFV1 (lossless)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_sim)


def run_sim(args: argparse.Namespace) -> int:
    options = WorldOptions.from_preset(
        args.preset, seed=args.seed, fps=args.fps, width=args.width, height=args.height
    )
    start = time.perf_counter()
    info = write_clip(SyntheticWorld(options), args.seconds, args.out, args.codec,
                      progress=not args.no_progress)
    took = time.perf_counter() - start
    log.info("wrote %d frames (%s, seed %d) to %s in %.1fs (%.0f frames/s)", info.frames,
             args.preset, args.seed, args.out, took, info.frames / took)
    print(info.video)
    print(info.truth)
    return EXIT_OK
