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


@pytest.fixture(scope="module")
def photos_faces() -> list[tuple[str, np.ndarray, Faces]]:
    """(person, RGB photo, its largest face) of two photos each of Obama and Biden, by MTCNN."""
    from faceprint import load_image

    mtcnn = create_detector("mtcnn")
    train = shared("people", "knn_examples", "train")
    out = []
    for person, name in (("obama", "obama.jpg"), ("obama", "obama2.jpg"), ("biden", "biden.jpg"), ("biden", "biden2.jpg")):
        rgb = load_image(train / person / name)
        faces = mtcnn.detect(rgb)
        out.append((person, rgb, faces[np.argsort(-np.prod(faces.xyxy[:, 2:] - faces.xyxy[:, :2], axis=1))[:1]]))
    return out


def test_embedder_on_real_aligned_chips_tells_people_apart(embedder, photos_faces) -> None:  # noqa: ANN001
    from faceprint import create_aligner

    aligner = create_aligner(embedder.spec.template)
    size = embedder.spec.input_size
    chips = np.concatenate([aligner.align(rgb, faces).chips for _, rgb, faces in photos_faces])
    assert chips.shape == (4, size, size, 3) and chips.dtype == np.uint8
    out = embedder.embed(chips)
    assert isinstance(out, Embeddings) and out.vectors.shape == (4, embedder.spec.dim)
    assert out.model_id == embedder.spec.model_id and np.isfinite(out.vectors).all()
    np.testing.assert_allclose(embedder.embed(chips[1:2]).vectors[0], out.vectors[1], atol=1e-5)  # batch-free
    d = out.distance(out)
    # each photo is nearer the other photo of the same person than either photo of the other person
    people = [p for p, _, _ in photos_faces]
    for i in range(4):
        same = min(d[i, j] for j in range(4) if j != i and people[j] == people[i])
        other = min(d[i, j] for j in range(4) if people[j] != people[i])
        assert same < other, (people[i], same, other)
    assert len(embedder.embed(np.zeros((0, size, size, 3), np.uint8))) == 0


def test_embedder_rejects_wrong_chip_size(embedder) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match="chips must be"):
        embedder.embed(np.zeros((1, 64, 64, 3), np.uint8))
