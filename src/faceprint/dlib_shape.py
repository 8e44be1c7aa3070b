"""dlib's shape predictor (Kazemi & Sullivan's cascade of regression trees) in numpy.

A port of ``dlib::shape_predictor`` read from its ``.dat`` file (see
``shared/docs/dlib-models.md``), so the default pipeline never imports dlib. The file holds,
after a version int (1):

- the initial (mean) shape: a ``(2P, 1)`` float matrix ``x0, y0, x1, y1, ...`` in the unit
  square of the face box;
- per cascade a vector of trees, each a vector of splits ``{idx1, idx2, thresh}`` (breadth
  first: the children of node ``i`` are ``2i + 1`` (taken when
  ``pixel[idx1] - pixel[idx2] > thresh``) and ``2i + 2``) and a vector of leaf shape deltas;
- per cascade the anchor landmark and the offset (in initial-shape units) of each feature pixel.

Prediction follows dlib's ``operator()`` step for step, in its float32 arithmetic: each
cascade maps the feature pixels through the similarity from the initial shape to the current
one and the box's unit-square transform, rounds them to whole pixels, reads their intensity
(``(r + g + b) // 3``; 0 outside the image), walks every tree and adds the leaves in tree
order. Points are rounded to whole pixels as dlib's ``point`` does (``floor(v + 0.5)``).

Reading the file's ~1.5 million packed floats in Python takes seconds, so the first use
converts it to an ``.npz`` in the faceprint cache; later processes load that in milliseconds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .dlibfmt import DlibReader
from .errors import ConfigError, ModelLoadError

#: Bump when the arrays :func:`read_shape_predictor` produces change, so caches are rebuilt.
CONVERTER_VERSION = 1


@dataclass(frozen=True)
class ShapeModel:
    """The arrays of one shape predictor file (C cascades, T trees, S splits, F pixels, P parts).

    Attributes:
        initial: ``(P, 2)`` float32 mean shape in unit-box coordinates.
        idx1, idx2: ``(C, T, S)`` int32 feature-pixel indices of each split.
        thresh: ``(C, T, S)`` float32 split thresholds.
        leaves: ``(C, T, S + 1, 2P)`` float32 shape deltas.
        anchor: ``(C, F)`` int32 landmark each feature pixel is attached to.
        deltas: ``(C, F, 2)`` float32 offset of each feature pixel from its anchor.
    """

    initial: np.ndarray
    idx1: np.ndarray
    idx2: np.ndarray
    thresh: np.ndarray
    leaves: np.ndarray
    anchor: np.ndarray
    deltas: np.ndarray

    @property
    def num_parts(self) -> int:
        return int(self.initial.shape[0])

    def save(self, path: str | Path) -> None:
        with open(path, "wb") as f:  # a file object: np.savez would append ".npz" to a path
            np.savez(f, **{k: getattr(self, k) for k in self.__dataclass_fields__})

    @classmethod
    def load(cls, path: str | Path) -> ShapeModel:
        try:
            with np.load(path) as z:
                return cls(**{k: z[k] for k in cls.__dataclass_fields__})
        except (OSError, KeyError, ValueError) as exc:
            raise ModelLoadError(f"cannot read converted shape predictor {path}: {exc}") from exc


def read_shape_predictor(path: str | Path) -> ShapeModel:
    """Parse a dlib ``shape_predictor`` ``.dat`` file (slow: seconds; see :func:`load_shape_model`).

    Raises:
        ModelLoadError: the file is unreadable, malformed, or its trees are not all complete
            binary trees of one depth.
    """
    r = DlibReader.from_file(path)
    r.expect_int(1, what="shape_predictor version")
    initial = r.read_matrix("initial shape").astype(np.float32).reshape(-1)
    if initial.size == 0 or initial.size % 2:
        raise r.error(f"initial shape has {initial.size} values, expected an even number > 0")
    parts2 = initial.size
    idx1, idx2, thresh, leaves = [], [], [], []
    n_splits: int | None = None
    for c in range(r.read_int("cascade count")):
        trees = []
        for t in range(r.read_int("tree count")):
            splits = [(r.read_int("split idx1"), r.read_int("split idx2"), r.read_double("split threshold"))
                      for _ in range(r.read_int("split count"))]
            vals = [r.read_matrix("leaf values").reshape(-1) for _ in range(r.read_int("leaf count"))]
            n_splits = len(splits) if n_splits is None else n_splits
            if len(splits) != n_splits or len(vals) != n_splits + 1 or (n_splits + 1) & n_splits:
                raise r.error(f"cascade {c} tree {t}: {len(splits)} splits and {len(vals)} leaves; "
                              f"expected complete trees of {n_splits} splits and {n_splits + 1} leaves")
            if any(v.size != parts2 for v in vals):
                raise r.error(f"cascade {c} tree {t}: a leaf does not have {parts2} values")
            trees.append((splits, vals))
        idx1.append([[s[0] for s in sp] for sp, _ in trees])
        idx2.append([[s[1] for s in sp] for sp, _ in trees])
        thresh.append([[s[2] for s in sp] for sp, _ in trees])
        leaves.append([np.stack(v) for _, v in trees])
    anchor = [[r.read_int("anchor index") for _ in range(r.read_int("anchor count"))]
              for _ in range(r.read_int("anchor vector count"))]
    deltas = [[(r.read_double("delta x"), r.read_double("delta y")) for _ in range(r.read_int("delta count"))]
              for _ in range(r.read_int("delta vector count"))]
    if not r.at_end():
        raise r.error(f"{r.remaining} unexpected bytes after the model")
    model = ShapeModel(initial.reshape(-1, 2), np.asarray(idx1, np.int32), np.asarray(idx2, np.int32),
                       np.asarray(thresh, np.float32), np.asarray(leaves, np.float32),
                       np.asarray(anchor, np.int32), np.asarray(deltas, np.float32))
    _check(model, r)
    return model


def _check(m: ShapeModel, r: DlibReader) -> None:
    cascades, features = m.anchor.shape[0], m.anchor.shape[1] if m.anchor.ndim == 2 else -1
    if m.idx1.shape[0] != cascades or m.deltas.shape[:2] != m.anchor.shape:
        raise r.error(f"{m.idx1.shape[0]} cascades of trees but anchors {m.anchor.shape} and deltas {m.deltas.shape}")
    if m.anchor.size and (m.anchor.min() < 0 or m.anchor.max() >= m.num_parts):
        raise r.error(f"an anchor index is outside the {m.num_parts} parts")
    for name, idx in (("idx1", m.idx1), ("idx2", m.idx2)):
        if idx.size and (idx.min() < 0 or idx.max() >= features):
            raise r.error(f"a split {name} is outside the {features} feature pixels")


def _file_digest(path: Path) -> str:
    digest = hashlib.sha1(f"shape-converter-{CONVERTER_VERSION}:".encode())
    digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def load_shape_model(path: str | Path) -> ShapeModel:
    """The model of ``path``, converted once into the faceprint cache (keyed by the file's content).

    Raises:
        ModelLoadError: the file is missing or malformed.
    """
    from .cache import cached_file

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"shape predictor file not found: {path}")
    npz = cached_file(f"{path.stem}-{_file_digest(path)}.npz", lambda tmp: read_shape_predictor(path).save(tmp))
    return ShapeModel.load(npz)


def _similarity_linear(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """``(N, 2, 2)`` linear part (scale * rotation) of the least-squares similarity
    ``src (P, 2) -> dst (N, P, 2)`` in float64 (Umeyama's, as dlib's ``find_similarity_transform``)."""
    s = src.astype(np.float64) - src.astype(np.float64).mean(0)
    d = dst.astype(np.float64)
    d = d - d.mean(1, keepdims=True)
    denom = (s * s).sum()
    a = (s[:, 0] * d[..., 0] + s[:, 1] * d[..., 1]).sum(1) / denom
    b = (s[:, 0] * d[..., 1] - s[:, 1] * d[..., 0]).sum(1) / denom
    return np.stack([np.stack([a, -b], -1), np.stack([b, a], -1)], 1)


def _round(v: np.ndarray) -> np.ndarray:
    """dlib's double -> ``long`` point conversion: ``floor(v + 0.5)``."""
    return np.floor(v + 0.5).astype(np.int64)


class ShapePredictor:
    """``predict(rgb, boxes) -> (N, P, 2)`` landmarks, equal to ``dlib.shape_predictor``'s.

    Args:
        model: the predictor's arrays (see :func:`load_shape_model`).
    """

    def __init__(self, model: ShapeModel) -> None:
        self.model = model

    @classmethod
    def from_file(cls, path: str | Path) -> ShapePredictor:
        return cls(load_shape_model(path))

    def predict(self, rgb: np.ndarray, boxes_ltrb: np.ndarray) -> np.ndarray:
        """Landmarks of each face box.

        Args:
            rgb: ``(H, W, 3)`` uint8 RGB (or ``(H, W)`` uint8 grey) image.
            boxes_ltrb: ``(N, 4)`` whole-pixel ``left, top, right, bottom`` boxes, right and
                bottom inclusive (``dlib.rectangle``'s convention).

        Returns:
            ``(N, P, 2)`` float32 ``x, y`` points, whole pixels like dlib's.

        Raises:
            ConfigError: the image is not uint8 2-D/3-channel, or the boxes are not ``(N, 4)``.
        """
        img = np.asarray(rgb)
        if img.dtype != np.uint8 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
            raise ConfigError(f"shape predictor needs a uint8 (H, W, 3) or (H, W) image, got {img.dtype} {img.shape}")
        boxes = np.asarray(boxes_ltrb, dtype=np.float64)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ConfigError(f"boxes must be (N, 4) left, top, right, bottom, got shape {boxes.shape}")
        m = self.model
        n, parts = len(boxes), m.num_parts
        if n == 0:
            return np.zeros((0, parts, 2), np.float32)
        h, w = img.shape[:2]
        # unnormalizing_tform: the unit square onto the box (tl, tr, br corners)
        origin = boxes[:, None, :2]
        extent = (boxes[:, 2:] - boxes[:, :2])[:, None, :]
        shape = np.repeat(m.initial[None], n, axis=0)  # (N, P, 2) float32
        rows = np.arange(n)[:, None]
        trees = np.arange(m.idx1.shape[1])[None, :]
        depth = int(np.log2(m.idx1.shape[2] + 1))
        for c in range(m.idx1.shape[0]):
            lin = _similarity_linear(m.initial, shape).astype(np.float32)  # (N, 2, 2), cast like dlib
            dx, dy = m.deltas[c, :, 0], m.deltas[c, :, 1]
            anchor = shape[:, m.anchor[c]]  # (N, F, 2)
            px = lin[:, 0, 0, None] * dx + lin[:, 0, 1, None] * dy + anchor[..., 0]  # float32 throughout
            py = lin[:, 1, 0, None] * dx + lin[:, 1, 1, None] * dy + anchor[..., 1]
            x = _round(extent[..., 0] * px.astype(np.float64) + origin[..., 0])
            y = _round(extent[..., 1] * py.astype(np.float64) + origin[..., 1])
            inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
            feat = np.zeros(x.shape, np.float32)
            pix = img[y[inside], x[inside]]
            feat[inside] = pix if img.ndim == 2 else pix.astype(np.int32).sum(-1) // 3
            node = np.zeros((n, trees.shape[1]), np.int64)
            for _ in range(depth):
                i1 = m.idx1[c][trees, node]
                i2 = m.idx2[c][trees, node]
                left = feat[rows, i1] - feat[rows, i2] > m.thresh[c][trees, node]
                node = 2 * node + np.where(left, 1, 2)
            picked = m.leaves[c][trees, node - m.idx1.shape[2]]  # (N, T, 2P)
            # dlib adds the leaves one tree at a time in float32: cumsum is that sequential sum
            total = np.concatenate([shape.reshape(n, 1, -1), picked], axis=1).cumsum(axis=1, dtype=np.float32)
            shape = total[:, -1].reshape(n, parts, 2)
        out = _round(extent * shape.astype(np.float64) + origin)
        return out.astype(np.float32)


__all__ = ["ShapeModel", "ShapePredictor", "load_shape_model", "read_shape_predictor"]
