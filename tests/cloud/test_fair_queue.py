"""The worker's queue order between devices, without a broker: what the MQTT test of a
flooding device relies on, checked step by step."""
from __future__ import annotations

import queue
from types import SimpleNamespace

import pytest

from cloud_fallback.worker import FairQueue


def job(device: str, n: int):
    return SimpleNamespace(req=SimpleNamespace(device=device), n=n)


def take(q: FairQueue, k: int) -> list[tuple[str, int]]:
    return [(j.req.device, j.n) for j in (q.get(timeout=0) for _ in range(k))]


def test_devices_take_turns():
    q = FairQueue(maxsize=40, per_device=10)
    for n in range(3):
        q.put_nowait(job("a", n))
    q.put_nowait(job("b", 0))
    q.put_nowait(job("c", 0))
    assert take(q, 5) == [("a", 0), ("b", 0), ("c", 0), ("a", 1), ("a", 2)]
    assert q.qsize() == 0
    with pytest.raises(queue.Empty):
        q.get(timeout=0)


def test_a_device_that_asks_during_anothers_service_goes_before_its_next():
    q = FairQueue(maxsize=40, per_device=10)
    q.put_nowait(job("flood", 0))
    assert take(q, 1) == [("flood", 0)]  # taken alone: in service
    for n in range(1, 4):
        q.put_nowait(job("flood", n))
    q.put_nowait(job("quiet", 0))  # asks while flood's first is in service
    assert take(q, 4) == [("quiet", 0), ("flood", 1), ("flood", 2), ("flood", 3)]


def test_each_device_holds_its_share_and_the_queue_its_size():
    q = FairQueue(maxsize=6, per_device=4)
    for n in range(4):
        q.put_nowait(job("a", n))
    with pytest.raises(queue.Full):
        q.put_nowait(job("a", 4))  # its share is full; others still get in
    q.put_nowait(job("b", 0))
    q.put_nowait(job("b", 1))
    with pytest.raises(queue.Full):
        q.put_nowait(job("c", 0))  # the queue is full
    assert q.qsize() == 6
    assert take(q, 6) == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("a", 3)]


def test_bytes_are_bounded_in_all_and_per_device():
    q = FairQueue(maxsize=100, key=lambda j: j.req.device, size=lambda j: j.n, max_bytes=400)
    q.put_nowait(job("a", 100))
    with pytest.raises(queue.Full):
        q.put_nowait(job("a", 1))  # a quarter of the bytes is one device's share
    for device in "bcd":
        q.put_nowait(job(device, 100))
    with pytest.raises(queue.Full):
        q.put_nowait(job("e", 1))  # all the bytes are taken
    assert take(q, 1) == [("a", 100)]
    q.put_nowait(job("a", 60))  # what was taken is given back
    q.put_nowait(job("e", 40))
    assert q.qsize() == 5


def test_a_device_gets_its_burst_then_its_rate():
    from cloud_fallback.worker import RateLimit

    limit = RateLimit(rate=2.0, burst=3)
    assert [limit.allow("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert limit.allow("b", 0.0)  # devices apart
    assert not limit.allow("a", 0.4)  # 0.8 of a token back
    assert limit.allow("a", 0.5)
    assert [limit.allow("a", 10.0) for _ in range(4)] == [True, True, True, False]  # full again


def test_an_unsized_queue_keeps_nothing_per_device_once_served():
    q = FairQueue(maxsize=10)
    for device in "abc":
        q.put_nowait(job(device, 0))
    take(q, 3)
    assert not q._queues and not q._device_bytes


def test_the_intake_must_hold_a_request_of_the_largest_size():
    from pydantic import ValidationError

    from cloud_fallback.config import LimitsConfig

    with pytest.raises(ValidationError, match="at least 4 x max_payload_bytes"):
        LimitsConfig(intake_bytes=4 << 20)  # a quarter of it is 1 MiB, under 4 MiB requests
    assert LimitsConfig(intake_bytes=16 << 20).intake_bytes == 16 << 20
