"""What every request handler shares: settings, models, keys, metrics and the worker pool."""

from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from fastapi import Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer

from .auth import Authenticator
from .keys import ApiKey, KeyStore
from .metrics import Metrics
from .settings import ServiceSettings
from .uploads import Upload, decode

T = TypeVar("T")


@dataclass
class ServiceState:
    """Built once at start-up (models load here, not per request).

    ``run`` executes CPU-bound work in a thread, at most ``settings.worker_count`` at a time,
    so the event loop keeps answering (health checks, rate-limit refusals) while models run.
    """

    settings: ServiceSettings
    pipeline: Any
    keys: KeyStore
    auth: Authenticator
    metrics: Metrics
    limiter: Any  # anyio.CapacityLimiter
    gallery: Any = None
    recognizer: Any = None
    jobs: Any = None  # ClusterJobs
    live: Any = None  # LiveSessions (webcam streams)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        import anyio.to_thread

        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    def decode(self, upload: Upload, reduce: bool = True) -> tuple[Any, float]:
        """The upload's pixels within the server's limits, and their scale (see :func:`decode`)."""
        return decode(upload, self.settings.max_pixels, self.settings.max_decode_bytes, reduce)


def get_state(request: Any) -> ServiceState:
    return request.app.state.fp


def needs(scope: str) -> Callable[..., Any]:
    """A FastAPI dependency: the request's :class:`ApiKey`, checked for ``scope`` and rate.

    The two security schemes make OpenAPI (and /docs) show both ways of sending a key.
    """
    bearer = HTTPBearer(auto_error=False, scheme_name="bearer")
    header = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="apiKeyHeader")

    async def dependency(request: Request, _bearer: Any = Security(bearer), _header: Any = Security(header)) -> ApiKey:
        auth = get_state(request).auth
        record = request.scope.get("state", {}).get("api_key")  # KeyGate authenticated it before the body
        if record is None:
            return auth.check(request.headers, scope, (request.client.host if request.client else ""))
        return auth.require(record, scope)

    dependency.__name__ = f"needs_{scope}"
    return dependency
