"""Names stay honest in video: a track whose face changes loses its name, two crossing faces
keep their ids and names, the joined Hamilton + facenet clip names nobody after the junction.

The synthetic clips paste real face photos (people/knn_examples/train) onto a plain
background; the gallery is enrolled from *other* photos of the same people.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from faceprint.types import Faces
from faceprint.video.tracker import FaceTracker

from .conftest import shared

TRAIN = ("people", "knn_examples", "train")
LABELS = json.loads((Path(__file__).parent / "data" / "video_labels.json").read_text())["clips"]


# ---- tracker: appearance check on re-attachment (synthetic boxes and descriptors) ----------

def _box(cx: float, cy: float, side: float = 60.0) -> list[float]:
    return [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]


def _faces(boxes: list[list[float]]) -> Faces:
    xyxy = np.asarray(boxes, np.float32).reshape(-1, 4)
    return Faces(xyxy, np.ones(len(xyxy)), np.repeat(xyxy[:, None, :2], 5, 1))


def test_lost_track_takes_back_only_a_face_that_looks_the_same() -> None:
    """A is lost behind an occluder; a stranger (other descriptor) appears where A was: a new
    track. A then reappears off its predicted box: it gets its id back by appearance."""
    look = {"a": np.array([1.0, 0.0]), "stranger": np.array([0.0, 1.0])}
    tracker = FaceTracker(reattach_distance=0.6, max_lost_frames=30)
    for f in range(6):
        tracker.step(_faces([_box(100 + 2 * f, 100)]), lambda idx: np.stack([look["a"]] * len(idx)))
    (a,) = tracker.visible()
    a.appearance = look["a"]
    for _ in range(5):
        tracker.step(_faces([]))
    calls: list[int] = []

    def stranger(idx: np.ndarray) -> np.ndarray:
        calls.append(len(idx))
        return np.stack([look["stranger"]] * len(idx))

    tracker.step(_faces([_box(112, 100)]), stranger)  # right where A would be
    assert a.state == "lost" and calls == [1]
    assert [t.track_id for t in tracker.tracks if t.frames_since_update == 0] != [a.track_id]
    tracker.step(_faces([]))
    tracker.step(_faces([_box(200, 110)]), lambda idx: np.stack([look["a"]] * len(idx)))  # no overlap
    assert a.state == "confirmed" and a.frames_since_update == 0 and a.reattached
    assert np.allclose(a.det_xyxy, _box(200, 110))
    # too far away (more than reattach_radius box heights): never re-attached by appearance
    for _ in range(3):
        tracker.step(_faces([]))
    tracker.step(_faces([_box(600, 400)]), lambda idx: np.stack([look["a"]] * len(idx)))
    assert a.state == "lost"


def test_without_a_describer_the_tracker_is_iou_only() -> None:
    tracker = FaceTracker(reattach_distance=0.6)
    for f in range(4):
        tracker.step(_faces([_box(100 + 2 * f, 100)]))
    (a,) = tracker.visible()
    a.appearance = np.ones(2)
    tracker.step(_faces([]))
    tracker.step(_faces([_box(110, 100)]))  # an appearance check is impossible: not re-attached
    assert a.state == "lost"
    plain = FaceTracker()
    for f in range(4):
        plain.step(_faces([_box(100 + 2 * f, 100)]))
    plain.step(_faces([]))
    plain.step(_faces([_box(110, 100)]))
    assert plain.tracks[0].state == "confirmed"


# ---- synthetic clips with real faces ---------------------------------------------------------

@pytest.fixture(scope="module")
def pipe() -> Any:
    import faceprint

    return faceprint.FacePipeline()


def _face_crop(pipe: Any, *parts: str, height: int = 110) -> np.ndarray:
    """The photo's largest face with a margin, scaled to ``height`` pixels."""
    import cv2

    from faceprint.image import load_image

    rgb = load_image(shared(*parts))
    x1, y1, x2, y2 = pipe.detector.detect(rgb).by_size().xyxy[0]
    m = 0.35 * (y2 - y1)
    crop = rgb[int(max(0, y1 - m)):int(y2 + m), int(max(0, x1 - m)):int(x2 + m)]
    s = height / crop.shape[0]
    return cv2.resize(crop, (round(crop.shape[1] * s), height), interpolation=cv2.INTER_AREA)


