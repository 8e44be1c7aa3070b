"""Fixtures for the service tests: one model load per run, apps on temp databases, a live server."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

pytest.importorskip("fastapi", reason="the service extra is not installed (pip install faceprint[service])")
pytest.importorskip("httpx", reason="httpx (the test client) is not installed")

from faceprint.service import ServiceSettings, create_app  # noqa: E402
from faceprint.service.app import build_pipeline  # noqa: E402
from faceprint.service.keys import KeyStore  # noqa: E402


@dataclass
class Service:
    """An app on its own database with one key per scope."""

    app: Any
    db: Path
    keys: dict[str, str]

    def headers(self, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[scope]}"}


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The default detector + embedder, loaded once for every service test."""
    return build_pipeline(ServiceSettings(db=tmp_path_factory.mktemp("db") / "unused.db"))


def make_service(db: Path, pipeline: Any, **settings: Any) -> Service:
    app = create_app(ServiceSettings(db=db, **settings), pipeline=pipeline)
    store = KeyStore(db)
    keys = {scope: store.create(scope, name=f"test {scope}")[1] for scope in ("read", "enroll", "admin")}
    store.close()
    return Service(app, db, keys)


@pytest.fixture
def service(tmp_path: Path, pipeline: Any) -> Service:
    return make_service(tmp_path / "gallery.db", pipeline, rate_per_minute=0)


@pytest.fixture
def client(service: Service) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with TestClient(service.app, raise_server_exceptions=False) as c:
        yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    service: Service


@pytest.fixture
def live_server(tmp_path: Path, pipeline: Any) -> Iterator[LiveServer]:
    """A real uvicorn server on 127.0.0.1 (what a browser talks to), stopped after the test."""
    import uvicorn

    svc = make_service(tmp_path / "gallery.db", pipeline, rate_per_minute=0)
    port = free_port()
    for _ in running(uvicorn.Server(uvicorn.Config(svc.app, host="127.0.0.1", port=port, log_level="warning"))):
        yield LiveServer(f"http://127.0.0.1:{port}", svc)


def running(server: Any) -> Iterator[None]:
    """Run a ``uvicorn.Server`` in a thread while the caller's ``for`` body runs (started within 20 s)."""
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)
