"""Face quality factors: size, sharpness, pose."""

from __future__ import annotations

import numpy as np
import pytest

from faceprint.errors import ConfigError
from faceprint.types import Faces
from faceprint.video.quality import FaceQuality, pitch_from_landmarks, pose_from_landmarks

from .conftest import shared


def _lm(yaw: float = 0.0, roll_deg: float = 0.0, cx: float = 130, cy: float = 130) -> np.ndarray:
    pts = np.array([[-30, -30], [30, -30], [60 * yaw, 0], [-22, 30], [22, 30]], float)
    a = np.radians(roll_deg)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return pts @ rot.T + [cx, cy]


def test_pose_proxies() -> None:
    yaw, roll = pose_from_landmarks(np.stack([_lm(0.3, 20), _lm(-0.2, -10), _lm()]))
    np.testing.assert_allclose(yaw, [0.3, -0.2, 0.0], atol=1e-9)
    np.testing.assert_allclose(roll, [20, -10, 0], atol=1e-9)


def test_pitch_proxy_matches_a_plain_loop_and_ignores_roll_and_scale() -> None:
    rng = np.random.default_rng(7)
    lm = rng.uniform(0, 200, (20, 5, 2))
    for face, got in zip(lm, pitch_from_landmarks(lm)):
        ex, ey = (face[0][0] + face[1][0]) / 2, (face[0][1] + face[1][1]) / 2
        ax, ay = (face[3][0] + face[4][0]) / 2 - ex, (face[3][1] + face[4][1]) / 2 - ey
        ref = ((face[2][0] - ex) * ax + (face[2][1] - ey) * ay) / (ax * ax + ay * ay)
        assert got == pytest.approx(ref)
    upright = np.array([[[80.0, 100], [120, 100], [100, 124], [85, 140], [115, 140]]])
    assert pitch_from_landmarks(upright)[0] == pytest.approx(0.6)  # nose 24 px of the 40 from eyes to mouth
    turn = np.radians(30)
    rot = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    assert pitch_from_landmarks(upright @ rot.T * 2.5 + 7)[0] == pytest.approx(0.6)


def test_quality_ranks_sharp_big_frontal_first() -> None:
    import cv2

    from faceprint.image import load_image

    import faceprint

    rgb = load_image(shared("people", "obama.jpg"))
    faces = faceprint.create_detector("mtcnn").detect(rgb).by_size()[:1]
    q = FaceQuality()
    sharp = q.score(rgb, faces)
    blurred = q.score(cv2.GaussianBlur(rgb, (0, 0), 8), faces)
    assert sharp.blur[0] > 0.9 and blurred.blur[0] < 0.5 * sharp.blur[0]
    small = cv2.resize(rgb, None, fx=0.1, fy=0.1, interpolation=cv2.INTER_AREA)
    small_faces = Faces(faces.xyxy * 0.1, faces.score, faces.landmarks * 0.1)
    assert q.score(small, small_faces).size[0] < 0.5 < sharp.size[0]
    turned = Faces(faces.xyxy, faces.score, _lm(0.5)[None])
    frontal = Faces(faces.xyxy, faces.score, _lm(0.0)[None])
    assert q.score(rgb, turned).pose[0] < 0.3 < 0.99 < q.score(rgb, frontal).pose[0]
    assert sharp.total[0] == pytest.approx(sharp.size[0] * sharp.blur[0] * sharp.pose[0])
    assert len(q.score(rgb, Faces.empty()).total) == 0
    with pytest.raises(ConfigError):
        FaceQuality(max_yaw=0)
