"""`cloud-fallback doctor`: is this worker's config valid, its model loadable, its broker and
its Redis reachable with the configured credentials?"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from cloud_fallback.config import CLOUD_ENV_PREFIX, CloudConfig, load_cloud_config
from edge_agent.core.bundled import bundled_cloud_model
from edge_agent.core.doctor.machine import engine_check, machine_checks, resolve_model
from edge_agent.core.doctor.model import check_model
from edge_agent.core.doctor.report import (
    Check,
    add_report_options,
    config_check,
    fail,
    ok,
    report,
    skip,
)
from edge_agent.core.doctor.services import check_broker, check_redis
from edge_agent.core.mqtt.client import worker_client_id


def add_cloud_doctor(sub) -> None:
    p = sub.add_parser("doctor", help="check the config, the model, the broker and Redis; "
                                      "exit 1 when something the config needs is missing")
    p.add_argument("--config", type=Path, required=True, help="cloud config file (YAML)")
    add_report_options(p)
    p.set_defaults(func=doctor_cmd)


def cloud_checks(config: CloudConfig, timeout: float = 10.0) -> list[Check]:
    runtime = config.model.runtime
    if runtime.backend == "triton":
        checks = [check_triton(config)]
    else:
        path, missing = resolve_model(config.model.detector.path, bundled_cloud_model)
        checks, (trt, cuda) = machine_checks(runtime, path, set(), section="model.runtime")
        if path is None:
            checks.append(missing)
        else:
            checks.append(engine_check(runtime, path, trt, cuda))
            checks.append(check_model(config.model.detector, runtime, path, None, ""))
        for k, extra in enumerate(config.model.extra_detectors):
            if extra.path is None:
                checks.append(fail(f"extra detector {k + 1}", "no path",
                                   "give each model.extra_detectors entry a path"))
            else:
                checks.append(replace(check_model(extra, runtime, extra.path, None, ""),
                                      name=f"extra detector {k + 1}"))
    if config.model.merge == "wbf":
        checks.append(check_fusion())
    checks.append(check_text_model(config))
    checks.append(check_broker(config.mqtt, timeout=min(timeout, 5.0),
                               env_prefix=CLOUD_ENV_PREFIX,
                               client_id=worker_client_id(config.mqtt, config.worker_id)))
    if config.cache.redis_url:
        checks.append(check_redis(config.cache.redis_url, timeout=min(timeout, 5.0)))
    else:
        checks.append(skip("redis", "cache.redis_url not set: each worker caches in memory "
                                    "only"))
    return checks


def check_triton(config: CloudConfig) -> Check:
    """The model answers through Triton Inference Server, on a blank frame."""
    import numpy as np

    from cloud_fallback.model import build_detector
    from edge_agent.core.errors import OspreyError

    rt = config.model.runtime
    try:
        detector = build_detector(config.model)
        dets = detector(np.full((480, 640, 3), 114, np.uint8))
    except OspreyError as exc:
        return fail("triton", str(exc), f"start Triton at {rt.triton_url} with the model "
                                        "loaded (docs/deployment.md), or fix model.runtime")
    return ok("triton", f"{detector.backend.name}: {len(dets)} detection(s) on a blank frame")


def check_fusion() -> Check:
    try:
        import ensemble_boxes  # noqa: F401
    except ImportError:
        return fail("fusion", "model.merge: wbf needs the ensemble-boxes package",
                    "pip install 'osprey[cloud]'")
    return ok("fusion", "weighted box fusion (ensemble-boxes) available")


def check_text_model(config: CloudConfig) -> Check:
    """The image-text model loads and reads one crop and one text."""
    t = config.model.text
    if not t.enabled:
        return skip("text model", "model.text.enabled is false: no matches, no second opinion")
    try:
        import numpy as np

        from cloud_fallback.textimage import TextImageModel
        from edge_agent.core.bundled import bundled_text_model

        model = TextImageModel.load(t.path or bundled_text_model())
        crop = model.crops(np.full((64, 64, 3), 128, np.uint8),
                           np.array([[16, 16, 48, 48]], np.float32))
        dim = model.encode_crops(crop).shape[1]
        if model.encode_texts(["a red car"]).shape[1] != dim:
            return fail("text model", f"{model.folder}: the image and text embeddings differ "
                                      "in size", "export both encoders of the same model")
    except Exception as exc:  # ModelError, ImportError, onnxruntime errors: all say why
        return fail("text model", str(exc), "set model.text.path to a folder as in "
                                            "docs/models.md, or model.text.enabled: false")
    return ok("text model", f"{model.name} ({model.folder}): {dim}-d embeddings")


def doctor_cmd(args: argparse.Namespace) -> int:
    line, config = config_check(args.config, load_cloud_config, "cloud-fallback")
    return report([line, *(cloud_checks(config, args.timeout) if config else [])], args.json)
