"""The edge cache's settings on "a day" of real clips: hits and false hits for each setting.

    python scripts/bench_cache_settings.py --clips runs/trainclips.txt \\
        --setting 10,6,1.0 --setting 20,12,1.0 --setting 64,255,1.0

Each `--setting` is hamming_radius,block_threshold,edge_agreement (the agent's defaults are
10,6,1.0). The day, the offloading (20 % of windows by the policy's score) and the judging
(the cloud's fresh answer) are `bench offload --real`'s cache part
(edge_agent/tools/bench/cache_real.py); edge = the real-camera model, cloud =
configs/cloud-real.yaml. Choose settings on `train` clips; report on held-out ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cloud_fallback.config import load_cloud_config
from cloud_fallback.model import build_detector
from edge_agent.core.bundled import bundled_edge_model
from edge_agent.core.config.common import DetectorModelConfig, RuntimeConfig
from edge_agent.core.detector import Detector
from edge_agent.runtime.config import EdgeCacheConfig, OffloadConfig
from edge_agent.tools.bench.cache_real import bench_cache_real


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=Path, required=True, help="a text file, one video a line")
    ap.add_argument("--setting", action="append", required=True,
                    help="hamming_radius,block_threshold,edge_agreement")
    ap.add_argument("--segment", type=float, default=10.0, help="seconds of each clip")
    ap.add_argument("--cloud-config", type=Path, default=Path("configs/cloud-real.yaml"))
    ap.add_argument("--edge", type=Path, default=None, help="default the real-camera model")
    args = ap.parse_args()
    settings = []
    for setting in args.setting:  # all checked before the first (long) run
        try:
            radius, block, agreement = setting.split(",")
            settings.append(EdgeCacheConfig(hamming_radius=int(radius),
                                            block_threshold=float(block),
                                            edge_agreement=float(agreement)))
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            ap.error(f"--setting {setting}: want hamming_radius (0-64),block_threshold "
                     f"(0-255),edge_agreement (0-1) ({str(exc).splitlines()[-2].strip()})")
    videos = [Path(line.strip()) for line in args.clips.read_text().splitlines()
              if line.strip()]
    cloud_cfg = load_cloud_config(args.cloud_config)
    edge_path = args.edge or bundled_edge_model(domain="real")
    edge = Detector.from_config(DetectorModelConfig(path=edge_path), RuntimeConfig())
    cloud = build_detector(cloud_cfg.model)
    cfg = OffloadConfig(enabled=True)
    for cache_cfg in settings:
        r = bench_cache_real(edge, cloud, videos, args.segment, 0.2, 16, 8, cfg.keyframes,
                             cloud_cfg.model.min_score, cfg,
                             lambda s: print(s, file=sys.stderr, flush=True), cache_cfg)
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
