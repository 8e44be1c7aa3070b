"""Shot cuts: found on synthetic cuts and on the shared clips' real ones, never inside a shot,
and every track ends at a cut."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from faceprint.errors import ConfigError
from faceprint.video.shots import ShotCutDetector, colour_histogram

from .conftest import shared

LABELS = json.loads((Path(__file__).parent / "data" / "video_labels.json").read_text())["clips"]
HAMILTON = "face_recognition_short_hamilton_clip.mp4"
FACENET = "facenet_pytorch_video.mp4"


def _photo(name: str, size: tuple[int, int] = (640, 360)) -> np.ndarray:
    import cv2

    from faceprint.image import load_image

    return cv2.resize(load_image(shared("people", name)), size, interpolation=cv2.INTER_AREA)


def _shaky(rgb: np.ndarray, n: int, seed: int) -> list[np.ndarray]:
    """``n`` frames of one picture, panning and shaking a few pixels, with sensor noise."""
    import cv2

    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        m = np.float32([[1, 0, 2 * i + rng.integers(-3, 4)], [0, 1, rng.integers(-3, 4)]])
        f = cv2.warpAffine(rgb, m, rgb.shape[1::-1], borderMode=cv2.BORDER_REFLECT).astype(np.int16)
        frames.append(np.clip(f + rng.normal(0, 4, f.shape), 0, 255).astype(np.uint8))
    return frames


def test_histogram_is_a_distribution() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (90, 160, 3), np.uint8)
    hist = colour_histogram(rgb)
    assert hist.shape == (128,) and hist.min() >= 0 and hist.sum() == pytest.approx(1.0)


def test_synthetic_cuts_are_found_and_nothing_else() -> None:
    a, b = _photo("obama.jpg"), _photo("two_people.jpg")
    frames = _shaky(a, 30, 0) + _shaky(b, 30, 1) + _shaky(a, 20, 2)
    shots = ShotCutDetector()
    cuts = [i for i, f in enumerate(frames) if shots.update(f)]
    assert cuts == [30, 60] and shots.cuts == 2


def test_a_camera_switch_to_another_frame_size_is_a_cut() -> None:
    shots = ShotCutDetector()
    a = _photo("obama.jpg")
    assert not shots.update(a) and not shots.update(a)
    assert shots.update(_photo("obama.jpg", (320, 240)))  # same picture, another camera's size
    shots.reset()
    assert not shots.update(a)


def test_bad_threshold_raises() -> None:
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ConfigError):
            ShotCutDetector(bad)


@pytest.mark.parametrize("clip", [HAMILTON, FACENET])
def test_real_cuts_match_the_hand_labels(clip: str) -> None:
    from faceprint.video.source import VideoSource

    shots = ShotCutDetector()
    with VideoSource(shared("video", clip)) as src:
        cuts = [f.index for f in src.frames() if shots.update(f.rgb)]
    assert cuts == [s["frames"][0] for s in LABELS[clip]["shots"][1:]]


def test_every_track_ends_at_a_cut_on_the_real_clip() -> None:
    """Tracking the whole Hamilton clip: no track has frames in two labelled shots, and the
    tracks alive at each cut end there with reason "cut"."""
    import faceprint
    from faceprint.video import VideoRecognizer
    from faceprint.video.evaluate import clip_shots
    from faceprint.video.source import VideoSource

    shots = clip_shots(LABELS[HAMILTON])
    rec = VideoRecognizer(faceprint.create_detector("mtcnn"))
    seen: dict[int, set[int]] = {}
    alive: dict[int, set[int]] = {}  # frame -> visible track ids
    ended_at: dict[int, dict[int, str]] = {}  # frame -> track id -> why it ended
    with VideoSource(shared("video", HAMILTON)) as src:
        for frame in src.frames():
            result = rec.process(frame.rgb, frame.index, frame.time_s)
            shot = next(k for k, s in enumerate(shots) if s.start <= frame.index < s.end)
            alive[frame.index] = {v.track_id for v in result.tracks}
            for view in result.tracks:
                seen.setdefault(view.track_id, set()).add(shot)
            ended_at[frame.index] = {v.track_id: v.end_reason for v in result.ended}
    assert rec.stats["cuts"] == 3
    assert seen and all(len(s) == 1 for s in seen.values())
    cuts = [s.start for s in shots[1:]]
    assert sum(bool(alive[c - 1]) for c in cuts) >= 2
    for cut in cuts:
        assert {t: r for t, r in ended_at[cut].items() if t in alive[cut - 1]} == {t: "cut" for t in alive[cut - 1]}
    assert {k for k, ends in ended_at.items() if "cut" in ends.values()} <= set(cuts)
