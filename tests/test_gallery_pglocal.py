"""The PostgreSQL gallery's in-process search graph (faceprint.gallery.pglocal) on a real server:
search against a plain loop, the binary COPY against the rows, and other processes' writes
(enrollments, removals, renames, merges, each in a fresh process) seen at the next search; the
saved graph loaded by a new process that then catches up; a torn saved graph; the automatic
switch at the gallery's size; a gallery made before the change counter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from faceprint import Embeddings
from faceprint.gallery import open_gallery

MODEL = "dlib_resnet_v1"


def emb(vectors: np.ndarray) -> Embeddings:
    return Embeddings(np.asarray(vectors, np.float32), MODEL)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder of the test's own (subprocesses inherit it), where graphs are saved."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("FACEPRINT_CACHE_DIR", str(folder))
    return folder / "pg-index"


def run(code: str, *args: object) -> str:
    """``code`` in a fresh Python process (``sys.argv[1:]`` = ``args``); its stdout."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def fill(uri: str, vecs: np.ndarray, per: int = 4) -> None:
    with open_gallery(uri, local_index="off") as g:
        for s in range(0, len(vecs), per):
            g.add_faces(f"p{s // per}", emb(vecs[s:s + per]))


def plain_nearest(q: np.ndarray, vecs: np.ndarray, ids: list[int], k: int) -> list[tuple[int, float]]:
    d = [float(np.sqrt(((q - v) ** 2).sum())) for v in vecs]
    order = sorted(range(len(vecs)), key=d.__getitem__)[:k]
    return [(ids[i], d[i]) for i in order]


def test_local_search_matches_a_plain_loop(pg_uri: str, cache: Path) -> None:
    rng = np.random.default_rng(11)
    vecs = rng.normal(0, 0.09, (400, 128)).astype(np.float32)
    fill(pg_uri, vecs)
    queries = vecs[::37] + rng.normal(0, 0.01, (len(vecs[::37]), 128)).astype(np.float32)
    with open_gallery(pg_uri, local_index="on") as g:
        got = g.search(emb(queries), k=5)
        assert type(g._local).__name__ == "LocalIndex" and len(g._local) == 400
    for q, matches in zip(queries, got):
        want = plain_nearest(q, vecs, list(range(1, 401)), 5)
        assert [m.sample_id for m in matches] == [i for i, _ in want]
        assert [m.name for m in matches] == [f"p{(i - 1) // 4}" for i, _ in want]
        assert np.allclose([m.distance for m in matches], [d for _, d in want], atol=1e-5)  # re-ranked exactly


