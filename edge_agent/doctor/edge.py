"""The edge agent's doctor: every check, in the order a person fixes things."""

from __future__ import annotations

from edge_agent.core.bundled import bundled_edge_model
from edge_agent.core.config.common import DetectorModelConfig, RuntimeConfig
from edge_agent.core.doctor.machine import engine_check, machine_checks, resolve_model
from edge_agent.core.doctor.model import check_model
from edge_agent.core.doctor.report import Check, skip, warn
from edge_agent.core.doctor.services import check_broker
from edge_agent.core.mqtt.client import agent_client_id
from edge_agent.doctor.cameras import check_cameras
from edge_agent.runtime.capture.opencv import describe
from edge_agent.runtime.capture.registry import has_opener
from edge_agent.runtime.config import EdgeConfig
from edge_agent.runtime.models import pick_edge_model


def edge_checks(config: EdgeConfig | None, timeout: float = 10.0) -> list[Check]:
    """Every check for `config` (or, without one, of this machine and the bundled model)."""
    runtime = config.detector if config else RuntimeConfig()
    cameras = config.cameras if config else []
    model_path, missing = resolve_model(
        config.model.path if config else None,
        (lambda: pick_edge_model(config)[0]) if config else
        (lambda: bundled_edge_model(runtime.precision)))
    kinds = {describe(c.url)[0] for c in cameras if not has_opener(c.url)}
    checks, (trt, cuda) = machine_checks(runtime, model_path, kinds)
    if model_path is not None:
        checks.append(engine_check(runtime, model_path, trt, cuda))
    camera_checks, first = check_cameras(cameras, timeout)
    if missing is not None:
        checks.append(missing)
    else:
        checks.append(check_model(config.model if config else DetectorModelConfig(), runtime,
                                  model_path, first[1] if first else None,
                                  f"a frame of camera {first[0]}" if first else ""))
    checks.append(_broker(config, timeout))
    return checks + (camera_checks or [skip("cameras", "no config given (--config FILE)")])


def _broker(config: EdgeConfig | None, timeout: float) -> Check:
    if config is None:
        return skip("broker", "no config given (--config FILE)")
    if config.mqtt.host is None:
        return warn("broker", "mqtt.host is not set: `edge-agent demo` starts its own broker, "
                    "`edge-agent run` needs one", "set mqtt.host to the broker's address")
    return check_broker(config.mqtt, timeout=min(timeout, 5.0), device_id=config.device_id,
                        client_id=agent_client_id(config.mqtt, config.device_id))
