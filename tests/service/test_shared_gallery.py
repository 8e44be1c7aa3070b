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


def _bulk_gallery(uri: str, n: int, cwd: Path) -> None:
    """A gallery of ``n`` synthetic dlib-shaped faces (one per person; the model's own Gaussian,
    see ``phantom_faces``: isotropic random vectors are unlike faces, and a graph search over them
    misses a real face enrolled among them), filled with COPY as a migration would, and its
    in-process search graph built and saved by a fresh process, as a first replica leaves it."""
    import psycopg
    from pgvector.psycopg import register_vector

    from faceprint import Embeddings
    from faceprint.gallery import open_gallery
    from faceprint.gallery.scoring import phantom_faces

    faces = phantom_faces("dlib_resnet_v1", 2 * n)[n:]  # not the phantoms identify itself uses
    with open_gallery(uri) as g:  # binds the model: the tables get their dimension
        g.add_faces("filler-0", Embeddings(faces[:1], "dlib_resnet_v1"))
    with psycopg.connect(uri, autocommit=True) as conn, conn.transaction():
        register_vector(conn)
        conn.execute("UPDATE gallery_meta SET value = (value::bigint + 1)::text WHERE key = 'version'")
        with conn.cursor().copy("COPY people (id, name, created_at) FROM STDIN") as cp:
            for i in range(2, n + 1):
                cp.write_row((i, f"filler-{i - 1}", 0.0))
        with conn.cursor().copy("COPY samples (id, person_id, model_id, vector, created_at) FROM STDIN "
                                "WITH (FORMAT BINARY)") as cp:
            cp.set_types(["int8", "int8", "text", "vector", "float8"])
            for i, v in enumerate(faces[1:], start=2):
                cp.write_row((i, i, "dlib_resnet_v1", v, 0.0))
        conn.execute("SELECT setval('samples_id_seq', %s), setval('people_id_seq', %s)", (n, n))
    build = ("import sys, numpy as np\n"
             "from faceprint import Embeddings\n"
             "from faceprint.gallery import open_gallery\n"
             "with open_gallery(sys.argv[1], local_index='on') as g:\n"
             "    g.search(Embeddings(np.zeros((1, 128)), 'dlib_resnet_v1'), k=1)\n")
    built = subprocess.run([sys.executable, "-c", build, uri], cwd=cwd, env=_env(), capture_output=True, text=True,
                           timeout=600, check=False)
    assert built.returncode == 0, built.stderr


def test_replicas_on_a_large_postgres_gallery_search_their_in_process_graphs(tmp_path: Path, pg_uri: str) -> None:
    """50,000 faces: the default threshold of the in-process graph. Each replica loads the saved
    graph and keeps it in step: an enrollment through one is identified by the other at once,
    a removal through the other is gone from the first."""
    import httpx

    from faceprint.gallery.postgres import LOCAL_INDEX_THRESHOLD

    _bulk_gallery(pg_uri, LOCAL_INDEX_THRESHOLD, tmp_path)
    admin = new_key(pg_uri, "admin", tmp_path)
    auth = {"Authorization": f"Bearer {admin['key']}"}
    with start_replicas(pg_uri, 2, tmp_path) as urls:
        one, other = urls
        for url in urls:  # the first search decides; a saved graph exists, so both use it at once
            got = httpx.post(url + "/v1/identify", headers=auth, files=_photo(*KNN, "test", "obama1.jpg"), timeout=60)
            assert got.status_code == 200 and [f["name"] for f in got.json()["faces"]] == [None], got.text
            assert httpx.get(url + "/healthz").json()["search"] == "in-process graph"
        assert httpx.post(one + "/v1/people", headers=auth, json={"name": "Barack Obamá"}).status_code == 201
        for photo in sorted(shared(*KNN, "train", "obama").iterdir()):
            r = httpx.post(one + "/v1/people/Barack Obamá/faces", headers=auth,
                           files={"image": (photo.name, photo.read_bytes())}, timeout=60)
            assert r.status_code == 201, r.text
        got = httpx.post(other + "/v1/identify", headers=auth, files=_photo(*KNN, "test", "obama1.jpg"), timeout=60)
        assert got.status_code == 200 and [f["name"] for f in got.json()["faces"]] == ["Barack Obamá"], got.text
        assert httpx.delete(other + "/v1/people/Barack Obamá", headers=auth).status_code in (200, 204)
        got = httpx.post(one + "/v1/identify", headers=auth, files=_photo(*KNN, "test", "obama1.jpg"), timeout=60)
        assert got.status_code == 200 and [f["name"] for f in got.json()["faces"]] == [None], got.text


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
