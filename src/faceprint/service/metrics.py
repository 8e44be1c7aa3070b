"""Prometheus metrics of one app (its own registry, so several apps can live in one process)."""

from __future__ import annotations

import time
from typing import Any

#: HTTP methods recorded by name; anything else is counted as ``OTHER`` (labels stay bounded).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    """Request counts, latencies and in-flight requests by route template; exposition text.

    Labels come only from bounded sets (matched route templates or ``unmatched``, the
    methods in :data:`METHODS` or ``OTHER``, status codes), so clients cannot add series.
    """

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("faceprint_http_requests", "HTTP requests served.",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("faceprint_http_request_duration_seconds", "Time to answer a request.",
                                 ["route"], registry=self.registry,
                                 buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
        self.in_flight = Gauge("faceprint_http_requests_in_flight", "Requests being answered.",
                               registry=self.registry)
        self.faces = Counter("faceprint_faces_detected", "Faces found in uploaded images.", registry=self.registry)
        self._gallery = Gauge("faceprint_gallery_size", "Enrolled people and face samples.", ["what"],
                              registry=self.registry)

    def watch_gallery(self, gallery: Any) -> None:
        """Report the gallery's people and samples at every scrape."""
        self._gallery.labels("people").set_function(lambda: len(gallery))
        self._gallery.labels("samples").set_function(gallery.sample_count)

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """ASGI middleware recording every HTTP request in a :class:`Metrics`."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        start = time.perf_counter()
        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, watch)
        finally:
            self.metrics.in_flight.dec()
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)
            method = scope.get("method", "")
            method = method if method in METHODS else "OTHER"
            self.metrics.requests.labels(method, route, str(status["code"])).inc()
