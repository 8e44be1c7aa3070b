"""Every `faceprint` command run as users run it: a fresh process of the installed console script
(PYTHONPATH points it at this checkout), on real photos, one shared database per module.

``test_every_command_has_a_subprocess_test`` walks the Typer app and fails when a command is
never invoked through :func:`fp` in this file, so a new command needs its subprocess test.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import faceprint

from .conftest import shared

SRC = Path(faceprint.__file__).resolve().parents[1]
EXE = shutil.which("faceprint")
pytestmark = pytest.mark.skipif(EXE is None, reason="the `faceprint` console script is not on PATH (pip install)")


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))


def fp(*args: object, timeout: float = 300, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``faceprint ARGS`` in a new process; with ``ok`` it must exit 0."""
    proc = subprocess.run([str(EXE), *map(str, args)], env=_env(), capture_output=True, text=True, timeout=timeout,
                          check=False)
    if ok:
        assert proc.returncode == 0, f"faceprint {' '.join(map(str, args))}: exit {proc.returncode}\n{proc.stderr}"
    return proc


def fp_json(*args: object, timeout: float = 300) -> Any:
    """``faceprint ARGS`` (exit 0) and its stdout parsed as JSON."""
    return json.loads(fp(*args, timeout=timeout).stdout)


def _command_paths() -> set[str]:
    import typer.main

    from faceprint.cli import app

    def walk(cmd: Any, prefix: tuple[str, ...]) -> Iterator[str]:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                yield from walk(sub, prefix + (name,))
        else:
            yield " ".join(prefix)

    return set(walk(typer.main.get_command(app), ()))


def _invoked_paths(commands: set[str]) -> set[str]:
    """Command paths this file passes to fp()/fp_json() (their string literals that are not
    options, so a group's ``--db X`` is skipped); ``Server(...)`` runs ``serve``."""
    runners = {"fp": [], "fp_json": [], "Server": ["serve"]}
    found = set()
    for node in ast.walk(ast.parse(Path(__file__).read_text(encoding="utf-8"))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in runners):
            continue
        words = runners[node.func.id] + [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
                 and not a.value.startswith("-")]
        for n in range(len(words), 0, -1):
            if " ".join(words[:n]) in commands:
                found.add(" ".join(words[:n]))
                break
    return found


def test_every_command_has_a_subprocess_test() -> None:
    commands = _command_paths()
    assert {"detect", "serve", "people list", "eval lfw", "keys create"} <= commands  # the walk sees groups
    missing = commands - _invoked_paths(commands)
    assert not missing, f"commands with no subprocess test in {Path(__file__).name}: {sorted(missing)}"


# ---------------------------------------------------------------- inputs


@pytest.fixture(scope="module")
def people() -> Path:
    return shared("people")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-subprocess")


@pytest.fixture(scope="module")
def library(people: Path, work: Path) -> Path:
    """10 photos (9 one-person photos of 5 people and one two-person photo), indexed with 2 workers."""
    lib = work / "photos"
    shutil.copytree(people / "knn_examples" / "train", lib)
    shutil.copy(people / "two_people.jpg", lib / "two_people.jpg")
    db = work / "library.db"
    report = fp_json("index", lib, "--db", db, "--workers", "2", "--json")
    assert report["files"] == report["new"] == report["processed"] == 10 and report["errors"] == 0
    assert report["faces"] == 11
    return db


def _faces_by_photo(db: Path) -> dict[str, list[int]]:
    import sqlite3

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT f.id, p.path FROM faces f JOIN photos p ON p.id = f.photo_id ORDER BY f.id").fetchall()
    out: dict[str, list[int]] = {}
    for face_id, path in rows:
        out.setdefault(Path(path).name, []).append(int(face_id))
    return out


@pytest.fixture(scope="module")
def gallery(people: Path, work: Path) -> Path:
    """obama (2 photos) and biden (2 photos) enrolled by `faceprint enroll`."""
    db = work / "gallery.db"
    train = people / "knn_examples" / "train"
    for name in ("obama", "biden"):
        out = fp_json("enroll", name, *sorted((train / name).glob("*.jpg")), "--db", db, "--json")
        assert out[0]["name"] == name and len(out[0]["enrolled"]) == 2 and out[0]["rejected"] == []
    return db


