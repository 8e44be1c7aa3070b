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

The first use converts the file (about 1.5 million packed floats, ~1 s) to an ``.npz`` in
the faceprint cache; later processes load that in milliseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, ModelLoadError
from .fmt import DlibReader, doubles_from_details

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
    """Parse a dlib ``shape_predictor`` ``.dat`` file (about a second for the 5-point one).

    The file is only packed integers and float_details (integer pairs), so it is decoded as
    one integer stream (:meth:`~faceprint.dlibport.fmt.DlibReader.read_int_stream`) and cut into
    arrays: every tree of a cascade has the same layout, so a cascade is one reshape.

    Raises:
        ModelLoadError: the file is unreadable, malformed, or its trees are not all complete
            binary trees of one depth.
    """
    r = DlibReader.from_file(path)
    v = r.read_int_stream("shape predictor")
    at = 0

    def take(n: int, what: str) -> np.ndarray:
        nonlocal at
        if n < 0 or at + n > len(v):
            raise r.error(f"{what}: need {n} values at value {at}, the file has {len(v)}")
        at += n
        return v[at - n:at]

    def count(what: str, limit: int = 1 << 20) -> int:
        n = int(take(1, what)[0])
        if not 0 <= n <= limit:
            raise r.error(f"implausible {what} {n}")
        return n

    def floats(block: np.ndarray) -> np.ndarray:
        return doubles_from_details(block[0::2], block[1::2])

    if int(take(1, "version")[0]) != 1:
        raise r.error(f"shape_predictor version {v[0]}, expected 1")
    rows, cols = np.abs(take(2, "initial shape size"))
    parts2 = int(rows * cols)
    if parts2 == 0 or parts2 % 2 or parts2 > 100000:
        raise r.error(f"initial shape has {parts2} values, expected an even number > 0")
    initial = floats(take(2 * parts2, "initial shape")).astype(np.float32)
    idx1, idx2, thresh, leaves = [], [], [], []
    for c in range(count("cascade count")):
        trees = count("tree count")
        if trees == 0 or at >= len(v):
            raise r.error(f"cascade {c} has no trees")
        splits = int(v[at])
        leaf_len = 2 + 2 * parts2  # -rows, -cols, then parts2 float_details
        tree_len = 1 + 4 * splits + 1 + (splits + 1) * leaf_len
        block = take(trees * tree_len, f"cascade {c} trees").reshape(trees, tree_len)
        s4 = block[:, 1:1 + 4 * splits].reshape(trees, splits, 4)
        lv = block[:, 2 + 4 * splits:].reshape(trees, splits + 1, leaf_len)
        if ((splits + 1) & splits or (block[:, 0] != splits).any() or (block[:, 1 + 4 * splits] != splits + 1).any()
                or (np.abs(lv[..., :2]).prod(-1) != parts2).any()):
            raise r.error(f"cascade {c}: trees are not all complete binary trees of {splits} splits "
                          f"and {splits + 1} leaves of {parts2} values")
        idx1.append(s4[..., 0])
        idx2.append(s4[..., 1])
        thresh.append(doubles_from_details(s4[..., 2], s4[..., 3]))
        leaves.append(floats(lv[..., 2:].reshape(-1)).reshape(trees, splits + 1, parts2))
    anchor = [take(count("anchor count"), "anchors") for _ in range(count("anchor vector count"))]
    deltas = [floats(take(4 * count("delta count"), "deltas")).reshape(-1, 2) for _ in range(count("delta vectors"))]
    if at != len(v):
        raise r.error(f"{len(v) - at} unexpected values after the model")
    try:
        model = ShapeModel(initial.reshape(-1, 2), np.asarray(idx1, np.int32), np.asarray(idx2, np.int32),
                           np.asarray(thresh, np.float32), np.asarray(leaves, np.float32),
                           np.asarray(anchor, np.int32), np.asarray(deltas, np.float32))
    except ValueError as exc:  # ragged: cascades of different tree counts or pixel counts
        raise r.error(f"cascades differ in shape: {exc}") from exc
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


