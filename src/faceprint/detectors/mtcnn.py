"""MTCNN (Zhang et al. 2016) on ONNX Runtime, with the weights of the ``mtcnn`` PyPI package.

The package ships its P-Net, R-Net and O-Net weights as joblib/lz4 lists of Keras arrays; its
own code needs TensorFlow. On first use each net is converted once into an ONNX graph in the
faceprint cache (``mtcnn_{pnet,rnet,onet}-v1.onnx``) and run on ONNX Runtime from then on.

Conventions of the converted graphs (all take raw RGB pixels in ``0..255``, NHWC float32):

- the ``(x - 127.5) / 128`` input normalisation is folded into the first convolution, which is
  exact because it has no padding; pixels outside the image are sampled as 0 (black);
- P-Net ``(1, H, W, 3) -> reg (1, 4, h, w), prob (1, 1, h, w)`` with
  ``h = ceil((H - 2) / 2) - 4`` (Keras "same" max pooling), one 12x12 window per cell, stride 2;
- R-Net ``(N, 24, 24, 3) -> reg (N, 4), prob (N, 1)``;
- O-Net ``(N, 48, 48, 3) -> reg (N, 4), landmarks (N, 10), prob (N, 1)``, landmarks as
  ``x1..x5, y1..y5`` relative to the input box;
- ``prob`` is the face probability: the nets' 2-way softmax ``[not face, face]`` computed as
  ``sigmoid(l_face - l_not)``; ``reg`` holds ``dx1, dy1, dx2, dy2`` in units of the box
  width/height;
- before flattening into the dense layers Keras permutes ``(H, W, C) -> (W, H, C)``; the
  graphs reproduce that order.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..boxes import nms
from ..errors import ConfigError, ModelLoadError
from ..stages import Fanout
from ..types import Faces
from .base import Detector

#: Bump when the converted graphs change, so stale cache files are not reused.
GRAPH_VERSION = 1
NETS = ("pnet", "rnet", "onet")
_CELL = 12  # P-Net window side in pyramid pixels
_STRIDE = 2  # P-Net output stride in pyramid pixels
_NMS_PNET_SCALE = 0.5  # per pyramid level (IoU)
_NMS_PNET_ALL = 0.7  # across levels (IoU)
_NMS_RNET = 0.7  # IoU
_NMS_ONET = 0.7  # intersection over the smaller box: drops boxes nested in a bigger one
_FANOUT_PIXELS = 40_000  # P-Net pyramid area (level pixels) from which levels run side by side
_MIN_PART = 16  # fewest R-Net/O-Net crops per part when a batch is split


# --------------------------------------------------------------------------------------------
# weights and conversion


def weights_path(net: str) -> Path:
    """Path of the ``mtcnn`` package's ``{net}.lz4`` weight file (the package is not imported).

    Raises:
        ModelLoadError: the ``mtcnn`` package or its weight file is missing.
    """
    from ..cache import package_file

    return package_file("mtcnn", f"assets/weights/{net}.lz4", "mtcnn")


def load_keras_weights(net: str) -> list[np.ndarray]:
    """The Keras arrays of one net in layer order (conv ``(kh, kw, in, out)``, dense ``(in, out)``).

    Raises:
        ModelLoadError: the file is missing or unreadable.
    """
    import joblib

    path = weights_path(net)
    try:
        arrays = joblib.load(path)
    except Exception as exc:  # joblib/lz4 raise assorted types
        raise ModelLoadError(f"could not read MTCNN weights {path}: {exc}") from exc
    return [np.asarray(a, dtype=np.float32) for a in arrays]


def _oihw(kernel: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))


def _prelu(g: Any, x: str, alpha: np.ndarray, spatial: bool = True) -> str:
    """Keras PReLU with one slope per channel, as ``alpha * x + (1 - alpha) * relu(x)``.

    Same values as ONNX ``PRelu``, but ORT runs these ops in its blocked (NCHWc) conv layout
    and folds the first product into a depthwise conv: about 1.7x faster on R-Net.
    """
    shape = (-1, 1, 1) if spatial else (-1,)
    alpha = np.asarray(alpha, np.float32).reshape(shape)
    return g.op("Add", [g.op("Mul", [x, g.const(alpha)]), g.op("Mul", [g.op("Relu", [x]), g.const(1.0 - alpha)])])


def _conv_prelu(g: Any, x: str, kernel: np.ndarray, bias: np.ndarray, alpha: np.ndarray) -> str:
    return _prelu(g, g.conv(x, _oihw(kernel), bias), alpha)


def _first_conv_prelu(g: Any, x: str, kernel: np.ndarray, bias: np.ndarray, alpha: np.ndarray) -> str:
    """conv(normalise(x)) with normalise(x) = (x - 127.5) / 128 folded into the weights."""
    folded_bias = bias - 127.5 / 128.0 * kernel.sum(axis=(0, 1, 2))
    return _conv_prelu(g, x, kernel / 128.0, folded_bias, alpha)


def _face_logit(kernel: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A 2-way softmax head as one logit: softmax(l)[1] == sigmoid(l1 - l0)."""
    return kernel[..., 1:2] - kernel[..., 0:1], bias[1:2] - bias[0:1]


