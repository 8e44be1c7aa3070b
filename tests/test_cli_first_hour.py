"""What a new user meets in the first hour (issue 19): `faceprint info`, licences, folder
arguments, per-image faces, range checks, hints that say what to run, and no dependency
warnings. Every case runs `faceprint` in a fresh process, as a user does."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from .conftest import shared

SRC = Path(__file__).resolve().parents[1] / "src"
MAIN = "import sys\nfrom faceprint.cli import main\nsys.argv[0] = 'faceprint'\n"


def env(**extra: str) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(SRC), COLUMNS="120", **extra)


def faceprint(*args: str, cwd: Path | None = None, prelude: str = "", **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", prelude + MAIN + "main()\n", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, check=False, env=env(**extra), timeout=300)


def one_error_line(proc: subprocess.CompletedProcess, code: int) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


# ---- faceprint info / models -------------------------------------------------------------------

def test_info_reports_the_converted_models_of_the_cache_and_the_missing_extras(tmp_path) -> None:
    (tmp_path / "dlib_resnet_v1-0123456789ab.onnx").write_bytes(b"x" * 1000)
    (tmp_path / "dlib_resnet_v1-0123456789ab.onnx.lock").write_bytes(b"")
    no_torch = "import sys; sys.modules['torch'] = None\n"  # as after the base install
    proc = faceprint("info", "--json", prelude=no_torch, FACEPRINT_CACHE_DIR=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    from faceprint import __version__

    assert rep["version"] == __version__ and rep["cache_dir"] == str(tmp_path)
    assert "CPUExecutionProvider" in rep["onnxruntime"]["providers"] and rep["onnxruntime"]["version"]
    assert rep["extras"]["train"] is False and rep["optional_modules"]["torch"] is False
    models = {m["name"]: m for m in rep["models"]}
    assert models["dlib_resnet"] == {"name": "dlib_resnet", "kind": "embedder", "converted": True,
                                     "files": ["dlib_resnet_v1-0123456789ab.onnx"], "bytes": 1000}
    assert models["mtcnn"]["converted"] is False and models["mtcnn"]["files"] == []
    assert [f["name"] for f in rep["cache_files"]] == ["dlib_resnet_v1-0123456789ab.onnx"]  # no lock files
    text = faceprint("info", prelude=no_torch, FACEPRINT_CACHE_DIR=str(tmp_path))
    assert "embedder dlib_resnet: converted" in text.stdout and "train" in text.stdout.split("extras missing:")[1]


def test_info_loads_no_model() -> None:
    code = ("import sys\nfrom faceprint.cli.info import info_report\ninfo_report()\n"
            "print(sorted(m for m in sys.modules if m.startswith(('faceprint.detectors.', 'faceprint.embedders.'))))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env(), check=True)
    assert proc.stdout.strip() == "[]"


def test_models_json_gives_each_model_a_licence() -> None:
    proc = faceprint("models", "--json")
    listing = json.loads(proc.stdout)
    rows = {r["name"]: r for kind in ("detectors", "embedders", "landmarks") for r in listing[kind]}
    assert all(r["licence"] for r in rows.values())
    assert "CC0" in rows["dlib_resnet"]["licence"] and "MIT" in rows["mtcnn"]["licence"]
    assert "300-W" in rows["shape_predictor_68"]["licence"] and "commercial" in rows["shape_predictor_68"]["licence"]
    assert "licence: " in faceprint("models").stdout


def test_the_68_point_model_says_it_is_not_for_commercial_use() -> None:
    assert "commercial" in faceprint("video", "--help").stdout
    from faceprint.video.blink import Landmarks68

    marks = Landmarks68()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        marks.load()
        marks.load()
    notices = [w for w in seen if "commercial" in str(w.message)]
    assert len(notices) == 1 and "300-W" in str(notices[0].message)


# ---- arguments and range checks -----------------------------------------------------------------

def test_detect_takes_a_folder_as_its_images(tmp_path) -> None:
    folder = shared("people", "knn_examples", "test")
    proc = faceprint("detect", folder, "--json")
    assert proc.returncode == 0, proc.stderr
    expected = sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    assert [r["image"] for r in json.loads(proc.stdout)] == expected
    (tmp_path / "notes.txt").write_text("no photos here")
    assert "no image files" in one_error_line(faceprint("detect", tmp_path), 3)


def test_verify_chooses_a_face_per_image() -> None:
    two = shared("people", "two_people.jpg")

    def distance(*flags: str) -> float:
        proc = faceprint("verify", two, two, "--json", *flags)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["distance"]

    assert distance("--face", "1") < 1e-6  # --face: the same face of both images
    apart = distance("--face-a", "0", "--face-b", "1")
    assert apart > 0.6 and abs(distance("--face", "1", "--face-a", "0") - apart) < 1e-6  # --face-b from --face


@pytest.mark.parametrize("args", [
    ("verify", "A", "B", "--threshold", "-1"),
    ("verify", "A", "B", "--threshold", "0"),
    ("verify", "A", "B", "--threshold", "nan"),
    ("identify", "A", "--db", "g.db", "--threshold", "-0.5"),
    ("cluster", "--db", "g.db", "--threshold", "-1"),
    ("verify", "A", "B", "--face", "-1"),
])
def test_out_of_range_numbers_are_one_line_usage_errors(args, tmp_path) -> None:
    obama = str(shared("people", "obama.jpg"))
    line = one_error_line(faceprint(*[obama if a in "AB" else a for a in args], cwd=tmp_path), 2)
    assert args[-2] in line and "--help" in line
    assert not (tmp_path / "g.db").exists()


def test_help_shows_no_type_on_flags() -> None:
    for command in ((), ("verify",), ("enroll",), ("cluster",)):
        out = faceprint(*command, "--help").stdout
        assert "--help" in out and "<bool>" not in out, out


# ---- photo index --------------------------------------------------------------------------------

def test_cluster_without_an_index_says_to_run_index(tmp_path) -> None:
    db = tmp_path / "photos.db"
    line = one_error_line(faceprint("cluster", "--db", db), 14)
    assert "faceprint index" in line and not db.exists()


def test_index_names_the_unreadable_photos(tmp_path) -> None:
    photos, db = tmp_path / "photos", tmp_path / "photos.db"
    photos.mkdir()
    (photos / "obama.jpg").write_bytes(shared("people", "obama.jpg").read_bytes())
    for i in range(7):
        (photos / f"broken{i}.jpg").write_bytes(b"not a jpeg")
    proc = faceprint("index", photos, "--db", db, "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("unreadable: ")]
    assert len(re.findall(r"broken\d\.jpg", line)) == 5 and "and 2 more" in line
    (photos / "obama2.jpg").write_bytes(shared("people", "biden.jpg").read_bytes())
    rep = json.loads(faceprint("index", photos, "--db", db, "--workers", "1", "--json").stdout)
    assert rep["unreadable"] == [] and rep["new"] == 1  # this run's photos only
    cluster = faceprint("cluster", "--db", db)
    assert cluster.returncode == 0 and "faces without a cluster" in cluster.stdout, cluster.stderr


# ---- enrollment from video ----------------------------------------------------------------------

def test_enroll_video_shows_progress_names_frames_by_time_and_list_shows_them(tmp_path) -> None:
    clip = shared("video", "face_recognition_short_hamilton_clip.mp4")
    db = tmp_path / "g.db"
    controller, terminal = pty.openpty()  # a terminal, so the progress bars are drawn
    proc = subprocess.Popen([sys.executable, "-c", MAIN + "main()\n", "enroll", "hamilton", "--video", str(clip),
                             "--db", str(db)], stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal,
                            env=env(), close_fds=True)
    os.close(terminal)
    screen = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:
            break
        if not chunk:
            break
        screen += chunk
    os.close(controller)
    assert proc.wait(timeout=300) == 0, screen
    text = screen.decode("utf-8", "replace")
    assert f"reading {clip.name}" in text  # the frame-reading bar, not 13 s of silence
    before = text[:text.index("enrolled hamilton")]
    assert before == "" or before[-1] in "\r\n" or re.search(r"\x1b\[[0-9;?]*[A-Za-z]$", before), repr(before[-80:])
    show = json.loads(faceprint("people", "--db", db, "show", "hamilton", "--json").stdout)
    assert len(show["sources"]) == 5
    assert all(re.fullmatch(re.escape(clip.name) + r"@\d+\.\ds", s) for s in show["sources"]), show["sources"]
    (listed,) = json.loads(faceprint("people", "--db", db, "list", "--json").stdout)
    assert listed["sources"] == show["sources"]


# ---- reports ------------------------------------------------------------------------------------

def test_single_split_accuracy_has_no_plus_minus(tmp_path) -> None:
    train = shared("people", "knn_examples", "train")
    a, b = (sorted((train / name).iterdir())[:2] for name in ("biden", "kit_harington"))
    rows = [(a[0], a[1], 1), (b[0], b[1], 1), (a[0], b[0], 0), (a[1], b[1], 0)]
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("".join(f"{x},{y},{s}\n" for x, y, s in rows))
    proc = faceprint("eval", "lfw", "--pairs", pairs, "--root", "/")
    assert proc.returncode == 0, proc.stderr
    (line,) = [ln for ln in proc.stdout.splitlines() if re.match(r"accuracy\s+\d", ln)]
    assert re.fullmatch(r"accuracy\s+\d\.\d{4}", line.strip()), line


# ---- warnings -----------------------------------------------------------------------------------

#: Runs `detect` after a real dependency warns: face_recognition_models imports the deprecated pkg_resources.
DEPENDENCY_WARNS = ("import faceprint.registry as r\n_create = r.create_detector\n"
                    "def create_detector(*a, **k):\n    import face_recognition_models\n    return _create(*a, **k)\n"
                    "r.create_detector = create_detector\n")


def test_no_dependency_warning_reaches_the_terminal(tmp_path) -> None:
    obama, biden = shared("people", "obama.jpg"), shared("people", "biden.jpg")
    for args in (("detect", obama), ("verify", obama, biden), ("models",), ("info",)):
        proc = faceprint(*args, cwd=tmp_path, prelude="import warnings; warnings.simplefilter('default')\n")
        assert proc.returncode == 0 and "Warning" not in proc.stderr, (args, proc.stderr)
    quiet = faceprint("detect", obama, prelude="import warnings; warnings.simplefilter('always')\n" + DEPENDENCY_WARNS)
    assert quiet.returncode == 0 and "arning" not in quiet.stderr and "pkg_resources" not in quiet.stderr, quiet.stderr
    loud = faceprint("--debug", "detect", obama,
                     prelude="import warnings; warnings.simplefilter('always')\n" + DEPENDENCY_WARNS)
    assert "pkg_resources" in loud.stderr  # --debug shows them


# ---- one default per setting --------------------------------------------------------------------

def test_cli_library_and_service_share_each_default() -> None:
    """The CLI's option defaults are the library's and the service's (detector, model, clusterer,
    top-k, quality gate, enrollment jitter; thresholds default to the model's everywhere)."""
    import inspect

    import typer.main

    from faceprint.cli import app
    from faceprint.collections.clustering import DEFAULT_CLUSTERER
    from faceprint.collections.workers import PipelineConfig
    from faceprint.gallery import Recognizer
    from faceprint.gallery.quality import QualityGate
    from faceprint.gallery.recognizer import ENROLL_JITTER
    from faceprint.registry import DEFAULT_DETECTOR, DEFAULT_EMBEDDER

    group = typer.main.get_command(app)

    def default(command: str, option: str) -> object:
        (param,) = [p for p in group.commands[command].params if option in p.opts]
        return param.default

    settings = pytest.importorskip("faceprint.service.settings")
    routes_cluster = pytest.importorskip("faceprint.service.routes_cluster")
    routes_gallery = pytest.importorskip("faceprint.service.routes_gallery")
    service = settings.ServiceSettings(db="unused.db")
    for command in ("detect", "verify", "enroll", "identify", "index", "video"):
        assert default(command, "--detector") == DEFAULT_DETECTOR == service.detector == PipelineConfig().detector
    for command in ("verify", "enroll", "identify", "index"):
        assert default(command, "--model") == DEFAULT_EMBEDDER == service.model == PipelineConfig().model
    assert default("cluster", "--algorithm") == DEFAULT_CLUSTERER == routes_cluster.ClusterRequest().algorithm
    service_top_k = inspect.signature(routes_gallery.identify).parameters["top_k"].default.default
    library_top_k = inspect.signature(Recognizer.identify).parameters["top_k"].default
    assert default("identify", "--top-k") == service_top_k == library_top_k
    gate = QualityGate()
    assert (default("enroll", "--min-face"), default("enroll", "--min-score"), default("enroll", "--min-blur")) == (
        gate.min_face_px, gate.min_score, gate.min_blur)
    assert default("enroll", "--jitter") == ENROLL_JITTER
    assert inspect.signature(Recognizer).parameters["enroll_jitter"].default == ENROLL_JITTER
    for command in ("verify", "identify", "cluster", "video"):
        assert default(command, "--threshold") is None  # the model's threshold, as the service's None