def _frame(pastes: list[tuple[np.ndarray, float, float]], size: tuple[int, int] = (640, 360)) -> np.ndarray:
    """A grey-gradient background with each ``(crop, centre x, centre y)`` pasted in order
    (later ones in front)."""
    w, h = size
    grad = np.linspace(90, 150, w, dtype=np.float32)[None, :, None]
    out = np.repeat(np.repeat(grad, h, 0), 3, 2).astype(np.uint8)
    for crop, cx, cy in pastes:
        ch, cw = crop.shape[:2]
        x0, y0 = int(round(cx - cw / 2)), int(round(cy - ch / 2))
        xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + cw, w), min(y0 + ch, h)
        out[ya:yb, xa:xb] = crop[ya - y0:yb - y0, xa - x0:xb - x0]
    return out


def _gallery(pipe: Any, tmp: Path, people: dict[str, str]) -> Any:
    from faceprint.gallery import Recognizer, open_gallery

    gallery = open_gallery(tmp / "g.db", model_id=pipe.spec.model_id, metric=pipe.spec.metric)
    rec = Recognizer(pipe, gallery)
    for name, photo in people.items():
        assert rec.enroll(name, [shared(*TRAIN, name, photo)]).ok
    return gallery


def _run(rec: Any, frames: list[np.ndarray]) -> list[Any]:
    from faceprint.video.events import EventLog

    log = EventLog()
    results = []
    for i, rgb in enumerate(frames):
        results.append(rec.process(rgb, i, i / 30))
        log.update(results[-1])
    log.close_tracks(rec.finish(len(frames) / 30), len(frames))
    return [results, log.events]


def test_a_track_loses_its_name_when_its_face_changes(pipe: Any, tmp_path: Path) -> None:
    """Obama's face is replaced by Biden's in place (no cut: the frame barely changes): the
    track's name goes at once (its colours jump, so it is re-checked), with an event saying
    why, and never comes back; without that trigger, at the next periodic re-check."""
    from faceprint.video.identify import video_recognizer

    obama, biden = _face_crop(pipe, *TRAIN, "obama", "obama.jpg"), _face_crop(pipe, *TRAIN, "biden", "biden.jpg")
    frames = [_frame([(obama if i < 45 else biden, 320, 180)]) for i in range(95)]
    gallery = _gallery(pipe, tmp_path, {"obama": "obama2.jpg"})  # Biden is not enrolled
    rec = video_recognizer(pipe, gallery)
    results, events = _run(rec, frames)
    gallery.close()
    assert rec.stats["cuts"] == 0
    ids = {v.track_id for r in results for v in r.tracks}
    assert len(ids) == 1  # one track throughout: only its evidence can tell
    shown = [(r.index, v.label) for r in results for v in r.tracks]
    assert any(label == "obama" for i, label in shown if i < 45)
    late = 45 + rec.detect_every  # the colour jump makes the next detection frame a re-check
    assert all(label != "obama" for i, label in shown if i >= late)
    drop = [e for e in events if e["event"] == "identified" and e["frame"] >= 45]
    assert drop and drop[0]["name"] is None and drop[0]["reason"] == "face changed"
    assert drop[0]["distance"] > 0.6 and rec.stats["face_changes"] == 1
    gallery = _gallery(pipe, tmp_path / "again", {"obama": "obama2.jpg"})
    rec = video_recognizer(pipe, gallery, appearance_jump=None)
    results, _ = _run(rec, frames)
    gallery.close()
    shown = [(r.index, v.label) for r in results for v in r.tracks]
    assert all(label != "obama" for i, label in shown if i >= 45 + rec.recheck_frames + rec.detect_every)


