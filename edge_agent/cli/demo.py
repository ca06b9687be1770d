"""`edge-agent demo`: the whole product on one machine, on embedded defaults.

The agent on a synthetic street camera with the bundled edge model, and, unless `--no-cloud`,
a cloud worker in the same process (the bundled cloud model, its image-text model and an
in-memory cache) that answers the agent's low-confidence windows over MQTT, through the same
broker: a newcomer sees detections, `refined` answers, edge-cache hits and text-query
`matches` within a minute. The broker is the one on localhost:1883 when one answers there,
otherwise one inside the process (amqtt, MQTT 3.1.1, no shared subscriptions: the demo's
worker then subscribes plainly, as the only worker).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from edge_agent.cli.run import override, run_agent
from edge_agent.core.errors import ConfigError
from edge_agent.runtime.config import load_edge_config

log = logging.getLogger("osprey.demo")

# Scenes of 10 s, half of them coming back later (the edge cache's reason to exist), a red car
# for the text query; seed 7 replays its first scene from the third segment on.
DEMO_SOURCE = ("synthetic://?seed=7&preset=normal&fps=15&segment_seconds=10"
               "&recurring_fraction=0.5&near_duplicate_fraction=0")
DEMO_QUERIES = ["red car", "person"]


def add_demo(sub, common) -> None:
    p = sub.add_parser("demo", help="the whole product on one machine: agent, cloud worker and "
                                    "caches on a synthetic camera, with an embedded broker "
                                    "when none is reachable")
    p.add_argument("--config", type=Path, help="edge config (e.g. configs/demo.yaml); without "
                                               "mqtt.host the demo's broker is used")
    p.add_argument("--source", default=None, help=f"camera URL (default {DEMO_SOURCE})")
    p.add_argument("--model", type=Path, help="ONNX model (default: the bundled edge model)")
    p.add_argument("--cloud", action=argparse.BooleanOptionalAction, default=True,
                   help="run a cloud worker in the process and offload to it (default on; "
                        "--no-cloud: the agent alone, offload off)")
    common(p)
    p.set_defaults(func=demo_cmd)


def demo_config(args: argparse.Namespace) -> dict:
    """The demo's edge config before the command line's overrides: the given file (its
    offload settings kept), or the defaults."""
    if args.config:
        data = load_edge_config(args.config).model_dump()
        if args.source:
            data["cameras"][0]["url"] = args.source
        if not args.cloud:
            data["offload"]["enabled"] = False
        if args.live is None:
            data["live"]["enabled"] = True  # the demo shows its live view unless told not to
        return data
    return {
        "device_id": "demo",
        "cameras": [{"name": "street", "url": args.source or DEMO_SOURCE, "loop": True,
                     "text_queries": DEMO_QUERIES}],
        # A window of a second, offloaded by rate: the less sure half of the windows go to
        # the cloud (from the first ones on: a low threshold until the rate has a history),
        # within a budget a newcomer's machine carries beside the agent.
        "offload": {"enabled": bool(args.cloud), "mode": "rate", "rate_target": 0.5,
                    "score_threshold": 0.2, "windows_per_minute": 30, "timeout_s": 15},
        "window": {"size": 15, "stride": 15},
        "live": {"enabled": True},
    }


class DemoCloud:
    """A cloud worker in this process: the bundled cloud and text models, memory cache."""

    def __init__(self, host: str, port: int, embedded_broker: bool, prefix: str) -> None:
        try:
            from cloud_fallback.config import CloudConfig
            from cloud_fallback.worker import Worker
        except ImportError as exc:
            raise ConfigError(
                f"the demo's cloud worker needs the cloud extra ({exc.name} is missing): "
                "pip install -e '.[demo]' (it includes the cloud extra), or run "
                "`edge-agent demo --no-cloud` for the agent alone") from None
        self.config = CloudConfig.model_validate({
            "worker_id": "demo-cloud",
            # amqtt has no shared subscriptions: the one worker subscribes plainly there.
            "share_group": None if embedded_broker else "osprey-cloud",
            "mqtt": {"host": host, "port": port, "topic_prefix": prefix,
                     "protocol": "3.1.1" if embedded_broker else "5",
                     "client_id": "osprey-demo-cloud"},
            "cache": {"redis_url": None},
            "metrics": {"enabled": False},
        })
        self.worker = Worker(self.config)

    def start(self) -> DemoCloud:
        self.worker.start()
        if not self.worker.connected.wait(10.0):
            log.warning("the demo's cloud worker has not reached the broker yet; it keeps "
                        "trying")
        log.info("cloud worker %s serving %s (model %s)", self.config.worker_id,
                 self.worker.topic, self.worker.model_id)
        return self

    @property
    def describe(self) -> str:
        return (f"cloud worker in this process (model {self.worker.model_id}, memory cache, "
                f"serving {self.worker.topic})")

    def stop(self) -> None:
        self.worker.stop()


def demo_cmd(args: argparse.Namespace) -> int:
    config = override(None, args, demo_config(args))
    cloud = None
    if config.offload.enabled:
        def cloud(host: str, port: int, embedded: bool) -> DemoCloud:
            return DemoCloud(host, port, embedded, config.mqtt.topic_prefix).start()
    return run_agent(config, seconds=args.seconds,
                     summary=True if args.summary is None else args.summary, embedded=True,
                     companion=cloud)
