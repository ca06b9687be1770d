"""`edge-agent run` and `edge-agent demo`: the agent as a long-running process."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from edge_agent.core.cli import EXIT_ERROR, EXIT_OK
from edge_agent.core.config.loader import validate_flags
from edge_agent.core.detector import Detector
from edge_agent.core.metrics import MetricsServer
from edge_agent.runtime.config import EdgeConfig, load_edge_config
from edge_agent.runtime.live import LiveView
from edge_agent.runtime.metrics import AgentMetrics
from edge_agent.runtime.models import pick_edge_model
from edge_agent.runtime.mqtt.embedded import EmbeddedBroker, broker_reachable
from edge_agent.runtime.mqtt.publisher import Publisher
from edge_agent.runtime.pipeline import Agent

log = logging.getLogger("osprey.run")


class Stoppable(Protocol):
    def stop(self) -> None: ...

def add_run(sub) -> None:
    p = sub.add_parser("run", help="run the agent: cameras -> detector -> MQTT")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", type=Path, help="edge config file (YAML)")
    src.add_argument("--source", help="shorthand for a one-camera config: a camera URL")
    p.add_argument("--model", type=Path, help="ONNX model or engine (default: the config's, "
                                              "else the bundled one)")
    common_options(p)
    p.set_defaults(func=run_cmd)


def common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mqtt-host", default=None, help="broker host (overrides the config)")
    p.add_argument("--mqtt-port", type=int, default=None, help="broker port (default 1883)")
    p.add_argument("--device", default=None, help="device id (overrides the config)")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="Prometheus /metrics and /healthz port (default 9108)")
    p.add_argument("--live", action=argparse.BooleanOptionalAction, default=None,
                   help="serve the live view page (default: the config's live.enabled; on "
                        "in the demo)")
    p.add_argument("--live-port", type=int, default=None,
                   help="live view port (default 9110; 0: any free)")
    p.add_argument("--seconds", type=float, default=None, help="stop after this long")
    p.add_argument("--summary", action=argparse.BooleanOptionalAction, default=None,
                   help="print a live one-line summary (default: on for demo)")


def override(config: EdgeConfig | None, args: argparse.Namespace,
             data: dict[str, Any] | None = None) -> EdgeConfig:
    """The config with the command line's overrides, each checked where the config file's
    values are: a bad flag is reported in the config errors' format, naming the flag."""
    data = config.model_dump() if config is not None else data
    flags: dict[tuple, str] = {}
    for value, loc, flag in ((args.model, ("model", "path"), "--model"),
                             (args.mqtt_host, ("mqtt", "host"), "--mqtt-host"),
                             (args.mqtt_port, ("mqtt", "port"), "--mqtt-port"),
                             (args.device, ("device_id",), "--device"),
                             (args.metrics_port, ("metrics", "port"), "--metrics-port"),
                             (args.live, ("live", "enabled"), "--live"),
                             (args.live_port, ("live", "port"), "--live-port")):
        if value is None:
            continue
        target = data
        for key in loc[:-1]:
            target = target.setdefault(key, {})
        target[loc[-1]] = value
        flags[loc] = flag
    if getattr(args, "source", None):
        flags[("cameras", 0, "url")] = "--source"
    return validate_flags(EdgeConfig, data, flags)


def run_cmd(args: argparse.Namespace) -> int:
    if args.config:
        config = load_edge_config(args.config)
        data = None
    else:
        data = {"cameras": [{"name": "cam0", "url": args.source}]}
        config = None
    return run_agent(override(config, args, data), seconds=args.seconds,
                     summary=bool(args.summary), embedded=False)


