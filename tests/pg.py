"""A real PostgreSQL 16 + pgvector server for tests: the ``pgserver`` wheel, started once per
run in a temporary directory (it works as root too); each test gets its own database.

tests/conftest.py imports the fixtures, so every test module can ask for ``pg_uri``.
"""

from __future__ import annotations

import itertools
import os

import pytest

_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory):
    """The running server (skips with the reason when pgserver or psycopg are missing)."""
    pgserver = pytest.importorskip("pgserver", reason="PostgreSQL tests need the pgserver wheel: "
                                                      "pip install 'faceprint[test]'")
    pytest.importorskip("psycopg", reason="PostgreSQL tests need psycopg: pip install 'faceprint[postgres]'")
    pytest.importorskip("pgvector", reason="PostgreSQL tests need pgvector: pip install 'faceprint[postgres]'")
    server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
    yield server
    server.cleanup()


def database_uri(server, name: str) -> str:
    """The URI of database ``name`` on ``server`` (libpq ``?host=`` names the socket directory)."""
    base = server.get_uri()  # postgresql://postgres:@/postgres?host=DIR
    head, _, query = base.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{name}?{query}"


@pytest.fixture
def pg_uri(pg_server) -> str:
    """A fresh, empty database on the test server."""
    name = f"t{os.getpid()}_{next(_counter)}"
    pg_server.psql(f"CREATE DATABASE {name};")
    return database_uri(pg_server, name)
