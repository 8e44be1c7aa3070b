"""faceprint.boxes: vectorised IoU and NMS against plain Python reference loops."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faceprint.boxes import box_area, iou_matrix, nms
from faceprint.errors import ConfigError

# ----------------------------------------------------------------------------- references


def ref_area(b: list[float]) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def ref_overlap(a: list[float], b: list[float], overlap: str = "union") -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    if overlap == "union":
        denom = ref_area(a) + ref_area(b) - inter
    else:
        denom = min(ref_area(a), ref_area(b))
    return inter / denom if denom > 0 else 0.0


def ref_nms(boxes: list[list[float]], scores: list[float], threshold: float, overlap: str = "union") -> list[int]:
    """The textbook greedy loop: best first, keep a box unless a kept box overlaps it too much."""
    order = sorted(range(len(boxes)), key=lambda i: -scores[i])  # sorted() is stable: ties keep input order
    keep: list[int] = []
    for i in order:
        if all(ref_overlap(boxes[k], boxes[i], overlap) <= threshold for k in keep):
            keep.append(i)
    return keep


def random_boxes(rng: np.random.Generator, n: int, snap: bool = False) -> np.ndarray:
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(0, 40, (n, 2))
    wh[rng.random(n) < 0.05] = 0.0  # some degenerate boxes
    boxes = np.concatenate([xy, xy + wh], axis=1)
    return np.round(boxes / 5) * 5 if snap else boxes  # snapping creates exact ties in overlap


# ----------------------------------------------------------------------------- iou_matrix


@pytest.mark.parametrize("overlap", ["union", "min"])
def test_iou_matrix_matches_reference_loop(overlap: str) -> None:
    rng = np.random.default_rng(0)
    a, b = random_boxes(rng, 40), random_boxes(rng, 25)
    got = iou_matrix(a, b, overlap=overlap)
    want = np.array([[ref_overlap(list(x), list(y), overlap) for y in b] for x in a])
    assert got.shape == (40, 25)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert ((got >= 0) & (got <= 1)).all()


def test_iou_matrix_known_values_and_shapes() -> None:
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 5, 5]], float)
    np.testing.assert_allclose(iou_matrix(a, b)[0], [1.0, 50 / 150, 0.0, 25 / 100])
    np.testing.assert_allclose(iou_matrix(a, b, overlap="min")[0], [1.0, 0.5, 0.0, 1.0])
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 4)
    np.testing.assert_allclose(box_area(b), [100, 100, 100, 25])


def test_iou_matrix_bad_input() -> None:
    with pytest.raises(ConfigError):
        iou_matrix(np.zeros((3, 3)), np.zeros((2, 4)))
    with pytest.raises(ConfigError):
        iou_matrix(np.zeros((1, 4)), np.zeros((2, 4)), overlap="max")


# ----------------------------------------------------------------------------- nms


@pytest.mark.parametrize("overlap", ["union", "min"])
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_nms_matches_reference_loop(overlap: str, threshold: float) -> None:
    rng = np.random.default_rng(int(threshold * 10) + (overlap == "min"))
    for trial in range(40):
        n = int(rng.integers(0, 80))
        boxes = random_boxes(rng, n, snap=trial % 3 == 0)
        scores = rng.integers(0, 4, n).astype(float) if trial % 2 else rng.random(n)  # with and without ties
        got = nms(boxes, scores, threshold, overlap=overlap)
        assert got.dtype == np.int64
        assert got.tolist() == ref_nms(boxes.tolist(), scores.tolist(), threshold, overlap)


def test_nms_vectorised_path_equals_loop_fallback_on_dense_proposals() -> None:
    # many heavily overlapping boxes, like P-Net proposals around a few faces
    rng = np.random.default_rng(7)
    centres = rng.uniform(0, 500, (6, 2))
    pick = rng.integers(0, 6, 3000)
    xy = centres[pick] + rng.normal(0, 8, (3000, 2))
    side = rng.uniform(20, 60, (3000, 1))
    boxes = np.concatenate([xy - side / 2, xy + side / 2], axis=1)
    scores = rng.random(3000)
    fast = nms(boxes, scores, 0.5)
    loop = nms(boxes, scores, 0.5, max_pairs=0)  # forces the per-kept-box loop
    assert fast.tolist() == loop.tolist()
    some = rng.choice(3000, 300, replace=False)
    assert nms(boxes[some], scores[some], 0.5).tolist() == ref_nms(boxes[some].tolist(), scores[some].tolist(), 0.5)


def test_nms_edge_cases() -> None:
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []
    assert nms(np.array([[0, 0, 1, 1]]), np.array([0.3]), 0.5).tolist() == [0]
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], float)
    assert nms(boxes, np.array([0.5, 0.9, 0.1]), 0.5).tolist() == [1, 2]
    assert nms(boxes, np.array([0.5, 0.9, 0.1]), 0.9).tolist() == [1, 0, 2]
    # a negative threshold suppresses everything but the best box, even disjoint ones
    assert nms(boxes, np.array([0.5, 0.9, 0.1]), -0.1).tolist() == [1]
    with pytest.raises(ConfigError):
        nms(boxes, np.array([1.0, 2.0]), 0.5)
    with pytest.raises(ConfigError):
        nms(boxes, np.ones(3), 0.5, overlap="max")


coordinate = st.floats(0, 200, allow_nan=False, width=32)
box_lists = st.lists(st.tuples(coordinate, coordinate, st.floats(0, 80, width=32), st.floats(0, 80, width=32),
                               st.integers(0, 5)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(box_lists, st.floats(0, 1), st.sampled_from(["union", "min"]))
def test_nms_properties(rows: list[tuple[float, float, float, float, int]], threshold: float, overlap: str) -> None:
    boxes = np.array([[x, y, x + w, y + h] for x, y, w, h, _ in rows], float).reshape(-1, 4)
    scores = np.array([s for *_, s in rows], float)  # small integers: many ties
    keep = nms(boxes, scores, threshold, overlap=overlap)
    # idempotent: running NMS on the survivors keeps all of them, in the same order
    again = nms(boxes[keep], scores[keep], threshold, overlap=overlap)
    assert again.tolist() == list(range(len(keep)))
    # survivors are sorted by score and never overlap each other above the threshold
    assert (np.diff(scores[keep]) <= 0).all()
    pair = iou_matrix(boxes[keep], boxes[keep], overlap=overlap)
    assert (pair[~np.eye(len(keep), dtype=bool)] <= threshold + 1e-6).all()  # NMS compares in float32
    # every dropped box is explained by a kept box that overlaps it too much
    dropped = np.setdiff1d(np.arange(len(boxes)), keep)
    if len(dropped):
        assert (iou_matrix(boxes[dropped], boxes[keep], overlap=overlap) > threshold).any(axis=1).all()
    assert keep.tolist() == ref_nms(boxes.tolist(), scores.tolist(), threshold, overlap)
