"""The offload wire protocol: one definition, used by the edge agent and the cloud worker.

Requests and responses are msgpack maps validated by pydantic models (strict types, no unknown
keys, sizes bounded). Binary JPEG keyframes travel as msgpack bin. A keyframe's JPEG header is
read for its dimensions before anything decodes it, so a header claiming 60000x60000 is refused
without allocating a byte of pixels.

Request (edge -> `osprey/{d}/offload/request`):
    v, kind="request", id, device, camera, window, sent_at, expires_at, reply_to, corr,
    frames: [{index, captured_at, width, height, jpeg}], edge: [[detection]] per frame,
    queries: [text], perspective: [a, b] (the camera's scale line, or empty)
Response (worker -> `reply_to`, MQTT v5 ResponseTopic; `reply_to` and `corr` are in the
envelope too so a 3.1.1 broker works):
    v, kind="response", id, device, camera, window, worker, status ("ok" | "error"), error,
    frames: [{index, detections: [detection]}], model, infer_ms, cache ("none" | "memory" |
    "redis"), matches: [{query, score, index, box, label, class_id, size}] (text queries that
    describe a detection), text_model, refused_queries: [{query, reason}] (queries the text
    model cannot read: words it does not know)
Detection: {class_id, label, score, box: [x1, y1, x2, y2] in the original frame's pixels,
    track_id (edge only, -1 for none)}
"""

from __future__ import annotations

import math
import struct
import time
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgpack
import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from edge_agent.core.detector.detections import Detections

PROTOCOL_VERSION = 1


class ProtocolError(ValueError):
    """A message that is not a valid request or response; the text says what is wrong."""


MAX_QUERIES = 32
"""Text queries a request may carry."""
MAX_QUERY_CHARS = 256
"""Characters of one text query."""


@dataclass(frozen=True)
class Limits:
    max_payload_bytes: int = 4 << 20
    max_keyframes: int = 16
    max_image_side: int = 4096
    max_image_pixels: int = 16_000_000
    max_detections: int = 1000
    max_queries: int = MAX_QUERIES


def _version(value: int) -> int:
    if value != PROTOCOL_VERSION:
        raise ValueError(f"protocol version {value} is not supported (this side speaks "
                         f"{PROTOCOL_VERSION})")
    return value


Version = Annotated[StrictInt, AfterValidator(_version)]
"""The protocol version: the integer 1 (never 1.0 or true, which equal it in Python)."""


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


Box = Annotated[list[float], Field(min_length=4, max_length=4)]
Name = Annotated[str, Field(min_length=1, max_length=128)]


class WireDetection(_Wire):
    class_id: int = Field(ge=0, le=100_000)
    label: Annotated[str, Field(max_length=128)]
    score: float = Field(ge=0.0, le=1.0)
    box: Box
    track_id: int = -1


class Keyframe(_Wire):
    index: int = Field(ge=0)
    captured_at: float
    width: int = Field(ge=1, le=100_000, description="original frame width")
    height: int = Field(ge=1, le=100_000)
    jpeg: bytes = Field(min_length=4)


class _Envelope(_Wire):
    """What requests and responses both carry: the request id and which window it is."""

    id: Annotated[str, Field(min_length=8, max_length=64)]
    device: Name
    camera: Name
    window: Name


class OffloadRequest(_Envelope):
    v: Version = PROTOCOL_VERSION
    kind: Literal["request"] = "request"
    sent_at: float
    expires_at: float
    reply_to: Annotated[str, Field(min_length=1, max_length=512)]
    corr: Annotated[bytes, Field(max_length=64)] = b""
    frames: list[Keyframe] = Field(min_length=1)
    edge: list[list[WireDetection]]
    queries: list[Annotated[str, Field(max_length=MAX_QUERY_CHARS)]] = []
    perspective: Annotated[list[float], Field(max_length=2)] = []
    """The camera's scale line [a, b] (edge_agent.core.sizes), for sizes in queries;
    empty until the agent has learned it."""

    @field_validator("perspective")
    @classmethod
    def _perspective(cls, value: list[float]) -> list[float]:
        if value and (len(value) != 2 or not all(math.isfinite(v) for v in value)):
            raise ValueError(f"perspective is [a, b] (two finite numbers) or empty, not "
                             f"{value!r}")
        return value

    @model_validator(mode="after")
    def _shape(self) -> OffloadRequest:
        if len(self.edge) != len(self.frames):
            raise ValueError(f"edge has {len(self.edge)} detection lists for "
                             f"{len(self.frames)} frames; one per frame")
        return self