def test_two_crossing_faces_keep_their_ids_and_names(pipe: Any, tmp_path: Path) -> None:
    """Obama walks right in front of Biden, who walks left and is hidden for a few frames."""
    from faceprint.video.identify import video_recognizer

    obama, biden = _face_crop(pipe, *TRAIN, "obama", "obama.jpg"), _face_crop(pipe, *TRAIN, "biden", "biden.jpg")
    n = 70
    paths = {"obama": [120 + 400 * i / (n - 1) for i in range(n)], "biden": [520 - 400 * i / (n - 1) for i in range(n)]}
    frames = [_frame([(biden, paths["biden"][i], 190), (obama, paths["obama"][i], 175)]) for i in range(n)]
    gallery = _gallery(pipe, tmp_path, {"obama": "obama2.jpg", "biden": "biden2.jpg"})
    rec = video_recognizer(pipe, gallery)
    results, _ = _run(rec, frames)
    gallery.close()
    ids: dict[str, set[int]] = {"obama": set(), "biden": set()}
    names: dict[str, set[str]] = {"obama": set(), "biden": set()}
    for i, r in enumerate(results):
        for v in r.tracks:
            if v.track_id and r.detected and v.embedded:
                cx = (v.xyxy[0] + v.xyxy[2]) / 2
                who = min(paths, key=lambda p: abs(paths[p][i] - cx))
                if abs(paths[who][i] - cx) < 25 and abs(paths["obama"][i] - paths["biden"][i]) > 60:
                    ids[who].add(v.track_id)
                    names[who].add(v.label)
    assert len(ids["obama"]) == 1 and len(ids["biden"]) == 1 and ids["obama"] != ids["biden"]
    assert "biden" not in names["obama"] and "obama" not in names["biden"]
    assert "obama" in names["obama"] and "biden" in names["biden"]


# ---- the joined clip through the CLI ----------------------------------------------------------

def _faceprint(*args: object) -> subprocess.CompletedProcess[str]:
    """``faceprint ARGS`` in a fresh process, as a user runs it."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    return subprocess.run([sys.executable, "-c", "from faceprint.cli import main; main()", *map(str, args)],
                          env=env, capture_output=True, text=True, timeout=600)


def test_joined_clip_names_nobody_after_the_junction(tmp_path: Path) -> None:
    """Hamilton (singer enrolled from it with `enroll --video`) then facenet-pytorch's clip,
    resized to 640x360: the singer is named in his close-up, every named track lives in one
    shot, the junction ends every track, and no event after it carries a name."""
    from faceprint.video.evaluate import clip_shots
    from faceprint.video.synth import write_clip

    ham, fn = shared("video", "face_recognition_short_hamilton_clip.mp4"), shared("video", "facenet_pytorch_video.mp4")
    joined = tmp_path / "joined.mp4"
    n_ham, n_fn = write_clip([(ham, 0, None), (fn, 0, None)], joined, size=(640, 360))
    assert (n_ham, n_fn) == (275, 105)
    db, events = tmp_path / "g.db", tmp_path / "events.jsonl"
    done = _faceprint("enroll", "--db", db, "singer", "--video", ham)  # two commands, two processes
    assert done.returncode == 0, done.stderr
    done = _faceprint("video", joined, "--db", db, "--json", events)
    assert done.returncode == 0, done.stderr
    assert "4 shot cuts" in done.stdout
    log = [json.loads(line) for line in events.read_text().splitlines()]
    assert not [e for e in log if e["frame"] >= n_ham and e["name"] is not None]
    shots = clip_shots(LABELS["face_recognition_short_hamilton_clip.mp4"]) + \
        clip_shots(LABELS["facenet_pytorch_video.mp4"], offset=n_ham, scale=1 / 3)
    closeup = shots[2]
    assert any(e["event"] in ("appeared", "identified") and e["name"] == "singer"
               and closeup.start <= e["frame"] < closeup.end for e in log)

    def shot_of(frame: int) -> int:
        return next(k for k, s in enumerate(shots) if s.start <= frame < s.end)

    appeared = {e["track_id"]: e["frame"] for e in log if e["event"] == "appeared"}
    named = {e["track_id"] for e in log if e["name"] is not None}
    for e in log:
        if e["event"] == "left" and e["track_id"] in named:
            # a cut's "left" is logged on the cut's frame, the first of the next shot
            last = e["frame"] - 1 if e["reason"] == "cut" else e["frame"]
            assert shot_of(appeared[e["track_id"]]) == shot_of(last)
    at_junction = [e for e in log if e["event"] == "left" and e["frame"] == n_ham]
    assert at_junction and {e["reason"] for e in at_junction} == {"cut"}
