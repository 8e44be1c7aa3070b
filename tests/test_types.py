"""Batch types: indexing keeps the type, empty batches, model-id checks, distances."""

from __future__ import annotations

import numpy as np
import pytest

from faceprint import AlignedFaces, ConfigError, Embeddings, Faces, ModelMismatchError


def _faces(n: int) -> Faces:
    xyxy = np.array([[0, 0, 10 * (i + 1), 10 * (i + 1)] for i in range(n)], np.float32)
    return Faces(xyxy, np.linspace(0.5, 0.9, n), np.zeros((n, 5, 2)), extras={"k": np.arange(n)})


def test_faces_indexing_and_masks_return_faces() -> None:
    f = _faces(3)
    assert isinstance(f[0], Faces) and len(f[0]) == 1
    assert len(f[f.score > 0.6]) == 2
    assert f[[2, 0]].extras["k"].tolist() == [2, 0]
    assert f.by_size().area.tolist() == [900.0, 400.0, 100.0]
    assert len(Faces.empty()) == 0 and Faces.empty().to_records() == []


def test_faces_validates_extras_length() -> None:
    with pytest.raises(ConfigError):
        Faces(np.zeros((2, 4)), np.zeros(2), np.zeros((2, 5, 2)), extras={"k": np.arange(3)})


def test_aligned_faces_rejects_non_uint8() -> None:
    with pytest.raises(ConfigError):
        AlignedFaces(np.zeros((1, 8, 8, 3), np.float32), "dlib_150")


def test_embeddings_distance_matches_reference_loop() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 16)), rng.normal(size=(3, 16))
    ea, eb = Embeddings(a, "m"), Embeddings(b, "m")
    ref = np.array([[np.sqrt(((x - y) ** 2).sum()) for y in b] for x in a])
    np.testing.assert_allclose(ea.distance(eb), ref, rtol=1e-5)
    ca, cb = Embeddings(a, "m", "cosine"), Embeddings(b, "m", "cosine")
    ref_cos = np.array([[1 - x @ y / np.linalg.norm(x) / np.linalg.norm(y) for y in b] for x in a])
    np.testing.assert_allclose(ca.distance(cb), ref_cos, rtol=1e-5, atol=1e-6)


def test_embeddings_of_different_models_never_compare() -> None:
    with pytest.raises(ModelMismatchError, match="'a'.*'b'"):
        Embeddings(np.zeros((1, 4)), "a").distance(Embeddings(np.zeros((1, 4)), "b"))
    with pytest.raises(ModelMismatchError):
        Embeddings(np.zeros((1, 4)), "a").distance(Embeddings(np.zeros((1, 8)), "a"))
    with pytest.raises(ConfigError):
        Embeddings(np.zeros((1, 4)), "a", metric="manhattan")


def test_paired_distance_matches_reference_loop() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(5, 16)), rng.normal(size=(5, 16))
    for metric in ("euclidean", "cosine"):
        ea, eb = Embeddings(a, "m", metric), Embeddings(b, "m", metric)
        if metric == "euclidean":  # written out, not the library's own distance()
            ref = [sum((x - y) ** 2 for x, y in zip(a[i], b[i])) ** 0.5 for i in range(5)]
        else:
            ref = [1 - sum(x * y for x, y in zip(a[i], b[i])) / (sum(x * x for x in a[i]) * sum(y * y for y in b[i])) ** 0.5
                   for i in range(5)]
        np.testing.assert_allclose(ea.paired_distance(eb), ref, rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="equal length"):
        Embeddings(a, "m").paired_distance(Embeddings(b[:3], "m"))
    with pytest.raises(ModelMismatchError):
        Embeddings(a, "m").paired_distance(Embeddings(b, "other"))
