"""`faceprint enroll`, `identify` and `people`: JSON contracts, CSV output, exit codes."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from faceprint.cli import app

from .conftest import shared

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_enroll_identify_and_people(tmp_path) -> None:
    db = tmp_path / "g.db"
    train, test = shared("people", "knn_examples", "train"), shared("people", "knn_examples", "test")
    code, out, _ = run("enroll", "--db", db, "--from-folders", train, "--json")
    assert code == 0
    assert {r["name"]: len(r["enrolled"]) for r in json.loads(out)} == {
        "alex_lacamoire": 1, "biden": 2, "kit_harington": 2, "obama": 2, "rose_leslie": 2}
    code, out, _ = run("identify", "--db", db, test / "obama_and_biden.jpg", test / "johnsnow_test1.jpg",
                       "--top-k", "2", "--json")
    assert code == 0
    records = json.loads(out)
    assert [r["image"] for r in records] == [str(test / "obama_and_biden.jpg"), str(test / "johnsnow_test1.jpg")]
    assert [f["name"] for f in records[0]["faces"]] == ["obama", "biden", None]
    assert set(records[1]["faces"][0]) == {"box", "name", "distance", "score", "threshold", "candidates"}
    assert len(records[1]["faces"][0]["candidates"]) == 2 and records[1]["faces"][0]["name"] == "kit_harington"
    # a threshold of 0.01 makes everyone unknown
    code, out, _ = run("identify", "--db", db, test / "obama1.jpg", "--threshold", "0.01", "--json")
    assert json.loads(out)[0]["faces"][0]["name"] is None

    people = lambda *a: run("people", "--db", db, *a)  # noqa: E731
    code, out, _ = people("list", "--json")
    assert code == 0 and [p["name"] for p in json.loads(out)] == [
        "alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"]
    assert people("rename", "kit_harington", "kit")[0] == 0
    code, out, _ = people("show", "kit", "--json")
    assert json.loads(out)["samples"] == 2 and len(json.loads(out)["sources"]) == 2
    assert people("merge", "rose_leslie", "kit")[0] == 0
    assert json.loads(people("show", "kit", "--json")[1])["samples"] == 4
    assert people("export", tmp_path / "all.npz")[0] == 0
    code, out, _ = people("remove", "kit", "--json")
    assert code == 0 and json.loads(out)["action"] == "removed"
    code, _, err = people("show", "kit")
    assert code == 11 and err.strip() == f"error: no person named 'kit' in {db}"
    code, _, err = people("import", tmp_path / "all.npz")
    assert code == 12 and "already exists" in err  # alex etc. are still there: nothing imported
    fresh = tmp_path / "fresh.db"
    assert run("people", "--db", fresh, "import", tmp_path / "all.npz")[0] == 0
    code, out, _ = run("people", "--db", fresh, "list", "--json")
    assert [p["samples"] for p in json.loads(out)] == [1, 2, 4, 2]


def test_identify_known_prints_csv() -> None:
    train, test = shared("people", "knn_examples", "train"), shared("people", "knn_examples", "test")
    code, out, _ = run("identify", "--known", train, test / "kit_with_rose.jpg", test / "obama_and_biden.jpg")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines == [f"{test / 'kit_with_rose.jpg'},kit_harington", f"{test / 'kit_with_rose.jpg'},rose_leslie",
                     f"{test / 'obama_and_biden.jpg'},obama", f"{test / 'obama_and_biden.jpg'},biden",
                     f"{test / 'obama_and_biden.jpg'},unknown_person"]


def test_enroll_errors(tmp_path) -> None:
    db = tmp_path / "g.db"
    code, _, err = run("enroll", "--db", db, "bob", shared("people", "two_people.jpg"))
    assert code == 13 and err.strip() == "error: no photo passed the quality gate; nothing was enrolled"
    code, _, err = run("enroll", "--db", db, "bob")
    assert code == 2 and "give NAME and at least one IMAGE" in err
    code, _, err = run("people", "--db", tmp_path / "typo.db", "list")
    assert code == 10 and err.strip() == f"error: {tmp_path / 'typo.db'}: no such gallery"
    assert not (tmp_path / "typo.db").exists()
    code, _, err = run("identify", shared("people", "obama.jpg"))
    assert code == 2 and "--db" in err
    code, _, err = run("enroll", "--db", db, "--from-folders", tmp_path / "nowhere")
    assert code == 2 and "not a folder" in err


def test_reindex_and_cohort_commands(tmp_path) -> None:
    db, out = tmp_path / "g.db", tmp_path / "flip.db"
    train = shared("people", "knn_examples", "train")
    assert run("enroll", "--db", db, "--keep-crops", "obama", *sorted((train / "obama").iterdir()))[0] == 0
    code, out_json, _ = run("reindex", "--db", db, "--out", out, "--flip", "--json")
    assert code == 0 and json.loads(out_json) == {"people": 1, "reembedded": {"crop": 2, "photo": 0}, "skipped": []}
    code, _, err = run("reindex", "--db", db, "--out", out)
    assert code == 2 and "already holds 1 people" in err
    code, out_json, _ = run("people", "--db", db, "cohort", shared("people", "two_people.jpg"), "--json")
    assert code == 0 and json.loads(out_json)["result"] == 2


def test_enroll_jitter_option(tmp_path) -> None:
    """`--jitter 0` stores the plain pipeline's vector; the default stores the jittered average."""
    import numpy as np

    from faceprint import FacePipeline
    from faceprint.gallery import open_gallery

    photo = shared("people", "obama.jpg")
    plain = FacePipeline().embed(photo).embeddings.vectors[0]
    stored = {}
    for jitter in ("0", None):
        db = tmp_path / f"j{jitter}.db"
        code, _, _ = run("enroll", "--db", db, "obama", photo, *(["--jitter", jitter] if jitter else []))
        assert code == 0
        with open_gallery(db) as g:
            stored[jitter] = g.samples("obama")[0].vectors[0]
    assert np.allclose(stored["0"], plain, atol=1e-5)
    assert 0.01 < float(np.linalg.norm(stored[None] - plain)) < 0.2  # same face, other views
    code, _, err = run("enroll", "--db", tmp_path / "x.db", "obama", photo, "--jitter", "-1")
    assert code == 2 and "--jitter" in err  # a usage error


