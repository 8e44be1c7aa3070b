"""`faceprint video` and `faceprint enroll --video` on the shared clips (a few dozen frames
each), and bad sources: one error line, a typed exit code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from faceprint.cli import app
from faceprint.errors import ConfigError, GalleryError, VideoSourceError

from .conftest import shared

runner = CliRunner()
FRAMES = 36


def run(*args: object) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def clip() -> Path:
    return shared("video", "face_recognition_short_hamilton_clip.mp4")


@pytest.fixture(scope="module")
def gallery(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gallery with one person enrolled from the clip's first seconds (`enroll --video`'s frame picker)."""
    import faceprint
    from faceprint.gallery import Recognizer, open_gallery
    from faceprint.gallery.quality import PERMISSIVE
    from faceprint.video.enroll import best_track_frames

    crops = best_track_frames(clip, faceprint.create_detector("mtcnn"), n=3, min_gap_frames=5, max_frames=20)
    assert 1 <= len(crops) <= 3 and len({c.track_id for c in crops}) == 1
    frames = [c.frame for c in crops]
    assert all(abs(a - b) >= 5 for i, a in enumerate(frames) for b in frames[i + 1:])
    assert [c.quality for c in crops] == sorted((c.quality for c in crops), reverse=True)
    db = tmp_path_factory.mktemp("video") / "g.db"
    pipe = faceprint.FacePipeline()
    with open_gallery(db, model_id=pipe.spec.model_id, metric=pipe.spec.metric) as g:
        # the clip's first faces are ~37 px, under the default gate's 40 px
        assert Recognizer(pipe, g, gate=PERMISSIVE).enroll("guest", [c.rgb for c in crops]).ok
    return db


def test_video_annotates_logs_and_names(clip: Path, gallery: Path, tmp_path: Path) -> None:
    import cv2

    out, events = tmp_path / "annotated.mp4", tmp_path / "events.jsonl"
    code, stdout, stderr = run("video", clip, "--db", gallery, "--out", out, "--json", events,
                               "--max-frames", FRAMES)
    assert code == 0, stderr
    assert f"{FRAMES} frames in" in stdout and "fps" in stdout
    cap = cv2.VideoCapture(str(out))
    n, shape = 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n, shape = n + 1, frame.shape
    assert n == FRAMES and shape == (360, 640, 3)
    log = [json.loads(line) for line in events.read_text().splitlines()]
    kinds = [e["event"] for e in log]
    assert kinds.count("appeared") >= 2 and kinds.count("appeared") == kinds.count("left")
    for e in log:
        assert {"event", "track_id", "frame", "time_s", "name", "confidence", "liveness"} <= set(e)
        assert e["liveness"] == "unavailable"  # no check configured: never "live"
    # the enrolled track is named (other ~37 px faces may be too: tiny faces embed poorly)
    named = [e["confidence"] for e in log if e["event"] == "left" and e["name"] == "guest"]
    for e in log:  # every identification says what its open-set decision compared
        if e["event"] == "identified":
            assert {"score", "threshold"} <= set(e)
            assert e["name"] is None or e["score"] <= e["threshold"]  # a name only while the latest evidence passes
    # (a far-away face of the same singer may carry a split vote: named on some re-checks, not others)
    assert named and max(named) >= 0.9 and all(0.0 < c <= 1.0 for c in named)
    left = {e["track_id"]: e for e in log if e["event"] == "left"}
    first = {e["track_id"]: e for e in log if e["event"] == "appeared"}
    assert all(left[t]["time_s"] >= first[t]["time_s"] for t in left)


def test_events_to_stdout(clip: Path, gallery: Path) -> None:
    code, stdout, stderr = run("video", clip, "--db", gallery, "--json", "-", "--max-frames", 12,
                               "--detect-every", 1)
    assert code == 0, stderr
    log = [json.loads(line) for line in stdout.splitlines()]
    assert log and {e["event"] for e in log} <= {"appeared", "identified", "liveness", "left"}
    assert "12 frames in" in stderr


@pytest.mark.parametrize("source, message", [
    ("missing.mp4", "no such file"),
    ("garbage.mp4", "cannot open video source"),
    ("http://127.0.0.1:9/stream.mjpg", "cannot open video source"),
])
def test_bad_sources_fail_with_one_line(source: str, message: str, gallery: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "garbage.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    code, stdout, stderr = run("video", source, "--db", gallery)
    assert code == VideoSourceError.exit_code
    assert stderr.count("\n") == 1 and message in stderr and stderr.startswith("error: ")


def test_bad_options_fail(clip: Path, gallery: Path, tmp_path: Path) -> None:
    code, _, stderr = run("video", clip, "--db", gallery, "--require-live", "--max-frames", 2)
    assert code == ConfigError.exit_code and "liveness" in stderr
    code, _, stderr = run("video", clip, "--db", tmp_path / "none.db", "--max-frames", 2)
    assert code == GalleryError.exit_code and "enroll" in stderr
    assert not (tmp_path / "none.db").exists()
    code, _, stderr = run("video", clip, "--db", gallery, "--out", tmp_path / "no" / "dir" / "a.mp4",
                          "--max-frames", 2)
    assert code == VideoSourceError.exit_code and "does not exist" in stderr


def test_enroll_video_option(clip: Path, tmp_path: Path) -> None:
    code, _, stderr = run("enroll", "--db", tmp_path / "g.db", "someone", clip, "--video", clip)
    assert code == ConfigError.exit_code and "--video" in stderr
    code, _, stderr = run("enroll", "--db", tmp_path / "g.db", "someone", "--video", tmp_path / "none.mp4")
    assert code == VideoSourceError.exit_code and stderr.count("\n") == 1
