"""Config parts shared by the edge agent and the cloud worker."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

_TOPIC_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

Layout = Literal["auto", "ssd", "tf-od", "yolox", "yolov5", "yolov8", "efficient-nms", "yolov10",
                 "rt-detr", "rf-detr", "rt-detr-postprocessed", "yolo-nas", "yolo-nas-flat",
                 "nanodet", "nanodet-plus"]
Provider = Literal["auto", "tensorrt", "cuda", "cpu"]


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def topic_safe(value: str, what: str) -> str:
    if not _TOPIC_SAFE.match(value):
        raise ValueError(
            f"{what} {value!r} must be 1-64 characters of letters, digits, '_', '.' or '-' "
            "starting with a letter or digit (it becomes part of MQTT topics)"
        )
    return value


class TlsConfig(Strict):
    enabled: bool = Field(False, description="Connect with TLS.")
    ca_file: Path | None = Field(None, description="CA bundle that signed the broker's cert.")
    cert_file: Path | None = Field(None, description="Client certificate (mutual TLS).")
    key_file: Path | None = Field(None, description="Client private key (mutual TLS).")
    insecure: bool = Field(False, description="Skip hostname verification (testing only).")

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _exists(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        if info.data.get("enabled") and path is not None and not path.expanduser().is_file():
            raise ValueError(f"{info.field_name} {str(path)!r} does not exist or is not a file")
        return path

    @model_validator(mode="after")
    def _check(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: give both or neither")
        return self


class MqttConfig(Strict):
    host: str | None = Field(
        None, description="Broker host. None: only `edge-agent demo` runs without one (it uses "
        "localhost:1883 when a broker answers there, else starts its own)."
    )
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 is usual for TLS).")
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version.")
    client_id: str | None = Field(None, description="Client id; default derives from the id.")
    username: str | None = Field(None, description="Username for the broker.")
    password: SecretStr | None = Field(None, description="Password; prefer an env override.")
    password_file: Path | None = Field(None, description="File holding the password.")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive in seconds.")
    topic_prefix: str = Field("osprey", description="First level of every topic.")
    qos: Literal[0, 1, 2] = Field(1, description="QoS of detections, events and offload.")
    max_queued_messages: int = Field(
        1000, ge=1, description="QoS>0 messages held while the broker is away; then dropped."
    )
    message_expiry_s: int = Field(60, ge=1, description="MQTT v5 expiry of detections.")
    reconnect_min_s: float = Field(1.0, gt=0, description="First reconnect delay.")
    reconnect_max_s: float = Field(60.0, gt=0, description="Cap of the reconnect backoff.")
    flush_timeout_s: float = Field(
        5.0, ge=0, le=3600, description="On stop, wait this long for the broker to take the "
        "messages not yet delivered (held while it was away, or unacknowledged); what is left "
        "is reported as never delivered.")
    tls: TlsConfig = Field(default_factory=TlsConfig)

    @field_validator("password", mode="before")
    @classmethod
    def _empty_password(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int | float) else value

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value or any(c in value for c in "+#") or value.startswith("/") \
                or value.endswith("/") or value.startswith("$"):
            raise ValueError(
                f"topic_prefix {value!r} must be a plain topic like 'osprey' or 'site/osprey' "
                "(no wildcards + or #, no leading '$', no leading or trailing '/')"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> MqttConfig:
        if self.password is not None and self.password_file is not None:
            raise ValueError("give password or password_file, not both")
        if self.password_file is not None and not self.password_file.expanduser().is_file():
            raise ValueError(f"password_file {str(self.password_file)!r} does not exist")
        if (self.password is not None or self.password_file) and not self.username:
            raise ValueError("a password needs a username")
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError(
                f"reconnect_min_s {self.reconnect_min_s} is above reconnect_max_s "
                f"{self.reconnect_max_s}"
            )
        return self

    def resolved_password(self) -> str | None:
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is not None:
            return self.password_file.expanduser().read_text(encoding="utf-8").strip()
        return None


class MetricsConfig(Strict):
    enabled: bool = Field(True, description="Serve Prometheus /metrics and /healthz.")
    host: str = Field("0.0.0.0", description="Address to listen on.")
    port: int = Field(9108, ge=0, le=65535, description="Port of the metrics server (0: any free).")


class LoggingConfig(Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO")
    format: Literal["text", "json"] = Field("text", description="json for log shippers.")

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class DetectorModelConfig(Strict):
    path: Path | None = Field(None, description="ONNX model or engine; None: the bundled one.")
    layout: Layout = Field("auto", description="Output layout; auto detects it from the model.")
    classes: list[str] | None = Field(None, description="Class names, in the model's order.")
    classes_file: Path | None = Field(None, description="File of class names, one per line.")
    score_threshold: float = Field(0.3, ge=0, le=1, description="Drop detections below this.")
    nms_iou: float = Field(0.45, gt=0, le=1, description="IoU of class-wise NMS.")
    max_detections: int = Field(100, ge=1, le=10000, description="Per frame, after NMS.")

    @field_validator("path")
    @classmethod
    def _model_file(cls, value: Path | None) -> Path | None:
        if value is None:
            return value
        if value.is_dir():
            raise ValueError("is a directory: give the model file in it (an ONNX model, "
                             ".onnx, or a TensorRT engine, .engine/.plan/.trt)")
        if value.suffix.lower() not in (".onnx", ".engine", ".plan", ".trt"):
            raise ValueError("must be an ONNX model (.onnx) or a TensorRT engine (.engine, "
                             ".plan, .trt)")
        return value

    @model_validator(mode="after")
    def _check(self) -> DetectorModelConfig:
        if self.classes is not None and self.classes_file is not None:
            raise ValueError("give classes or classes_file, not both")
        return self


class RuntimeConfig(Strict):
    backend: Literal["onnxruntime", "tensorrt"] = Field(
        "onnxruntime", description="tensorrt: native engine; falls back to onnxruntime."
    )
    providers: list[Provider] = Field(
        default_factory=lambda: ["auto"],
        description="ONNX Runtime providers in order; auto: TensorRT, CUDA, CPU as available.",
    )
    precision: Literal["fp32", "fp16", "int8"] = Field(
        "fp16", description="TensorRT precision (int8 needs a QDQ model and a capable GPU)."
    )
    engine_cache_dir: Path = Field(
        Path("~/.cache/osprey/engines"), description="Where built TensorRT engines are kept."
    )
    profile_batch: tuple[int, int, int] = Field(
        (1, 1, 1), description="TensorRT optimization profile of a model with a dynamic batch: "
        "min, opt, max batch (the agent runs one frame at a time).")
    profile_hw: tuple[int, int] | None = Field(
        None, description="TensorRT optimization profile of a model with a dynamic input "
        "size: height, width it is built for (e.g. [300, 300] for a tf-od SSD).")
    intra_op_threads: int = Field(0, ge=0, le=256, description="0: automatic (see "
                                  "leave_cores; on a GPU, the library default).")
    inter_op_threads: int = Field(0, ge=0, le=256, description="0: library default.")
    leave_cores: int = Field(0, ge=0, le=256, description=(
        "With intra_op_threads 0 and the model on the CPU: cores left to the rest of the "
        "process (capture, tracking, publishing), the model getting the others, at least one. "
        "0: the library default (every physical core)."))
    spin: bool = Field(False, description="Let ONNX Runtime's idle threads spin-wait (faster "
                                          "back-to-back runs, less CPU for everything else).")

    @field_validator("profile_batch")
    @classmethod
    def _profile_batch(cls, value: tuple[int, int, int]) -> tuple[int, int, int]:
        if not 1 <= value[0] <= value[1] <= value[2]:
            raise ValueError(f"profile_batch {list(value)} must be min <= opt <= max, each at "
                             "least 1")
        return value

    @field_validator("profile_hw")
    @classmethod
    def _profile_hw(cls, value: tuple[int, int] | None) -> tuple[int, int] | None:
        if value is not None and not all(16 <= v <= 8192 for v in value):
            raise ValueError(f"profile_hw {list(value)}: height and width from 16 to 8192")
        return value

    @field_validator("providers")
    @classmethod
    def _providers(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("providers must not be empty; use [auto] to pick automatically")
        if "auto" in value and len(value) > 1:
            raise ValueError("'auto' stands alone: use [auto] or an explicit list like "
                             "[cuda, cpu]")
        if len(set(value)) != len(value):
            raise ValueError(f"providers {value} lists one twice")
        return value


class CloudRuntimeConfig(RuntimeConfig):
    """The cloud worker's runtime: also a model served by Triton Inference Server."""

    backend: Literal["onnxruntime", "tensorrt", "triton"] = Field(  # type: ignore[assignment]
        "onnxruntime", description="tensorrt: native engine; falls back to onnxruntime. "
                                   "triton: the model served by Triton Inference Server "
                                   "(triton_url, triton_model).")
    triton_url: str = Field("localhost:8001", description="Triton's gRPC address (host:port).")
    triton_model: str | None = Field(None, description="The model's name in Triton; None: "
                                                       "the model file's stem.")


class EdgeRuntimeConfig(RuntimeConfig):
    leave_cores: int = Field(1, ge=0, le=256, description=(
        "With intra_op_threads 0 and the model on the CPU: cores left to the rest of the agent "
        "(capture, tracking, publishing), the model getting the others, at least one. On two "
        "cores, one inference thread runs as fast in the agent as two (two threads spend 40 % "
        "more CPU a frame) and leaves the pipeline a core. 0: the library default."))
