"""Every detector and embedder passes the same checks: shapes, empty input, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from faceprint import ConfigError, Embeddings, Faces, ImageDecodeError, create_detector, create_embedder
from faceprint.registry import DETECTORS, EMBEDDERS

from .conftest import shared

DETECTOR_NAMES = [*DETECTORS, "yunet.onnx"]
EMBEDDER_NAMES = [*EMBEDDERS, "mobilefacenet.onnx"]


def make(factory, name: str):  # noqa: ANN001, ANN201 - test helper
    return factory(shared("models", name)) if name.endswith(".onnx") else factory(name)


@pytest.fixture(scope="module", params=DETECTOR_NAMES)
def detector(request: pytest.FixtureRequest):  # noqa: ANN201
    name = "face_detection_yunet_2026may.onnx" if request.param == "yunet.onnx" else request.param
    return make(create_detector, name)


@pytest.fixture(scope="module", params=EMBEDDER_NAMES)
def embedder(request: pytest.FixtureRequest):  # noqa: ANN201
    return make(create_embedder, request.param)


def test_detector_finds_one_face_with_landmarks_in_box(detector) -> None:  # noqa: ANN001
    faces = detector.detect(shared("people", "obama.jpg"))
    assert isinstance(faces, Faces) and len(faces) == 1
    assert faces.xyxy.dtype == np.float32 and faces.landmarks.shape == (1, 5, 2)
    assert 0.0 < faces.score[0] <= 1.0
    (x1, y1, x2, y2), lm = faces.xyxy[0], faces.landmarks[0]
    assert ((lm[:, 0] >= x1) & (lm[:, 0] <= x2) & (lm[:, 1] >= y1) & (lm[:, 1] <= y2)).all()
    assert lm[0, 0] < lm[1, 0] and lm[3, 0] < lm[4, 0]  # image-left points first
    assert lm[:2, 1].max() < lm[2, 1] < lm[3:, 1].min()  # eyes above nose above mouth


def test_detector_finds_both_faces_in_two_people(detector) -> None:  # noqa: ANN001
    assert len(detector.detect(shared("people", "two_people.jpg"))) == 2


@pytest.mark.parametrize("shape", [(1, 1, 3), (13, 17, 3), (240, 320, 3)])
def test_detector_returns_empty_faces_without_a_face(detector, shape: tuple[int, ...]) -> None:  # noqa: ANN001
    faces = detector.detect(np.full(shape, 90, np.uint8))
    assert isinstance(faces, Faces) and len(faces) == 0


def test_detector_rejects_bad_input(detector) -> None:  # noqa: ANN001
    with pytest.raises(ImageDecodeError):
        detector.detect(b"garbage")


def test_embedder_shapes_and_model_id(embedder) -> None:  # noqa: ANN001
    size = embedder.spec.input_size
    rng = np.random.default_rng(0)
    chips = rng.integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    out = embedder.embed(chips)
    assert isinstance(out, Embeddings) and out.vectors.shape == (3, embedder.spec.dim)
    assert out.model_id == embedder.spec.model_id and np.isfinite(out.vectors).all()
    np.testing.assert_allclose(embedder.embed(chips[1:2]).vectors[0], out.vectors[1], atol=1e-5)
    assert len(embedder.embed(np.zeros((0, size, size, 3), np.uint8))) == 0


def test_embedder_rejects_wrong_chip_size(embedder) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match="chips must be"):
        embedder.embed(np.zeros((1, 64, 64, 3), np.uint8))