def _maxpool(g: Any, x: str, size: int, same: bool) -> str:
    # Keras "same" pads at the end (bottom/right) with -inf: ONNX SAME_UPPER
    return g.op("MaxPool", [x], kernel_shape=[size, size], strides=[2, 2],
                auto_pad="SAME_UPPER" if same else "VALID")


def _dense(g: Any, x: str, kernel: np.ndarray, bias: np.ndarray) -> str:
    return g.op("Gemm", [x, g.const(kernel), g.const(bias)])


def _keras_flatten(g: Any, x: str) -> str:
    # Keras Permute((2, 1, 3)) + Flatten on NHWC == NCHW -> (N, W, H, C) -> flatten
    return g.op("Flatten", [g.op("Transpose", [x], perm=[0, 3, 2, 1])], axis=1)


def build_graph(net: str, weights: Sequence[np.ndarray], path: Path) -> None:
    """Write the ONNX graph of ``net`` (``"pnet"``, ``"rnet"`` or ``"onet"``) to ``path``."""
    from ..onnx_graph import GraphBuilder

    w = list(weights)
    g = GraphBuilder(f"mtcnn_{net}")
    if net == "pnet":
        x = g.op("Transpose", [g.input("image", [1, "height", "width", 3])], perm=[0, 3, 1, 2])
        x = _maxpool(g, _first_conv_prelu(g, x, *w[0:3]), 2, same=True)
        x = _conv_prelu(g, x, *w[3:6])
        x = _conv_prelu(g, x, *w[6:9])
        reg = g.conv(x, _oihw(w[9]), w[10])
        logit_w, logit_b = _face_logit(w[11], w[12])
        prob = g.op("Sigmoid", [g.conv(x, _oihw(logit_w), logit_b)])
        g.save([(reg, [1, 4, "h", "w"]), (prob, [1, 1, "h", "w"])], path)
        return
    if net not in ("rnet", "onet"):
        raise ConfigError(f"unknown MTCNN net {net!r}; expected one of {NETS}")
    size = 24 if net == "rnet" else 48
    x = g.op("Transpose", [g.input("image", ["n", size, size, 3])], perm=[0, 3, 1, 2])
    x = _maxpool(g, _first_conv_prelu(g, x, *w[0:3]), 3, same=True)
    x = _maxpool(g, _conv_prelu(g, x, *w[3:6]), 3, same=False)
    if net == "onet":
        x = _maxpool(g, _conv_prelu(g, x, *w[6:9]), 2, same=True)
        w = w[3:]  # from here O-Net's layers line up with R-Net's, one conv block later
    x = _keras_flatten(g, _conv_prelu(g, x, *w[6:9]))
    x = _prelu(g, _dense(g, x, w[9], w[10]), w[11], spatial=False)
    reg = _dense(g, x, w[12], w[13])
    logit_w, logit_b = _face_logit(w[-2], w[-1])
    prob = g.op("Sigmoid", [_dense(g, x, logit_w, logit_b)])
    if net == "rnet":
        g.save([(reg, ["n", 4]), (prob, ["n", 1])], path)
    else:
        landmarks = _dense(g, x, w[14], w[15])
        g.save([(reg, ["n", 4]), (landmarks, ["n", 10]), (prob, ["n", 1])], path)


def converted_model(net: str) -> Path:
    """The cached ONNX file of ``net``, converting the Keras weights on first use.

    Raises:
        ModelLoadError: the weights are missing or the conversion failed.
    """
    from ..cache import cached_file

    if net not in NETS:
        raise ConfigError(f"unknown MTCNN net {net!r}; expected one of {NETS}")
    weights = weights_path(net)  # fail early, with the install hint, when the package is absent
    return cached_file(f"mtcnn_{net}-v{GRAPH_VERSION}.onnx",
                       lambda tmp: build_graph(net, load_keras_weights(weights.stem), tmp))


# --------------------------------------------------------------------------------------------
# image pyramid and crops