@pytest.fixture(scope="module")
def pairs_csv(people: Path, work: Path) -> Path:
    """24 labelled pairs of the deepface set (12 same, 12 different), paths relative to its folder."""
    import csv

    root = people / "deepface_pairs"
    with open(root / "master.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    same = [r for r in rows if r["Decision"] == "Yes"][:12]
    diff = [r for r in rows if r["Decision"] == "No"][:12]
    out = work / "pairs.csv"
    out.write_text("".join(f"{r['file_x']},{r['file_y']},{int(r['Decision'] == 'Yes')}\n" for r in same + diff))
    return out


@pytest.fixture(scope="module")
def calibration(pairs_csv: Path, people: Path, work: Path) -> dict[str, Any]:
    path = work / "calibration.json"
    fp("calibrate", "--pairs", pairs_csv, "--root", people / "deepface_pairs", "--far", "0.1", "--out", path)
    data = json.loads(path.read_text())
    assert data["model_id"] == "dlib_resnet_v1" and 0.2 < data["threshold"] < 1.0
    return {"path": path, **data}


# ---------------------------------------------------------------- single photos


def test_models_lists_the_defaults() -> None:
    names = json.dumps(fp_json("models", "--json"))
    assert "mtcnn" in names and "dlib_resnet" in names


def test_info_reports_the_install() -> None:
    import faceprint

    info = fp_json("info", "--json")
    assert info["version"] == faceprint.__version__
    assert "CPUExecutionProvider" in info["onnxruntime"]["providers"]
    assert {m["name"] for m in info["models"]} >= {"mtcnn", "dlib_resnet"}


def test_detect_counts_faces(people: Path) -> None:
    out = fp_json("detect", people / "obama.jpg", people / "two_people.jpg", "--json")
    assert [len(o["faces"]) for o in out] == [1, 2]
    assert all(len(f["landmarks"]) == 5 for o in out for f in o["faces"])


def test_embed_and_flip(people: Path) -> None:
    plain = np.array(fp_json("embed", people / "obama.jpg", "--json")[0]["faces"][0]["embedding"])
    flipped = np.array(fp_json("embed", people / "obama.jpg", "--flip", "--json")[0]["faces"][0]["embedding"])
    assert plain.shape == flipped.shape == (128,)
    # --flip averages with the mirror image: a different vector of the same face
    assert 1e-3 < np.linalg.norm(plain - flipped) < 0.3


def test_verify_flip_and_calibration(people: Path, calibration: dict[str, Any]) -> None:
    obama2 = people / "knn_examples" / "train" / "obama" / "obama2.jpg"
    same = fp_json("verify", people / "obama.jpg", obama2, "--flip", "--json")
    other = fp_json("verify", people / "obama.jpg", people / "biden.jpg", "--flip", "--json")
    assert same["match"] is True and other["match"] is False and same["threshold"] == 0.6
    cal = fp_json("verify", people / "obama.jpg", obama2, "--calibration", calibration["path"], "--json")
    assert cal["threshold"] == pytest.approx(calibration["threshold"], abs=1e-6)
    assert cal["match"] == (cal["distance"] <= calibration["threshold"]) and 0.0 <= cal["probability"] <= 1.0


# ---------------------------------------------------------------- gallery


def test_enroll_quality_gate_options(people: Path, work: Path) -> None:
    db = work / "gate.db"
    photo = people / "obama.jpg"  # one face, 227 px, detection score 0.9968
    for opt, bad, good in (("--min-face", 500, 200), ("--min-score", 0.999, 0.99), ("--min-blur", 1e6, 0)):
        refused = fp("enroll", "obama", photo, "--db", db, opt, bad, ok=False)
        assert refused.returncode == 13 and "nothing enrolled" in refused.stdout + refused.stderr, refused.stderr
    out = fp_json("enroll", "obama", photo, "--db", db, "--min-face", 200, "--min-score", 0.99, "--min-blur", 0,
                  "--json")
    assert out[0]["enrolled"] == [str(photo)]


def test_enroll_allow_multiple_takes_the_largest_face(people: Path, work: Path) -> None:
    db = work / "multiple.db"
    refused = fp("enroll", "biden", people / "two_people.jpg", "--db", db, ok=False)
    assert refused.returncode == 13 and "--allow-multiple" in refused.stdout
    out = fp_json("enroll", "biden", people / "two_people.jpg", "--db", db, "--allow-multiple", "--json")
    assert out[0]["taken"][0]["faces"] == 2 and out[0]["enrolled"]
    # the face taken is the largest one, and it is Biden's
    hits = fp_json("identify", people / "biden.jpg", "--db", db, "--json")
    assert hits[0]["faces"][0]["name"] == "biden"


def test_enroll_from_folders_and_identify(people: Path, work: Path, gallery: Path) -> None:
    db = work / "folders.db"
    out = fp_json("enroll", "--from-folders", people / "knn_examples" / "train", "--db", db, "--json")
    assert sorted(o["name"] for o in out) == ["alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"]
    hits = fp_json("identify", people / "two_people.jpg", "--db", gallery, "--json")
    assert sorted(f["name"] for f in hits[0]["faces"]) == ["biden", "obama"]


def test_people_commands_in_fresh_processes(people: Path, gallery: Path, work: Path) -> None:
    db = work / "people.db"
    shutil.copy(gallery, db)
    listed = fp_json("people", "--db", db, "list", "--json")
    assert {p["name"]: p["samples"] for p in listed} == {"obama": 2, "biden": 2}
    shown = fp_json("people", "--db", db, "show", "obama", "--json")
    assert json.dumps(shown).count("obama") >= 1
    fp("people", "--db", db, "rename", "biden", "joe")
    fp("people", "--db", db, "merge", "joe", "obama")
    assert {p["name"]: p["samples"] for p in fp_json("people", "--db", db, "list", "--json")} == {"obama": 4}
    export = work / "people.npz"
    fp("people", "--db", db, "export", export)
    fp("people", "--db", db, "remove", "obama")
    assert fp_json("people", "--db", db, "list", "--json") == []
    fp("people", "--db", db, "import", export)
    assert {p["name"]: p["samples"] for p in fp_json("people", "--db", db, "list", "--json")} == {"obama": 4}
    cohort = fp("people", "--db", db, "cohort", people / "knn_examples" / "train" / "rose_leslie" / "img1.jpg")
    assert "added 1 cohort face" in cohort.stdout


def test_reindex_writes_a_new_gallery(gallery: Path, work: Path) -> None:
    src, out = work / "reindex-src.db", work / "reindexed.db"
    fp("enroll", "obama", *sorted((shared("people", "knn_examples", "train", "obama")).glob("*.jpg")), "--db", src,
       "--keep-crops")
    fp("reindex", "--db", src, "--out", out, "--flip")
    assert {p["name"]: p["samples"] for p in fp_json("people", "--db", out, "list", "--json")} == {"obama": 2}


# ---------------------------------------------------------------- photo collections


def test_index_ray_option(people: Path, work: Path) -> None:
    if importlib.util.find_spec("ray") is None:  # (not imported here: the command imports it)
        pytest.skip("ray is not installed (pip install 'faceprint[ray]'): index --ray not run")
    lib = work / "ray-photos"
    shutil.copytree(people / "knn_examples" / "train" / "obama", lib)
    report = fp_json("index", lib, "--db", work / "ray.db", "--ray", "local", "--workers", "1", "--json")
    assert report["faces"] == 2 and report["errors"] == 0


def test_cluster_must_link_and_cannot_link(library: Path, work: Path) -> None:
    db = work / "links.db"
    shutil.copy(library, db)
    faces = _faces_by_photo(db)
    plain = fp_json("cluster", "--db", db, "--json", "-")
    of = {f["face_id"]: c["id"] for c in plain["clusters"] for f in c["faces"]}
    by_path = {f["face_id"]: f["photo"] for c in plain["clusters"] for f in c["faces"]}
    by_path.update({f["face_id"]: f["photo"] for f in plain["noise"]})
    alex = next(i for i, p in by_path.items() if "alex_lacamoire" in p)
    john = next(i for i, p in by_path.items() if p.endswith("john1.jpeg"))
    obama1, obama2 = (next(i for i, p in by_path.items() if p.endswith(f"obama/{n}")) for n in ("obama.jpg", "obama2.jpg"))
    assert of.get(alex) != of.get(john) and of[obama1] == of[obama2]  # without corrections
    linked = fp_json("cluster", "--db", db, "--full", "--must-link", f"{alex},{john}",
                     "--cannot-link", f"{obama1},{obama2}", "--json", "-")
    of = {f["face_id"]: c["id"] for c in linked["clusters"] for f in c["faces"]}
    assert alex in of and of.get(alex) == of.get(john)
    assert of.get(obama1) is None or of.get(obama1) != of.get(obama2)
    # the corrections are kept: a later plain run (new process) still honours them
    again = fp_json("cluster", "--db", db, "--full", "--json", "-")
    of = {f["face_id"]: c["id"] for c in again["clusters"] for f in c["faces"]}
    assert of.get(alex) == of.get(john) and (of.get(obama1) is None or of.get(obama1) != of.get(obama2))
    # the two faces of one photo are never in one cluster
    two = faces["two_people.jpg"]
    assert len(two) == 2 and (of.get(two[0]) is None or of.get(two[0]) != of.get(two[1]))


def test_merge_name_and_sheet(library: Path, work: Path) -> None:
    db = work / "merge.db"
    shutil.copy(library, db)
    result = fp_json("cluster", "--db", db, "--json", "-")
    # two clusters with no photo in common (kit_harington's and rose_leslie's), as a wrong split would be
    ids = [next(c["id"] for c in result["clusters"] if all(who in f["photo"] for f in c["faces"]))
           for who in ("kit_harington", "rose_leslie")]
    sizes = {c["id"]: len(c["faces"]) for c in result["clusters"]}
    merged = fp_json("merge", str(ids[0]), str(ids[1]), "--db", db, "--json")
    assert merged["cluster"] == ids[0] and merged["moved"] == sizes[ids[1]]
    named = fp_json("people", "--db", db, "name", str(ids[0]), "pair", "--yes", "--json")
    assert named["enrolled"] == sizes[ids[0]] + sizes[ids[1]]
    assert {p["name"] for p in fp_json("people", "--db", db, "list", "--json")} == {"pair"}
    html = work / "sheet" / "index.html"
    html.parent.mkdir()
    fp("sheet", "--db", db, "--html", html)
    assert html.exists() and "pair" in html.read_text(encoding="utf-8")


def test_eval_cluster_on_labelled_folders(people: Path) -> None:
    report = fp_json("eval", "cluster", "--root", people / "knn_examples" / "train", "--json")
    # five people, nine clear one-person photos: every photo grouped right
    assert (report["photos"], report["n_people"], report["n_clusters"], report["f1"]) == (9, 5, 5, 1.0)


# ---------------------------------------------------------------- evaluation and training


def test_eval_lfw_on_a_pairs_csv(pairs_csv: Path, people: Path) -> None:
    report = fp_json("eval", "lfw", "--pairs", pairs_csv, "--root", people / "deepface_pairs", "--json", "-")
    assert (report["n_pairs"], report["n_same"], report["no_face"]) == (24, 12, 0)
    assert 0.8 <= report["accuracy_at_default_threshold"] <= 1.0 and report["default_threshold"] == 0.6


def test_train_one_step_and_embed_with_the_export(work: Path) -> None:
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed (pip install 'faceprint[train]'): train not run")
    root = shared("lfw-view1", "images")
    data = work / "train-people"
    data.mkdir()
    for person in [d for d in sorted(root.iterdir()) if len(list(d.glob("*.jpg"))) >= 3][:6]:
        (data / person.name).mkdir()
        for img in sorted(person.glob("*.jpg"))[:3]:
            (data / person.name / img.name).symlink_to(img)
    out = work / "trained"
    fp("train", "--data", data, "--out", out, "--backbone", "small_resnet", "--dim", "16", "--batch-p", "3",
       "--batch-k", "2", "--steps-per-epoch", "1", "--epochs", "1", "--val-fraction", "0.34",
       "--template", "arcface_112", "--device", "cpu", timeout=600)
    assert (out / "model.onnx").exists()
    vec = fp_json("embed", shared("people", "obama.jpg"), "--model", out / "model.onnx", "--json")
    assert len(vec[0]["faces"][0]["embedding"]) == 16


# ---------------------------------------------------------------- video


@pytest.fixture(scope="module")
def clip() -> Path:
    return shared("video", "face_recognition_short_hamilton_clip.mp4")


@pytest.fixture(scope="module")
def video_gallery(clip: Path, work: Path) -> Path:
    db = work / "video.db"
    out = fp_json("enroll", "guest", "--video", clip, "--video-frames", "3", "--db", db, "--json")
    assert len(out[0]["enrolled"]) == 3
    return db


def _events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_video_liveness_options_and_require_live(clip: Path, video_gallery: Path) -> None:
    antispoof = shared("models", "minifasnet", "2.7_80x80_MiniFASNetV2.pth")
    if importlib.util.find_spec("torch") is None:
        pytest.skip("a MiniFASNet .pth needs torch (faceprint[train]): video liveness options not run")
    frames = 130
    # active checks, names not gated: the singer is named while his liveness is still being decided
    free = _events(fp("video", clip, "--db", video_gallery, "--blink", "--head-turn", "--json", "-",
                      "--max-frames", frames).stdout)
    assert any(e["event"] == "identified" and e["name"] == "guest" for e in free)
    assert "pending" in {e["liveness"] for e in free} and "unavailable" not in {e["liveness"] for e in free}
    # passive check with --require-live: a name only once that track is live, and the singer still gets his
    gated = _events(fp("video", clip, "--db", video_gallery, "--antispoof", antispoof, "--require-live",
                       "--json", "-", "--max-frames", frames).stdout)
    live_at: dict[int, int] = {}
    for e in gated:
        if e["liveness"] == "live":
            live_at.setdefault(e["track_id"], e["frame"])
    named = [e for e in gated if e["name"] is not None]
    assert any(e["name"] == "guest" for e in named)
    for e in named:
        assert e["track_id"] in live_at and e["frame"] >= live_at[e["track_id"]], e
    assert {e["liveness"] for e in gated} <= {"pending", "live", "spoof"}


def test_video_blink_goes_live_on_a_blink_and_never_on_a_still(video_gallery: Path, work: Path) -> None:
    """``video --blink`` on mp4s written from a real photo (face 200 px): eyes painted shut at
    frames 15, 45 and 75 make the track live after the first blink; the same photo still never does."""
    from faceprint.image import load_image
    from faceprint.video.blink import Landmarks68
    from faceprint.video.source import VideoSink
    from faceprint.video.synth import blink_clip, webcam_frame

    det = faceprint.create_detector("mtcnn")
    rgb = webcam_frame(load_image(shared("people", "biden.jpg")), det)
    points = Landmarks68().points(rgb, det.detect(rgb).by_size().landmarks[0])
    live_at = {}
    for name, starts in (("blinks", [15, 45, 75]), ("still", [])):
        sink = VideoSink(work / f"{name}.mp4", 30.0, (rgb.shape[1], rgb.shape[0]))
        for frame in blink_clip(rgb, points, 90, starts, 4, 1 if starts else 2, seed=4):
            sink.write(frame)
        sink.close()
        events = _events(fp("video", work / f"{name}.mp4", "--db", video_gallery, "--blink", "--json", "-").stdout)
        assert events and {e["liveness"] for e in events} <= {"pending", "live"}
        live_at[name] = min((e["frame"] for e in events if e["liveness"] == "live"), default=None)
    assert live_at["blinks"] is not None and 15 <= live_at["blinks"] <= 25, live_at  # the first blink, once reopened
    assert live_at["still"] is None


# ---------------------------------------------------------------- keys and the server


def test_keys_create_list_revoke(work: Path) -> None:
    db = work / "keys.db"
    made = fp_json("keys", "create", "--db", db, "--scope", "read", "--name", "ci", "--rate-limit", "30", "--json")
    assert made["scope"] == "read" and made["rate_per_minute"] == 30 and made["key"].startswith("fp_")
    listed = fp_json("keys", "list", "--db", db, "--json")
    assert [(k["id"], k["revoked"]) for k in listed] == [(made["id"], False)] and "key" not in listed[0]
    fp("keys", "revoke", str(made["id"]), "--db", db)
    assert [k["revoked"] for k in fp_json("keys", "list", "--db", db, "--json")] == [True]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _request(url: str, key: str | None = None, files: dict[str, Path] | None = None) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    data = None
    if files:
        boundary = uuid.uuid4().hex
        parts = []
        for field, path in files.items():
            parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{path.name}\""
                         f"\r\nContent-Type: image/jpeg\r\n\r\n".encode() + path.read_bytes() + b"\r\n")
        data = b"".join(parts) + f"--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            body = resp.read()
            status = resp.status
    except urllib.error.HTTPError as err:
        body, status = err.read(), err.code
    try:
        return status, json.loads(body)
    except ValueError:
        return status, {"text": body.decode("utf-8", "replace")}


