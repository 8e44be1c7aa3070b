"""Running the app under uvicorn with read deadlines, so slow or silent clients are cut off.

uvicorn closes idle keep-alive connections but waits forever for a request that is still
arriving. :func:`guarded_protocol` adds two deadlines per request on a connection, counted
from when the connection opens (or the previous response ends): the headers must be
complete within ``header_timeout_s`` and the whole request, body included, within
``request_timeout_s``; otherwise the connection is closed (a handler still waiting for the
body sees the client disconnect). Time spent answering is not limited.
"""

from __future__ import annotations

from typing import Any

from .settings import ServiceSettings


def guarded_protocol(header_timeout_s: float, request_timeout_s: float) -> type:
    """uvicorn's h11 protocol class with the two read deadlines."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _timers: tuple[Any, ...] = ()

        def _arm(self) -> None:
            self._disarm()
            self._timers = (self.loop.call_later(header_timeout_s, self._expire, h11.IDLE),
                            self.loop.call_later(request_timeout_s, self._expire, None))

        def _disarm(self) -> None:
            for timer in self._timers:
                timer.cancel()
            self._timers = ()

        def _expire(self, still: Any) -> None:
            state = self.conn.their_state
            late = state is still if still is not None else state not in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED)
            if late and not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED):
                self._disarm()  # the request is in: answering it may take as long as it takes

        def on_response_complete(self) -> None:
            if not self.transport.is_closing():
                self._arm()  # the next request on this connection gets its own deadlines
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedH11Protocol


def uvicorn_config(app: Any, settings: ServiceSettings, host: str = "127.0.0.1", port: int = 8000,
                   **kwargs: Any) -> Any:
    """The ``uvicorn.Config`` ``faceprint serve`` runs ``app`` with (h11 with read deadlines)."""
    import uvicorn

    kwargs.setdefault("log_level", "warning")
    kwargs.setdefault("access_log", False)
    return uvicorn.Config(app, host=host, port=port,
                          http=guarded_protocol(settings.header_timeout_s, settings.request_timeout_s), **kwargs)