class ResponseFrame(_Wire):
    index: int = Field(ge=0)
    detections: list[WireDetection]


class WireMatch(_Wire):
    """A detection that a text query describes, by the cloud's image-text model."""

    query: Annotated[str, Field(max_length=MAX_QUERY_CHARS)]
    score: float = Field(ge=0.0, le=1.0, description="probability that the query is true of "
                                                     "the crop")
    index: int = Field(ge=0, description="frame index of the keyframe")
    box: Box
    label: Annotated[str, Field(max_length=128)]
    class_id: int = Field(ge=0, le=100_000)
    size: Literal["small", "medium", "large"] | None = None
    """The detection's size for its class, when the request carried the camera's scale."""


class RefusedQuery(_Wire):
    """A text query the cloud's image-text model cannot read, and why."""

    query: Annotated[str, Field(max_length=MAX_QUERY_CHARS)]
    reason: Annotated[str, Field(max_length=512)]


class OffloadResponse(_Envelope):
    v: Version = PROTOCOL_VERSION
    kind: Literal["response"] = "response"
    worker: Name
    status: Literal["ok", "error"]
    error: Annotated[str, Field(max_length=1024)] | None = None
    frames: list[ResponseFrame] = []
    model: Annotated[str, Field(max_length=128)] = ""
    infer_ms: float = 0.0
    cache: Literal["none", "memory", "redis"] = "none"
    matches: list[WireMatch] = []
    text_model: Annotated[str, Field(max_length=128)] = ""
    refused_queries: Annotated[list[RefusedQuery], Field(max_length=32)] = []
    received_at: float | None = None
    """The worker's clock (epoch seconds) when the request arrived, when it started on it,
    and when the answer left: with the agent's own send and receive times, the round trip
    splits into upload, queue, model and download (clocks in sync, e.g. NTP)."""
    started_at: float | None = None
    answered_at: float | None = None


def new_request_id() -> str:
    return uuid.uuid4().hex


OMITTED_WHEN_EMPTY = ("perspective", "refused_queries", "size", "received_at", "started_at",
                      "answered_at")
"""Fields added to protocol version 1 after its first release: left out of a message when
empty, so a peer that predates them (and forbids unknown keys) still reads it."""


def encode(message: _Wire) -> bytes:
    return msgpack.packb(wire_dict(message), use_bin_type=True)


def wire_dict(message: _Wire) -> dict[str, Any]:
    """The message as it travels (and as caches keep it): `OMITTED_WHEN_EMPTY` left out when
    empty, in nested messages too."""
    def strip(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items()
                    if not (k in OMITTED_WHEN_EMPTY and v in (None, [], ()))}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    return strip(message.model_dump())


def _unpack(data: bytes, limit: int) -> dict[str, Any]:
    if len(data) > limit:
        raise ProtocolError(f"message of {len(data)} bytes is over the {limit}-byte cap")
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True,
                              max_bin_len=limit, max_str_len=1 << 16,
                              max_array_len=100_000, max_map_len=64)
    except Exception as exc:  # msgpack raises several types for broken input
        raise ProtocolError(f"not a msgpack message: {type(exc).__name__}: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"expected a msgpack map, got {type(obj).__name__}")
    return obj


def _validated(model: type[_Wire], obj: dict[str, Any]) -> Any:
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '<message>'}: {e['msg']}"
            for e in exc.errors()[:5])
        raise ProtocolError(f"invalid {model.__name__}: {problems}") from None


def decode_request(data: bytes, limits: Limits = Limits()) -> OffloadRequest:
    obj = _unpack(data, limits.max_payload_bytes)
    if obj.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {obj.get('v')!r} is not supported "
                            f"(this side speaks {PROTOCOL_VERSION})")
    req = _validated(OffloadRequest, obj)
    if len(req.frames) > limits.max_keyframes:
        raise ProtocolError(f"{len(req.frames)} keyframes, at most {limits.max_keyframes}")
    if len(req.queries) > limits.max_queries:
        raise ProtocolError(f"{len(req.queries)} text queries, at most {limits.max_queries}")
    for i, (kf, dets) in enumerate(zip(req.frames, req.edge, strict=True)):
        w, h = jpeg_size(kf.jpeg)
        if max(w, h) > limits.max_image_side or w * h > limits.max_image_pixels:
            raise ProtocolError(f"frames[{i}]: JPEG of {w}x{h} is over the limits "
                                f"({limits.max_image_side} px a side, "
                                f"{limits.max_image_pixels} pixels)")
        if len(dets) > limits.max_detections:
            raise ProtocolError(f"edge[{i}]: {len(dets)} detections, at most "
                                f"{limits.max_detections}")
    return req


