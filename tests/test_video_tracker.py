"""Tracker on synthetic moving boxes: identity kept, occlusions bridged, weak boxes, gaps."""

from __future__ import annotations

import numpy as np
import pytest

from faceprint.errors import ConfigError
from faceprint.types import Faces
from faceprint.video.kalman import BoxKalman
from faceprint.video.tracker import CONFIRMED, LOST, FaceTracker, greedy_match


def _faces(boxes: list[list[float]], scores: list[float] | None = None) -> Faces:
    boxes_arr = np.asarray(boxes, np.float32).reshape(-1, 4)
    lm = np.zeros((len(boxes_arr), 5, 2), np.float32)
    lm[:] = boxes_arr[:, None, :2] + 10
    return Faces(boxes_arr, np.ones(len(boxes_arr)) if scores is None else scores, lm)


def _box(cx: float, cy: float, side: float = 60.0) -> list[float]:
    return [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]


def _ids_of(tracker: FaceTracker, boxes: list[list[float]]) -> list[int | None]:
    """Track id whose last matched detection is each box (None if no track took it)."""
    out: list[int | None] = []
    for b in boxes:
        hit = [t.track_id for t in tracker.tracks if t.frames_since_update == 0 and np.allclose(t.det_xyxy, b)]
        out.append(hit[0] if hit else None)
    return out


def test_greedy_match_takes_best_overlap_first() -> None:
    iou = np.array([[0.9, 0.5], [0.6, 0.1], [0.0, 0.05]])
    pairs, free_rows, free_cols = greedy_match(iou, 0.3)
    assert pairs == [(0, 0)] and free_rows == [1, 2] and free_cols == [1]
    pairs, _, _ = greedy_match(np.array([[0.9, 0.5], [0.6, 0.4]]), 0.3)
    assert sorted(pairs) == [(0, 0), (1, 1)]
    assert greedy_match(np.zeros((0, 3)), 0.3) == ([], [], [0, 1, 2])


def test_kalman_learns_constant_velocity() -> None:
    kf = BoxKalman(np.array(_box(100, 100)))
    for step in range(1, 15):
        kf.predict()
        kf.update(np.array(_box(100 + 4 * step, 100 - 2 * step)))
    kf.predict()
    np.testing.assert_allclose(kf.xyxy, _box(100 + 4 * 15, 100 - 2 * 15), atol=1.5)


def test_crossing_faces_keep_their_ids() -> None:
    """Two faces walk past each other (boxes overlap while crossing): no id switch."""
    tracker = FaceTracker(min_hits=1)
    seen: dict[str, set[int]] = {"a": set(), "b": set()}
    for f in range(60):
        a, b = _box(50 + 6 * f, 120), _box(410 - 6 * f, 150)
        tracker.step(_faces([a, b]))
        ida, idb = _ids_of(tracker, [a, b])
        seen["a"].add(ida)
        seen["b"].add(idb)
    assert len(seen["a"]) == 1 and len(seen["b"]) == 1 and seen["a"] != seen["b"]
    assert None not in seen["a"] | seen["b"]


def test_short_occlusion_keeps_id_long_one_does_not() -> None:
    tracker = FaceTracker(max_lost_frames=20)
    path = [_box(100 + 3 * f, 200) for f in range(80)]
    first_id = None
    for f in range(10):
        tracker.step(_faces([path[f]]))
    first_id = _ids_of(tracker, [path[9]])[0]
    assert first_id is not None and tracker.tracks[0].state == CONFIRMED
    for f in range(10, 22):  # hidden 12 frames, moving on
        tracker.step(_faces([]))
        assert tracker.visible() == [] and tracker.tracks[0].state == LOST
    tracker.step(_faces([path[22]]))
    assert _ids_of(tracker, [path[22]]) == [first_id]
    removed = []
    for f in range(23, 50):  # hidden 27 frames > max_lost_frames
        removed += tracker.step(_faces([]))
    assert [t.track_id for t in removed] == [first_id]
    tracker.step(_faces([path[50]]))
    tracker.step(_faces([path[51]]))
    new_id = _ids_of(tracker, [path[51]])[0]
    assert new_id is not None and new_id != first_id


def test_weak_detections_continue_but_never_start_tracks() -> None:
    tracker = FaceTracker(high_score=0.8, low_score=0.4)
    for f in range(3):
        tracker.step(_faces([_box(100 + 2 * f, 100)], [0.95]))
    tid = tracker.visible()[0].track_id
    for f in range(3, 8):  # the face blurs: weak scores still keep the track matched
        weak = _box(100 + 2 * f, 100)
        tracker.step(_faces([weak, _box(400, 300)], [0.6, 0.6]))
        assert _ids_of(tracker, [weak]) == [tid]
    assert [t.track_id for t in tracker.tracks] == [tid]  # the lone weak box started nothing


def test_one_frame_false_positive_never_shows() -> None:
    tracker = FaceTracker(min_hits=2)
    removed = []
    tracker.step(_faces([_box(100, 100)]))
    assert tracker.visible() == []
    removed = tracker.step(_faces([]))
    assert len(removed) == 1 and tracker.tracks == []


def test_detection_every_third_frame_predicts_between() -> None:
    tracker = FaceTracker(min_hits=2)
    errors = []
    for f in range(45):
        truth = _box(80 + 5 * f, 100 + 2 * f)
        tracker.step(_faces([truth]) if f % 3 == 0 else None)
        if f >= 12:
            visible = tracker.visible_faces()
            assert len(visible) == 1 and visible.track_id[0] == 1
            errors.append(np.abs(visible.xyxy[0] - truth).max())
            # landmarks move with the box
            np.testing.assert_allclose(visible.landmarks[0, 0], visible.xyxy[0, :2] + 10, atol=1.0)
    assert max(errors) < 3.0


def test_bad_parameters_raise() -> None:
    with pytest.raises(ConfigError):
        FaceTracker(high_score=0.3, low_score=0.5)
    with pytest.raises(ConfigError):
        FaceTracker(min_hits=0)


def test_real_clip_main_face_keeps_one_track() -> None:
    """On the shared clip the main face (seconds 3-5) stays one track with detection on every 3rd frame."""
    import faceprint
    from faceprint.video import VideoRecognizer
    from faceprint.video.source import VideoSource

    from .conftest import shared

    rec = VideoRecognizer(faceprint.create_detector("mtcnn"), detect_every=3)
    largest: list[int] = []
    with VideoSource(shared("video", "face_recognition_short_hamilton_clip.mp4")) as src:
        for frame in src.frames(150):
            views = rec.process(frame.rgb, frame.index, frame.time_s).tracks
            if frame.index >= 95 and views:
                big = max(views, key=lambda v: (v.xyxy[2] - v.xyxy[0]) * (v.xyxy[3] - v.xyxy[1]))
                largest.append(big.track_id)
    assert len(largest) >= 50 and len(set(largest)) == 1
