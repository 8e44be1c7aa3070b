"""API-key authentication, scope checks and per-key rate limits (a token bucket per key)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from .keys import SCOPES, ApiKey, KeyStore, scope_allows
from .problems import Forbidden, RateLimited, Unauthorized


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """``rate_per_minute`` requests per key on average, up to ``burst`` at once; 0 = unlimited.

    Used from the event loop only (no locking).
    """

    def __init__(self, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self._clock = clock
        self._buckets: dict[int, _Bucket] = {}

    def take(self, key_id: int, rate_per_minute: int) -> None:
        """Spend one token of ``key_id``'s bucket.

        Raises:
            RateLimited: the bucket is empty; ``retry_after`` says when a token is back.
        """
        if rate_per_minute <= 0:
            return
        now = self._clock()
        per_second = rate_per_minute / 60.0
        capacity = float(max(1, min(self.burst, rate_per_minute)))
        bucket = self._buckets.setdefault(key_id, _Bucket(capacity, now))
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.stamp) * per_second)
        bucket.stamp = now
        if bucket.tokens < 1.0:
            raise RateLimited(f"rate limit of {rate_per_minute} requests/minute exceeded for this API key",
                              retry_after=(1.0 - bucket.tokens) / per_second)
        bucket.tokens -= 1.0


def key_from_headers(headers: Any) -> str | None:
    """The key from ``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` (``None`` when absent)."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        raise Unauthorized("the Authorization header must be 'Bearer <API key>'")
    key = headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


class Authenticator:
    """Checks a request's key, its scope and its rate."""

    def __init__(self, keys: KeyStore, limiter: RateLimiter, default_rate_per_minute: int) -> None:
        self.keys = keys
        self.limiter = limiter
        self.default_rate = default_rate_per_minute

    def check(self, headers: Any, scope: str) -> ApiKey:
        """The request's key when it may use an endpoint needing ``scope``.

        Raises:
            Unauthorized: no key, or an unknown / revoked one.
            Forbidden: the key's scope is below ``scope``.
            RateLimited: the key is over its rate.
        """
        assert scope in SCOPES
        key = key_from_headers(headers)
        if key is None:
            raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
        record = self.keys.lookup(key)
        if record is None:
            raise Unauthorized("unknown or revoked API key")
        if not scope_allows(record.scope, scope):
            raise Forbidden(f"this endpoint needs an API key with scope '{scope}' (or higher); this key has "
                            f"'{record.scope}'")
        rate = self.default_rate if record.rate_per_minute is None else record.rate_per_minute
        self.limiter.take(record.id, rate)
        return record
