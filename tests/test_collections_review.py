"""Reviewing a library (real LFW faces): the paged review in Chromium, merging clusters, naming
offers a person's close faces and fragments, suggested merges."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest

from faceprint.collections.clustering import as_vectors
from faceprint.collections.review import suggest_merges
from faceprint.collections.store import read_faces

from .test_collections_growing import CLI, copy, labels, library  # noqa: F401  (library is a fixture)

CHROMIUM = Path("/usr/bin/chromium")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + list(args), capture_output=True, text=True)


def biggest(conn: sqlite3.Connection, n: int = 1) -> list[int]:
    return [int(c) for (c,) in conn.execute("SELECT cluster_id FROM faces WHERE cluster_id IS NOT NULL GROUP BY "
                                            "cluster_id ORDER BY count(*) DESC, cluster_id LIMIT ?", (n,))]


@pytest.fixture
def clustered(library: tuple[Path, dict[str, str]], tmp_path: Path) -> Path:  # noqa: F811
    db, _ = library
    copy(db, tmp_path / "lib.db").close()
    res = cli("cluster", "--db", str(tmp_path / "lib.db"))
    assert res.returncode == 0, res.stderr
    return tmp_path / "lib.db"


def test_review_pages_in_chromium_list_every_unclustered_face(clustered: Path, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed")
    exe = CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")
    if exe is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with sqlite3.connect(clustered) as conn:
        before = labels(conn)
    noise = {f for f, c in before.items() if c < 0}
    clusters = {c for c in before.values() if c >= 0}
    assert len(noise) > 10
    out = tmp_path / "review" / "library.html"
    out.parent.mkdir()
    res = cli("sheet", "--db", str(clustered), "--html", str(out), "--faces-per-page", "7",
              "--clusters-per-page", "4")
    assert res.returncode == 0, res.stderr
    with sqlite3.connect(clustered) as conn:
        assert labels(conn) == before  # the sheet did not re-cluster
    seen_faces: set[int] = set()
    seen_clusters: set[int] = set()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(exe), args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.goto(out.as_uri())
        links = page.eval_on_selector_all("nav a", "els => els.map(e => [e.textContent, e.href])")
        loose = [href for text, href in links if text.startswith("Unclustered")]
        people = [href for text, href in links if text.startswith("People")]
        assert len(loose) == -(-len(noise) // 7) and len(people) == -(-len(clusters) // 4)
        for href in loose:  # walk the unclustered pages through the navigation
            page.click(f"nav a[href='{Path(href).name}']")
            page.wait_for_load_state()
            assert page.url == href
            seen_faces |= set(page.eval_on_selector_all("section.noise figure", "els => els.map(e => +e.dataset.face)"))
            widths = page.eval_on_selector_all("section.noise img", "els => els.map(e => e.complete && e.naturalWidth)")
            assert widths and all(w > 0 for w in widths)  # every thumbnail loads
        for href in people:
            page.goto(href)
            seen_clusters |= set(page.eval_on_selector_all("section.cluster", "els => els.map(e => +e.id.slice(8))"))
        page.goto(out.parent.joinpath(out.stem + "-merges.html").as_uri())
        assert page.title().endswith("suggested merges")
        browser.close()
    assert seen_faces == noise  # every unclustered face, across pages
    assert seen_clusters == clusters


def test_merge_is_kept_by_later_runs_and_bad_merges_fail(clustered: Path) -> None:
    conn = sqlite3.connect(clustered)
    a, b, c = biggest(conn, 3)
    moved = {f for f, lab in labels(conn).items() if lab == b}
    anchor = min(f for f, lab in labels(conn).items() if lab == a)
    conn.close()
    res = cli("merge", "--db", str(clustered), str(a), str(b), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"cluster": a, "name": None, "moved": len(moved)}
    res = cli("cluster", "--db", str(clustered))
    assert "joined new faces" in res.stdout  # the merge did not force a full re-run
    with sqlite3.connect(clustered) as conn:
        after = labels(conn)
        assert all(after[f] == a for f in moved)
        assert conn.execute("SELECT count(*) FROM clusters WHERE id = ?", (b,)).fetchone() == (0,)
    assert cli("cluster", "--db", str(clustered), "--full").returncode == 0
    with sqlite3.connect(clustered) as conn:
        after = labels(conn)
    assert len({after[f] for f in moved | {anchor}}) == 1 and after[anchor] >= 0  # the must-links hold
    res = cli("merge", "--db", str(clustered), str(a), "99999")
    assert res.returncode != 0 and res.stdout.count("\n") + res.stderr.strip().count("\n") <= 1
    assert "no cluster with id 99999" in res.stdout + res.stderr
    assert cli("merge", "--db", str(clustered), str(a)).returncode == 2
    with sqlite3.connect(clustered) as conn:
        conn.execute("UPDATE clusters SET name = 'Ada' WHERE id = ?", (a,))
        conn.execute("UPDATE clusters SET name = 'Bob' WHERE id = ?", (c,))
    res = cli("merge", "--db", str(clustered), str(a), str(c))
    assert res.returncode != 0 and "different names" in res.stdout + res.stderr


def test_naming_offers_close_faces_and_fragments_and_adds_them_with_yes(clustered: Path) -> None:
    conn = sqlite3.connect(clustered)
    (big,) = biggest(conn)
    faces = [int(f) for (f,) in conn.execute("SELECT id FROM faces WHERE cluster_id = ? ORDER BY id", (big,))]
    assert len(faces) >= 6
    rows = read_faces(conn)
    v = rows.embeddings.vectors[np.isin(rows.face_id, faces)]
    central = np.argsort(np.linalg.norm(v[:, None] - v[None], axis=2).mean(1))
    faces = [faces[i] for i in central]  # most typical first
    # the same person split up as a user might find it: a typical face unclustered, two in a fragment
    conn.execute("UPDATE faces SET cluster_id = NULL WHERE id = ?", (faces[0],))
    frag = int(conn.execute("INSERT INTO clusters (name) VALUES (NULL)").lastrowid)
    conn.executemany("UPDATE faces SET cluster_id = ? WHERE id = ?", [(frag, faces[1]), (frag, faces[2])])
    conn.commit()
    conn.close()
    res = cli("people", "--db", str(clustered), "name", str(big), "Ada", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert faces[0] in out["offered"]["faces"] and frag in out["offered"]["clusters"]
    assert out["added"] == {"faces": 0, "clusters": 0} and out["enrolled"] == len(faces) - 3  # not confirmed
    res = cli("people", "--db", str(clustered), "name", str(big), "Ada", "--yes", "--json")
    out = json.loads(res.stdout)
    assert out["added"]["faces"] >= 1 and out["added"]["clusters"] >= 1
    with sqlite3.connect(clustered) as conn:
        got = labels(conn)
    assert all(got[f] == big for f in faces)
    assert out["enrolled"] >= 3  # the added faces are enrolled as Ada too
    res = cli("people", "--db", str(clustered), "list", "--json")
    assert {p["name"]: p["samples"] for p in json.loads(res.stdout)}["Ada"] >= len(faces)


def test_suggested_merges_find_a_split_person(clustered: Path) -> None:
    conn = sqlite3.connect(clustered)
    (big,) = biggest(conn)
    faces = [int(f) for (f,) in conn.execute("SELECT id FROM faces WHERE cluster_id = ? ORDER BY id", (big,))]
    frag = int(conn.execute("INSERT INTO clusters (name) VALUES (NULL)").lastrowid)
    conn.executemany("UPDATE faces SET cluster_id = ? WHERE id = ?", [(frag, f) for f in faces[::2]])
    conn.commit()
    rows = read_faces(conn)
    found = suggest_merges(rows, rows.cluster_id, 0.6133)
    assert {"a": min(big, frag), "b": max(big, frag)} in [{k: s[k] for k in ("a", "b")} for s in found]
    v, _ = as_vectors(rows.embeddings, "euclidean")
    for s in found[:5]:  # the distance is the plain average over face pairs
        a_rows, b_rows = np.flatnonzero(rows.cluster_id == s["a"]), np.flatnonzero(rows.cluster_id == s["b"])
        plain = np.mean([np.linalg.norm(v[i] - v[j]) for i in a_rows for j in b_rows])
        assert s["distance"] == pytest.approx(plain, abs=1e-4) and plain < 0.6133
    conn.close()


def test_identify_reuses_indexed_faces_instead_of_detecting(clustered: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from faceprint.cli import app
    from faceprint.pipeline import FacePipeline

    conn = sqlite3.connect(clustered)
    (big,) = biggest(conn)
    photos = [p for (p,) in conn.execute("SELECT p.path FROM faces f JOIN photos p ON p.id = f.photo_id "
                                         "WHERE f.cluster_id = ? ORDER BY f.id", (big,))]
    conn.close()
    runner = CliRunner()
    res = runner.invoke(app, ["people", "--db", str(clustered), "name", str(big), "Ada"])
    assert res.exit_code == 0, res.output
    outsider = tmp_path / "copy.jpg"  # the same photo, but not in the index
    shutil.copy(photos[0], outsider)
    calls: list[str] = []
    real = FacePipeline.embed

    def counting(self: FacePipeline, image: object, faces: object = None) -> object:
        calls.append(str(image))
        return real(self, image, faces)

    monkeypatch.setattr(FacePipeline, "embed", counting)
    res = runner.invoke(app, ["identify", "--db", str(clustered), "--json", photos[0], photos[1], str(outsider)])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert calls == [str(outsider)]  # the indexed photos were not detected again
    assert any(f["name"] == "Ada" for f in out[0]["faces"]) and any(f["name"] == "Ada" for f in out[1]["faces"])
    assert [f["name"] for f in out[2]["faces"]] == [f["name"] for f in out[0]["faces"]]  # same answer either way
