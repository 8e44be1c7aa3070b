"""Service settings: limits, workers and CORS, fixed when the app is built."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from ..registry import DEFAULT_DETECTOR, DEFAULT_EMBEDDER


@dataclass(frozen=True)
class ServiceSettings:
    """What ``faceprint serve`` is configured with.

    Attributes:
        db: the gallery (``--db``: a SQLite file, which also holds the photo index and API keys, or a
            URI, see :mod:`faceprint.dburi`).
        keys_db: a SQLite file for the API keys (and photo index) of a Milvus gallery; overrides
            the gallery's own database for keys.
        max_request_bytes: refuse request bodies larger than this (413).
        max_pixels: refuse images with more than ``width * height`` pixels (413).
        max_decode_bytes: refuse images whose decode would need more memory than this (413;
            :func:`faceprint.image.decode_bytes`); with the other defaults one request stays
            within about 300 MB above the idle server (README, service limits).
        rate_per_minute: default requests per minute per API key (a key may carry its own);
            ``0`` disables rate limiting.
        anonymous_rate_per_minute: requests per minute per client address without a valid key
            (401s, the web page, /docs); ``/healthz`` is exempt; ``0`` = unlimited.
        burst: requests a key (or keyless address) may send at once before the rate applies.
        header_timeout_s: a connection must deliver a request's headers within this many seconds.
        request_timeout_s: ... and the whole request (headers and body) within this many seconds;
            slower connections are closed.
        workers: model calls running at the same time (each ONNX session uses one thread);
            ``0`` = one per CPU core.
        cors_origins: origins allowed to call the API from a browser; empty = CORS off.
        calibration: optional calibration JSON (``faceprint calibrate``) for match probabilities.
        detector, model: registry names or ``.onnx`` paths.
    """

    db: str | Path
    max_request_bytes: int = 16 * 1024 * 1024
    max_pixels: int = 20_000_000
    max_decode_bytes: int = 256 * 1024 * 1024
    rate_per_minute: int = 1200
    anonymous_rate_per_minute: int = 120
    burst: int = 60
    header_timeout_s: float = 10.0
    request_timeout_s: float = 30.0
    workers: int = 0
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    calibration: Path | None = None
    detector: str = DEFAULT_DETECTOR
    model: str = DEFAULT_EMBEDDER
    keys_db: Path | None = None

    def __post_init__(self) -> None:
        for name in ("max_request_bytes", "max_pixels", "max_decode_bytes", "burst"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("rate_per_minute", "anonymous_rate_per_minute", "workers"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.header_timeout_s <= self.request_timeout_s:
            raise ConfigError(f"need 0 < header_timeout_s <= request_timeout_s, got {self.header_timeout_s}, "
                              f"{self.request_timeout_s}")
        from ..dburi import parse_db

        parse_db(self.db)  # an unknown scheme fails here, before anything is opened
        if "*" in self.cors_origins:
            raise ConfigError("CORS origin '*' is refused: name the origins that may call the API")

    @property
    def worker_count(self) -> int:
        return self.workers or max(1, os.cpu_count() or 1)
