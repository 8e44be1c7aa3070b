"""`faceprint serve` on server galleries: two replicas (separate `serve` processes) on one
PostgreSQL gallery act as one service, and a Milvus gallery serves with its keys in --keys-db."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from ..conftest import shared
from .conftest import free_port

KNN = ("people", "knn_examples")


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))


def faceprint(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from faceprint.cli import main; main()", *map(str, args)],
                          cwd=cwd, env=_env(), capture_output=True, text=True, timeout=120)


def new_key(db: str, scope: str, cwd: Path, *extra: str) -> dict:
    proc = faceprint("keys", "create", "--db", db, *extra, "--scope", scope, "--json", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@contextlib.contextmanager
def start_replicas(db: str, count: int, cwd: Path, *extra: str) -> Iterator[list[str]]:
    """``count`` `faceprint serve` processes on ``db``, their base URLs once all answer /healthz."""
    import httpx

    ports = [free_port() for _ in range(count)]
    procs = [subprocess.Popen([sys.executable, "-c", "from faceprint.cli import main; main()", "serve", "--db", db,
                               *extra, "--port", str(p), "--workers", "1", "--rate-limit", "0"],
                              cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for p in ports]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        deadline = time.monotonic() + 180
        for url, proc in zip(urls, procs):
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"serve exited: {proc.stderr.read()[-2000:]}")
                try:
                    if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail("serve did not start")
                time.sleep(0.3)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _photo(*parts: str) -> dict:
    path = shared(*parts)
    return {"image": (path.name, path.read_bytes())}


def test_two_replicas_on_one_postgres_gallery_act_as_one(tmp_path: Path, pg_uri: str) -> None:
    import httpx

    admin = new_key(pg_uri, "admin", tmp_path)
    reader = new_key(pg_uri, "read", tmp_path)
    auth = {"Authorization": f"Bearer {admin['key']}"}
    with start_replicas(pg_uri, 2, tmp_path) as urls:
        one, other = urls
        assert httpx.post(one + "/v1/people", headers=auth, json={"name": "Barack Obamá"}).status_code == 201
        for photo in sorted(shared(*KNN, "train", "obama").iterdir()):
            r = httpx.post(one + "/v1/people/Barack Obamá/faces", headers=auth,
                           files={"image": (photo.name, photo.read_bytes())}, timeout=60)
            assert r.status_code == 201, r.text
        # the other replica sees the enrollment at once: no cache, every call asks the database
        listed = httpx.get(other + "/v1/people", headers=auth).json()
        assert [(p["name"], p["samples"]) for p in listed] == [("Barack Obamá", 2)]
        got = httpx.post(other + "/v1/identify", headers={"X-API-Key": reader["key"]},
                         files=_photo(*KNN, "test", "obama1.jpg"), timeout=60)
        assert got.status_code == 200 and [f["name"] for f in got.json()["faces"]] == ["Barack Obamá"], got.text
        # a key revoked in the shared database is refused by every replica
        revoked = faceprint("keys", "revoke", str(reader["id"]), "--db", pg_uri, cwd=tmp_path)
        assert revoked.returncode == 0, revoked.stderr
        for url in urls:
            r = httpx.get(url + "/v1/people", headers={"X-API-Key": reader["key"]})
            assert r.status_code == 401, (url, r.text)
            assert httpx.get(url + "/v1/people", headers=auth).status_code == 200
        removed = httpx.delete(other + "/v1/people/Barack Obamá", headers=auth)
        assert removed.status_code in (200, 204), removed.text
        assert httpx.get(one + "/v1/people", headers=auth).json() == []
    assert list(tmp_path.iterdir()) == []  # nothing local: gallery and keys live in PostgreSQL


def test_serve_on_milvus_keeps_keys_in_keys_db(tmp_path: Path) -> None:
    pytest.importorskip("pymilvus", reason="Milvus tests need pymilvus: pip install 'faceprint[scale]'")
    pytest.importorskip("milvus_lite", reason="Milvus tests need milvus-lite: pip install 'faceprint[scale]'")
    import httpx

    no_keys_db = faceprint("keys", "create", "--db", "g.milvus.db", "--scope", "admin", cwd=tmp_path)
    assert no_keys_db.returncode != 0 and "--keys-db" in no_keys_db.stderr.strip().splitlines()[-1]
    admin = new_key("g.milvus.db", "admin", tmp_path, "--keys-db", "keys.db")
    auth = {"Authorization": f"Bearer {admin['key']}"}
    with start_replicas("g.milvus.db", 1, tmp_path, "--keys-db", "keys.db") as (url,):
        assert httpx.post(url + "/v1/people", headers=auth, json={"name": "Jo Biden"}).status_code == 201
        r = httpx.post(url + "/v1/people/Jo Biden/faces", headers=auth, files=_photo("people", "biden.jpg"), timeout=60)
        assert r.status_code == 201, r.text
        faces = httpx.post(url + "/v1/identify", headers=auth, files=_photo("people", "biden.jpg"), timeout=60).json()
        assert [f["name"] for f in faces["faces"]] == ["Jo Biden"]
        assert httpx.get(url + "/metrics", headers=auth).status_code == 200
    listed = faceprint("people", "--db", "g.milvus.db", "list", "--json", cwd=tmp_path)  # reopened by a new process
    shown = json.loads(faceprint("people", "--db", "g.milvus.db", "show", "Jo Biden", "--json", cwd=tmp_path).stdout)
    expected = [{"name": "Jo Biden", "samples": 1, "metadata": {}, "sources": shown["sources"]}]
    assert json.loads(listed.stdout) == expected
    assert len(shown["sources"]) == 1  # `list --json` shows the sources `show` lists (issue 19)
