"""The PostgreSQL + pgvector gallery on a real server (pgserver): schema versions, search against
a plain loop, remove deleting every vector and crop, concurrent writers in several processes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from faceprint import Embeddings
from faceprint.dburi import parse_db, sqlite_path
from faceprint.errors import ConfigError, GalleryError
from faceprint.gallery import open_gallery


MODEL = "dlib_resnet_v1"


def emb(vectors: np.ndarray) -> Embeddings:
    return Embeddings(np.asarray(vectors, np.float32), MODEL)


def sql(uri: str, query: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(uri, autocommit=True) as conn:
        cur = conn.execute(query)
        return cur.fetchall() if cur.description else []


def test_search_matches_a_plain_loop_exact_and_hnsw(pg_uri: str) -> None:
    rng = np.random.default_rng(3)
    vecs = rng.normal(0, 0.09, (300, 128)).astype(np.float32)
    with open_gallery(pg_uri) as g:
        for s in range(0, 300, 3):
            g.add_faces(f"p{s // 3}", emb(vecs[s:s + 3]))
    queries = vecs[::25] + rng.normal(0, 0.01, (12, 128)).astype(np.float32)
    for options in ({"exact": True}, {}):
        with open_gallery(pg_uri, **options) as g:
            got = g.search(emb(queries), k=5)
        for q, matches in zip(queries, got):
            d = [float(np.sqrt(((q - v) ** 2).sum())) for v in vecs]  # the reference: every stored vector
            order = sorted(range(len(vecs)), key=d.__getitem__)[:5]
            assert [m.sample_id for m in matches] == [i + 1 for i in order]  # sample ids start at 1
            assert [m.name for m in matches] == [f"p{i // 3}" for i in order]
            assert np.allclose([m.distance for m in matches], [d[i] for i in order], atol=1e-5)


def test_schema_version_and_vector_column(pg_uri: str) -> None:
    with open_gallery(pg_uri) as g:
        g.add_faces("a", emb(np.zeros((1, 128))))
    assert sql(pg_uri, "SELECT version FROM faceprint_schema WHERE component = 'gallery'") == [(2,)]
    assert sql(pg_uri, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'samples'::regclass "
                       "AND attname = 'vector'") == [("vector(128)",)]
    assert "hnsw" in sql(pg_uri, "SELECT indexdef FROM pg_indexes WHERE indexname = 'samples_hnsw'")[0][0]
    sql(pg_uri, "UPDATE faceprint_schema SET version = 99 WHERE component = 'gallery'")
    with pytest.raises(GalleryError, match="newer"):
        open_gallery(pg_uri)


def test_remove_deletes_every_vector_and_crop(pg_uri: str) -> None:
    with open_gallery(pg_uri) as g:
        g.add_faces("José", emb(np.ones((3, 128)) * 0.1), crops=np.zeros((3, 16, 16, 3), np.uint8), template="dlib")
        g.add_faces("Bo", emb(np.ones((1, 128)) * 0.2), crops=np.zeros((1, 16, 16, 3), np.uint8), template="dlib")
        assert g.crops("José")[0].shape == (3, 16, 16, 3)
        assert g.remove("José") == 3
    assert sql(pg_uri, "SELECT count(*) FROM samples") == [(1,)] and sql(pg_uri, "SELECT count(*) FROM crops") == [(1,)]


def test_add_faces_is_all_or_nothing(pg_uri: str) -> None:
    with open_gallery(pg_uri) as g:
        g.add_faces("a", emb(np.zeros((1, 128))))
        with pytest.raises(GalleryError, match="rolled back"):  # row 2 cannot be stored: row 1 must not stay
            g.add_faces("b", emb(np.zeros((2, 128))), sources=["ok.jpg", "\x00"])
    with open_gallery(pg_uri) as g:
        assert [p.name for p in g.people()] == ["a"] and g.sample_count() == 1


WRITER = """
import sys, numpy as np
from faceprint import Embeddings
from faceprint.gallery import open_gallery
g = open_gallery(sys.argv[1])
rng = np.random.default_rng(int(sys.argv[2]))
for i in range(40):
    # everyone writes the same new names (created once, shared) and names of their own
    g.add_faces(f"shared-{i}", Embeddings(rng.normal(0, 0.09, (2, 128)), "dlib_resnet_v1"))
    g.add_faces(f"w{sys.argv[2]}-{i}", Embeddings(rng.normal(0, 0.09, (1, 128)), "dlib_resnet_v1"))