class Server:
    """``faceprint serve ARGS`` as a real process on a free port, ready once /healthz answers."""

    def __init__(self, *args: object) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([str(EXE), "serve", *map(str, args), "--port", str(self.port)], env=_env(),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                status, body = _request(self.url + "/healthz")
                if status == 200:
                    self.health = body
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.2)  # polling interval, not an assertion
        self.stop()
        raise AssertionError("serve did not answer /healthz within 180 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def test_serve_calibration_workers_and_rate_limit(people: Path, gallery: Path, calibration: dict[str, Any],
                                                  work: Path) -> None:
    db = work / "served.db"
    shutil.copy(gallery, db)
    key = fp_json("keys", "create", "--db", db, "--scope", "read", "--json")["key"]
    server = Server("--db", db, "--calibration", calibration["path"], "--workers", "1", "--rate-limit", "60",
                    "--burst", "4")
    try:
        assert server.health["model"] == "dlib_resnet_v1"
        obama2 = people / "knn_examples" / "train" / "obama" / "obama2.jpg"
        status, body = _request(server.url + "/v1/verify", key, {"image_a": people / "obama.jpg", "image_b": obama2})
        assert status == 200, body
        # the calibration's threshold is the one used, and it adds a probability
        assert body["threshold"] == pytest.approx(calibration["threshold"], abs=1e-6) and "probability" in body
        assert body["match"] == (body["distance"] <= calibration["threshold"])
        # the people `faceprint enroll` wrote (other processes) are the server's
        status, listed = _request(server.url + "/v1/people", key)
        assert status == 200 and sorted(p["name"] for p in listed) == ["biden", "obama"]
        # and a person the CLI enrolls while the server runs is seen by it on the next request
        knn = people / "knn_examples"
        fp("enroll", "rose", knn / "train" / "rose_leslie" / "img1.jpg", "--db", db)
        status, listed = _request(server.url + "/v1/people", key)
        assert status == 200 and sorted(p["name"] for p in listed) == ["biden", "obama", "rose"]
        # a key the CLI creates while the server runs works at once; a photo the CLI enrolled is a
        # duplicate for the API too (same file hash)
        enroll_key = fp("keys", "create", "--db", db, "--scope", "enroll").stdout.strip().splitlines()[-1]
        status, found = _request(server.url + "/v1/identify", enroll_key, {"image": knn / "test" / "obama1.jpg"})
        assert status == 200 and found["faces"][0]["name"] == "obama", found
        status, body = _request(server.url + "/v1/people/obama/faces", enroll_key,
                                {"image": knn / "train" / "obama" / "obama.jpg"})
        assert status == 422 and "duplicate" in body["detail"], body
        # burst 4 at 60/min (1 token/s): three requests used; the next burst runs out and answers 429
        codes = [_request(server.url + "/v1/people", key)[0] for _ in range(8)]
        assert 429 in codes and codes[0] == 200, codes
        assert codes[codes.index(429):] == [429] * (len(codes) - codes.index(429))
    finally:
        server.stop()