class _Pyramid:
    """Area-downscaled copies of one image, made on demand and kept for the crop stages.

    ``pnet_scales`` are the levels P-Net scans. Crops may also read the original (scale 1.0)
    and, when ``max_side`` started the pyramid far below 1.0, the levels that continue it
    upwards by ``1 / scale_factor`` until the next step would pass 1.0. A level's actual
    per-axis scales (after rounding its size up to whole pixels) are in :meth:`axis_scales`.
    """

    def __init__(self, rgb: np.ndarray, scales: Sequence[float], scale_factor: float) -> None:
        self.rgb = rgb
        self.pnet_scales = [float(s) for s in scales]
        upper = []
        if self.pnet_scales:
            scale = self.pnet_scales[0] / scale_factor
            while scale <= scale_factor:  # keep every gap, up to 1.0 included, at most one step
                upper.append(scale)
                scale /= scale_factor
        self.scales = sorted(set(self.pnet_scales) | set(upper) | {1.0}, reverse=True)
        self._images: dict[float, np.ndarray] = {1.0: rgb}

    def image(self, scale: float) -> np.ndarray:
        img = self._images.get(scale)
        if img is None:
            import cv2

            h, w = self.rgb.shape[:2]
            size = (max(1, math.ceil(w * scale)), max(1, math.ceil(h * scale)))
            # area averaging as in the original MTCNN (bilinear levels add false positives);
            # from the nearest bigger level already made, which is cheaper than from full size
            src_scale = min((s for s in self._images if s > scale), default=1.0)
            img = cv2.resize(self._images[src_scale], size, interpolation=cv2.INTER_AREA)
            self._images[scale] = img
        return img

    def axis_scales(self, scale: float) -> tuple[float, float]:
        """``(sx, sy)``: level pixels per original pixel along x and y."""
        h, w = self.rgb.shape[:2]
        lh, lw = self.image(scale).shape[:2]
        return lw / w, lh / h

    def crops(self, xyxy: np.ndarray, size: int) -> np.ndarray:
        """Resample each box to ``size x size``: ``(N, size, size, 3)`` float32 pixels.

        Each box is read from the coarsest level where it is still at least ``size`` pixels
        wide, so bilinear sampling never shrinks by more than one pyramid step (no aliasing).
        Outside the image reads as 0.
        """
        import cv2

        out = np.zeros((len(xyxy), size, size, 3), np.uint8)
        side = np.maximum(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1])
        levels = np.asarray(self.scales)  # descending
        fits = side[:, None] * levels[None, :] >= size
        # last level that fits (levels descend); level 0 (the original) when none fits
        choice = np.where(fits.any(1), fits.shape[1] - 1 - np.argmax(fits[:, ::-1], axis=1), 0)
        grid = (np.arange(size, dtype=np.float32) + 0.5) / size
        for level in np.unique(choice):
            idx = np.nonzero(choice == level)[0]
            scale = float(levels[level])
            sx, sy = self.axis_scales(scale)
            b = xyxy[idx].astype(np.float32)
            mx = (b[:, 0:1] + grid[None, :] * (b[:, 2:3] - b[:, 0:1])) * sx - 0.5  # (n, size)
            my = (b[:, 1:2] + grid[None, :] * (b[:, 3:4] - b[:, 1:2])) * sy - 0.5
            # remap wants maps under 32767 rows: one row of size*size samples per box
            map_x = np.broadcast_to(mx[:, None, :], (len(idx), size, size)).reshape(len(idx), -1)
            map_y = np.broadcast_to(my[:, :, None], (len(idx), size, size)).reshape(len(idx), -1)
            patch = cv2.remap(self.image(scale), np.ascontiguousarray(map_x), np.ascontiguousarray(map_y),
                              cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
            out[idx] = patch.reshape(len(idx), size, size, 3)
        return out.astype(np.float32)


def pyramid_scales(height: int, width: int, min_face_size: float, scale_factor: float,
                   max_side: int | None = None) -> list[float]:
    """Scales at which P-Net's 12-pixel window sees faces from ``min_face_size`` up.

    With ``max_side`` the first scale is reduced so its longer side is at most ``max_side``.
    """
    first = _CELL / float(min_face_size)
    if max_side:
        first = min(first, _CELL / float(min_face_size) * max_side / max(height, width))
    scales = []
    scale = first
    while min(height, width) * scale >= _CELL:
        scales.append(scale)
        scale *= scale_factor
    return scales


def _square(xyxy: np.ndarray) -> np.ndarray:
    """Boxes grown to squares of their longer side around the same centre."""
    centre = (xyxy[:, :2] + xyxy[:, 2:]) / 2
    half = np.maximum(xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1])[:, None] / 2
    return np.concatenate([centre - half, centre + half], axis=1)