"""


def test_concurrent_writers_in_several_processes(pg_uri: str) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, pg_uri, str(seed)], env=env, stderr=subprocess.PIPE,
                              text=True) for seed in range(3)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    with open_gallery(pg_uri) as g:
        counts = {p.name: p.samples for p in g.people()}
    assert counts == {**{f"shared-{i}": 6 for i in range(40)}, **{f"w{s}-{i}": 1 for s in range(3) for i in range(40)}}
    assert sql(pg_uri, "SELECT value FROM gallery_meta WHERE key = 'dim'") == [("128",)]


@pytest.mark.parametrize("text,kind,path", [
    ("people.db", "sqlite", "people.db"), ("sqlite:///rel/x.db", "sqlite", "rel/x.db"),
    ("sqlite:////abs/x.db", "sqlite", "/abs/x.db"), ("g.milvus.db", "milvus-lite", "g.milvus.db"),
    ("milvus://h:19530/pre", "milvus", None), ("postgresql://u:p@h:5432/db", "postgresql", None),
    ("postgres://h/db", "postgresql", None), ("C:/data/x.db", "sqlite", "C:/data/x.db")])
def test_one_parser_for_every_db(text: str, kind: str, path: str | None) -> None:
    uri = parse_db(text)
    assert (uri.kind, None if uri.path is None else str(uri.path)) == (kind, path)


def test_parser_refuses_what_is_not_a_known_uri() -> None:
    for bad in ("redis://x", "milvus:/127.0.0.1:19530", "postgresql:/h/db", "sqlite://x.db", "file:///x.db"):
        with pytest.raises(GalleryError, match="unknown gallery URI"):
            parse_db(bad)
    with pytest.raises(ConfigError):
        parse_db("  ")
    with pytest.raises(ConfigError, match="photo index lives in a SQLite file"):
        sqlite_path("postgresql://u:pw@h/db", "the photo index")
    assert parse_db("postgresql://u:pw@h/db").display() == "postgresql://u:***@h/db"


def test_a_dropped_connection_is_reopened(pg_uri: str) -> None:
    with open_gallery(pg_uri) as g:
        g.add_faces("a", emb(np.zeros((1, 128))))
        pid = g._conn.info.backend_pid
        sql(pg_uri, f"SELECT pg_terminate_backend({pid})")  # as a server restart would
        with pytest.raises(GalleryError):
            g.people()
        assert [p.name for p in g.people()] == ["a"]  # the next call reconnects


def test_auto_search_width_follows_its_anchors() -> None:
    from faceprint.gallery.postgres import EF_LARGE_N, EF_SEARCH, EF_SEARCH_LARGE, EF_SMALL_N, auto_ef_search

    assert auto_ef_search(-1) == auto_ef_search(10) == auto_ef_search(EF_SMALL_N) == EF_SEARCH
    assert auto_ef_search(EF_LARGE_N) == auto_ef_search(10 * EF_LARGE_N) == EF_SEARCH_LARGE
    mid = auto_ef_search((EF_SMALL_N * EF_LARGE_N) ** 0.5)  # half way in log size: the geometric mean width
    assert mid == round((EF_SEARCH * EF_SEARCH_LARGE) ** 0.5)
    widths = [auto_ef_search(n) for n in range(EF_SMALL_N, EF_LARGE_N, 50_000)]
    assert widths == sorted(widths)


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run([sys.executable, "-c", "from faceprint.cli import main; main()", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_an_index_larger_than_shared_buffers_is_reported_on_open(pg_small_buffers_uri: str, pg_uri: str) -> None:
    vecs = np.random.default_rng(4).normal(0, 0.09, (3000, 128)).astype(np.float32)
    for uri in (pg_small_buffers_uri, pg_uri):
        with open_gallery(uri) as g:
            for s in range(0, len(vecs), 500):
                g.add_faces(f"p{s}", emb(vecs[s:s + 500]))
            index_bytes, buffer_bytes = g.index_memory()
        assert index_bytes == sql(uri, "SELECT pg_relation_size('samples_hnsw')")[0][0]
        fits = uri == pg_uri  # 128 MB holds this index; 1 MB does not
        assert (index_bytes <= buffer_bytes) == fits and buffer_bytes == (128 if fits else 1) * 2**20
        listing = _cli("people", "--db", uri, "list")  # a new process, as users open it
        assert listing.returncode == 0 and "p0\t500 sample(s)" in listing.stdout, listing.stderr
        assert ("larger than the server's shared_buffers" in listing.stderr) != fits, listing.stderr


def _traced_messages(g, tmp_path, call) -> list[str]:
    """The protocol messages the client sent to the server during ``call()`` (libpq's trace)."""
    trace = tmp_path / "libpq.trace"
    with open(trace, "w") as f:
        g._conn.pgconn.trace(f.fileno())
        try:
            call()
        finally:
            g._conn.pgconn.untrace()
    fields = [line.split("\t") for line in trace.read_text().splitlines()]
    return [f[3] for f in fields if f[1] == "F"]  # timestamp, F(rontend) or B(ackend), length, message


def test_one_search_is_one_statement_and_reads_the_row_estimate_once_a_minute(pg_uri: str, tmp_path,
                                                                              monkeypatch) -> None:
    from faceprint.gallery import postgres

    with open_gallery(pg_uri) as g:
        g.add_faces("a", emb(np.random.default_rng(5).normal(0, 0.09, (20, 128))))
        width = lambda: g._conn.execute("SHOW hnsw.ef_search").fetchone()[0]  # noqa: E731  the session's width
        query = emb(np.full((1, 128), 0.01))
        g.search(query, k=1)
        assert width() == str(postgres.EF_SEARCH)
        sent = _traced_messages(g, tmp_path, lambda: g.search(query, k=1))
        assert sent.count("Parse") + sent.count("Query") == 1, sent  # no BEGIN, SET, estimate or COMMIT
        sql(pg_uri, "UPDATE pg_class SET reltuples = 1e6 WHERE oid = 'samples'::regclass")  # the gallery "grows"
        g.search(query, k=1)
        assert width() == str(postgres.EF_SEARCH)  # the estimate read a moment ago still holds
        monkeypatch.setattr(postgres, "ESTIMATE_TTL_S", 0.0)
        g.search(query, k=1)
        assert width() == str(postgres.EF_SEARCH_LARGE)


def test_the_search_width_is_set_again_on_a_new_connection(pg_uri: str) -> None:
    with open_gallery(pg_uri, ef_search=77) as g:
        g.add_faces("a", emb(np.zeros((1, 128))))
        assert [m.name for m in g.search(emb(np.zeros((1, 128))), k=1)[0]] == ["a"]
        sql(pg_uri, f"SELECT pg_terminate_backend({g._conn.info.backend_pid})")  # as a server restart would
        with pytest.raises(GalleryError):
            g.search(emb(np.zeros((1, 128))), k=1)
        assert [m.name for m in g.search(emb(np.zeros((1, 128))), k=1)[0]] == ["a"]
        assert g._conn.execute("SHOW hnsw.ef_search").fetchone()[0] == "77"
