"""Box utilities on ``xyxy`` pixel boxes: pairwise IoU and greedy non-maximum suppression.

Boxes are continuous pixel rectangles ``(x1, y1, x2, y2)`` with area ``(x2 - x1) * (y2 - y1)``
(no ``+ 1``); boxes with ``x2 < x1`` or ``y2 < y1`` count as empty.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError

OVERLAPS = ("union", "min")


def _as_boxes(xyxy: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(xyxy, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 4:
        if arr.size == 0:
            return arr.reshape(0, 4)
        raise ConfigError(f"{name} must have shape (N, 4), got {arr.shape}")
    return arr


def box_area(xyxy: np.ndarray) -> np.ndarray:
    """``(N,)`` areas of ``(N, 4)`` boxes (0 for degenerate boxes)."""
    b = _as_boxes(xyxy, "xyxy")
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    return np.clip(w, 0, None) * np.clip(h, 0, None)


def iou_matrix(a_xyxy: np.ndarray, b_xyxy: np.ndarray, overlap: str = "union") -> np.ndarray:
    """Pairwise overlap of two box sets.

    Args:
        a_xyxy: ``(N, 4)`` boxes.
        b_xyxy: ``(M, 4)`` boxes.
        overlap: ``"union"`` for intersection over union (IoU), ``"min"`` for intersection over
            the smaller area (MTCNN's final NMS uses it to drop boxes nested in bigger ones).

    Returns:
        ``(N, M)`` float64 overlaps in ``[0, 1]``; 0 where the denominator is 0.

    Raises:
        ConfigError: a box set is not ``(N, 4)`` or ``overlap`` is unknown.
    """
    if overlap not in OVERLAPS:
        raise ConfigError(f"overlap must be one of {OVERLAPS}, got {overlap!r}")
    a = _as_boxes(a_xyxy, "a_xyxy")
    b = _as_boxes(b_xyxy, "b_xyxy")
    inter = _intersection(a, b)
    area_a, area_b = box_area(a), box_area(b)
    if overlap == "union":
        denom = area_a[:, None] + area_b[None, :] - inter
    else:
        denom = np.minimum(area_a[:, None], area_b[None, :])
    out = np.zeros_like(inter)
    np.divide(inter, denom, out=out, where=denom > 0)
    return out


def _overlapping_pairs(b: np.ndarray, area: np.ndarray, iou_threshold: float, overlap: str,
                       max_pairs: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Index pairs ``(i, j)`` whose overlap exceeds ``iou_threshold`` (``>= 0``), or ``None``
    when more than ``max_pairs`` candidate pairs would have to be checked."""
    by_x = np.argsort(b[:, 0], kind="stable")
    x1 = b[by_x, 0]
    # boxes that start (in x) before box k ends: the only ones that can intersect it
    ends = np.searchsorted(x1, b[by_x, 2], side="left")
    counts = np.clip(ends - np.arange(1, len(b) + 1), 0, None)
    total = int(counts.sum())
    if total > max_pairs:
        return None
    first = np.repeat(np.arange(len(b)), counts)
    starts = np.cumsum(counts) - counts
    second = np.arange(total) - np.repeat(starts, counts) + first + 1
    i, j = by_x[first], by_x[second]
    w = np.minimum(b[i, 2], b[j, 2]) - np.maximum(b[i, 0], b[j, 0])
    h = np.minimum(b[i, 3], b[j, 3]) - np.maximum(b[i, 1], b[j, 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    if overlap == "union":
        denom = area[i] + area[j] - inter
    else:
        denom = np.minimum(area[i], area[j])
    ratio = np.divide(inter, denom, out=np.zeros_like(inter), where=denom > 0)
    hit = ratio > iou_threshold
    return i[hit], j[hit]


def _greedy_loop(b: np.ndarray, area: np.ndarray, order: np.ndarray, iou_threshold: float,
                 overlap: str) -> np.ndarray:
    x1, y1, x2, y2 = (b[:, i] for i in range(4))
    keep: list[int] = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        w = np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])
        h = np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])
        inter = np.clip(w, 0, None) * np.clip(h, 0, None)
        denom = area[i] + area[rest] - inter if overlap == "union" else np.minimum(area[i], area[rest])
        ratio = np.divide(inter, denom, out=np.zeros_like(inter), where=denom > 0)
        order = rest[ratio <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def _opencv_nms(b: np.ndarray, order: np.ndarray, iou_threshold: float) -> np.ndarray:
    """IoU NMS in OpenCV (``cv2.dnn.NMSBoxes`` on float rectangles, the same greedy rule);
    scores are replaced by ranks so ties keep input order as the loop does."""
    import cv2

    rank_score = np.empty(len(b), dtype=np.float32)
    rank_score[order] = (len(b) - np.arange(len(b))) / len(b)  # distinct, in (0, 1]
    xywh = np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)
    kept = cv2.dnn.NMSBoxes(xywh, rank_score, 0.0, iou_threshold)
    kept = np.asarray(kept, dtype=np.int64).reshape(-1)
    return kept[np.argsort(-rank_score[kept], kind="stable")]


