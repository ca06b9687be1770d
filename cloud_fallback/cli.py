"""`cloud-fallback`: the cloud worker's command line."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from cloud_fallback.config import CloudConfig, load_cloud_config
from cloud_fallback.doctor import add_cloud_doctor
from edge_agent.core.cli import (
    EXIT_OK,
    add_global_options,
    add_validate_config,
    run_main,
)
from edge_agent.core.config.loader import validate_flags
from edge_agent.core.errors import OspreyError

log = logging.getLogger("osprey.cloud")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cloud-fallback",
        description="Osprey cloud fallback: refines low-confidence windows from edge agents.",
    )
    add_global_options(parser)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    run = sub.add_parser("run", help="serve offload requests from a shared subscription")
    run.add_argument("--config", type=Path, required=True, help="cloud config file (YAML)")
    run.add_argument("--worker-id", default=None, help="overrides worker_id")
    run.add_argument("--mqtt-host", default=None, help="overrides mqtt.host")
    run.add_argument("--mqtt-port", type=int, default=None, help="overrides mqtt.port")
    run.add_argument("--redis-url", default=None, help="overrides cache.redis_url")
    run.add_argument("--metrics-port", type=int, default=None, help="overrides metrics.port")
    run.add_argument("--seconds", type=float, default=None, help="stop after this long")
    run.set_defaults(func=run_worker)
    det = sub.add_parser("detect", help="the cloud model over a video, one JSON line per frame "
                                        "(the format of `edge-agent detect`)")
    det.add_argument("--config", type=Path, required=True, help="cloud config file (YAML)")
    det.add_argument("--source", required=True, help="video file or stream URL")
    det.add_argument("--out", type=Path, default=None, help="write JSON lines here, not stdout")
    det.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    det.add_argument("--every", type=int, default=1,
                     help="run on every Nth frame only (the others get no line)")
    det.add_argument("--score", type=float, default=None,
                     help="drop detections below this (default: the config's model.min_score; "
                          "0.05 to score mAP with `edge-agent eval --detections`)")
    det.set_defaults(func=run_detect)
    add_validate_config(sub, load_cloud_config)
    add_cloud_doctor(sub)
    return parser


def _worker_class():
    """The worker, or a clear error when the `cloud` extra is not installed."""
    try:
        from cloud_fallback.worker import Worker
    except ImportError as exc:
        raise OspreyError(f"the cloud worker needs the cloud extra ({exc.name} is not "
                          "installed): pip install 'osprey[cloud]' (`cloud-fallback doctor` "
                          "checks every dependency)") from None
    return Worker


def run_worker(args: argparse.Namespace) -> int:
    from edge_agent.core.metrics import MetricsServer

    Worker = _worker_class()

    config = load_cloud_config(args.config)
    data = config.model_dump()
    flags = {}
    for value, path, flag in ((args.worker_id, ("worker_id",), "--worker-id"),
                              (args.mqtt_host, ("mqtt", "host"), "--mqtt-host"),
                              (args.mqtt_port, ("mqtt", "port"), "--mqtt-port"),
                              (args.redis_url, ("cache", "redis_url"), "--redis-url"),
                              (args.metrics_port, ("metrics", "port"), "--metrics-port")):
        if value is not None:
            target = data
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
            flags[path] = flag
    config = validate_flags(CloudConfig, data, flags)
    worker = Worker(config).start()
    server = None
    if config.metrics.enabled:
        try:
            server = MetricsServer(config.metrics.host, config.metrics.port,
                                   worker.metrics.registry, worker.health).start()
        except OSError as exc:
            log.warning("metrics server not started on port %d (%s)", config.metrics.port,
                        exc)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, lambda *_: stop.set())
    log.info("worker %s: model %s; cache %s", config.worker_id, worker.model_id,
             "memory + redis" if config.cache.redis_url else "memory")
    stop.wait(args.seconds)
    worker.stop()
    if server:
        server.stop()
    log.info("worker %s stopped: %s", config.worker_id, dict(worker.stats))
    return EXIT_OK


def run_detect(args: argparse.Namespace) -> int:
    """The cloud detector as the worker runs it on each keyframe (every detector, view and
    fusion the config names), on each frame of a video. Not applied: fusion across a window's
    keyframes and the text model's opinion, which need a window and a request."""
    import sys
    import time
    from contextlib import nullcontext

    import cv2

    from cloud_fallback.model import build_detector, model_id
    from edge_agent.core.detector.jsonl import detection_line
    from edge_agent.core.errors import SourceError

    config = load_cloud_config(args.config)
    detector = build_detector(config.model)
    floor = config.model.min_score if args.score is None else args.score
    cap = cv2.VideoCapture(args.source)
    if not cap.isOpened():
        raise SourceError(f"cannot open {args.source}: give a readable video file or stream URL")
    log.info("cloud model %s (%s) on %s", model_id(config.model), config.model.merge,
             args.source)
    sink = args.out.open("w", encoding="utf-8") if args.out else nullcontext(sys.stdout)
    index = frames = 0
    start, busy = time.perf_counter(), 0.0
    try:
        with sink as out:
            while args.max_frames is None or index < args.max_frames:
                ok, image = cap.read()
                if not ok:
                    break
                if index % max(1, args.every) == 0:
                    dets = detector(image)
                    busy += detector.timings.total
                    dets = dets[dets.score >= floor]
                    out.write(detection_line(index, time.time(), image.shape[1],
                                             image.shape[0], dets))
                    frames += 1
                index += 1
    finally:
        cap.release()
    if frames:
        log.info("%d frames in %.1fs; cloud model %.0f ms/frame", frames,
                 time.perf_counter() - start, busy / frames)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), argv)