def _regress(xyxy: np.ndarray, reg: np.ndarray) -> np.ndarray:
    wh = xyxy[:, 2:] - xyxy[:, :2]
    return xyxy + reg * np.concatenate([wh, wh], axis=1)


# --------------------------------------------------------------------------------------------
# detector


class MtcnnDetector(Detector):
    """The MTCNN cascade: P-Net proposals on an image pyramid, refined by R-Net and O-Net.

    Boxes are the O-Net-regressed boxes clipped to the image, scores the O-Net face
    probability, landmarks O-Net's five points in ``LANDMARK_ORDER``; faces are sorted by score.

    Defaults were chosen with ``benchmarks/bench_detection.py``: ``min_face_size=40`` matches
    the smallest faces dlib's HOG (upsample 1) finds, and smaller faces embed poorly anyway;
    a P-Net threshold of 0.7 (the paper's 0.6 sends 30% more candidates to R-Net) and
    ``max_side=1920`` left recall on ``shared/data/detection`` unchanged (88/89 faces).

    Args:
        min_face_size: smallest face side, in pixels, that the pyramid looks for (>= 12).
        thresholds: face-probability thresholds of P-Net, R-Net and O-Net, each in ``(0, 1)``.
        scale_factor: ratio between pyramid levels, in ``(0, 1)``; larger = more levels
            (slower, slightly better recall).
        threads: inference threads (0 = all cores). The nets run single-threaded; on a big
            image the P-Net levels, and large R-Net/O-Net batches in parts, run side by side
            (:class:`~faceprint.stages.Fanout`), which costs less CPU than ONNX Runtime's
            intra-op threads and gives the same values.
        max_side: when the image's longer side exceeds this, the pyramid starts as if the
            image were downscaled to it (faces below ``min_face_size * longer / max_side``
            original pixels may be missed); R-Net and O-Net still read full-resolution crops.
            ``None`` keeps the full pyramid.

    Raises:
        ConfigError: a parameter is out of range.
    """

    name = "mtcnn"

    def __init__(self, min_face_size: float = 40, thresholds: Sequence[float] = (0.7, 0.7, 0.7),
                 scale_factor: float = 0.709, threads: int = 0, max_side: int | None = 1920) -> None:
        if not min_face_size >= _CELL:
            raise ConfigError(f"min_face_size must be >= {_CELL} pixels, got {min_face_size}")
        thresholds = tuple(float(t) for t in thresholds)
        if len(thresholds) != 3 or not all(0.0 < t < 1.0 for t in thresholds):
            raise ConfigError(f"thresholds must be 3 values in (0, 1) for P-Net, R-Net, O-Net, got {thresholds}")
        if not 0.0 < scale_factor < 1.0:
            raise ConfigError(f"scale_factor must be in (0, 1), got {scale_factor}")
        if int(threads) < 0:
            raise ConfigError(f"threads must be >= 0 (0 = all cores), got {threads}")
        if max_side is not None and not int(max_side) >= _CELL:
            raise ConfigError(f"max_side must be None or >= {_CELL} pixels, got {max_side}")
        self.min_face_size = float(min_face_size)
        self.thresholds = thresholds
        self.scale_factor = float(scale_factor)
        self.threads = int(threads)
        self.max_side = None if max_side is None else int(max_side)
        self._sessions: dict[str, Any] = {}
        self._fanout = Fanout(self.threads)  # helper threads start on first use

    def _session(self, net: str) -> Any:
        session = self._sessions.get(net)
        if session is None:
            from ..onnx_graph import open_session

            # one intra-op thread: the parallelism is the Fanout's (levels, parts of a batch)
            session = open_session(converted_model(net), 1, fixed_shapes=False)
            self._sessions[net] = session
        return session

    def _run_batches(self, net: str, crops: np.ndarray) -> list[np.ndarray]:
        """R-Net/O-Net outputs for ``crops``; a batch of at least ``2 * _MIN_PART`` crops is
        split into parts that run side by side."""
        session = self._session(net)
        workers = min(self._fanout.workers, len(crops) // _MIN_PART)
        if workers < 2:
            return session.run(None, {"image": crops})
        size = -(-len(crops) // workers)
        parts = self._fanout.map(lambda part: session.run(None, {"image": part}),
                                 [crops[i:i + size] for i in range(0, len(crops), size)])
        return [np.concatenate(outputs) for outputs in zip(*parts)]

    def load(self) -> MtcnnDetector:
        """Convert (once, cached) and open the three nets now instead of on first detect."""
        for net in NETS:
            self._session(net)
        return self

    def _detect(self, rgb: np.ndarray) -> Faces:
        h, w = rgb.shape[:2]
        scales = pyramid_scales(h, w, self.min_face_size, self.scale_factor, self.max_side)
        pyramid = _Pyramid(rgb, scales, self.scale_factor)
        boxes = self._proposals(pyramid)
        if len(boxes):
            boxes = self._refine(pyramid, boxes)
        if not len(boxes):
            return Faces.empty()
        xyxy, score, landmarks = self._output(pyramid, boxes)
        if not len(xyxy):
            return Faces.empty()
        xyxy = np.clip(xyxy, 0, [w, h, w, h])
        order = np.argsort(-score, kind="stable")
        return Faces(xyxy[order], score[order], landmarks[order])

    def _proposals(self, pyramid: _Pyramid) -> np.ndarray:
        """Stage 1: square candidate boxes ``(N, 4)`` in original pixels."""
        session = self._session("pnet")
        threshold = self.thresholds[0]
        h, w = pyramid.rgb.shape[:2]
        all_boxes, all_scores, all_levels = [], [], []
        images = [pyramid.image(scale) for scale in pyramid.pnet_scales]  # in order: each from the last

        def run(image: np.ndarray) -> list[np.ndarray]:
            return session.run(None, {"image": image[None].astype(np.float32)})

        # levels side by side only when there is enough work to share (not on LFW's 250x250)
        area = sum(image.shape[0] * image.shape[1] for image in images)
        outputs = self._fanout.map(run, images) if area >= _FANOUT_PIXELS else [run(image) for image in images]
        for level, (scale, (reg, prob)) in enumerate(zip(pyramid.pnet_scales, outputs)):
            ys, xs = np.nonzero(prob[0, 0] > threshold)
            if not len(ys):
                continue
            sx, sy = pyramid.axis_scales(scale)
            win = np.stack([xs, ys, xs + _CELL / _STRIDE, ys + _CELL / _STRIDE], 1).astype(np.float64) * _STRIDE
            win = _regress(win, reg[0][:, ys, xs].T.astype(np.float64))
            all_boxes.append(win / [sx, sy, sx, sy])
            all_scores.append(prob[0, 0, ys, xs])
            all_levels.append(np.full(len(ys), level))
        if not all_boxes:
            return np.zeros((0, 4))
        boxes, scores, levels = np.concatenate(all_boxes), np.concatenate(all_scores), np.concatenate(all_levels)
        # per-level NMS in one call: shift each level far apart so levels never overlap
        offset = (levels * (2.0 * max(h, w) + 4 * _CELL / pyramid.pnet_scales[-1]))[:, None]
        keep = nms(boxes + offset, scores, _NMS_PNET_SCALE)
        boxes, scores = boxes[keep], scores[keep]
        keep = nms(boxes, scores, _NMS_PNET_ALL)
        return _square(boxes[keep])

    def _refine(self, pyramid: _Pyramid, boxes: np.ndarray) -> np.ndarray:
        """Stage 2: R-Net keeps and regresses candidates; returns squares ``(M, 4)``."""
        reg, prob = self._run_batches("rnet", pyramid.crops(boxes, 24))
        keep = np.nonzero(prob[:, 0] > self.thresholds[1])[0]
        boxes = _regress(boxes[keep], reg[keep])
        keep = nms(boxes, prob[keep, 0], _NMS_RNET)
        return _square(boxes[keep])

    def _output(self, pyramid: _Pyramid, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stage 3: O-Net boxes ``(K, 4)``, scores ``(K,)`` and landmarks ``(K, 5, 2)``."""
        reg, points, prob = self._run_batches("onet", pyramid.crops(boxes, 48))
        keep = np.nonzero(prob[:, 0] > self.thresholds[2])[0]
        boxes, reg, points, score = boxes[keep], reg[keep], points[keep], prob[keep, 0]
        wh = boxes[:, 2:] - boxes[:, :2]
        landmarks = np.stack([points[:, :5], points[:, 5:]], axis=2) * wh[:, None, :] + boxes[:, None, :2]
        boxes = _regress(boxes, reg)
        keep = nms(boxes, score, _NMS_ONET, overlap="min")
        return boxes[keep], score[keep], landmarks[keep]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "min_face_size": self.min_face_size, "thresholds": list(self.thresholds),
                "scale_factor": self.scale_factor, "max_side": self.max_side, "threads": self.threads}


__all__ = ["MtcnnDetector", "build_graph", "converted_model", "load_keras_weights", "pyramid_scales"]
