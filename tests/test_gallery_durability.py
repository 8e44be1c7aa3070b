"""The SQLite gallery under stress: kill -9 during bulk enrollment, readers during writes,
the ANN index kept in sync and persisted, reindex, the closed-set classifier."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading

import numpy as np
import pytest

from faceprint import Embeddings
from faceprint.errors import ConfigError
from faceprint.gallery import open_gallery

MODEL = "dlib_resnet_v1"

# Enrolls person after person (4 vectors each, one transaction per person), printing each
# name only after its transaction committed.
WRITER = """
import sys, numpy as np
from faceprint import Embeddings
from faceprint.gallery import open_gallery
g = open_gallery(sys.argv[1])
rng = np.random.default_rng(int(sys.argv[2]))
for i in range(int(sys.argv[3])):
    g.add_faces(f"{sys.argv[2]}-{i:05d}", Embeddings(rng.normal(0, 0.09, (4, 128)), "dlib_resnet_v1"),
                sources=[f"p{i}/{j}.jpg" for j in range(4)])
    print(f"{sys.argv[2]}-{i:05d}", flush=True)
"""


def start_writer(db, seed: int, count: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(seed), str(count)],
                            stdout=subprocess.PIPE, text=True, env=env)


def test_kill_9_during_bulk_enrollment_keeps_reported_people(tmp_path) -> None:
    db = tmp_path / "crash.db"
    proc = start_writer(db, 1, 100_000)
    reported = []
    while len(reported) < 150:
        line = proc.stdout.readline()
        assert line, "writer died early"
        reported.append(line.strip())
    os.kill(proc.pid, signal.SIGKILL)  # mid-transaction, most likely
    proc.wait()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with open_gallery(db) as g:
        counts = {p.name: p.samples for p in g.people()}
        assert set(reported) <= set(counts)
        assert all(n == 4 for n in counts.values())  # no half-enrolled person
        assert len(g.samples()[1]) == 4 * len(counts)
        g.add_faces("after", Embeddings(np.zeros((1, 128)), MODEL))  # still writable


def test_readers_while_a_writer_enrolls(tmp_path) -> None:
    db = tmp_path / "busy.db"
    with open_gallery(db) as g:
        g.add_faces("seed", Embeddings(np.full((4, 128), 0.05), MODEL))
    proc = start_writer(db, 2, 200)
    errors, seen = [], []

    def reader() -> None:
        try:
            with open_gallery(db) as g:
                last = 0
                while proc.poll() is None:
                    people = g.people()
                    assert all(p.samples == 4 for p in people)  # never a partial enrollment
                    assert len(people) >= last
                    last = len(people)
                    res = g.identify(Embeddings(np.full((1, 128), 0.05), MODEL), threshold=0.1)
                    assert res[0].name == "seed"
                    seen.append(last)
        except Exception as exc:  # surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    proc.wait(timeout=120)
    for t in threads:
        t.join(timeout=60)
    assert proc.returncode == 0 and not errors, errors
    assert len(seen) > 2 and max(seen) > min(seen)  # reads happened during the writes
    with open_gallery(db) as g:
        assert len(g) == 201


def test_ann_index_stays_in_sync_and_persists(tmp_path) -> None:
    pytest.importorskip("usearch", reason="ANN tests need usearch: pip install 'faceprint[scale]'")
    db = tmp_path / "ann.db"
    rng = np.random.default_rng(3)
    vecs = rng.normal(0, 0.09, (300, 128)).astype(np.float32)
    g = open_gallery(db, ann="on")
    for i in range(0, 300, 3):
        g.add_faces(f"p{i // 3:03d}", Embeddings(vecs[i:i + 3], MODEL))
    q = Embeddings(vecs + rng.normal(0, 0.01, vecs.shape).astype(np.float32), MODEL)
    exact = open_gallery(db, ann="off")
    assert [r.name for r in g.identify(q, threshold=0.5)] == [r.name for r in exact.identify(q, threshold=0.5)]
    assert type(g._index).__name__ == "UsearchIndex" and len(g._index) == 300
    g.remove("p000")  # incremental (on the next search): three ids leave the graph
    assert g.identify(q[:1], threshold=0.5)[0].name is None and len(g._index) == 297
    g.close()
    exact.close()
    assert (tmp_path / "ann.db.usearch").is_file()
    np.save(tmp_path / "late.npy", vecs[:1] + 0.3)
    # another process writes with the ANN index off (its file closed and stale) ...
    assert in_new_process(db, "g = open_gallery(db, ann='off'); g.add_faces('late', Embeddings(late, MODEL)); "
                          "g.close(); print(json.dumps('ok'))") == "ok"
    # ... and a third reopens with the index on: the saved graph, brought up to date with the database
    assert in_new_process(db, "g = open_gallery(db, ann='on'); r = g.identify(Embeddings(late, MODEL), threshold=0.1); "
                          "print(json.dumps([r[0].name, len(g._index), type(g._index).__name__, "
                          "g.identify(Embeddings(first, MODEL), threshold=0.5)[0].name]))") == [
        "late", 298, "UsearchIndex", None]  # p000, removed before, stays gone
    (tmp_path / "ann.db.usearch").write_bytes(b"torn")
    with open_gallery(db, ann="on") as torn:  # a broken index file is rebuilt from the database
        assert torn.identify(q[3:4], threshold=0.5)[0].name == "p001"


def in_new_process(db, code: str) -> object:
    """Run ``code`` in a fresh interpreter (``db``, ``late`` and ``first`` vectors, ``MODEL`` bound);
    it prints JSON, returned parsed."""
    prelude = ("import json, sys, numpy as np\nfrom faceprint import Embeddings\nfrom faceprint.gallery import open_gallery\n"
               f"MODEL = {MODEL!r}\ndb = sys.argv[1]\nlate = np.load(sys.argv[2])\nfirst = late - 0.3\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, "-c", prelude + code, str(db), str(db.parent / "late.npy")],
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def assert_same_matches(got: list, want: list, atol: float = 1e-4) -> None:
    """Same samples in the same order, distances equal up to float32 rounding (exact search
    ranks by ``|v|^2 - 2 q.v``, which loses digits for vectors far from the origin)."""
    assert [[m.sample_id for m in r] for r in got] == [[m.sample_id for m in r] for r in want]
    assert np.allclose([[m.distance for m in r] for r in got], [[m.distance for m in r] for r in want], atol=atol)


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_int8_ann_rescores_to_exact(tmp_path, dtype) -> None:
    """The int8 HNSW graph's shortlist is re-ranked with the stored vectors: the same top
    matches and distances as exact search, although the int8 graph alone misorders near ties."""
    pytest.importorskip("usearch", reason="ANN tests need usearch")
    rng = np.random.default_rng(5)
    centres = rng.normal(0, 0.06, (1500, 128)).astype(np.float32)
    base = np.repeat(centres, 4, axis=0) + rng.normal(0, 0.03, (6000, 128)).astype(np.float32)
    q = Embeddings(centres[:300] + rng.normal(0, 0.03, (300, 128)).astype(np.float32), MODEL)
    db = tmp_path / "i8.db"
    g = open_gallery(db, dtype=dtype, ann="on")
    for j in range(0, 6000, 4):
        g.add_faces(f"p{j // 4:04d}", Embeddings(base[j:j + 4], MODEL))
    exact = open_gallery(db, ann="off")
    got, want = g.search(q, k=3), exact.search(q, k=3)
    assert_same_matches(got, want)
    assert g._index.dtype == "i8"
    raw = g._index.search(q.vectors, 1)[1][:, 0]  # the graph's own int8 ranking, not re-ranked
    assert (raw != np.array([r[0].sample_id for r in want])).sum() >= 3
    g.close()
    exact.close()
    with open_gallery(db, ann="on") as again:  # the saved int8 graph is loaded, still re-ranked
        assert_same_matches(again.search(q[:50], k=3), want[:50])
        assert again._index.dtype == "i8"
    if dtype == "float32":  # asked for a float32 graph: the saved int8 file is not used
        with open_gallery(db, ann="on", ann_dtype="f32") as f32:
            assert_same_matches(f32.search(q[:50], k=3), want[:50], atol=1e-3)
            assert f32._index.dtype == "f32"


def test_ann_falls_back_to_float32_beyond_int8_range(tmp_path) -> None:
    """A float gallery whose vectors leave int8's range far (components > 1.5 * 127/210) gets a
    float32 graph instead of clipped int8 vectors; an explicit ``ann_dtype="f32"`` too."""
    pytest.importorskip("usearch", reason="ANN tests need usearch")
    rng = np.random.default_rng(6)
    vecs = rng.normal(0, 0.09, (400, 128)).astype(np.float32)
    vecs[0, 1] = 0.7  # a rare component a little beyond int8's range (0.6) is clipped in the graph only
    vecs[200:, 0] += 2.0  # a model with larger components
    db = tmp_path / "wide.db"
    g = open_gallery(db, ann="on")
    g.add_faces("small", Embeddings(vecs[:200], MODEL))
    assert g.search(Embeddings(vecs[:1], MODEL), k=1)[0][0].distance < 1e-6  # re-ranked: exact
    assert g._index.dtype == "i8"
    g.add_faces("wide", Embeddings(vecs[200:], MODEL))
    q = Embeddings(vecs + rng.normal(0, 0.005, vecs.shape).astype(np.float32), MODEL)
    want = open_gallery(db, ann="off").search(q, k=1)
    assert_same_matches(g.search(q, k=1), want, atol=1e-3)
    assert g._index.dtype == "f32" and len(g._index) == 400
    g.close()
    with open_gallery(db, ann="on", ann_dtype="f32") as f32:
        assert_same_matches(f32.search(q, k=1), want, atol=1e-3)
        assert f32._index.dtype == "f32"
    with pytest.raises(ConfigError):
        open_gallery(db, ann_dtype="i4")


def test_int8_ann_recall(tmp_path) -> None:
    pytest.importorskip("usearch", reason="ANN tests need usearch")
    from faceprint.gallery.index import ExactIndex, UsearchIndex

    rng = np.random.default_rng(4)
    base = rng.normal(0, 0.09, (5000, 128)).astype(np.float32)
    q = base[:200] + rng.normal(0, 0.02, (200, 128)).astype(np.float32)
    exact = ExactIndex(128)
    exact.add(np.arange(5000), base)
    ann = UsearchIndex(128, dtype="i8", expansion_search=256)  # iid Gaussian data is HNSW's worst case
    ann.add(np.arange(5000), base)
    d_e, i_e = exact.search(q, 3)
    d_a, i_a = ann.search(q, 3)
    assert (i_e[:, 0] == i_a[:, 0]).mean() >= 0.99
    hit = i_e[:, 0] == i_a[:, 0]
    assert np.abs(d_e[hit, 0] - d_a[hit, 0]).max() < 0.02  # int8 step 1/210
    for row in range(3):  # the plain loop agrees with the exact index
        ref = np.sqrt(((base - q[row]) ** 2).sum(1))
        assert list(i_e[row]) == list(np.argsort(ref)[:3])


def test_reindex_and_classifier(tmp_path) -> None:
    from faceprint import FacePipeline
    from faceprint.gallery import Recognizer
    from faceprint.gallery.classifier import ClosedSetClassifier
    from faceprint.gallery.reindex import reindex

    from .conftest import shared

    train = shared("people", "knn_examples", "train")
    pipe = FacePipeline()
    src = open_gallery(tmp_path / "src.db")
    rec = Recognizer(pipe, src)
    rec.enroll("obama", sorted((train / "obama").iterdir()), keep_crops=True)
    rec.enroll("biden", sorted((train / "biden").iterdir()))  # no crops: re-embedded from photos
    assert src.crops("obama")[0].shape == (2, 150, 150, 3) and len(src.crops("biden")[1]) == 0
    from faceprint import create_embedder

    flip = FacePipeline(detector=pipe.detector, embedder=create_embedder("dlib_resnet", flip=True))
    dst = open_gallery(tmp_path / "dst.db")
    report = reindex(src, flip, dst)
    assert report.people == 2 and report.reembedded == {"crop": 2, "photo": 2} and not report.skipped
    old, new = src.samples("obama")[0].vectors, dst.samples("obama")[0].vectors
    assert 0 < np.linalg.norm(old - new, axis=1).max() < 0.25  # flip-averaged: close, not equal
    test = shared("people", "knn_examples", "test", "obama1.jpg")
    assert Recognizer(flip, dst).identify(test)[0].name == "obama"
    clf = ClosedSetClassifier("logistic").fit(src)
    names, conf = clf.predict(pipe.embed(test).embeddings)
    assert names == ["obama"] and 0.5 < conf[0] <= 1
    svm_names, _ = ClosedSetClassifier("svm").fit(src).predict(pipe.embed(test).embeddings)
    assert svm_names == ["obama"]
    src.close()
    dst.close()
