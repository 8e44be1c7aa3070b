"""Scoring video identification against hand labels, on hand-made views with known answers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from faceprint.video.evaluate import UNLABELLED, clip_shots, score_views, who_is
from faceprint.video.voting import Decision

LABELS = {"shots": [
    {"frames": [0, 10], "people": [{"who": "ann", "centre": [100, 100]}, {"who": "bob", "centre": [300, 100]}]},
    {"frames": [10, 20], "people": [{"who": "cat", "centre": None}]},
]}


@dataclass
class View:
    track_id: int
    xyxy: np.ndarray
    decision: Decision

    @property
    def label(self) -> str:
        return self.decision.label()


def _view(tid: int, cx: float, name: str | None, decided: bool = True) -> View:
    return View(tid, np.array([cx - 20, 80, cx + 20, 120], np.float32), Decision(name, 0.9, 1, decided))


def test_who_is_takes_the_nearest_labelled_face_within_reach() -> None:
    shots = clip_shots(LABELS)
    assert who_is(shots, 3, np.array([90, 80, 130, 120])) == (0, "ann")
    assert who_is(shots, 3, np.array([280, 80, 320, 120])) == (0, "bob")
    assert who_is(shots, 3, np.array([500, 80, 540, 120])) == (0, UNLABELLED)  # 220 px > 1.5 x 40 px
    assert who_is(shots, 15, np.array([0, 0, 10, 10])) == (1, "cat")  # the shot's only face
    with pytest.raises(ValueError):
        who_is(shots, 25, np.array([0, 0, 10, 10]))
    scaled = clip_shots(LABELS, offset=100, scale=0.5)
    assert scaled[0].start == 100 and scaled[0].people[0][1] == (50, 50)


def test_score_counts_tracks_and_frames() -> None:
    shots = clip_shots(LABELS)
    enrolled = {"ann": "ann", "cat": "cat"}  # bob is not enrolled
    frames = []
    for f in range(20):
        views = []
        if f < 10:
            views.append(_view(1, 100, "ann" if f >= 2 else None, decided=f >= 2))  # right, after 2 frames
            views.append(_view(2, 300, "ann" if f == 5 else None))  # bob shown as ann once: wrong
        views.append(_view(3, 100 if f < 10 else 200, "ann" if f < 10 else "cat"))  # lives across the cut
        if f < 10:
            views.append(_view(4, 600, None))  # someone unlabelled, never named
        frames.append((f, views))
    out = score_views(frames, shots, enrolled)
    assert out["per_track"] == {1: "named correctly", 2: "named wrongly", 3: "named correctly", 4: "unnamed"}
    assert (out["tracks"], out["named correctly"], out["named wrongly"], out["unnamed"]) == (4, 2, 1, 1)
    assert out["named across a cut"] == 1
    # plain count: named face-frames = 8 (track 1) + 1 (track 2) + 20 (track 3); wrong = 1
    assert out["frames named"] == 29 and out["frames named wrongly"] == 1
    # ann: tracks 1 and 3 on frames 0-9 (20 face-frames, 18 named); cat: track 3 on 10-19
    assert out["enrolled frames named"] == {"ann": 0.9, "cat": 1.0}
    skipped = score_views(frames, shots, enrolled, scored=lambda f: f != 5)
    assert skipped["named wrongly"] == 0 and skipped["per_track"][2] == "unnamed"
