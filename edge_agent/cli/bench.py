"""`edge-agent bench pipeline`: pipeline against pure inference, side by side."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import date
from pathlib import Path

from edge_agent.core.bundled import bundled_edge_model
from edge_agent.core.cli import EXIT_OK
from edge_agent.core.config.common import DetectorModelConfig, EdgeRuntimeConfig, RuntimeConfig
from edge_agent.core.detector import Detector


def add_bench(sub) -> None:
    p = sub.add_parser("bench", help="measure the pipeline (against pure inference) or what "
                                     "offloading buys (accuracy, uplink, cache, latency)")
    p.add_argument("what", choices=["pipeline", "offload", "sizes", "live", "fuzz"],
                   help="what to measure "
                   "(sizes: how well sizes in text queries are read, by the scale the agent "
                   "learns)")
    p.add_argument("--model", type=Path, default=None, help="default: the bundled edge model")
    p.add_argument("--requests", type=int, default=10_000,
                   help="fuzz: hostile requests to send (default 10000)")
    p.add_argument("--settle", type=float, default=60.0,
                   help="fuzz: seconds to wait before the worker's memory is read again")
    p.add_argument("--no-rate-limit", action="store_true",
                   help="fuzz: lift the worker's per-device rate limit, so every hostile "
                        "request is read and validated")
    p.add_argument("--cloud-model", type=Path, default=None,
                   help="offload: default the bundled cloud model")
    p.add_argument("--seeds", default="1000,1001,1002,1003",
                   help="offload: held-out world seeds")
    p.add_argument("--presets", default="normal,hard", help="offload: world presets")
    p.add_argument("--clip-seconds", type=float, default=30.0,
                   help="offload: seconds of each clip (default 30)")
    p.add_argument("--cache-seconds", type=float, default=180.0,
                   help="offload: seconds of each recurring-scene clip for the cache (0: skip)")
    p.add_argument("--cache-seeds", default="1137,1138,1139,1140",
                   help="offload: world seeds of the cache clips, pooled")
    p.add_argument("--live-seconds", type=float, default=30.0,
                   help="offload: seconds of the live latency run (0: skip)")
    p.add_argument("--size-seconds", type=float, default=300.0,
                   help="sizes: seconds of each world the scale is learned over (default 300)")
    p.add_argument("--real", type=Path, nargs="+", default=None, metavar="CLIP",
                   help="offload on real clips no model trained on (video files, or a text "
                        "file listing one per line): edge = the real-camera model, cloud = "
                        "--cloud-config, reference = the cloud-only answer on every frame")
    p.add_argument("--cloud-config", type=Path, default=Path("configs/cloud-real.yaml"),
                   help="offload --real: the cloud worker's config (default "
                        "configs/cloud-real.yaml)")
    p.add_argument("--real-seconds", type=float, default=None,
                   help="offload --real: the first seconds of each clip (default: all)")
    p.add_argument("--real-cache-seconds", type=float, default=10.0,
                   help="offload --real: seconds of each clip in the cache's day, each "
                        "replayed once, changed (0: skip)")
    p.add_argument("--tuning", action="store_true",
                   help="offload --real: allow `train` clips, to choose settings on them "
                        "(report figures from held-out clips only)")
    p.add_argument("--gt", action="append", default=[], metavar="CLIP=GT.TXT",
                   help="offload --real: human labels (MOT gt.txt, people) of a clip, by stem")
    p.add_argument("--plot", type=Path, default=None, help="offload: write the PNG plot here")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="offload: keep per-clip detections here to rerun quickly")
    p.add_argument("--seconds", type=float, default=20.0, help="per measurement (default 20)")
    p.add_argument("--memory-minutes", type=float, default=0.0,
                   help="also run this long at 30 fps and report resident memory (e.g. 10)")
    p.add_argument("--rounds", type=int, default=4,
                   help="pipeline: pure/saturated pairs the --seconds are split into (default 4)")
    p.add_argument("--threads", type=int, default=0,
                   help="pipeline: ONNX Runtime intra-op threads (default 0: the agent's "
                        "default, every core but one on the CPU)")
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.set_defaults(func=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    if args.what == "offload":
        return run_bench_offload(args)
    if args.what == "sizes":
        return run_bench_sizes(args)
    if args.what == "live":
        return run_bench_live(args)
    if args.what == "fuzz":
        return run_bench_fuzz(args)
    from edge_agent.tools.bench.pipeline import bench_pipeline, markdown

    model = args.model or bundled_edge_model()
    # The agent's own session settings (EdgeConfig's detector runtime), and the library's
    # default (every core for the model alone) as the ceiling quoted beside them.
    detector = Detector.from_config(DetectorModelConfig(path=model),
                                    EdgeRuntimeConfig(intra_op_threads=args.threads))
    ceiling = Detector.from_config(DetectorModelConfig(path=model), RuntimeConfig())
    result = bench_pipeline(detector, args.seconds, args.memory_minutes,
                            progress=lambda s: print(f"bench: {s}", file=sys.stderr, flush=True),
                            rounds=args.rounds, ceiling=ceiling)
    result["model"] = Path(model).name
    result["date"] = date.today().isoformat()
    result["machine"] = f"{platform.node()} {platform.machine()}"
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['date']}, {result['machine']}, model {result['model']}\n")
        print(markdown(result))
    return EXIT_OK


def run_bench_fuzz(args: argparse.Namespace) -> int:
    """Hostile requests against a real worker, with a valid device beside them."""
    from edge_agent.tools.bench.fuzz import bench_fuzz

    r = bench_fuzz(args.requests, args.settle, rate_limit=not args.no_rate_limit,
                   progress=lambda s: print(f"bench: {s}", file=sys.stderr, flush=True))
    r.update(date=date.today().isoformat(), machine=f"{platform.node()} {platform.machine()}")
    print(json.dumps(r, indent=2))
    return EXIT_OK


def run_bench_live(args: argparse.Namespace) -> int:
    """The saturated agent with its live view watched by a headless Chromium, against nobody
    watching, side by side in one run."""
    from edge_agent.tools.bench.pipeline import bench_live

    model = args.model or bundled_edge_model()
    detector = Detector.from_config(DetectorModelConfig(path=model),
                                    EdgeRuntimeConfig(intra_op_threads=args.threads))
    r = bench_live(detector, args.seconds, args.rounds,
                   progress=lambda s: print(f"bench: {s}", file=sys.stderr, flush=True))
    r.update(model=Path(model).name, date=date.today().isoformat(),
             machine=f"{platform.node()} {platform.machine()}")
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        print(f"{r['date']}, {r['machine']}, model {r['model']}; pure {r['pure_fps']:.1f} fps\n"
              f"fps_ratio nobody watching {r['fps_ratio_unwatched']:.3f} (rounds "
              f"{', '.join(f'{x:.3f}' for x in r['round_unwatched'])}); a browser on the live "
              f"view {r['fps_ratio_watched']:.3f} (rounds "
              f"{', '.join(f'{x:.3f}' for x in r['round_watched'])}); frames drawn "
              f"{r['live_fps_drawn']:.1f}/s")
    return EXIT_OK


def run_bench_sizes(args: argparse.Namespace) -> int:
    from edge_agent.core.bundled import bundled_cloud_model
    from edge_agent.core.detector.tiling import TiledDetector
    from edge_agent.tools.bench.sizes import bench_sizes

    edge = Detector.from_config(DetectorModelConfig(path=args.model or bundled_edge_model()),
                                RuntimeConfig())
    cloud = TiledDetector(Detector.from_config(DetectorModelConfig(
        path=args.cloud_model or bundled_cloud_model(), score_threshold=0.1),
        RuntimeConfig()), 2, 2)
    result = bench_sizes(edge, cloud, [int(s) for s in args.seeds.split(",")],
                         args.presets.split(",")[0], args.size_seconds,
                         progress=lambda s: print(f"bench: {s}", file=sys.stderr, flush=True))
    result["date"] = date.today().isoformat()
    result["machine"] = f"{platform.node()} {platform.machine()}"
    print(json.dumps(result, indent=2))
    return EXIT_OK


def _real_clips(paths: list[Path]) -> list[Path]:
    out = []
    for p in paths:
        if p.suffix.lower() == ".txt":
            out += [Path(line.strip()) for line in p.read_text().splitlines()
                    if line.strip() and not line.lstrip().startswith("#")]
        else:
            out.append(p)
    missing = [str(p) for p in out if not p.is_file()]
    if missing:
        raise ValueError(f"--real: no such clip(s): {', '.join(missing)}")
    return out


def run_bench_offload(args: argparse.Namespace) -> int:
    from edge_agent.core.bundled import bundled_cloud_model
    from edge_agent.tools.bench.offload import RATIOS, bench_offload, plot

    if args.real:
        from edge_agent.tools.bench.real import bench_offload_real

        human = {}
        for item in args.gt:
            stem, sep, path = item.partition("=")
            if not sep or not Path(path).is_file():
                raise ValueError(f"--gt must be CLIP=GT.TXT with an existing file, got {item!r}")
            human[stem] = Path(path)
        result = bench_offload_real(
            args.model or bundled_edge_model("fp32", "real"), args.cloud_config,
            _real_clips(args.real), args.real_seconds, args.work_dir, human,
            progress=lambda s: print(f"bench: {s}", file=sys.stderr, flush=True),
            live_seconds=args.live_seconds, cache_segment_s=args.real_cache_seconds,
            tuning=args.tuning)
    else:
        result = bench_offload(
            args.model or bundled_edge_model(), args.cloud_model or bundled_cloud_model(),
            [int(s) for s in args.seeds.split(",")], args.presets.split(","),
            args.clip_seconds, args.cache_seconds, args.live_seconds,
            progress=lambda s: print(f"bench: {s}", file=sys.stderr, flush=True),
            work_dir=args.work_dir, cache_seeds=[int(s) for s in args.cache_seeds.split(",")])
    result["date"] = date.today().isoformat()
    result["machine"] = f"{platform.node()} {platform.machine()}"
    if args.plot:
        plot(result, args.plot)
    if args.json:
        print(json.dumps(result, indent=2))
        return EXIT_OK
    print(f"{result['date']}, {result['machine']}, clips {', '.join(result['clips'])}, "
          f"{result['windows']} windows\n")
    print("| run | ratio | mAP@0.5 | G(r) | uplink MB | / cloud-only |")
    print("|---|---|---|---|---|---|")
    for name in ("edge_only", "cloud_only"):
        x = result[name]
        print(f"| {name} | | {x['map50']:.3f} | {x['gap_recovery']:.2f} | "
              f"{x['uplink_bytes'] / 1e6:.2f} | {x['uplink_ratio_vs_cloud_only']:.3f} |")
    for name in ("policy", "random", "periodic"):
        for r in RATIOS:
            x = result[name][f"{r:.2f}"]
            print(f"| {name} | {r:.0%} | {x['map50']:.3f} | {x['gap_recovery']:.2f} | "
                  f"{x['uplink_bytes'] / 1e6:.2f} | {x['uplink_ratio_vs_cloud_only']:.3f} |")
    if "human" in result and "policy" in result["human"]:
        h = result["human"]
        print(f"\nagainst human labels (people): edge-only {h['edge_only']:.3f}, cloud-only "
              f"{h['cloud_only']:.3f}, policy " + ", ".join(
                  f"{float(r):.0%} {v:.3f}" for r, v in h["policy"].items()))
    print("\nwindow score vs the cloud's corrections (rank correlation): " + ", ".join(
        f"{k} {v:.2f}" for k, v in result["score_vs_correction_rank_corr"].items()))
    op = result.get("second_opinion", {})
    if "skipped" in op:
        print(f"second opinion: skipped ({op['skipped']})")
    elif op:
        print(f"label accuracy of the policy's answers at 20 % ({op['windows']} windows): " +
              ", ".join(f"{k} {v['label_accuracy']}" for k, v in op.items()
                        if isinstance(v, dict)))
    if "cache" in result and "replayed" in result["cache"]:
        c = result["cache"]
        print(f"cache (a day of {len(c['clips'])} real clips, {c['segment_s']:g} s each, "
              f"replayed changed): hit rate {c['cache_hit_rate']:.2f} ({c['cache_hits']} of "
              f"{c['offloaded_windows']}), false hits {c['false_hits']} "
              f"({c['false_hit_rate']:.3f}, 95 % {c['false_hit_rate_95']}); on replayed "
              f"windows {c['replayed']['hits']} hits of {c['replayed']['offloaded_windows']} "
              f"({c['replayed']['reusable']} reusable)")
    elif "cache" in result:
        c = result["cache"]
        t = c["truth"]
        print(f"cache ({c['seconds']:g} s, recurring scenes): hit rate {c['cache_hit_rate']:.2f}"
              f", reuse captured {c['reuse_captured']}, false hits {c['false_hit_rate']:.3f} "
              f"(against a fresh cloud answer; "
              f"{c['every_keyframe']['false_hit_rate']:.3f} keyframe by keyframe); by the "
              f"ground truth: reuse captured "
              f"{t['reuse_captured']}, false hits {t['false_hit_rate']:.3f}; near-duplicate "
              f"windows served from cache {c['near_duplicate_hits']} of "
              f"{c['near_duplicate_windows']}")
    if "refined_latency" in result:
        lat = result["refined_latency"]
        print(f"refined latency: p50 {lat['p50_ms']:.0f} ms, p95 {lat['p95_ms']:.0f} ms "
              f"({lat['answered']} answers)" + "".join(
                  f"; {k} p50 {v['p50']:.0f} / p95 {v['p95']:.0f} ms"
                  for k, v in lat.get("phases_ms", {}).items()))
    return EXIT_OK
