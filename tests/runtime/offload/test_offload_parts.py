"""The offload parts on their own: wire protocol, JPEG header checks, policy, budget, breaker,
keyframes, the edge cache on real synthetic-world frames."""

from __future__ import annotations

import cv2
import msgpack
import numpy as np
import pytest

from edge_agent.core.detector.detections import Detections
from edge_agent.core.protocol import (
    Keyframe,
    Limits,
    OffloadRequest,
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
from edge_agent.runtime.capture.frame import Frame
from edge_agent.runtime.config import OffloadConfig
from edge_agent.runtime.offload.cache import EdgeCache, fingerprint
from edge_agent.runtime.offload.keyframes import select_keyframes, sharpness
from edge_agent.runtime.offload.merge import merge_window
from edge_agent.runtime.offload.policy import Breaker, OffloadPolicy, TokenBucket, window_score
from edge_agent.runtime.window import SlidingWindow
from edge_agent.tools.sim import SyntheticWorld, WorldOptions

NAMES = ("person", "car", "truck", "cyclist", "dog")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def jpeg(w: int = 64, h: int = 48) -> bytes:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : w // 2] = (40, 120, 200)
    return cv2.imencode(".jpg", img)[1].tobytes()


def request(**over) -> OffloadRequest:
    base = dict(id="a" * 32, device="d1", camera="c1", window="c1-1", sent_at=1.0,
                expires_at=2e9, reply_to="osprey/d1/offload/response", corr=b"x",
                frames=[Keyframe(index=3, captured_at=1.0, width=64, height=48, jpeg=jpeg())],
                edge=[[]], queries=["red car"])
    base.update(over)
    return OffloadRequest(**base)


def dets(boxes, scores, classes, ids=None) -> Detections:
    return Detections(np.array(boxes, np.float32).reshape(-1, 4),
                      np.array(scores, np.float32), np.array(classes, np.int32), NAMES,
                      None if ids is None else np.array(ids, np.int64))


# protocol ------------------------------------------------------------------------------


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
    assert decode_response(encode(resp)) == resp
    sized = resp.model_copy(update={"matches": [resp.matches[0].model_copy(
        update={"size": "small"})]})
    assert msgpack.unpackb(encode(sized))["matches"][0]["size"] == "small"


def test_the_scale_line_keys_the_cloud_cache_only_for_a_size_query():
    from cloud_fallback.cache import content_key

    plain, line = request(), request(perspective=[0.25, -24.0])
    assert content_key(plain, "m") == content_key(line, "m")
    sized = request(queries=["a small dog"])
    assert content_key(sized, "m") != content_key(
        request(queries=["a small dog"], perspective=[0.25, -24.0]), "m")


def test_limits_on_keyframes_and_image_size():
    many = request(frames=[request().frames[0]] * 5, edge=[[]] * 5)
    with pytest.raises(ProtocolError, match="5 keyframes, at most 4"):
        decode_request(encode(many), Limits(max_keyframes=4))
    with pytest.raises(ProtocolError, match="JPEG of 64x48 is over the limits"):
        decode_request(encode(request()), Limits(max_image_side=32))


# policy --------------------------------------------------------------------------------


def test_token_bucket_refills_at_its_rate():
    clock = Clock()
    bucket = TokenBucket(60, burst=2, clock=clock)  # one a second, two at most
    assert bucket.take() and bucket.take() and not bucket.take()
    clock.t += 1.0
    assert bucket.take() and not bucket.take()
    clock.t += 100
    assert bucket.tokens <= 2 and bucket.take() and bucket.take() and not bucket.take()


def test_breaker_opens_then_half_opens_then_closes():
    clock = Clock()
    b = Breaker(failures=3, cooldown_s=30, clock=clock)
    for _ in range(2):
        b.failure()
    assert b.state == "closed" and b.allow()
    b.failure()
    assert b.state == "open" and not b.allow() and b.opens == 1
    clock.t += 30
    assert b.state == "half-open" and b.allow() and not b.allow()  # one trial only
    b.failure()
    assert b.state == "open" and b.opens == 1
    clock.t += 30
    assert b.allow()
    b.success()
    assert b.state == "closed" and b.allow()


def window_of(scores_per_frame, ids_per_frame=None):
    w = SlidingWindow("c", len(scores_per_frame), len(scores_per_frame))
    img = np.zeros((36, 64, 3), np.uint8)
    summary = None
    for i, scores in enumerate(scores_per_frame):
        n = len(scores)
        ids = (ids_per_frame[i] if ids_per_frame else list(range(1, n + 1)))
        d = dets([[0, 0, 10, 10]] * n, scores, [1] * n, ids)
        summary = w.push(Frame("c", i, 0.0, 0.0, img), d)
    return summary


def test_window_score_rises_with_uncertainty_and_flicker():
    sure = window_of([[0.95, 0.9]] * 8)
    unsure = window_of([[0.45, 0.5]] * 8)
    flicker = window_of([[0.95, 0.9]] * 8, [[1, 2]] * 2 + [[3, 4]] * 2 + [[5, 6]] * 2
                        + [[7, 8]] * 2)
    band = (0.3, 0.6)
    assert window_score(sure, band) < window_score(flicker, band)
    assert window_score(sure, band) < window_score(unsure, band)
    assert 0.0 <= window_score(unsure, band) <= 1.0
    assert window_score(window_of([[]] * 8), band) == 0.0


def test_policy_threshold_budget_in_flight_and_rate_mode():
    clock = Clock()
    cfg = OffloadConfig(enabled=True, score_threshold=0.5, windows_per_minute=6,
                        max_in_flight=1)
    policy = OffloadPolicy(cfg, clock=clock)
    assert policy.decide(0.4, 0).reason == "below_threshold"
    assert policy.decide(0.9, 1).reason == "in_flight"
    assert policy.decide(0.9, 0).send
    assert policy.charge(1000)
    assert policy.decide(0.9, 0).reason == "budget"  # burst of 1 used, refills in 10 s
    clock.t += 10
    assert policy.decide(0.9, 0).send
    # A window overlapping the last one sent would send frames already refined.
    policy.cover("cam", 23)
    clock.t += 60
    assert policy.decide(0.9, 0, "cam", 16).reason == "overlap"
    assert policy.decide(0.9, 0, "other", 16).send
    assert policy.decide(0.9, 0, "cam", 24).send
    rate = OffloadPolicy(OffloadConfig(enabled=True, mode="rate", rate_target=0.2,
                                       windows_per_minute=1e6), clock=clock)
    rng = np.random.default_rng(1)
    sent = [rate.decide(float(s), 0).send for s in rng.random(2000)]
    assert 0.15 < np.mean(sent[100:]) < 0.25


# merging an answer into the window ------------------------------------------------------


def test_merge_confirms_relabels_rejects_and_carries():
    car, ghost, truck = [0, 0, 40, 30], [200, 200, 230, 220], [100, 50, 180, 110]
    edge = {f: dets([car, ghost], [0.45, 0.5], [1, 4], [1, 2]) for f in range(5)}
    edge[4] = dets([car, ghost, [300, 10, 320, 30]], [0.45, 0.5, 0.4], [1, 4, 0], [1, 2, -1])
    cloud = dets([car, truck], [0.9, 0.8], [2, 2])  # car is a truck; ghost absent; a truck
    merged = dict(merge_window([(f, edge[f]) for f in range(5)], [(2, cloud)], carry=1))
    assert merged[2] is cloud                                   # the keyframe: the cloud's
    m1 = merged[1]                                              # 1 frame away: carried
    assert m1.class_id.tolist() == [2, 4, 2]
    assert m1.score.tolist() == pytest.approx([0.9, 0.5 * 0.3, 0.8 * 0.9])
    assert m1.xyxy[0].tolist() == car    # carried from one keyframe only: the edge's own box
    m0 = merged[0]                                              # 2 frames away: no estimate
    assert len(m0) == 2 and m0.score.tolist() == pytest.approx([0.45 * 0.6, 0.5 * 0.3])
    assert merged[4].score[2] == pytest.approx(0.4 * 0.6)       # untracked: unsure


def test_merge_interpolates_an_object_only_the_cloud_saw():
    empty = dets([], [], [], [])
    walker0, walker4 = [100, 100, 120, 160], [140, 100, 160, 160]
    keys = [(0, dets([walker0], [0.8], [0])), (4, dets([walker4], [0.7], [0]))]
    merged = dict(merge_window([(f, empty) for f in range(5)], keys, carry=0))
    for f in (1, 2, 3):
        assert merged[f].xyxy.tolist() == [[100 + 10 * f, 100, 120 + 10 * f, 160]]
        assert merged[f].score[0] == pytest.approx(0.7 * 0.9)
        assert merged[f].label(0) == "person"


def test_a_confirmed_edge_box_takes_the_interpolated_cloud_box_between_keyframes():
    # The edge sees the car a little off (its box lags and is too wide); the cloud's boxes on
    # keyframes 0 and 4 are tight. Between them the car is where the cloud's boxes say.
    edge = {f: dets([[98 + 10 * f, 100, 128 + 10 * f, 130]], [0.55], [1], [7]) for f in range(5)}
    keys = [(0, dets([[100, 100, 120, 130]], [0.9], [1])),
            (4, dets([[140, 100, 160, 130]], [0.95], [1]))]
    merged = dict(merge_window([(f, edge[f]) for f in range(5)], keys))
    for f in (1, 2, 3):
        assert merged[f].xyxy.tolist() == [[100 + 10 * f, 100, 120 + 10 * f, 130]]
        assert merged[f].track_id.tolist() == [7] and merged[f].score[0] == pytest.approx(0.9)


def test_only_a_confident_cloud_box_verifies_a_track():
    from edge_agent.runtime.offload.answer import verified_tracks

    edge = dets([[0, 0, 40, 30], [100, 50, 180, 110]], [0.5, 0.6], [1, 1], [3, 4])
    cloud = dets([[0, 0, 40, 30], [100, 50, 180, 110]], [0.95, 0.6], [2, 2])
    assert verified_tracks(edge, cloud) == [(3, 2, pytest.approx(0.95)),
                                            (4, 2, pytest.approx(0.6))]
    assert verified_tracks(edge, cloud, min_score=0.8) == [(3, 2, pytest.approx(0.95))]
    assert verified_tracks(edge, cloud, min_score=0.99) == []


# keyframes and the edge cache on real synthetic frames -------------------------------------


@pytest.fixture(scope="module")
def street():
    world = SyntheticWorld(WorldOptions.from_preset("normal", seed=77))
    return world


def test_keyframes_span_the_window_and_prefer_sharp_frames(street):
    w = SlidingWindow("c", 12, 12)
    summary = None
    for i in range(12):
        img = street.render(i)[0].image
        if i in (5, 6):  # around the middle (anchor 6 of 0-11): only frame 7 is sharp
            img = cv2.GaussianBlur(img, (9, 9), 4)
        summary = w.push(Frame("c", i, 0.0, 0.0, img), dets([], [], []))
    picked = select_keyframes(summary, 3, (0.3, 0.6))
    idx = [f.frame.index for f in picked]
    assert idx == [0, 7, 11]  # both ends, and the sharp neighbour of the middle
    assert sharpness(cv2.GaussianBlur(picked[1].frame.image, (9, 9), 4)) < \
        sharpness(picked[1].frame.image)


def test_keyframe_pick_takes_the_ends_and_the_uncertain_neighbour():
    from edge_agent.runtime.offload.keyframes import pick

    flat = np.ones(16)
    assert pick(np.zeros(16), flat, 5) == [0, 4, 8, 11, 15]     # evenly spread, ends included
    unc = np.zeros(16)
    unc[[3, 9]] = 2.0                                             # uncertain frames next door
    assert pick(unc, flat, 5) == [0, 3, 9, 11, 15]
    unc[12] = 5.0                                                 # next to anchor 11
    assert pick(unc, flat, 5)[3] == 12
    assert pick(unc, flat, 16) == list(range(16))                 # no more frames than asked
    assert pick(unc, flat, 1) == [12]                             # one keyframe: the best
    small = pick(np.zeros(6), np.ones(6), 5)                      # no room to move
    assert small == sorted(set(small)) and len(small) == 5 and small[0] == 0 and small[-1] == 5


def test_edge_cache_hits_the_same_scene_and_misses_a_new_small_object(street):
    clock = Clock()
    cache = EdgeCache(max_entries=2, ttl_s=60, hamming_radius=6, clock=clock)
    frames = [street.render(i)[0].image for i in (100, 104, 108)]
    car = dets([[100, 100, 180, 150]], [0.9], [1])
    cache.put(fingerprint(frames), ["answer"], car)
    # The same scene again, a little darker and noisier: a hit.
    again = [np.clip(f.astype(np.int16) - 12 + np.random.default_rng(i).integers(
        -3, 4, f.shape), 0, 255).astype(np.uint8) for i, f in enumerate(frames)]
    assert cache.lookup(fingerprint(again), car).answer == ["answer"]
    # One small new object (a 14x20 px dog-sized patch) in the last keyframe: a miss.
    changed = [f.copy() for f in again]
    changed[2][300:320, 500:514] = (20, 20, 160)
    assert cache.lookup(fingerprint(changed), car) is None
    # The edge now sees a truck where the cloud said car: the entry is dropped.
    truck = dets([[100, 100, 180, 150]], [0.9], [2])
    assert cache.lookup(fingerprint(again), truck) is None
    assert cache.stats.invalidated == 1 and len(cache) == 0
    # TTL and LRU.
    cache.put(fingerprint(frames), ["a"], car)
    clock.t += 61
    assert cache.lookup(fingerprint(frames), car) is None and cache.stats.expired == 1
    for k in range(3):
        cache.put(fingerprint([street.render(200 + 40 * k + j)[0].image for j in range(3)]),
                  [k], car)
    assert len(cache) == 2 and cache.stats.evicted == 1


def test_a_different_scene_is_not_a_hit(street):
    cache = EdgeCache(hamming_radius=6)
    cache.put(fingerprint([street.render(i)[0].image for i in (10, 14)]), ["x"],
              dets([], [], []))
    other = SyntheticWorld(WorldOptions.from_preset("normal", seed=78))
    assert cache.lookup(fingerprint([other.render(i)[0].image for i in (10, 14)]),
                        dets([], [], [])) is None


def test_edge_cache_checks_the_edge_signature_at_the_same_places(street):
    cache = EdgeCache(hamming_radius=6)
    frames = [street.render(i)[0].image for i in (100, 104, 108)]
    car = dets([[100, 100, 180, 150]], [0.9], [1])
    person = dets([[300, 120, 312, 160]], [0.55], [0])  # too unsure to check the cloud with
    then = {0: car, 2: person}
    cache.put(fingerprint(frames), ["answer"], car, 2, edge=then)
    now = dict(then)
    assert cache.lookup(fingerprint(frames), lambda off: now.get(off, car)) is not None
    # The person walked on by 30 px at the same place in the window: the edge disagrees.
    now[2] = dets([[330, 120, 342, 160]], [0.55], [0])
    assert cache.lookup(fingerprint(frames), lambda off: now.get(off, car)) is None
    assert cache.stats.invalidated == 1
    # With the check off, the pixels and the cloud answer decide alone.
    loose = EdgeCache(hamming_radius=6, edge_agreement=0.0)
    loose.put(fingerprint(frames), ["answer"], car, 2, edge=then)
    assert loose.lookup(fingerprint(frames), lambda off: now.get(off, car)) is not None


# what bench offload scores: what the agent publishes ---------------------------------------


def _clip(n: int, edge: list, cloud: list):
    from edge_agent.tools.bench.clips import Clip
    from edge_agent.tools.sim.truth import FrameTruth, SceneInfo

    truths = [FrameTruth(i, i / 30, SceneInfo(0, "s0", "fresh"), 1.0, ()) for i in range(n)]
    return Clip("c", truths, edge, cloud, np.full(n, 20_000), np.ones(n), 0)


@pytest.mark.parametrize("cloud_score,relabelled", [(0.95, True), (0.5, False)])
def test_bench_scores_track_labels_from_when_the_answer_arrives(cloud_score, relabelled):
    from edge_agent.tools.bench.clips import Window
    from edge_agent.tools.bench.offload import ANSWER_DELAY_S, published

    n, car = 120, [10, 10, 60, 40]
    edge = [dets([car], [0.7], [1], [5]) for _ in range(n)]                 # track 5: a car
    cloud = [dets([car], [cloud_score], [2]) for _ in range(n)]            # the cloud: a truck
    clip = _clip(n, edge, cloud)
    w = Window(0, 0, list(range(16)), {}, [0, 4, 8, 12, 15])
    out, uplink = published([clip], [w], [0], 0.2)
    assert uplink > 5 * 20_000
    assert all(out[0][f].label(0) == "truck" for f in range(16))          # refined: the merge
    arrives = 15 + round(ANSWER_DELAY_S * 30)
    assert all(out[0][f].label(0) == "car" for f in range(16, arrives))   # not yet answered
    after = {out[0][f].label(0) for f in range(arrives, n)}
    assert after == ({"truck"} if relabelled else {"car"})
    assert edge[100].label(0) == "car"                                    # inputs untouched


def test_fusion_rescores_by_support_in_the_other_keyframes():
    from cloud_fallback.fusion import FUSION_WEIGHT, fuse_keyframes

    car, ghost = [0, 0, 40, 30], [200, 200, 230, 220]
    a = dets([car, ghost], [0.8, 0.6], [1, 1])
    b = dets([[2, 0, 42, 30]], [0.9], [1])          # the car, moved a little; no ghost
    c = dets([[4, 0, 44, 30]], [0.7], [2])          # the same place, another class
    for w in (FUSION_WEIGHT, 0.5):
        fa, fb, fc = fuse_keyframes([a, b, c], weight=w)
        assert fa.score.tolist() == pytest.approx([(1 - w) * 0.8 + w * (0.9 + 0) / 2,
                                                   (1 - w) * 0.6])
        assert fb.score.tolist() == pytest.approx([(1 - w) * 0.9 + w * 0.8 / 2])
        assert fc.score.tolist() == pytest.approx([(1 - w) * 0.7])
    assert fuse_keyframes([a]) == [a]


def test_settings_that_change_answers_key_the_cloud_cache():
    from cloud_fallback.config import CloudConfig
    from cloud_fallback.worker import Worker

    def key(**model):
        cfg = CloudConfig.model_validate({"mqtt": {"host": "127.0.0.1"},
                                          "model": {"text": {"enabled": False}, **model}})
        return Worker(cfg).answer_model_id

    base = key()
    assert len({base, key(fusion_weight=0.5), key(tiles=None), key(min_score=0.3),
                key(fuse_keyframes=False)}) == 5
    assert key() == base


# static objects the cloud found, held on `detections` ----------------------------------


def test_only_static_confident_cloud_objects_are_held():
    from edge_agent.runtime.offload.hold import static_objects

    parked, walker, faint = [100, 100, 180, 150], [300, 100, 330, 180], [400, 50, 440, 80]
    first = dets([parked, walker, faint], [0.9, 0.8, 0.25], [1, 0, 1])
    last = dets([[102, 101, 181, 151], [340, 100, 370, 180], faint], [0.8, 0.8, 0.25], [1, 0, 1])
    held = static_objects(first, last, min_score=0.3, static_iou=0.8, score_factor=0.5)
    assert len(held) == 1 and held.label(0) == "car"            # the walker moved; faint is weak
    assert held.score[0] == pytest.approx(0.4)                    # the last keyframe's, halved
    assert held.track_id.tolist() == [-1]
    # The same object as another class on the first keyframe is not "the same place".
    other = dets([parked], [0.9], [2])
    assert not len(static_objects(other, last, 0.3, 0.8, 0.5))
    assert not len(static_objects(dets([], [], []), last, 0.3, 0.8, 0.5))


def test_held_objects_show_only_where_no_edge_box_covers_them():
    from edge_agent.runtime.offload.hold import with_held

    held = dets([[100, 100, 180, 150], [400, 50, 440, 90]], [0.6, 0.5], [1, 2], [-1, -1])
    edge = dets([[105, 98, 178, 152]], [0.7], [2], [9])   # the edge has the first (a truck)
    out = with_held(edge, held)
    assert len(out) == 2 and out.track_id.tolist() == [9, -1]
    assert out.xyxy[1].tolist() == [400, 50, 440, 90] and out.score[1] == pytest.approx(0.5)
    assert len(with_held(dets([], [], []), held)) == 2
    assert with_held(edge, held[np.zeros(2, bool)]) is edge


def test_bench_holds_a_parked_car_the_edge_misses_for_hold_s():
    from edge_agent.tools.bench.clips import Window
    from edge_agent.tools.bench.offload import ANSWER_DELAY_S, published

    n, parked, person = 600, [200, 200, 280, 250], [10, 10, 30, 60]
    edge = [dets([person], [0.8], [0], [3]) for _ in range(n)]            # never sees the car
    cloud = [dets([person, parked], [0.9, 0.9], [0, 1]) for _ in range(n)]
    clip = _clip(n, edge, cloud)
    w = Window(0, 0, list(range(16)), {}, [0, 4, 8, 12, 15])
    out, _ = published([clip], [w], [0], 0.2, hold_s=2.0, hold_score_factor=0.5)
    arrives = 15 + round(ANSWER_DELAY_S * 30)

    def cars(f):
        return [float(s) for s, c in zip(out[0][f].score, out[0][f].class_id, strict=True)
                if c == 1]

    assert all(cars(f) == [] for f in range(16, arrives))                 # not yet answered
    assert all(cars(f) == [pytest.approx(0.45, abs=0.05)]                 # fused 0.9, halved
               for f in range(arrives, arrives + 59))
    assert all(cars(f) == [] for f in range(arrives + 61, n))             # hold_s is over
    assert all(len(out[0][f]) == 1 for f in range(arrives + 61, n))
    off, _ = published([clip], [w], [0], 0.2, hold_s=0)
    assert all(cars_ == [] for cars_ in
               ([c for c in off[0][f].class_id if c == 1] for f in range(16, n)))


def test_answer_agreement_counts_pool_over_keyframes():
    """Two answers agree box by box: same class, IoU >= 0.5, a score near the line on one
    side still counts; pooled over keyframes one miss among many is not a disagreement."""
    from edge_agent.runtime.offload.cache import agreement, agreement_counts

    car, van = [10, 10, 60, 40], [100, 10, 160, 50]
    a = dets([car, van], [0.9, 0.52], [1, 2])
    b = dets([[12, 11, 61, 41], van], [0.8, 0.45], [1, 2])     # the van at 0.45: same answer
    assert agreement_counts(a, b) == (3, 3) and agreement(a, b) == 1.0
    c = dets([car], [0.9], [1])                                  # the van gone
    assert agreement_counts(a, c) == (2, 3) and agreement(a, c) == pytest.approx(2 / 3)
    d = dets([car, van], [0.9, 0.6], [1, 1])                     # the van called a car
    assert agreement_counts(a, d) == (2, 4)
    assert agreement(dets([], [], []), dets([], [], [])) == 1.0
    # Ten keyframes that agree and one that misses a box: 32 of 33 over the answer.
    counts = [agreement_counts(a, b)] * 10 + [agreement_counts(a, c)]
    assert sum(f for f, _ in counts) / sum(t for _, t in counts) == pytest.approx(32 / 33)


def test_nothing_is_held_from_a_single_keyframe():
    from edge_agent.runtime.offload.hold import held_from

    car = dets([[100, 100, 180, 150]], [0.9], [1])
    assert held_from([(7, car)], 0.5) is None                     # parked or passing? unknown
    assert held_from([(7, car), (7, car)], 0.5) is None
    held = held_from([(12, car), (4, car)], 0.5)                  # any order
    assert len(held) == 1 and held.score[0] == pytest.approx(0.45)
