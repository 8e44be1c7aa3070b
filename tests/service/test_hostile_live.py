"""Hostile clients on a real socket: slow or silent connections, chunked and keyless bodies.

The server runs as `faceprint serve` runs it (:func:`faceprint.service.server.uvicorn_config`)
on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import socket
import time
from typing import Any, Iterator

import pytest

from .conftest import free_port, make_service, running


def _serve(app: Any, settings: Any) -> Iterator[tuple[str, int]]:
    import uvicorn

    from faceprint.service.server import uvicorn_config

    port = free_port()
    for _ in running(uvicorn.Server(uvicorn_config(app, settings, host="127.0.0.1", port=port))):
        yield "127.0.0.1", port


@pytest.fixture
def defaults(tmp_path, pipeline) -> Iterator[tuple[Any, tuple[str, int]]]:
    """A server with the default limits and timeouts."""
    svc = make_service(tmp_path / "g.db", pipeline)
    yield from ((svc, addr) for addr in _serve(svc.app, svc.app.state.fp.settings))


@pytest.fixture
def quick(tmp_path, pipeline) -> Iterator[tuple[Any, tuple[str, int]]]:
    """A server with short read deadlines (header 1 s, request 3 s)."""
    svc = make_service(tmp_path / "g.db", pipeline, header_timeout_s=1.0, request_timeout_s=3.0)
    yield from ((svc, addr) for addr in _serve(svc.app, svc.app.state.fp.settings))


def _closed_after(sock: socket.socket, limit_s: float) -> float:
    """Seconds until the server closes ``sock`` (reads until EOF), failing after ``limit_s``."""
    start = time.monotonic()
    sock.settimeout(limit_s)
    try:
        while sock.recv(65536):
            pass
    except socket.timeout:
        pytest.fail(f"the server kept the connection open for more than {limit_s} s")
    except ConnectionResetError:
        pass
    return time.monotonic() - start


def test_connections_with_unfinished_headers_are_closed_by_default(defaults) -> None:
    svc, addr = defaults
    settings = svc.app.state.fp.settings
    socks = [socket.create_connection(addr, timeout=5) for _ in range(20)]
    for s in socks:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never finishes the headers
    took = [_closed_after(s, 30.0) for s in socks]
    assert max(took) <= settings.header_timeout_s + 2 and settings.request_timeout_s <= 30
    for s in socks:
        s.close()


def test_slow_bodies_are_cut_off_and_keyless_bodies_are_not_read(quick) -> None:
    svc, addr = quick
    with socket.create_connection(addr, timeout=5) as s:  # headers in time, body trickling
        s.sendall(b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100000\r\nAuthorization: Bearer " + svc.keys["read"].encode() + b"\r\n\r\n{")
        start = time.monotonic()
        with pytest.raises((BrokenPipeError, ConnectionResetError, socket.timeout, OSError)):
            for _ in range(20):  # one byte every 0.5 s: at most 10 s
                s.sendall(b" ")
                time.sleep(0.5)
        assert time.monotonic() - start <= 3.0 + 2
    # 14.5 MB without a key: answered 401 from the headers, the body is never parsed
    with socket.create_connection(addr, timeout=10) as s:
        s.sendall(b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 15204352\r\n\r\n" + b"[" * 65536)
        head = s.recv(65536)
        assert head.startswith(b"HTTP/1.1 401"), head[:200]


def test_a_chunked_body_over_the_limit_is_413(tmp_path, pipeline) -> None:
    import httpx

    svc = make_service(tmp_path / "g.db", pipeline, max_request_bytes=1 << 20)
    for host, port in _serve(svc.app, svc.app.state.fp.settings):
        def chunks() -> Iterator[bytes]:
            for _ in range(20):  # 20 MiB, no Content-Length
                yield b"A" * (1 << 20)

        try:
            r = httpx.post(f"http://{host}:{port}/v1/people", content=chunks(), timeout=20,
                           headers={"Content-Type": "application/json", **svc.headers("enroll")})
        except httpx.RemoteProtocolError:  # the server may close before the client sent everything
            pytest.fail("the server closed the connection without a 413")
        assert r.status_code == 413 and r.headers["content-type"].startswith("application/problem+json"), r.text
