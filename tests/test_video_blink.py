"""Blink liveness: EAR math, the blink detector on landmark sequences, and a synthesised clip
(real photo with eyes painted shut for a few frames) against a still-image clip."""

from __future__ import annotations

import numpy as np
import pytest

from faceprint.errors import ConfigError
from faceprint.video.blink import LEFT_EYE, RIGHT_EYE, BlinkDetector, BlinkLiveness, eye_aspect_ratio
from faceprint.video.liveness import LIVE, PENDING

from .conftest import shared

FPS = 30.0


def _points(ear: float) -> np.ndarray:
    """68 landmarks whose two eyes (30 px wide) have the given aspect ratio."""
    pts = np.zeros((68, 2))
    half = ear * 30 / 2  # EAR = 2 * (2 * half) / (2 * 30)
    for eye, x0 in ((LEFT_EYE, 100.0), (RIGHT_EYE, 160.0)):
        pts[list(eye)] = [[x0, 100], [x0 + 10, 100 - half], [x0 + 20, 100 - half],
                          [x0 + 30, 100], [x0 + 20, 100 + half], [x0 + 10, 100 + half]]
    return pts


def _run(ears: np.ndarray) -> list[float]:
    det = BlinkDetector()
    for i, ear in enumerate(ears):
        det.update(float(eye_aspect_ratio(_points(ear))[0]), i / FPS)
    return det.blinks


def _open(n: int, seed: int = 0) -> np.ndarray:
    return 0.3 + np.random.default_rng(seed).normal(0, 0.008, n)


def test_eye_aspect_ratio_matches_formula() -> None:
    assert eye_aspect_ratio(_points(0.27))[0] == pytest.approx(0.27)
    rng = np.random.default_rng(1)
    pts = rng.uniform(0, 100, (3, 68, 2))
    for p, got in zip(pts, eye_aspect_ratio(pts)):
        ref = []
        for eye in (LEFT_EYE, RIGHT_EYE):
            e = p[list(eye)]
            d = lambda a, b: float(np.hypot(*(e[a] - e[b])))  # noqa: E731
            ref.append((d(1, 5) + d(2, 4)) / (2 * d(0, 3)))
        assert got == pytest.approx(sum(ref) / 2)


def test_counts_short_dips_at_their_times() -> None:
    ears = _open(150)
    for start in (30, 75, 120):
        ears[start:start + 3] = [0.18, 0.1, 0.15]
    blinks = _run(ears)
    assert [round(t * FPS) for t in blinks] == [30, 75, 120]


def test_still_face_and_long_closure_and_drift_are_not_blinks() -> None:
    assert _run(np.full(200, 0.28)) == []  # a still image: constant EAR
    ears = _open(150)
    ears[40:100] = 0.1  # eyes shut 2 s: not a blink
    assert _run(ears) == []
    assert _run(np.linspace(0.32, 0.2, 150)) == []  # slow change (head tilts) is no blink


def test_blink_in_first_frames_waits_for_history() -> None:
    ears = _open(60)
    ears[1:3] = 0.1  # before an open-eye level exists
    ears[40:43] = 0.1
    assert [round(t * FPS) for t in _run(ears)] == [40]


class _FakeLandmarks:
    """Serves pre-made 68-point sets in order (the predictor is tested on real frames below)."""

    def __init__(self, ears: np.ndarray) -> None:
        self.ears = list(ears)

    def points(self, rgb: np.ndarray, landmarks5: np.ndarray) -> np.ndarray:
        return _points(self.ears.pop(0))


def test_blink_liveness_per_track() -> None:
    ears = _open(40)
    ears[20:23] = 0.1
    check = BlinkLiveness(_FakeLandmarks(ears))
    box, lm = np.zeros(4), np.zeros((5, 2))
    assert check.status(1).state == PENDING
    for i in range(40):
        check.observe(1, np.zeros((4, 4, 3), np.uint8), box, lm, i / FPS)
        if i < 22:
            assert check.status(1).state == PENDING
    assert check.status(1).state == LIVE and check.status(2).state == PENDING
    check.forget(1)
    assert check.status(1).state == PENDING
    with pytest.raises(ConfigError):
        BlinkLiveness(_FakeLandmarks(ears), closed_ratio=0.95, open_ratio=0.9)


def _liveness_on_clip(frames: list[np.ndarray], blinks_required: int = 1) -> tuple[str, int]:
    """Run detection + tracking + blink liveness over frames; the main track's final state."""
    import faceprint
    from faceprint.video import VideoRecognizer

    check = BlinkLiveness(blinks_required=blinks_required)
    rec = VideoRecognizer(faceprint.create_detector("mtcnn"), liveness=check, detect_every=3)
    states = []
    for i, rgb in enumerate(frames):
        result = rec.process(rgb, i, i / FPS)
        states = [(v.liveness.state, len(check._tracks[v.track_id].blinks)) for v in result.tracks]
    assert len(states) == 1
    return states[0]


@pytest.fixture(scope="module")
def face_and_points() -> tuple[np.ndarray, np.ndarray]:
    """A 640x480 webcam-like frame cut from a real photo, the face 200 px wide, and its 68 points."""
    import faceprint
    from faceprint.image import load_image
    from faceprint.video.blink import Landmarks68
    from faceprint.video.synth import webcam_frame

    det = faceprint.create_detector("mtcnn")
    rgb = webcam_frame(load_image(shared("people", "biden.jpg")), det)
    assert rgb is not None
    return rgb, Landmarks68().points(rgb, det.detect(rgb).by_size().landmarks[0])


def test_synthesised_blinks_are_caught_and_still_clip_is_not_live(face_and_points) -> None:
    from faceprint.video.synth import blink_clip

    rgb, pts = face_and_points
    state, n = _liveness_on_clip(blink_clip(rgb, pts, 60, blink_starts=[12, 30, 48], blink_frames=4), 3)
    assert (state, n) == (LIVE, 3)  # every blink caught
    state, n = _liveness_on_clip(blink_clip(rgb, pts, 30, blink_starts=[12], blink_frames=3))
    assert (state, n) == (LIVE, 1)
    still = _liveness_on_clip(blink_clip(rgb, pts, 45, blink_starts=[], jitter_px=0))
    assert still == (PENDING, 0)
    shaky = _liveness_on_clip(blink_clip(rgb, pts, 45, blink_starts=[], jitter_px=2, seed=3))
    assert shaky == (PENDING, 0)


def test_flickering_closure_counts_once() -> None:
    ears = _open(60)
    ears[30:35] = [0.12, 0.12, 0.29, 0.12, 0.15]  # the EAR pops up for one frame mid-blink
    assert [round(t * FPS) for t in _run(ears)] == [30]
