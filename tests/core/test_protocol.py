"""The offload wire protocol on its own: requests and responses round trip, the JPEG header
check, malformed requests refused with the reason, fields added later, the limits."""

from __future__ import annotations

import msgpack
import pytest
from offload_kit import NAMES, dets, jpeg, request

from edge_agent.core.protocol import (
    Limits,
    OffloadResponse,
    ProtocolError,
    ResponseFrame,
    WireMatch,
    decode_request,
    decode_response,
    encode,
    from_wire,
    jpeg_size,
    to_wire,
)


def test_request_and_response_round_trip():
    d = dets([[1, 2, 30, 40]], [0.55], [1], [7])
    req = request(edge=[to_wire(d)])
    back = decode_request(encode(req))
    assert back == req
    assert from_wire(back.edge[0], NAMES).label(0) == "car"
    assert int(from_wire(back.edge[0], NAMES).track_id[0]) == 7
    resp = OffloadResponse(id=req.id, device="d1", camera="c1", window="c1-1", worker="w",
                           status="ok", frames=[ResponseFrame(index=3, detections=to_wire(d))])
    assert decode_response(encode(resp)) == resp


def test_only_sequential_jpegs_are_taken():
    """A progressive JPEG may repeat its scans without bound (a "scan bomb" of 4 MB kept a
    decoder busy for minutes): refused from its header, before any decoding."""
    import cv2
    import numpy as np

    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8)
    progressive = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    with pytest.raises(ProtocolError, match=r"progressive \(SOF2\): send baseline JPEGs"):
        jpeg_size(progressive)
    assert jpeg_size(cv2.imencode(".jpg", image)[1].tobytes()) == (64, 48)


def test_jpeg_size_reads_the_header_without_decoding():
    assert jpeg_size(jpeg(64, 48)) == (64, 48)
    data = bytearray(jpeg(64, 48))
    i = next(i for i in range(2, len(data)) if data[i] == 0xFF and data[i + 1] == 0xC0)
    data[i + 5:i + 9] = (60000).to_bytes(2, "big") * 2
    assert jpeg_size(bytes(data)) == (60000, 60000)
    with pytest.raises(ProtocolError, match="not a JPEG"):
        jpeg_size(b"GIF89a....")
    with pytest.raises(ProtocolError, match="no frame header"):
        jpeg_size(jpeg()[:20])


@pytest.mark.parametrize("mutate,message", [
    (lambda b: b[: len(b) // 2], "not a msgpack message"),
    (lambda b: msgpack.packb([1, 2, 3]), "expected a msgpack map"),
    (lambda b: msgpack.packb({**msgpack.unpackb(b), "v": 9}), "protocol version 9"),
    # 1.0 and true equal 1 in Python; the version is the integer 1 only
    (lambda b: msgpack.packb({**msgpack.unpackb(b), "v": 1.0}), "v: .*valid integer"),
    (lambda b: msgpack.packb({**msgpack.unpackb(b), "v": True}), "v: .*valid integer"),
    (lambda b: msgpack.packb({**msgpack.unpackb(b), "frames": "x"}), "frames"),
    (lambda b: msgpack.packb({**msgpack.unpackb(b), "edge": []}), "one per frame"),
    (lambda b: msgpack.packb({**msgpack.unpackb(b), "extra": 1}), "extra"),
    (lambda b: msgpack.packb({k: v for k, v in msgpack.unpackb(b).items() if k != "id"}),
     "id"),
    (lambda b: b + b"\0" * 5000, "over the 4096-byte cap"),
])
def test_malformed_requests_are_refused_with_the_reason(mutate, message):
    good = encode(request())
    with pytest.raises(ProtocolError, match=message):
        decode_request(mutate(good), Limits(max_payload_bytes=4096))


@pytest.mark.parametrize("line", [[0.3], [0.3, float("nan")], [0.3, float("inf")],
                                  [0.1, 0.2, 0.3]])
def test_a_malformed_scale_line_is_refused(line):
    raw = {**msgpack.unpackb(encode(request())), "perspective": line}
    with pytest.raises(ProtocolError, match="perspective"):
        decode_request(msgpack.packb(raw))


def test_fields_added_later_travel_only_when_set():
    """A peer from before `perspective`, `refused_queries` and a match's `size` (which
    forbids unknown keys) reads what a newer one sends, unless the newer one needs them."""
    assert "perspective" not in msgpack.unpackb(encode(request()))
    assert msgpack.unpackb(encode(request(perspective=[0.25, -24.0])))["perspective"] == \
        [0.25, -24.0]
    resp = OffloadResponse(id="a" * 32, device="d1", camera="c1", window="c1-1", worker="w",
                           status="ok", matches=[WireMatch(query="red car", score=0.9, index=3,
                                                           box=[1, 2, 3, 4], label="car",
                                                           class_id=1)])
    raw = msgpack.unpackb(encode(resp))
    assert "refused_queries" not in raw and "size" not in raw["matches"][0]
    assert not {"received_at", "started_at", "answered_at"} & set(raw)
    assert decode_response(encode(resp)) == resp
    sized = resp.model_copy(update={"matches": [resp.matches[0].model_copy(
        update={"size": "small"})]})
    assert msgpack.unpackb(encode(sized))["matches"][0]["size"] == "small"


def test_limits_on_keyframes_and_image_size():
    many = request(frames=[request().frames[0]] * 5, edge=[[]] * 5)
    with pytest.raises(ProtocolError, match="5 keyframes, at most 4"):
        decode_request(encode(many), Limits(max_keyframes=4))
    with pytest.raises(ProtocolError, match="JPEG of 64x48 is over the limits"):
        decode_request(encode(request()), Limits(max_image_side=32))
