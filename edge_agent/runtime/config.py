"""The edge agent's configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from edge_agent.core.config.common import (
    DetectorModelConfig,
    EdgeRuntimeConfig,
    LoggingConfig,
    MetricsConfig,
    MqttConfig,
    Strict,
    topic_safe,
)
from edge_agent.core.config.loader import load_config

# The protocol's limits on a request's text queries: a config past them would have every
# request of the camera refused.
from edge_agent.core.protocol import MAX_QUERIES, MAX_QUERY_CHARS

SOURCE_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "file", "synthetic", "usb", "gst")
"""URL schemes a camera may use. A bare path is a video file; `usb://0` or `/dev/video0` is a
USB camera; `gst://<pipeline>` is a GStreamer pipeline string."""


class ReconnectConfig(Strict):
    initial_s: float = Field(1.0, gt=0, le=600, description="First retry delay.")
    max_s: float = Field(30.0, gt=0, le=3600, description="Cap of the exponential backoff.")
    jitter: float = Field(0.2, ge=0, le=1, description="Random share added to each delay.")

    @model_validator(mode="after")
    def _check(self) -> ReconnectConfig:
        if self.initial_s > self.max_s:
            raise ValueError(f"initial_s {self.initial_s} is above max_s {self.max_s}")
        return self


class CameraConfig(Strict):
    name: str = Field(description="Camera name, used in topics: osprey/<device>/<name>/...")
    url: str = Field(description="rtsp://, http(s)://, a file path, usb://0, gst://..., "
                                 "or synthetic://?seed=1&preset=normal")
    enabled: bool = Field(True, description="Set false to keep a camera configured but off.")
    detect_fps: float | None = Field(None, gt=0, le=240, description="Cap on frames detected.")
    max_frame_age_ms: int = Field(
        500, ge=10, le=60000, description="A frame older than this is dropped, never processed."
    )
    loop: bool = Field(False, description="Loop a video file at its own frame rate.")
    open_timeout_s: float = Field(10.0, gt=0, le=300, description="Timeout to open a stream.")
    read_timeout_s: float = Field(5.0, gt=0, le=300, description="Timeout of one frame read.")
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)
    text_queries: list[str] = Field(
        default_factory=list, max_length=MAX_QUERIES,
        description="Open-vocabulary queries for the cloud, e.g. 'red car' (at most "
                    f"{MAX_QUERIES}, each at most {MAX_QUERY_CHARS} characters).",
    )
    offload: bool = Field(True, description="Allow this camera's windows to be offloaded.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return topic_safe(value, "camera name")

    @field_validator("text_queries")
    @classmethod
    def _queries(cls, value: list[str]) -> list[str]:
        out: list[str] = []
        for i, q in enumerate(value):
            q = " ".join(q.split())
            if not q:
                raise ValueError(f"text query {i} is blank; remove it or write what to look for, "
                                 "e.g. 'red car'")
            if len(q) > MAX_QUERY_CHARS:
                raise ValueError(f"text query {i} has {len(q)} characters, at most "
                                 f"{MAX_QUERY_CHARS}: {q[:40]!r}...")
            if q.lower() in (o.lower() for o in out):
                raise ValueError(f"text query {q!r} is given twice")
            out.append(q)
        return out

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("url is empty")
        if "://" not in value:
            return value  # a file path or /dev/videoN
        scheme = urlsplit(value).scheme.lower() if not value.startswith("gst://") else "gst"
        if scheme not in SOURCE_SCHEMES:
            raise ValueError(
                f"unknown scheme {scheme!r}; valid: {', '.join(s + '://' for s in SOURCE_SCHEMES)}"
                " or a file path"
            )
        return value


class WindowConfig(Strict):
    size: int = Field(16, ge=1, le=1024, description="Frames in the sliding window.")
    stride: int = Field(8, ge=1, le=1024, description="Frames between window summaries.")

    @model_validator(mode="after")
    def _check(self) -> WindowConfig:
        if self.stride > self.size:
            raise ValueError(
                f"stride {self.stride} is larger than size {self.size}: frames would be skipped"
            )
        return self


class OffloadConfig(Strict):
    enabled: bool = Field(False, description="Offload low-confidence windows to the cloud.")
    mode: Literal["threshold", "rate"] = Field(
        "threshold", description="threshold: above score_threshold; rate: least confident share."
    )
    score_threshold: float = Field(0.5, ge=0, le=1, description="Window uncertainty to offload.")
    rate_target: float = Field(0.1, gt=0, le=1, description="Share of windows in rate mode.")
    uncertain_band: tuple[float, float] = Field(
        (0.3, 0.6), description="Detection scores in [low, high) count as uncertain."
    )
    windows_per_minute: float = Field(6.0, gt=0, description="Budget: windows sent per minute.")
    bytes_per_minute: int = Field(2_000_000, ge=1024, description="Budget: bytes per minute.")
    max_in_flight: int = Field(1, ge=1, le=64, description="Requests in flight per camera.")
    keyframes: int = Field(5, ge=1, le=16, description="Keyframes sent per window.")
    jpeg_quality: int = Field(85, ge=10, le=100, description="JPEG quality of keyframes.")
    keyframe_max_side: int = Field(640, ge=64, le=4096, description="Keyframes resized to fit.")
    max_payload_bytes: int = Field(
        262_144, ge=1024, le=268_435_455, description="Cap on one request (MQTT max 256 MiB)."
    )
    timeout_s: float = Field(10.0, gt=0, le=600, description="Wait for an answer this long.")
    retries: int = Field(
        1, ge=0, le=3, description="Send a request that got no answer in timeout_s again, "
        "under the same id, this many times (a worker that died with it in flight loses it; "
        "the shared subscription gives the retry to any worker).")
    verify_min_score: float = Field(
        0.8, ge=0, le=1, description="A track takes the cloud's class for the rest of its life "
        "(and its event is marked verified) only when the cloud's box over it scores at least "
        "this: a weak cloud box relabels good tracks wrongly more often than it fixes bad ones.")
    hold_s: float = Field(
        0.0, ge=0, le=600, description="After an answer, keep publishing on `detections` the "
        "static objects the cloud found (same place on its first and last keyframe) that no "
        "edge box covers, for this long, marked held; 0: never (the default: on the training "
        "clips it did not raise mAP, see docs/benchmarks.md).")
    hold_score_factor: float = Field(
        0.7, gt=0, le=1, description="Held boxes are published at the cloud's score times this.")
    breaker_failures: int = Field(3, ge=1, description="Failures in a row that open the breaker.")
    breaker_cooldown_s: float = Field(30.0, gt=0, description="Breaker stays open this long.")

    @field_validator("uncertain_band")
    @classmethod
    def _band(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0 <= low < high <= 1:
            raise ValueError(f"uncertain_band must be [low, high] with 0 <= low < high <= 1, "
                             f"got {list(value)}")
        return value


class TrackerConfig(Strict):
    high: float = Field(0.5, ge=0, le=1, description="Score that may start a track.")
    low: float = Field(0.15, ge=0, le=1, description="Score that may keep a track alive.")
    match_iou: float = Field(0.3, gt=0, le=1, description="IoU (of widened boxes) to match.")
    min_hits: int = Field(2, ge=1, le=100, description="Matches before a track is confirmed.")
    max_age: int = Field(30, ge=1, le=10000, description="Frames unseen before a track ends.")

    @model_validator(mode="after")
    def _check(self) -> TrackerConfig:
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        return self


class EventsConfig(Strict):
    update_interval_s: float = Field(
        5.0, ge=0, le=3600, description="At most one `update` event per track this often."
    )
    min_score_gain: float = Field(
        0.05, ge=0, le=1, description="Top-score gain that makes an update (a better snapshot)."
    )
    snapshots: bool = Field(True, description="Publish a JPEG of each event's best frame.")
    snapshot_quality: int = Field(80, ge=10, le=100, description="JPEG quality of snapshots.")
    snapshot_max_side: int = Field(640, ge=64, le=4096, description="Snapshots fit this side.")


class EdgeCacheConfig(Strict):
    enabled: bool = Field(True, description="Reuse cloud answers for recurring scenes.")
    max_entries: int = Field(512, ge=1, le=1_000_000,
                             description="LRU capacity (about 50 KB of memory an entry).")
    ttl_s: float = Field(3600.0, gt=0, description="An answer is reused for this long.")
    hamming_radius: int = Field(10, ge=0, le=64, description="Max perceptual-hash distance.")
    block_threshold: float = Field(
        6.0, ge=0, le=255, description="Max mean difference, in any colour channel, of any "
        "block of 1/32 x 1/18 of the frame (after matching global brightness and contrast): a "
        "small new object breaks the match.")
    edge_agreement: float = Field(
        1.0, ge=0, le=1, description="The edge's detections at the fingerprint's frames must "
        "agree this well (F1, same class, IoU >= 0.5) with the edge's when the answer was "
        "stored; 0: no check.")


class LiveConfig(Strict):
    enabled: bool = Field(False, description="Serve the live view page (frames with boxes, "
                                             "state, counters); on in the demo.")
    host: str = Field("127.0.0.1", description="Address to listen on (localhost: this "
                                               "machine only).")
    port: int = Field(9110, ge=0, le=65535, description="Port of the live view (0: any free).")
    max_fps: float = Field(10.0, gt=0, le=60, description="Frames drawn per second per "
                                                          "camera at most, while watched.")
    username: str | None = Field(None, description="Basic auth user name (with password).")
    password: SecretStr | None = Field(None, description="Basic auth password; prefer an env "
                                                         "override.")

    @model_validator(mode="after")
    def _auth(self) -> LiveConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("live.username and live.password go together: set both for "
                             "basic auth, or neither")
        return self


class HomeAssistantConfig(Strict):
    enabled: bool = Field(False, description="Announce the agent and its cameras to Home "
                                             "Assistant by MQTT discovery.")
    prefix: str = Field("homeassistant", description="Home Assistant's discovery prefix.")
    classes: list[str] | None = Field(
        None, description="Classes with a count sensor per camera; null: every class of the "
                          "model.")
    name: str | None = Field(None, description="The device's name in Home Assistant; "
                                               "null: Osprey <device_id>.")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return topic_safe(value, "homeassistant.prefix")


class EdgeConfig(Strict):
    device_id: str = Field("osprey-edge", description="Device id, used in every topic.")
    cameras: list[CameraConfig] = Field(min_length=1, description="At least one camera.")
    model: DetectorModelConfig = Field(default_factory=DetectorModelConfig)
    detector: EdgeRuntimeConfig = Field(default_factory=EdgeRuntimeConfig)
    window: WindowConfig = Field(default_factory=WindowConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    offload: OffloadConfig = Field(default_factory=OffloadConfig)
    cache: EdgeCacheConfig = Field(default_factory=EdgeCacheConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    live: LiveConfig = Field(default_factory=LiveConfig)
    homeassistant: HomeAssistantConfig = Field(default_factory=HomeAssistantConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    stats_interval_s: float = Field(
        10.0, ge=0.5, le=3600, description="Period of the stats message on osprey/<device>/stats."
    )

    @field_validator("device_id")
    @classmethod
    def _device(cls, value: str) -> str:
        return topic_safe(value, "device_id")

    @model_validator(mode="after")
    def _unique(self) -> EdgeConfig:
        names = [c.name for c in self.cameras]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"camera names must be unique; repeated: {', '.join(dup)}")
        return self


EDGE_ENV_PREFIX = "OSPREY_EDGE"


def load_edge_config(path: str | Path, environ=None) -> EdgeConfig:
    return load_config(EdgeConfig, path, EDGE_ENV_PREFIX, environ)
