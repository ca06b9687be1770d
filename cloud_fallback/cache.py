"""The cloud's result cache: content hash of a request -> the answer's frames.

Two levels: an in-process LRU with a TTL (cachetools), and optionally Redis shared by every
worker, so a scene one worker answered is not recomputed by another. Redis failures degrade to
the local level with a warning; they never fail a request.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

import msgpack
from cachetools import TTLCache

from edge_agent.core.protocol import OffloadRequest
from edge_agent.core.sizes import split_size

log = logging.getLogger("osprey.cloud.cache")


def content_key(req: OffloadRequest, model_id: str) -> str:
    """sha256 over the model, every keyframe's bytes and index order, and the queries: equal
    keys mean byte-identical inputs, so the answer is the same."""
    h = hashlib.sha256(model_id.encode())
    for kf in req.frames:
        h.update(len(kf.jpeg).to_bytes(8, "big"))
        h.update(kf.jpeg)
        h.update(f"{kf.width}x{kf.height}".encode())
    h.update("\x00".join(sorted(req.queries)).encode())
    if req.perspective and any(split_size(q)[0] for q in req.queries):
        h.update(repr([round(v, 4) for v in req.perspective]).encode())
    return h.hexdigest()


class ResultCache:
    def __init__(self, max_entries: int, ttl_s: float, redis_url: str | None = None,
                 prefix: str = "osprey:cache:") -> None:
        self.local: TTLCache[str, bytes] = TTLCache(max_entries, ttl_s)
        self.ttl_s = ttl_s
        self.prefix = prefix
        self._lock = threading.Lock()
        self.redis = None
        if redis_url:
            import redis

            self.redis = redis.Redis.from_url(redis_url, socket_timeout=1.0,
                                              socket_connect_timeout=1.0)
        self.hits = {"memory": 0, "redis": 0}
        self.misses = 0
        self.redis_errors = 0

    def get(self, key: str) -> tuple[dict[str, Any], str] | None:
        """(value, level) with level "memory" or "redis", or None."""
        with self._lock:
            data = self.local.get(key)
        level = "memory"
        if data is None and self.redis is not None:
            try:
                data = self.redis.get(self.prefix + key)
            except Exception as exc:  # redis.RedisError, OSError: degrade, never fail
                self._redis_failed(exc)
                data = None
            level = "redis"
            if data is not None:
                with self._lock:
                    self.local[key] = data
        if data is None:
            self.misses += 1
            return None
        self.hits[level] += 1
        return msgpack.unpackb(data, raw=False), level

    def put(self, key: str, value: dict[str, Any]) -> None:
        data = msgpack.packb(value, use_bin_type=True)
        with self._lock:
            self.local[key] = data
        if self.redis is not None:
            try:
                self.redis.set(self.prefix + key, data, ex=max(1, int(self.ttl_s)))
            except Exception as exc:
                self._redis_failed(exc)

    def _redis_failed(self, exc: Exception) -> None:
        self.redis_errors += 1
        if self.redis_errors in (1, 10, 100) or self.redis_errors % 1000 == 0:
            log.warning("redis cache unavailable (%s: %s); using the in-process cache only "
                        "(%d errors so far)", type(exc).__name__, exc, self.redis_errors)

    def ping(self) -> bool:
        if self.redis is None:
            return False
        try:
            return bool(self.redis.ping())
        except Exception:
            return False
