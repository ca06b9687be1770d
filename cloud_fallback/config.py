"""The cloud worker's configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from cloud_fallback.fusion import FUSION_WEIGHT
from edge_agent.core.config.common import (
    CloudRuntimeConfig,
    DetectorModelConfig,
    LoggingConfig,
    MetricsConfig,
    MqttConfig,
    Strict,
    topic_safe,
)
from edge_agent.core.config.loader import load_config

CLOUD_ENV_PREFIX = "OSPREY_CLOUD"


class BatchConfig(Strict):
    max_batch: int = Field(8, ge=1, le=256, description="Keyframes run together at most.")
    max_wait_ms: int = Field(20, ge=0, le=5000, description="Wait this long to fill a batch.")
    max_queue: int = Field(256, ge=1, le=100_000,
                           description="Requests waiting at most; more get a `busy` answer.")


class CloudCacheConfig(Strict):
    max_entries: int = Field(4096, ge=1, le=10_000_000, description="In-process LRU capacity.")
    ttl_s: float = Field(86400.0, gt=0, description="How long an answer is reused.")
    redis_url: str | None = Field(
        None, description="redis://host:6379/0 to share the cache between workers."
    )
    redis_prefix: str = Field("osprey:cache:", min_length=1, description="Key prefix in Redis.")

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("redis_url must start with redis://, rediss:// or unix://")
        return value


class LimitsConfig(Strict):
    max_payload_bytes: int = Field(4 << 20, ge=1024, description="Larger requests are refused.")
    max_keyframes: int = Field(16, ge=1, le=64, description="Keyframes per request at most.")
    max_image_side: int = Field(4096, ge=64, description="Keyframe width or height at most.")
    max_image_pixels: int = Field(16_000_000, ge=4096, description="Keyframe pixels at most.")
    per_device_rate: float = Field(
        10.0, gt=0, description="Requests a second one device may send, sustained (an agent's "
        "default budget is 6 windows a minute); past it and its burst, its requests are "
        "dropped on arrival, before any decoding, and counted `flooded`.")
    per_device_burst: int = Field(30, ge=1, description="Requests one device may send at once "
                                                        "above its rate.")
    intake_bytes: int = Field(64 << 20, ge=1 << 20, description="Bytes of requests waiting to "
                              "be read, all devices together (a quarter for one device); past "
                              "it, requests are dropped on arrival and counted `flooded`.")

    @model_validator(mode="after")
    def _intake_holds_requests(self) -> LimitsConfig:
        if self.intake_bytes < 4 * self.max_payload_bytes:
            raise ValueError(f"intake_bytes ({self.intake_bytes}) must be at least 4 x "
                             f"max_payload_bytes ({4 * self.max_payload_bytes}): one device may "
                             "hold a quarter of the intake, and a request of the largest size "
                             "must fit in it")
        return self


class TextModelConfig(Strict):
    enabled: bool = Field(True, description="Score crops of the answer's detections against "
                                            "text: queries (matches) and class prompts "
                                            "(a second opinion on labels).")
    path: Path | None = Field(
        None, description="Folder with image_encoder.onnx, text_encoder.onnx, tokenizer.json "
                          "and textimage.json (a CLIP-style export works, see "
                          "docs/models.md); null: the bundled model.")
    match_threshold: float = Field(0.5, gt=0, lt=1, description="A query matches a detection "
                                                                "at this probability or more.")
    label_weight: float = Field(0.1, ge=0, le=1, description="Weight of the text model against "
                                                             "the detector when they disagree "
                                                             "on a label; 0: labels untouched.")
    min_side_px: int = Field(6, ge=1, description="Smaller boxes are not cropped.")
    max_crops: int = Field(256, ge=1, le=10_000, description="Crops per request at most "
                                                            "(highest scores first).")


class CloudModelConfig(Strict):
    detector: DetectorModelConfig = Field(
        default_factory=lambda: DetectorModelConfig(score_threshold=0.1),
        description="The cloud detector; path None: the bundled one. A low score threshold "
                    "lets fusion across keyframes rescue weak but consistent detections.")
    runtime: CloudRuntimeConfig = Field(default_factory=CloudRuntimeConfig)
    fuse_keyframes: bool = Field(True, description="Fuse detections across a window's frames.")
    fusion_weight: float = Field(
        FUSION_WEIGHT, gt=0, le=1, description="Share of a fused score that comes from the "
        "other keyframes' support (the rest is the detection's own score).")
    extra_detectors: list[DetectorModelConfig] = Field(
        default_factory=list, description="More detectors run beside `detector` on every view "
                                          "and fused with it (needs merge: wbf); classes are "
                                          "matched by name.")
    tiles: str | None = Field(
        "2x2", description="Also run on COLSxROWS overlapping tiles of each keyframe (small "
                           "objects at twice the scale; 5 calls per keyframe at 2x2); 'auto' "
                           "(merge: wbf only): tiles of about tile_px frame pixels, 2 to 4 "
                           "columns and 2 to 3 rows; null: the whole frame only.")
    tile_px: int = Field(220, ge=64, le=4096, description="Tile side in frame pixels for "
                                                          "tiles: auto.")
    flip: bool = Field(False, description="Also run on the mirrored keyframe (needs merge: wbf).")
    merge: Literal["nms", "wbf"] = Field(
        "nms", description="How the views' boxes become one answer: nms (class-wise NMS; the "
                           "bundled model) or wbf (weighted box fusion of every detector and "
                           "view, scored by the views' agreement: the full model for real "
                           "cameras, docs/models.md).")
    min_score: float = Field(0.2, ge=0, le=1, description="Answer detections at least this "
                                                          "sure after fusion.")
    text: TextModelConfig = Field(default_factory=TextModelConfig)


    @field_validator("tiles")
    @classmethod
    def _tiles(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.lower() == "auto":
            return "auto"
        parts = value.lower().split("x")
        if len(parts) != 2 or not all(p.isdigit() and 1 <= int(p) <= 4 for p in parts):
            raise ValueError(f"tiles must look like 2x2 (1 to 4 each way), auto or null, "
                             f"got {value!r}")
        return value.lower()

    @model_validator(mode="after")
    def _merge(self) -> CloudModelConfig:
        if self.merge == "nms" and (self.extra_detectors or self.flip or self.tiles == "auto"):
            raise ValueError("extra_detectors, flip and tiles: auto need merge: wbf (weighted "
                             "box fusion); set model.merge: wbf")
        return self


class CloudConfig(Strict):
    worker_id: str = Field("cloud-1", description="This worker's id, in its stats and logs.")
    share_group: str | None = Field(
        "osprey-cloud", description="Shared-subscription group name. null: a plain "
        "subscription, for one worker alone on a broker without shared subscriptions (the "
        "demo's embedded broker); two such workers would both answer every request.")
    devices: str = Field("+", description="Device ids to serve: '+' for all, or one id.")
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    model: CloudModelConfig = Field(default_factory=CloudModelConfig)
    batching: BatchConfig = Field(default_factory=BatchConfig)
    cache: CloudCacheConfig = Field(default_factory=CloudCacheConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    metrics: MetricsConfig = Field(default_factory=lambda: MetricsConfig(port=9109))
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    stats_interval_s: float = Field(10.0, ge=0.5, le=3600,
                                    description="Period of osprey/cloud/<worker_id>/stats.")

    @field_validator("worker_id")
    @classmethod
    def _worker(cls, value: str) -> str:
        return topic_safe(value, "worker_id")

    @field_validator("share_group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        return None if value is None else topic_safe(value, "share_group")

    @field_validator("devices")
    @classmethod
    def _devices(cls, value: str) -> str:
        return value if value == "+" else topic_safe(value, "devices")

    @model_validator(mode="after")
    def _check(self) -> CloudConfig:
        if self.mqtt.host is None:
            raise ValueError("mqtt.host is required for the cloud worker (no embedded broker)")
        return self


def load_cloud_config(path: str | Path, environ=None) -> CloudConfig:
    return load_config(CloudConfig, path, CLOUD_ENV_PREFIX, environ)
