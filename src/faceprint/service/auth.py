"""API-key authentication, scope checks and rate limits: a token bucket per key, and one per
client address for requests without a valid key.

:class:`KeyGate` checks the key of every ``/v1`` and ``/metrics`` request before the
application reads a byte of its body, so a client without a key cannot make the server parse
JSON or multipart data; the endpoints' ``needs(scope)`` dependency then only checks the scope.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable

from .keys import SCOPES, ApiKey, KeyStore, scope_allows
from .problems import Forbidden, RateLimited, ServiceError, Unauthorized, problem_for, send_problem


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """``rate_per_minute`` requests per key on average, up to ``burst`` at once; 0 = unlimited.

    Keys are API-key ids or client addresses; at most ``max_buckets`` are kept (the least
    recently used half is dropped beyond that, so memory stays bounded under many clients).
    Used from the event loop only (no locking).
    """

    def __init__(self, burst: int, clock: Callable[[], float] = time.monotonic, max_buckets: int = 10_000) -> None:
        self.burst = burst
        self._clock = clock
        self.max_buckets = max_buckets
        self._buckets: dict[Hashable, _Bucket] = {}

    def take(self, key_id: Hashable, rate_per_minute: int, what: str = "this API key") -> None:
        """Spend one token of ``key_id``'s bucket.

        Raises:
            RateLimited: the bucket is empty; ``retry_after`` says when a token is back.
        """
        if rate_per_minute <= 0:
            return
        now = self._clock()
        per_second = rate_per_minute / 60.0
        capacity = float(max(1, min(self.burst, rate_per_minute)))
        if key_id not in self._buckets and len(self._buckets) >= self.max_buckets:
            for old in sorted(self._buckets, key=lambda k: self._buckets[k].stamp)[:self.max_buckets // 2]:
                del self._buckets[old]
        bucket = self._buckets.setdefault(key_id, _Bucket(capacity, now))
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.stamp) * per_second)
        bucket.stamp = now
        if bucket.tokens < 1.0:
            raise RateLimited(f"rate limit of {rate_per_minute} requests/minute exceeded for {what}",
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
    """Checks a request's key, its scope and its rate; limits requests without a valid key per
    client address (``anonymous_rate_per_minute``, 0 = unlimited)."""

    def __init__(self, keys: KeyStore, limiter: RateLimiter, default_rate_per_minute: int,
                 anonymous_rate_per_minute: int = 0) -> None:
        self.keys = keys
        self.limiter = limiter
        self.default_rate = default_rate_per_minute
        self.anonymous_rate = anonymous_rate_per_minute
        self.anonymous = RateLimiter(limiter.burst)

    def authenticate(self, headers: Any, client: str = "") -> ApiKey:
        """The request's live key; a request without one spends a token of its address's bucket.

        Raises:
            Unauthorized: no key, or an unknown / revoked one.
            RateLimited: the key, or the keyless address, is over its rate.
        """
        try:
            key = key_from_headers(headers)
            if key is None:
                raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
            record = self.keys.lookup(key)
            if record is None:
                raise Unauthorized("unknown or revoked API key")
        except Unauthorized:
            self.take_anonymous(client)
            raise
        rate = self.default_rate if record.rate_per_minute is None else record.rate_per_minute
        self.limiter.take(record.id, rate)
        return record

    def take_anonymous(self, client: str) -> None:
        """Spend a token of ``client``'s keyless bucket. Raises RateLimited."""
        self.anonymous.take(("client", client), self.anonymous_rate, what="requests without a valid API key")

    @staticmethod
    def require(record: ApiKey, scope: str) -> ApiKey:
        """``record`` when its scope covers ``scope``. Raises Forbidden."""
        if not scope_allows(record.scope, scope):
            raise Forbidden(f"this endpoint needs an API key with scope '{scope}' (or higher); this key has "
                            f"'{record.scope}'")
        return record

    def check(self, headers: Any, scope: str, client: str = "") -> ApiKey:
        """The request's key when it may use an endpoint needing ``scope``.

        Raises:
            Unauthorized: no key, or an unknown / revoked one.
            Forbidden: the key's scope is below ``scope``.
            RateLimited: the key is over its rate.
        """
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}")
        return self.require(self.authenticate(headers, client), scope)


#: Paths served without a key (everything else under these prefixes needs one).
KEYED_PREFIXES = ("/v1/", "/metrics")
#: Keyless paths that are not rate-limited (health probes).
UNLIMITED_PATHS = frozenset({"/healthz"})


class KeyGate:
    """ASGI middleware: authenticate ``/v1`` and ``/metrics`` requests before the app runs (so
    before any body is read), and rate-limit every other keyless request by client address.

    Only paths some route serves are gated (``routes``, the app's route list; others get their
    404). The authenticated :class:`~faceprint.service.keys.ApiKey` is left in
    ``scope["state"]["api_key"]``, the matched route in ``scope["route"]`` (as routing would).
    """

    def __init__(self, app: Any, auth: Authenticator, routes: list[Any]) -> None:
        self.app = app
        self.auth = auth
        self.routes = routes

    def _route(self, scope: dict[str, Any]) -> dict[str, Any] | None:
        from starlette.routing import Match

        partial = None
        for route in self.routes:
            match, child = route.matches(scope)
            if match is Match.FULL:
                return child
            if match is Match.PARTIAL and partial is None:
                partial = child
        return partial

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        client = (scope.get("client") or ("unknown", 0))[0]
        try:
            route = self._route(scope) if path.startswith(KEYED_PREFIXES) else None
            if route is not None:
                from starlette.datastructures import Headers

                scope.update(route)
                scope.setdefault("state", {})["api_key"] = self.auth.authenticate(Headers(scope=scope), client)
            elif path not in UNLIMITED_PATHS:
                self.auth.take_anonymous(client)
        except ServiceError as exc:
            await send_problem(send, *problem_for(exc))
            return
        await self.app(scope, receive, send)