def count_parts(path: str | Path) -> int:
    """Landmarks of the predictor in ``path``, from its first bytes (the initial shape's size).

    Raises:
        ModelLoadError: the file is missing or does not start like a shape predictor.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(32)
    except OSError as exc:
        raise ModelLoadError(f"cannot read shape predictor file {path}: {exc}") from exc
    r = DlibReader(head, 0, str(path))
    r.expect_int(1, what="shape_predictor version")
    return abs(r.read_int("initial shape rows") * r.read_int("initial shape cols")) // 2


def load_shape_model(path: str | Path) -> ShapeModel:
    """The model of ``path``, converted once into the faceprint cache (keyed by the file's content).

    Raises:
        ModelLoadError: the file is missing or malformed.
    """
    from ..cache import cached_file, file_digest

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"shape predictor file not found: {path}")
    digest = file_digest(path, f"shape-converter-{CONVERTER_VERSION}:", 16)
    npz = cached_file(f"{path.stem}-{digest}.npz", lambda tmp: read_shape_predictor(path).save(tmp))
    return ShapeModel.load(npz)


def _similarity_basis(src: np.ndarray) -> np.ndarray:
    """``(2P, 2)`` matrix ``K`` with ``dst.reshape(N, 2P) @ K = (a, b)``: the linear part
    ``[[a, -b], [b, a]]`` (scale * rotation) of the least-squares similarity ``src (P, 2) -> dst``.

    Umeyama's solution (dlib's ``find_similarity_transform``) in closed form for 2-D:
    ``a = sum(s . d) / |s|^2``, ``b = sum(s x d) / |s|^2`` with ``s`` the centred source;
    ``d`` needs no centring because ``s`` sums to zero.
    """
    s = src.astype(np.float64) - src.astype(np.float64).mean(0)
    denom = (s * s).sum()
    k = np.empty((len(s), 2, 2))
    k[:, 0, 0], k[:, 1, 0] = s[:, 0], s[:, 1]  # a: s_x d_x + s_y d_y
    k[:, 0, 1], k[:, 1, 1] = -s[:, 1], s[:, 0]  # b: s_x d_y - s_y d_x
    return k.reshape(-1, 2) / denom


def _leaf_table(splits: int) -> np.ndarray:
    """Leaf reached in a complete tree of ``splits`` nodes for every word of split decisions
    (bit ``i`` = node ``i`` goes left), so a tree walk is one table lookup."""
    words = np.arange(1 << splits)
    node = np.zeros_like(words)
    while True:
        inner = node < splits
        if not inner.any():
            return (node - splits).astype(np.intp)
        go_left = (words >> np.where(inner, node, 0)) & 1
        node = np.where(inner, 2 * node + 2 - go_left, node)


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
        cascades, trees, splits = model.idx1.shape
        self._basis = _similarity_basis(model.initial)
        # flat per-cascade tables, split-major (all trees' split 0, then split 1, ...) so that a
        # tree's word of decisions is one product with the bit values; both pixels of every split
        # in one gather: idx1's, then idx2's. np.take on contiguous intp indices is the fast gather
        self._idx12 = np.ascontiguousarray(np.concatenate([model.idx1.transpose(0, 2, 1).reshape(cascades, -1),
                                                           model.idx2.transpose(0, 2, 1).reshape(cascades, -1)], axis=1), dtype=np.intp)
        self._thresh = np.ascontiguousarray(model.thresh.transpose(0, 2, 1).reshape(cascades, -1, 1))
        self._leaves = np.ascontiguousarray(model.leaves.reshape(cascades, -1, model.leaves.shape[-1]))
        self._anchor = np.ascontiguousarray(model.anchor, dtype=np.intp)
        self._deltas = np.ascontiguousarray(model.deltas.transpose(0, 2, 1))  # (C, 2, F)
        self._deltas_perp = np.ascontiguousarray(np.stack([-self._deltas[:, 1], self._deltas[:, 0]], axis=1))
        self._leaf_base = np.arange(trees) * (splits + 1)
        self._table = _leaf_table(splits) if splits <= 16 else None
        self._bits_f32 = (1 << np.arange(splits)).astype(np.float32)
        self._ones = np.ones(3, np.float32)

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
        return self.predict_many([rgb], [boxes_ltrb])[0]

    def predict_many(self, images: Sequence[np.ndarray], boxes_ltrb: Sequence[np.ndarray]) -> list[np.ndarray]:
        """:meth:`predict` for several images in one pass: ``images[i]``'s boxes are
        ``boxes_ltrb[i]``; the points are those of one :meth:`predict` per image.

        Every face of every image walks the cascade together, so the cost of the ~700 numpy
        calls of a cascade (most of a one-face call, and all of it holding the GIL) is paid
        once per batch instead of once per image. The images are read through one flat copy
        of their pixels unless there is only one; images of different channel counts are
        handled by separate passes.

        Raises:
            ConfigError: an image is not uint8 2-D/3-channel, boxes are not ``(N, 4)``, or the
                two lists differ in length.
        """
        if len(images) != len(boxes_ltrb):
            raise ConfigError(f"got {len(images)} images but {len(boxes_ltrb)} box arrays")
        imgs, boxes = [], []
        for rgb, b in zip(images, boxes_ltrb):
            img = np.asarray(rgb)
            if img.dtype != np.uint8 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
                raise ConfigError(f"shape predictor needs a uint8 (H, W, 3) or (H, W) image, got {img.dtype} {img.shape}")
            box = np.asarray(b, dtype=np.float64)
            if box.ndim != 2 or box.shape[1] != 4:
                raise ConfigError(f"boxes must be (N, 4) left, top, right, bottom, got shape {box.shape}")
            imgs.append(img)
            boxes.append(box)
        out = [np.zeros((0, self.model.num_parts, 2), np.float32) for _ in imgs]
        for ndim in {img.ndim for img in imgs}:  # grey (2-D) and colour (3-D) images apart
            idx = [i for i, (img, box) in enumerate(zip(imgs, boxes)) if img.ndim == ndim and len(box)]
            if idx:
                points = self._predict([imgs[i] for i in idx], [boxes[i] for i in idx])
                for i, pts in zip(idx, np.split(points, np.cumsum([len(boxes[i]) for i in idx])[:-1])):
                    out[i] = pts
        return out

    def _predict(self, imgs: list[np.ndarray], boxes_per_image: list[np.ndarray]) -> np.ndarray:
        """``(N, P, 2)`` points of all boxes (image by image) of same-channel images."""
        m = self.model
        counts = [len(b) for b in boxes_per_image]
        boxes = np.concatenate(boxes_per_image)
        n, parts = len(boxes), m.num_parts
        sizes = np.array([img.shape[:2] for img in imgs], np.int64)  # (images, 2) h, w
        if len(imgs) == 1:
            pixels = np.ascontiguousarray(imgs[0]).reshape(int(sizes[0, 0] * sizes[0, 1]), -1)
        else:
            pixels = np.concatenate([img.reshape(len(img) * img.shape[1], -1) for img in imgs])
        starts = np.concatenate([[0], np.cumsum(sizes[:-1, 0] * sizes[:-1, 1])])
        offset = np.repeat(starts, counts)[:, None]  # (N, 1): where each face's image begins in pixels
        width = np.repeat(sizes[:, 1], counts)[:, None]  # (N, 1)
        limit = np.repeat(sizes[:, ::-1], counts, axis=0)[:, :, None]  # (N, 2, 1): w, h
        # unnormalizing_tform: the unit square onto the box (tl, tr, br corners)
        origin = boxes[:, :2, None]  # (N, 2, 1)
        extent = (boxes[:, 2:] - boxes[:, :2])[:, :, None]
        flat = np.repeat(m.initial.reshape(1, -1), n, axis=0)  # (N, 2P) float32: x0, y0, x1, y1, ...
        cascades, trees, splits = m.idx1.shape
        pairs = trees * splits
        terms = np.empty((trees + 1, n, 2 * parts), np.float32)  # the shape, then one leaf per tree
        for c in range(cascades):
            shape = flat.reshape(n, parts, 2).transpose(0, 2, 1)  # (N, 2, P): x row, y row
            ab = (flat.astype(np.float64) @ self._basis).astype(np.float32)
            # tform * delta + anchor point, in float32 as dlib: x' = a dx - b dy, y' = b dx + a dy
            # (as a (dx, dy) + b (-dy, dx): the same roundings, a sum of two products)
            rot = ab[:, 0, None, None] * self._deltas[c] + ab[:, 1, None, None] * self._deltas_perp[c]  # (N, 2, F)
            pts = rot + np.take(shape, self._anchor[c], axis=2)
            xy = _round(extent * pts.astype(np.float64) + origin)  # whole image pixels, (N, 2, F)
            inside = ((xy >= 0) & (xy < limit)).all(axis=1)
            # from here on faces are the last axis: every gather below copies rows of N values
            pix = np.take(pixels, np.where(inside, xy[:, 1] * width + xy[:, 0] + offset, 0).T, axis=0)  # (F, N, channels)
            # rgb intensity: (r + g + b) / 3, truncated, as float32 like dlib's feature vector. The
            # channel sum is a float32 product with ones (exact: integers <= 765), and the float
            # quotient of such an integer by 3 never rounds across a whole number, so its floor
            # is the integer division; both run as vector loops instead of a 3-element reduction
            total = pix.astype(np.float32) @ self._ones[:pix.shape[-1]]
            feat = np.floor(total / np.float32(pix.shape[-1])) * inside.T  # (F, N)
            both = np.take(feat, self._idx12[c], axis=0)  # (2 S T, N): idx1's, then idx2's, split-major
            left = (both[:pairs] - both[pairs:] > self._thresh[c]).astype(np.float32)  # (S T, N)
            if self._table is not None:
                # each tree's word of split decisions, bit s = split s goes left: one float product
                # of the bit values with the decisions (exact: integers below 2^24)
                word = (self._bits_f32 @ left.reshape(splits, trees * n)).astype(np.intp)
                leaf = self._table[word].reshape(trees, n)
            else:
                node = np.zeros((trees, n), np.intp)
                decided = left.reshape(splits, trees, n)
                tree_ix, face_ix = np.indices((trees, n))
                for _ in range(int(np.log2(splits + 1))):
                    node = 2 * node + 2 - decided[node, tree_ix, face_ix].astype(np.intp)
                leaf = node - splits
            terms[0] = flat
            np.take(self._leaves[c], self._leaf_base[:, None] + leaf, axis=0, out=terms[1:], mode="clip")  # (T, N, 2P)
            # dlib adds the leaves one tree at a time in float32. A reduction along the first axis
            # of a C-ordered array adds one row after another into the result (numpy's pairwise
            # summation applies only along the innermost axis), so this is that sequential sum
            flat = np.add.reduce(terms, axis=0)
        out = _round(extent * flat.reshape(n, parts, 2).transpose(0, 2, 1).astype(np.float64) + origin)
        return out.transpose(0, 2, 1).astype(np.float32)


__all__ = ["ShapeModel", "ShapePredictor", "count_parts", "load_shape_model", "read_shape_predictor"]