def test_enroll_rerun_says_already_enrolled_and_names_the_subject_it_took(tmp_path) -> None:
    db = tmp_path / "g.db"
    photo = shared("lfw-view1", "images", "Aishwarya_Rai", "Aishwarya_Rai_0001.jpg")  # a clear subject + one more
    code, out, _ = run("enroll", "aishwarya", photo, "--db", db)
    assert code == 0 and "2 faces, took the clear subject at [" in out
    code, out, _ = run("enroll", "aishwarya", photo, "--db", db)
    assert code == 0 and "already enrolled aishwarya" in out and "nothing new" in out
    code, _, err = run("enroll", "pair", shared("people", "two_people.jpg"), "--db", db)
    assert code != 0 and err.count("\n") == 1 and "nothing was enrolled" in err
    code, out, _ = run("enroll", "pair", shared("people", "two_people.jpg"), "--db", db, "--json")
    assert "--allow-multiple" in json.loads(out)[0]["rejected"][0]["reason"]


def test_identify_known_uses_the_default_gate(tmp_path) -> None:
    known = tmp_path / "known"
    known.mkdir()
    (known / "obama.jpg").write_bytes(shared("people", "obama.jpg").read_bytes())
    (known / "pair.jpg").write_bytes(shared("people", "two_people.jpg").read_bytes())  # no clear subject
    code, out, _ = run("identify", "--known", known, shared("people", "two_people.jpg"))
    assert code == 0 and "pair" not in out  # refused by the gate, as `enroll` refuses it