def test_serve_model_option_uses_that_model(people: Path, work: Path) -> None:
    onnx = shared("models", "mobilefacenet.onnx")
    db = work / "mobile.db"
    key = fp_json("keys", "create", "--db", db, "--scope", "read", "--json")["key"]
    server = Server("--db", db, "--model", onnx, "--workers", "2", "--rate-limit", "0")
    try:
        assert server.health["model"] != "dlib_resnet_v1"
        status, body = _request(server.url + "/v1/embed", key, {"image": people / "obama.jpg"})
        assert status == 200, body
        assert body["model"] == server.health["model"] and len(body["faces"][0]["embedding"]) == 128
        cli = fp_json("embed", people / "obama.jpg", "--model", onnx, "--json")[0]["faces"][0]["embedding"]
        np.testing.assert_allclose(body["faces"][0]["embedding"], cli, atol=1e-4)
        # --rate-limit 0 is off: no 429 however fast
        assert {_request(server.url + "/v1/people", key)[0] for _ in range(70)} == {200}
    finally:
        server.stop()



def test_help_into_a_closed_pipe_exits_without_a_traceback() -> None:
    """``faceprint --help | head -1``: the reader closes the pipe after one line; the command
    stops quietly (it printed a traceback from the exit handler before)."""
    proc = subprocess.run(f"'{EXE}' --help | head -c 1 >/dev/null", shell=True, env=_env(), capture_output=True,
                          text=True, timeout=120, check=False)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip() == "", proc.stderr