def run_agent(config: EdgeConfig, *, seconds: float | None, summary: bool,
              embedded: bool, companion: Callable[[str, int, bool], Stoppable] | None = None
              ) -> int:
    """Run until every camera has ended, `seconds` pass, or SIGINT/SIGTERM; then a clean stop
    (open events end, final stats, retained `stopped`). `companion(host, port,
    embedded_broker)` starts something beside the agent on its broker (the demo's cloud
    worker); it is stopped after the agent."""
    model_path, why = pick_edge_model(config)
    detector = Detector.from_config(config.model, config.detector, default_path=model_path)
    log.info("model %s (%s): layout %s on %s", Path(model_path).name, why, detector.layout,
             detector.backend.name)
    host, port = config.mqtt.host, config.mqtt.port
    broker = None
    if host is None:
        if not embedded:
            raise ValueError("mqtt.host is not set: give the broker's address in the config or "
                             "with --mqtt-host (only `edge-agent demo` starts a broker itself)")
        host = "127.0.0.1"
    mqtt_config = config.mqtt
    if embedded and not broker_reachable(host, port):
        broker = EmbeddedBroker(host, port).start()
        mqtt_config = mqtt_config.model_copy(update={"protocol": "3.1.1"})
    try:
        helper = companion(host, port, broker is not None) if companion else None
    except BaseException:
        if broker:
            broker.stop()
        raise
    publisher = Publisher(mqtt_config, config.device_id, host=host, port=port).start()
    metrics = AgentMetrics()
    live = None
    if config.live.enabled:
        try:
            live = LiveView(config.live, [c.name for c in config.cameras if c.enabled],
                            lambda: agent.live_state()).start()
        except OSError as exc:
            log.warning("live view not started on %s:%d (%s); the agent runs without it: "
                        "set live.port to a free port", config.live.host, config.live.port,
                        exc)
            live = None
    agent = Agent(config, detector, publisher, model_id=Path(model_path).stem, metrics=metrics,
                  live=live, configuration_url=live.url if live else None)
    server = None
    if config.metrics.enabled:
        try:
            server = MetricsServer(config.metrics.host, config.metrics.port, metrics.registry,
                                   agent.health).start()
        except OSError as exc:
            log.warning("metrics server not started on %s:%d (%s); the agent runs without it: "
                        "set metrics.port to a free port", config.metrics.host,
                        config.metrics.port, exc)
    if not publisher.connected.wait(5.0):
        log.warning("broker %s:%d not reachable yet; retrying in the background, QoS %d "
                    "messages are held (up to %d)", host, port, mqtt_config.qos,
                    mqtt_config.max_queued_messages)
    _banner(config, host, port, broker is not None, server, Path(model_path).name,
            getattr(helper, "describe", None), live)
    stop = threading.Event()
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    if threading.current_thread() is threading.main_thread():
        for s in previous:
            signal.signal(s, lambda *_: stop.set())
    agent.start()
    started = time.monotonic()
    line = _SummaryLine(agent) if summary else None
    undelivered = 0
    try:
        while not stop.is_set():
            if agent.wait(1.0):
                break
            if seconds is not None and time.monotonic() - started >= seconds:
                break
            if line:
                line.show()
    finally:
        agent.stop()
        if line:
            line.show(final=True)
        undelivered = publisher.stop()
        if live:
            live.stop()
        if helper:
            helper.stop()
        if server:
            server.stop()
        if broker:
            broker.stop()
        if threading.current_thread() is threading.main_thread():
            for s, handler in previous.items():
                signal.signal(s, handler)
    if undelivered:
        print(f"{undelivered} messages (detections, events, stats) were never delivered to "
              f"the broker {host}:{port}: nothing a subscriber saw covers them. Check the "
              "broker and mqtt.host/port; mqtt.flush_timeout_s sets how long a stop waits "
              "for it", file=sys.stderr, flush=True)
        return EXIT_ERROR
    return EXIT_OK


def _banner(config: EdgeConfig, host: str, port: int, embedded: bool,
            server: MetricsServer | None, model: str, cloud: str | None = None,
            live: LiveView | None = None) -> None:
    prefix = f"{config.mqtt.topic_prefix}/{config.device_id}"
    where = f"{host}:{port}" + (" (embedded broker, MQTT 3.1.1)" if embedded else "")
    lines = [f"Osprey edge agent: {len(config.cameras)} camera(s), model {model}, "
             f"MQTT {where}",
             # -T leaves out the binary JPEG snapshots, which would fill the terminal
             f"  subscribe:  mosquitto_sub -h {host} -p {port} -t '{prefix}/#' "
             f"-T '{prefix}/+/snapshot' -v",
             f"  detections: {prefix}/<camera>/detections   events: {prefix}/<camera>/events"
             f"   stats: {prefix}/stats",
             f"  snapshots:  {prefix}/<camera>/snapshot (JPEG, retained; e.g. mosquitto_sub "
             f"-h {host} -p {port} -t '{prefix}/<camera>/snapshot' -C 1 > snap.jpg)"]
    if config.offload.enabled:
        lines.append(f"  offload:    on; answers on {prefix}/<camera>/refined, text-query "
                     f"matches on {prefix}/<camera>/matches"
                     + (f"; {cloud}" if cloud else ""))
    if live:
        lines.append(f"  live view:  {live.url}   (frames with boxes, state, counters)")
    if server:
        shown = "localhost" if config.metrics.host in ("0.0.0.0", "::") else config.metrics.host
        lines.append(f"  metrics:    http://{shown}:{server.port}/metrics   "
                     f"health: /healthz")
    print("\n".join(lines), file=sys.stderr, flush=True)


class _SummaryLine:
    """One line, rewritten each second on a terminal (a new line otherwise)."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.offload = agent.config.offload.enabled
        self.last = agent.snapshot()
        self.at = time.monotonic()
        self.tty = sys.stderr.isatty()

    def show(self, final: bool = False) -> None:
        snap, now = self.agent.snapshot(), time.monotonic()
        span = max(1e-6, now - self.at)
        parts = []
        for name, c in snap["cameras"].items():
            old = self.last["cameras"][name]
            fps_in = (c["frames_in"] - old["frames_in"]) / span
            fps = (c["processed"] - old["processed"]) / span
            lat = c["last_latency_ms"]
            text = (f"{name} {c['state']} in {fps_in:4.1f} fps, detect {fps:4.1f} fps, "
                    f"latency {lat if lat is None else round(lat):>4} ms, "
                    f"tracks {c['tracks']}, events {c['events']}")
            if self.offload:
                text += (f", refined {c['refined']}, cache hits {c['cache_hits']}, "
                         f"matches {c['matches']}")
            parts.append(text)
        m = snap["mqtt"]
        parts.append(f"mqtt {'up' if m['connected'] else 'DOWN'} {m['published']} sent")
        text = " | ".join(parts)
        with contextlib.suppress(OSError):
            if self.tty and not final:
                print(f"\r{text}\x1b[K", end="", file=sys.stderr, flush=True)
            else:
                print(("\r" if self.tty else "") + text, file=sys.stderr, flush=True)
        self.last, self.at = snap, now
