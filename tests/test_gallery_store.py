"""The Gallery interface on the SQLite store: people edits, search against a plain loop,
open-set decisions, model-id binding, export/import, storage codecs, the schema convention."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from faceprint import ConfigError, Embeddings, ModelMismatchError
from faceprint.errors import GalleryError, PersonExistsError, PersonNotFoundError
from faceprint.gallery import OpenSetPolicy, open_gallery
from faceprint.gallery import codec


MODEL = "dlib_resnet_v1"


def emb(vectors: np.ndarray, model: str = MODEL) -> Embeddings:
    return Embeddings(np.asarray(vectors, np.float32), model, "euclidean")


def people_vectors(n_people: int, per: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Identity centres far apart, samples within 0.2 of their centre (dlib-like scale)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 0.09, (n_people, 128))
    vecs = np.concatenate([c + rng.normal(0, 0.015, (per, 128)) for c in centres])
    names = [f"p{i:03d}" for i in range(n_people) for _ in range(per)]
    return vecs.astype(np.float32), names


def milvus_lite(tmp_path):
    """A milvus-lite gallery, or a skip naming what is missing."""
    pytest.importorskip("pymilvus", reason="Milvus backend needs pymilvus: pip install 'faceprint[scale]'")
    pytest.importorskip("milvus_lite", reason="Milvus tests need milvus-lite: pip install 'faceprint[scale]'")
    return open_gallery(str(tmp_path / "g.milvus.db"))


@pytest.fixture(params=["sqlite", "milvus", "postgres"])
def gallery(request, tmp_path):
    if request.param == "postgres":
        g = open_gallery(request.getfixturevalue("pg_uri"))
    else:
        g = open_gallery(tmp_path / "g.db") if request.param == "sqlite" else milvus_lite(tmp_path)
    yield g
    g.close()


def fill(g, vecs, names) -> None:
    for name in dict.fromkeys(names):
        rows = [i for i, n in enumerate(names) if n == name]
        g.add_faces(name, emb(vecs[rows]), sources=[f"{name}/{i}.jpg" for i in rows])


def test_search_matches_a_plain_loop(gallery) -> None:
    vecs, names = people_vectors(30, 3)
    fill(gallery, vecs, names)
    queries = vecs[::7] + np.random.default_rng(1).normal(0, 0.01, vecs[::7].shape).astype(np.float32)
    hits = gallery.search(emb(queries), k=4)
    for q, row in zip(queries, hits):
        ref = sorted((float(np.sqrt(((q - v) ** 2).sum())), n) for v, n in zip(vecs, names))[:4]
        assert [h.name for h in row] == [n for _d, n in ref]
        assert np.allclose([h.distance for h in row], [d for d, _n in ref], atol=1e-4)


def test_identify_accepts_enrolled_and_rejects_strangers(gallery) -> None:
    vecs, names = people_vectors(20, 2)
    fill(gallery, vecs, names)
    rng = np.random.default_rng(2)
    known = vecs[::2] + rng.normal(0, 0.015, vecs[::2].shape).astype(np.float32)
    strangers = rng.normal(0, 0.09, (10, 128)).astype(np.float32)
    res = gallery.identify(emb(np.concatenate([known, strangers])), threshold=0.6, top_k=3)
    assert [r.name for r in res[:20]] == names[::2]
    assert all(r.name is None for r in res[20:])
    assert all(len(r.candidates) == 3 and r.candidates[0].distance == r.distance for r in res)
    assert all(r.candidates[0].distance <= r.candidates[1].distance <= r.candidates[2].distance for r in res)
    rec = res[0].to_dict()
    assert set(rec) == {"name", "distance", "score", "threshold", "candidates"} and set(rec["candidates"][0]) == {"name", "distance"}


def test_margin_and_aggregation(gallery) -> None:
    # "a" has one sample at 0.30 and one far away; "b" two samples at 0.35 from the query.
    q = np.zeros(128, np.float32)
    a = np.zeros((2, 128), np.float32)
    a[0, 0], a[1, 0] = 0.30, 0.9
    b = np.zeros((2, 128), np.float32)
    b[0, 1], b[1, 2] = 0.35, 0.35
    gallery.add_faces("a", emb(a))
    gallery.add_faces("b", emb(b))
    nearest = gallery.identify(emb(q), threshold=0.6)[0]
    assert nearest.name == "a" and nearest.distance == pytest.approx(0.30, abs=1e-5)
    centroid = gallery.identify(emb(q), threshold=0.6, policy=OpenSetPolicy(aggregation="centroid"))[0]
    assert centroid.name == "b"  # b's centroid sits at 0.247, a's at 0.6
    assert centroid.distance == pytest.approx(np.linalg.norm([0.175, 0.175]), abs=1e-5)
    vote = gallery.identify(emb(q), threshold=0.6, policy=OpenSetPolicy(aggregation="knn", knn=3))[0]
    assert vote.name == "b"  # 2 of the 3 nearest samples are b's
    assert gallery.identify(emb(q), threshold=0.6, policy=OpenSetPolicy(margin=0.1))[0].name is None
    assert gallery.identify(emb(q), threshold=0.6, policy=OpenSetPolicy(margin=0.04))[0].name == "a"


def test_people_edits(gallery) -> None:
    vecs, names = people_vectors(3, 2)
    fill(gallery, vecs, names)
    gallery.add_person("empty", {"team": "x"})
    assert [p.name for p in gallery.people()] == ["empty", "p000", "p001", "p002"] and len(gallery) == 4
    assert gallery.person("empty").metadata == {"team": "x"} and gallery.person("p000").samples == 2
    gallery.rename("p000", "ada")
    assert gallery.identify(emb(vecs[0]), threshold=0.6)[0].name == "ada"
    with pytest.raises(PersonExistsError):
        gallery.rename("ada", "p001")
    with pytest.raises(PersonNotFoundError):
        gallery.rename("nobody", "x")
    assert gallery.merge("p001", "ada") == 2
    assert gallery.person("ada").samples == 4
    assert gallery.identify(emb(vecs[2]), threshold=0.6)[0].name == "ada"
    with pytest.raises(ConfigError):
        gallery.merge("ada", "ada")
    assert gallery.remove("ada") == 4
    assert gallery.samples()[0].vectors.shape == (2, 128)
    assert gallery.identify(emb(vecs[0]), threshold=0.6)[0].name is None
    with pytest.raises(PersonNotFoundError):
        gallery.person("ada")
    with pytest.raises(PersonExistsError):
        gallery.add_person("p002")
    with pytest.raises(PersonNotFoundError):
        gallery.add_faces("new", emb(vecs[:1]), create=False)


def test_model_id_is_bound_and_checked(tmp_path, gallery) -> None:
    uri = {"SqliteGallery": tmp_path / "g.db", "MilvusGallery": str(tmp_path / "g.milvus.db")}.get(
        type(gallery).__name__) or gallery._uri
    gallery.add_faces("a", emb(np.ones((1, 128)) * 0.1))
    with pytest.raises(ModelMismatchError, match="gallery holds 'dlib_resnet_v1'"):
        gallery.add_faces("a", emb(np.ones((1, 128)), model="other"))
    with pytest.raises(ModelMismatchError):
        gallery.identify(emb(np.ones((1, 128)), model="other"))
    with pytest.raises(ModelMismatchError):
        gallery.search(Embeddings(np.ones((1, 64)), MODEL))
    gallery.close()
    with pytest.raises(ModelMismatchError):
        open_gallery(uri, model_id="arcface")
    with open_gallery(uri, model_id=MODEL) as again:
        assert again.person("a").samples == 1


def test_add_faces_is_all_or_nothing(tmp_path) -> None:
    gallery = open_gallery(tmp_path / "g.db")
    gallery.add_faces("a", emb(np.zeros((1, 128))))
    with pytest.raises(ConfigError):
        gallery.add_faces("b", emb(np.zeros((3, 128))), sources=["only-one"])
    with pytest.raises(ConfigError):
        gallery.add_faces("b", emb(np.zeros((2, 128))), crops=np.zeros((2, 150, 150), np.uint8))
    with pytest.raises(GalleryError, match="rolled back"):  # row 2 cannot be stored: row 1 must not stay
        gallery.add_faces("b", emb(np.zeros((2, 128))), sources=["ok.jpg", object()])  # type: ignore[list-item]
    assert [p.name for p in gallery.people()] == ["a"] and len(gallery.samples()[1]) == 1


def test_export_import_round_trip(tmp_path, gallery) -> None:
    vecs, names = people_vectors(4, 2)
    fill(gallery, vecs, names)
    gallery.add_person("meta", {"k": 1})
    assert gallery.export(tmp_path / "out.npz") == 8
    with open_gallery(tmp_path / "other.db") as other:  # across backends too
        assert other.import_(tmp_path / "out.npz") == 8
        assert [p.to_dict() for p in other.people()] == [p.to_dict() for p in gallery.people()]
        assert np.allclose(other.samples()[0].vectors, vecs)
        assert other.person("p001").sources == ["p001/2.jpg", "p001/3.jpg"]
        with pytest.raises(PersonExistsError):
            other.import_(tmp_path / "out.npz")
        assert len(other.samples()[1]) == 8  # the failed import added nothing
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(GalleryError):
        gallery.import_(tmp_path / "junk.npz")


@pytest.mark.parametrize("dtype,tol", [("float32", 0.0), ("float16", 2e-4), ("int8", 2e-3)])
def test_storage_codecs(tmp_path, dtype: str, tol: float) -> None:
    vecs, names = people_vectors(5, 2)
    blobs, scales = codec.encode(vecs, dtype)
    assert np.abs(codec.decode(blobs, scales, dtype, 128) - vecs).max() <= tol
    with open_gallery(tmp_path / f"{dtype}.db", dtype=dtype) as g:
        fill(g, vecs, names)
        assert [r.name for r in g.identify(emb(vecs), threshold=0.3)] == names
        assert len(blobs[0]) == {"float32": 512, "float16": 256, "int8": 128}[dtype]


def test_sqlite_convention_and_uris(tmp_path) -> None:
    path = tmp_path / "shared.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY)")  # another component's table
    conn.commit()
    conn.close()
    with open_gallery(f"sqlite:///{path}") as g:
        g.add_faces("a", emb(np.zeros((1, 128))))
        mode = g._conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal" and g._conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert g._conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_versions WHERE component='gallery'").fetchone()[0] == 2
    assert {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")} >= {
        "photos", "people", "samples", "crops", "cohort", "gallery_meta", "schema_versions"}
    conn.execute("UPDATE schema_versions SET version = 99 WHERE component='gallery'")
    conn.commit()
    conn.close()
    with pytest.raises(GalleryError, match="newer"):
        open_gallery(path)
    (tmp_path / "junk.db").write_bytes(b"x" * 4096)
    with pytest.raises(GalleryError):
        open_gallery(tmp_path / "junk.db")
    with pytest.raises(GalleryError, match="unknown gallery URI"):
        open_gallery("redis://x")


def test_empty_gallery_identifies_nobody(gallery) -> None:
    res = gallery.identify(emb(np.zeros((2, 128))), threshold=0.6)
    assert [r.name for r in res] == [None, None] and res[0].to_dict()["distance"] is None
    assert gallery.identify(emb(np.zeros((0, 128)))) == []


def test_people_without_samples_identify_nobody(gallery) -> None:
    """A person created (as the web page does) before any face is added: identify answers unknown."""
    gallery.add_person("ada")
    res = gallery.identify(emb(np.zeros((1, 128))), threshold=0.6)
    assert [r.name for r in res] == [None]
    vecs, _ = people_vectors(1, 2)
    gallery.add_faces("ada", emb(vecs))  # the search index learns the dimension only now
    assert [r.name for r in gallery.identify(emb(vecs[:1]), threshold=0.6)] == ["ada"]


ODD = ['José "q" \\u00e9', "O'Brien \\", "名前 {x} %s (50%)"]  # control characters are refused (gallery.names)


def test_any_name_works_in_every_operation(gallery) -> None:
    vecs, _ = people_vectors(3, 2, seed=4)
    for i, name in enumerate(ODD):
        gallery.add_faces(name, emb(vecs[2 * i:2 * i + 2]), sources=[f"{name}/a.jpg", f"{name}/b.jpg"])
    assert [p.name for p in gallery.people()] == sorted(ODD)
    for i, name in enumerate(ODD):
        assert gallery.person(name).samples == 2 and gallery.samples(name)[1] == [name, name]
        assert gallery.identify(emb(vecs[2 * i:2 * i + 1]))[0].name == name
    gallery.rename(ODD[0], ODD[0] + " 2")
    assert gallery.merge(ODD[1], ODD[0] + " 2") == 2
    assert gallery.remove(ODD[0] + " 2") == 4
    assert [p.name for p in gallery.people()] == [ODD[2]] and len(gallery.samples()[1]) == 2


def test_milvus_limits_are_checked_before_writing(tmp_path) -> None:
    g = milvus_lite(tmp_path)
    with pytest.raises(ConfigError, match="512 UTF-8 bytes"):
        g.add_faces("名" * 180, emb(np.zeros((1, 128))))  # 180 characters (allowed), 540 bytes
    with pytest.raises(ConfigError, match="4096 UTF-8 bytes"):
        g.add_faces("a", emb(np.zeros((1, 128))), sources=["x" * 4097])
    assert len(g) == 0 and len(g.samples()[1]) == 0
    g.close()