_QUICK_EXIT_PROBE = """
import atexit, sys, tempfile, threading, time
from faceprint.cli import common
scratch = tempfile.TemporaryDirectory()  # removed by a weakref finaliser, which exit handlers run
print(scratch.name, file=sys.stderr)
atexit.register(lambda: print("exit handlers ran", file=sys.stderr))
class Teardown:  # freed by the interpreter's teardown, which a quick exit skips
    def __del__(self):
        print("teardown ran", file=sys.stderr)
kept = Teardown()
if sys.argv[1] == "with-thread":  # a thread of the user's: the process must wait for it
    threading.Thread(target=lambda: (time.sleep(3), print("thread finished", file=sys.stderr))).start()
sys.argv = ["faceprint", *sys.argv[2:]]
common.main()
"""


@pytest.mark.parametrize("thread", ["alone", "with-thread"])
def test_quick_exit_runs_exit_handlers_and_keeps_the_output(people: Path, tmp_path: Path, thread: str) -> None:
    """``verify`` ends without the interpreter's teardown, but only after its output, the exit
    handlers and the temporary folders' finalisers; a thread that is not the pipeline's keeps
    the normal exit (it is waited for)."""
    a, b = people / "obama.jpg", people / "biden.jpg"
    for full in ("", "1"):
        proc = subprocess.run([sys.executable, "-c", _QUICK_EXIT_PROBE, thread, "verify", str(a), str(b), "--json"],
                              env={**_env(), "FACEPRINT_FULL_EXIT": full}, capture_output=True, text=True,
                              timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["match"] is False  # the whole JSON reached the pipe
        lines = proc.stderr.splitlines()
        assert "exit handlers ran" in lines and not Path(lines[0]).exists()
        assert ("thread finished" in lines) == (thread == "with-thread")
        if thread == "alone":  # the teardown is skipped only by a quick exit
            assert ("teardown ran" in lines) == (full == "1")
    # a failure keeps its exit code and its one line
    proc = subprocess.run([sys.executable, "-c", _QUICK_EXIT_PROBE, thread, "verify", str(a), str(tmp_path / "none.jpg")],
                          env=_env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 3 and "error:" in proc.stderr and "exit handlers ran" in proc.stderr


def test_quick_exit_is_only_for_commands_that_write_nothing() -> None:
    from faceprint.cli.common import QUICK_EXIT, _command

    assert _command(["--debug", "verify", "a.jpg", "b.jpg"]) == "verify" and _command(["--help"]) is None
    assert {"verify", "detect", "embed"} <= QUICK_EXIT
    assert not QUICK_EXIT & {"enroll", "identify", "index", "cluster", "video", "serve", "train", "people"}