def decode_response(data: bytes, limits: Limits = Limits()) -> OffloadResponse:
    obj = _unpack(data, limits.max_payload_bytes)
    if obj.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {obj.get('v')!r} is not supported")
    return _validated(OffloadResponse, obj)


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


BASELINE = {0xC0: "baseline", 0xC1: "extended sequential"}
"""The JPEG processes a worker decodes: sequential, one pass over the data. A progressive
JPEG (SOF2) may repeat its scans without bound, and libjpeg decodes every one: 650 KB of
them can keep a decoder busy for most of a minute. The edge sends baseline JPEGs."""
_SOF_NAMES = {0xC2: "progressive", 0xC3: "lossless", 0xC5: "differential sequential",
              0xC6: "differential progressive", 0xC7: "differential lossless",
              0xC9: "arithmetic sequential", 0xCA: "arithmetic progressive",
              0xCB: "arithmetic lossless", 0xCD: "arithmetic differential sequential",
              0xCE: "arithmetic differential progressive",
              0xCF: "arithmetic differential lossless"}


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's frame header, without decoding; ProtocolError when the
    bytes are not a JPEG, the header is cut short, or the JPEG is not sequential (BASELINE)."""
    w, h, marker = jpeg_frame(data)
    if marker not in BASELINE:
        raise ProtocolError(f"keyframe JPEG is {_SOF_NAMES.get(marker, hex(marker))} (SOF"
                            f"{marker - 0xC0}): send baseline JPEGs (the edge does); other "
                            "kinds are refused unread, since their scans can cost minutes "
                            "of decoding")
    return w, h


def jpeg_frame(data: bytes) -> tuple[int, int, int]:
    """(width, height, SOF marker) from a JPEG's frame header, without decoding."""
    if data[:2] != b"\xff\xd8":
        raise ProtocolError("keyframe is not a JPEG (no SOI marker)")
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise ProtocolError(f"keyframe JPEG is corrupt at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if marker in _SOF:
            if i + 9 > n:
                break
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            if w == 0 or h == 0:
                raise ProtocolError(f"keyframe JPEG declares a size of {w}x{h}")
            return w, h, marker
        if marker == 0xDA:  # start of scan before any frame header
            break
        i += 2 + length
    raise ProtocolError("keyframe JPEG has no frame header (truncated?)")


def to_wire(dets: Detections) -> list[WireDetection]:
    ids = dets.track_id if dets.track_id is not None else np.full(len(dets), -1)
    return [WireDetection(class_id=int(dets.class_id[i]), label=dets.label(i),
                          score=round(float(dets.score[i]), 4),
                          box=[round(float(v), 1) for v in dets.xyxy[i]],
                          track_id=int(ids[i]))
            for i in range(len(dets))]


def from_wire(items: list[WireDetection], class_names: tuple[str, ...] = ()) -> Detections:
    """Detections from the wire, their classes matched to `class_names` by label: another
    model's ids mean nothing here (a COCO cloud's 5 is a bus, an edge model's 5 a truck).
    Labels `class_names` lacks are added after them, in order of appearance."""
    if not items:
        return Detections.empty(class_names)
    names = list(class_names)
    ids = []
    for d in items:
        label = d.label or (names[d.class_id] if d.class_id < len(names)
                            else f"class_{d.class_id}")
        if label not in names:
            names.append(label)
        ids.append(names.index(label))
    return Detections(np.array([d.box for d in items], np.float32),
                      np.array([d.score for d in items], np.float32),
                      np.array(ids, np.int32), tuple(names),
                      np.array([d.track_id for d in items], np.int64))


def expired(req: OffloadRequest, now: float | None = None) -> bool:
    return (now if now is not None else time.time()) > req.expires_at