def nms(xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float, overlap: str = "union",
        max_pairs: int = 4_000_000) -> np.ndarray:
    """Greedy non-maximum suppression.

    The result is that of the classic loop: visit boxes from the highest score down (ties
    keep input order) and drop every box whose overlap with an already kept box is greater
    than ``iou_threshold``. It is computed without a Python loop over boxes: the overlapping
    pairs are found at once (boxes sorted by ``x1``, so only pairs that overlap in ``x`` are
    checked), then kept/suppressed decisions propagate along those pairs in a few vectorised
    rounds (a box is kept once every better box overlapping it is suppressed). When more than
    ``max_pairs`` pairs overlap in ``x`` it falls back to the loop, which needs ``O(N)`` memory.
    IoU suppression of non-empty boxes runs in OpenCV (``cv2.dnn.NMSBoxes``, 3-8x faster on
    MTCNN's proposal sets), which implements the same loop.

    Args:
        xyxy: ``(N, 4)`` boxes.
        scores: ``(N,)`` scores, higher = better.
        iou_threshold: overlaps strictly above this suppress.
        overlap: ``"union"`` (IoU) or ``"min"`` (intersection over the smaller box).
        max_pairs: memory bound of the vectorised path (pairs checked at once).

    Returns:
        ``(K,)`` int64 indices into ``xyxy`` of the kept boxes, by descending score.

    Raises:
        ConfigError: shapes disagree or ``overlap`` is unknown.
    """
    if overlap not in OVERLAPS:
        raise ConfigError(f"overlap must be one of {OVERLAPS}, got {overlap!r}")
    b = _as_boxes(xyxy, "xyxy")
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(s) != len(b):
        raise ConfigError(f"got {len(b)} boxes but {len(s)} scores")
    order = np.argsort(-s, kind="stable")
    if len(b) < 2:
        return order.astype(np.int64)
    if iou_threshold < 0:  # every pair "overlaps", even disjoint boxes (overlap 0)
        return order[:1].astype(np.int64)
    area = box_area(b)
    if overlap == "union" and max_pairs > 0 and (area > 0).all():
        return _opencv_nms(b, order, float(iou_threshold))
    pairs = _overlapping_pairs(b, area, float(iou_threshold), overlap, max_pairs)
    if pairs is None:
        return _greedy_loop(b, area, order, iou_threshold, overlap)
    rank = np.empty(len(b), dtype=np.int64)
    rank[order] = np.arange(len(b))
    i, j = pairs
    better = np.where(rank[i] < rank[j], i, j)  # edge better -> worse: better may suppress worse
    worse = np.where(rank[i] < rank[j], j, i)
    undecided, kept, suppressed = 0, 1, 2
    state = np.zeros(len(b), dtype=np.int8)
    while True:
        hit = np.zeros(len(b), dtype=bool)
        hit[worse[state[better] == kept]] = True
        state[hit & (state == undecided)] = suppressed
        blocked = np.zeros(len(b), dtype=bool)
        blocked[worse[state[better] != suppressed]] = True
        state[~blocked & (state == undecided)] = kept
        live = state[worse] == undecided
        if not live.any():
            break
        better, worse = better[live], worse[live]
    state[state == undecided] = kept  # boxes that no other box overlaps
    kept_idx = np.nonzero(state == kept)[0]
    return kept_idx[np.argsort(rank[kept_idx], kind="stable")].astype(np.int64)


__all__ = ["box_area", "iou_matrix", "nms"]
