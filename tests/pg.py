"""A real PostgreSQL 16 + pgvector server for tests: the ``pgserver`` wheel, started once per
run in a temporary directory (it works as root too); each test gets its own database.

tests/conftest.py imports the fixtures, so every test module can ask for ``pg_uri``.
"""

from __future__ import annotations

import itertools
import os

import pytest

_counter = itertools.count()


def _start(folder):
    """A server in ``folder`` (skips with the reason when pgserver or psycopg are missing)."""
    pgserver = pytest.importorskip("pgserver", reason="PostgreSQL tests need the pgserver wheel: "
                                                      "pip install 'faceprint[test]'")
    pytest.importorskip("psycopg", reason="PostgreSQL tests need psycopg: pip install 'faceprint[postgres]'")
    pytest.importorskip("pgvector", reason="PostgreSQL tests need pgvector: pip install 'faceprint[postgres]'")
    return pgserver.get_server(folder, cleanup_mode="stop")


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory):
    """The running server."""
    server = _start(tmp_path_factory.mktemp("pgdata"))
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def pg_small_buffers_uri(tmp_path_factory: pytest.TempPathFactory):
    """A database on a second server whose ``shared_buffers`` is 1 MB, so the HNSW index of a few
    thousand faces does not fit in it (what 1M faces do to a default 128 MB server)."""
    from pgserver._commands import pg_ctl
    from pgserver.utils import PostmasterInfo

    server = _start(tmp_path_factory.mktemp("pgsmall"))
    server.psql("ALTER SYSTEM SET shared_buffers = '1MB';")
    pg_ctl(["-w", "restart"], pgdata=server.pgdata, user=server.system_user, timeout=60)
    server._postmaster_info = PostmasterInfo.read_from_pgdata(server.pgdata)  # the new pid, so cleanup() stops it
    server.psql("CREATE DATABASE small;")
    yield database_uri(server, "small")
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