def test_binary_copy_equals_the_rows_across_chunk_boundaries(pg_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from faceprint.gallery import pglocal

    rng = np.random.default_rng(12)
    vecs = rng.normal(0, 0.3, (103, 128)).astype(np.float32)
    fill(pg_uri, vecs, per=1)
    monkeypatch.setattr(pglocal, "CHUNK_ROWS", 7)  # many chunks, a torn row at most block ends
    from faceprint.pgdb import connect

    conn = connect(pg_uri)
    try:
        chunks = list(pglocal.copy_vectors(conn, 128, 40))
        rows = conn.execute("SELECT id, vector FROM samples WHERE id > 40 ORDER BY id").fetchall()  # the text path
    finally:
        conn.close()
    assert len(chunks) > 1
    ids = np.concatenate([c[0] for c in chunks])
    got = np.concatenate([c[1] for c in chunks])
    assert ids.tolist() == [r[0] for r in rows] == list(range(41, 104))
    assert np.array_equal(got, np.stack([r[1].to_numpy() for r in rows]))
    assert np.array_equal(got, vecs[40:])


WRITER = """
import sys
import numpy as np
from faceprint import Embeddings
from faceprint.gallery import open_gallery
g = open_gallery(sys.argv[1], local_index="off")
step = sys.argv[2]
if step == "enroll":
    g.add_faces("newcomer", Embeddings(np.full((1, 128), 0.2, np.float32), "dlib_resnet_v1"))
elif step == "rename":
    g.rename("newcomer", "Jos\\u00e9")
elif step == "merge":
    g.merge("p1", "p2")
elif step == "remove":
    g.remove("Jos\\u00e9")
g.close()
"""


def test_other_processes_writes_are_seen_at_the_next_search(pg_uri: str, cache: Path) -> None:
    """A long-lived reader (a service replica) and writers that each run in a fresh process."""
    rng = np.random.default_rng(13)
    vecs = rng.normal(0, 0.09, (40, 128)).astype(np.float32)
    fill(pg_uri, vecs)
    newcomer = np.full((1, 128), 0.2, np.float32)
    with open_gallery(pg_uri, local_index="on") as reader:
        assert reader.search(emb(newcomer), k=1)[0][0].name != "newcomer"
        run(WRITER, pg_uri, "enroll")
        hit = reader.search(emb(newcomer), k=1)[0][0]
        assert (hit.name, hit.sample_id, hit.distance) == ("newcomer", 41, pytest.approx(0.0, abs=1e-6))
        run(WRITER, pg_uri, "rename")
        assert reader.search(emb(newcomer), k=1)[0][0].name == "Jos\u00e9"
        run(WRITER, pg_uri, "merge")
        assert {m.name for m in reader.search(emb(vecs[4:8]), k=1)[0]} == {"p2"}  # p1's faces now p2's
        run(WRITER, pg_uri, "remove")
        after = reader.search(emb(newcomer), k=3)[0]
        assert 41 not in [m.sample_id for m in after] and len(after) == 3
        assert 41 not in reader._local.index.ids()  # dropped from the graph too, not only filtered
        assert len(reader._local) == 40


BUILDER = """
import sys
import numpy as np
from faceprint import Embeddings
from faceprint.gallery import open_gallery, pglocal
copied = []
original = pglocal.copy_vectors
def counting(conn, dim, after_id):
    for ids, vectors in original(conn, dim, after_id):
        copied.append(len(ids))
        yield ids, vectors
pglocal.copy_vectors = counting
with open_gallery(sys.argv[1], local_index="on") as g:
    q = np.load(sys.argv[2])
    hits = g.search(Embeddings(q, "dlib_resnet_v1"), k=1)
    print(sum(copied), len(g._local), " ".join(str(h[0].sample_id) for h in hits))
"""


def test_a_new_process_loads_the_saved_graph_and_catches_up(pg_uri: str, cache: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(14)
    vecs = rng.normal(0, 0.09, (1200, 128)).astype(np.float32)
    fill(pg_uri, vecs)
    np.save(tmp_path / "q.npy", vecs[[5, 700, 1199]])
    copied, size, hits = run(BUILDER, pg_uri, tmp_path / "q.npy").split(maxsplit=2)
    assert (copied, size, hits) == ("1200", "1200", "6 701 1200")  # built from every row, then saved
    assert len(list(cache.glob("*.usearch"))) == 1
    with open_gallery(pg_uri, local_index="off") as g:  # writes the saved graph does not hold
        g.add_faces("late", emb(vecs[:2] + 0.5))
        g.remove("p175")  # samples 701-704
    np.save(tmp_path / "q.npy", np.concatenate([vecs[[5, 700]], vecs[:1] + 0.5]))
    copied, size, hits = run(BUILDER, pg_uri, tmp_path / "q.npy").split(maxsplit=2)
    assert copied == "2" and size == "1198"  # loaded, then only the two new faces copied
    first, second, third = (int(h) for h in hits.split())
    assert first == 6 and second not in (701, 702, 703, 704) and third == 1201


def test_a_torn_saved_graph_is_rebuilt(pg_uri: str, cache: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(15)
    vecs = rng.normal(0, 0.09, (1100, 128)).astype(np.float32)
    fill(pg_uri, vecs)
    np.save(tmp_path / "q.npy", vecs[[3]])
    run(BUILDER, pg_uri, tmp_path / "q.npy")
    (saved,) = cache.glob("*.usearch")
    saved.write_bytes(saved.read_bytes()[:1000])
    copied, size, hits = run(BUILDER, pg_uri, tmp_path / "q.npy").split(maxsplit=2)
    assert (copied, size, hits) == ("1100", "1100", "4")


def test_auto_uses_a_saved_graph_from_the_threshold_and_build_makes_one_in_the_background(
        pg_uri: str, cache: Path) -> None:
    rng = np.random.default_rng(16)
    vecs = rng.normal(0, 0.09, (120, 128)).astype(np.float32)
    fill(pg_uri, vecs[:80])
    with open_gallery(pg_uri, local_threshold=100, local_index="build") as g:
        g.search(emb(vecs[:1]), k=1)
        assert g._local is None and g._builder is None  # 80 samples: pgvector on the server
    with open_gallery(pg_uri, local_index="off") as g:
        g.add_faces("more", emb(vecs[80:]))
    with open_gallery(pg_uri, local_threshold=100) as g:  # "auto": no saved graph, so no build either
        assert g.search(emb(vecs[100:101]), k=1)[0][0].sample_id == 101
        assert g._local is None and g._builder is None and not cache.exists()
    with open_gallery(pg_uri, local_threshold=100, local_index="build") as g:  # a service replica
        assert g.search(emb(vecs[100:101]), k=1)[0][0].sample_id == 101  # the server, while building
        g._builder.join(timeout=120)
        assert g._local is not None and len(g._local) == 120
        assert len(list(cache.glob("*.usearch"))) == 1
    out = run("import sys, numpy as np\n"  # a one-off command now finds the saved graph
              "from faceprint import Embeddings\n"
              "from faceprint.gallery import open_gallery\n"
              "with open_gallery(sys.argv[1], local_threshold=100) as g:\n"
              "    hit = g.search(Embeddings(np.load(sys.argv[2]), 'dlib_resnet_v1'), k=1)[0][0]\n"
              "    print(hit.sample_id, type(g._local).__name__)\n", pg_uri, _npy(cache.parent, vecs[7:8]))
    assert out.split() == ["8", "LocalIndex"]
    with open_gallery(pg_uri, local_threshold=100, exact=True) as g:
        g.search(emb(vecs[:1]), k=1)
        assert g._local is None  # exact search stays on the server


def _npy(folder: Path, array: np.ndarray) -> Path:
    path = folder / "q.npy"
    np.save(path, array)
    return path


def test_a_gallery_made_before_the_change_counter_migrates(pg_uri: str, cache: Path) -> None:
    """Version-1 tables with faces in them, as an older faceprint left them (no counter, no uuid)."""
    from faceprint.gallery import postgres
    from faceprint.pgdb import connect, migrate

    conn = connect(pg_uri)
    migrate(conn, "gallery", postgres.MIGRATIONS[:1])
    conn.execute("INSERT INTO gallery_meta VALUES ('model_id', %s), ('metric', 'euclidean'), ('dim', '128')", (MODEL,))
    conn.execute("INSERT INTO people (name, created_at) VALUES ('old', 0)")
    conn.execute("INSERT INTO samples (person_id, model_id, vector, created_at) VALUES (1, %s, %s, 0), (1, %s, %s, 0)",
                 (MODEL, np.full(128, 0.1, np.float32), MODEL, np.full(128, 0.3, np.float32)))
    conn.close()
    out = run("import sys, numpy as np\n"
              "from faceprint import Embeddings\n"
              "from faceprint.gallery import open_gallery\n"
              "with open_gallery(sys.argv[1], local_index='on') as g:\n"
              "    hit = g.search(Embeddings(np.full((1, 128), 0.3, np.float32), 'dlib_resnet_v1'), k=1)[0][0]\n"
              "    print(hit.name, hit.sample_id, len(g._local))\n", pg_uri)
    assert out.split() == ["old", "2", "2"]
    with open_gallery(pg_uri) as g:
        assert g.search(emb(np.full((1, 128), 0.1)), k=1)[0][0].sample_id == 1  # server search as before


def test_an_unwritable_cache_folder_costs_only_the_saved_graph(pg_uri: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setenv("FACEPRINT_CACHE_DIR", str(tmp_path))
    (tmp_path / "pg-index").write_text("a file where the graphs' folder would go")  # every save fails
    rng = np.random.default_rng(17)
    vecs = rng.normal(0, 0.09, (1100, 128)).astype(np.float32)
    fill(pg_uri, vecs)
    with open_gallery(pg_uri, local_index="on") as g:
        assert g.search(emb(vecs[9:10]), k=1)[0][0].sample_id == 10  # built; the save after it failed
    assert "cannot save the search graph" in caplog.text
