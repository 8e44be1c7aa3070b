"""Run a pipeline over labelled pairs (LFW protocol or CSV) and report verification metrics.

Face choice, per image (LFW images are 250x250 crops centred on the labelled person, and
often show other people near the edges), ``choice="centre"`` (the protocol's, the default):

- the detected face whose box centre is **nearest the image centre** is used;
- when nothing is detected, a **centre fallback** is embedded instead: a box over the central
  50% of the image with 5 synthetic landmarks (the ArcFace template scaled into that box) is
  handed to the pipeline's aligner, i.e. the chip is cut as if the face filled the central
  region. Such images are counted in ``no_face``.

``choice="largest"`` is ``faceprint verify``'s rule: the largest face, and no fallback; a pair
with an image without a face (where verify fails) gets :data:`NO_FACE_DISTANCE`, i.e. it is
decided "different".

Each unique image is embedded once, streamed through :meth:`FacePipeline.embed_many`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..align import ARCFACE_112
from ..errors import ConfigError
from ..image import load_image
from ..types import Embeddings, Faces
from . import metrics
from .pairs import PairSet

#: FARs reported by :func:`evaluate` (keys ``"1e-2"``, ``"1e-3"``).
REPORT_FARS: tuple[float, ...] = (1e-2, 1e-3)
#: Side of the centre fallback box, as a fraction of the image's shorter side.
FALLBACK_FRACTION = 0.5
#: Face choices of :func:`embed_images`: the protocol's centre face, or verify's largest face.
FACE_CHOICES: tuple[str, ...] = ("centre", "largest")
#: Distance given to a pair with a faceless image under ``choice="largest"`` (beyond any real one).
NO_FACE_DISTANCE = 10.0


def centre_face(faces: Faces, image_hw: tuple[int, int]) -> int:
    """Index of the face whose box centre is nearest the image centre (ties: first)."""
    h, w = image_hw
    centres = (faces.xyxy[:, :2] + faces.xyxy[:, 2:]) / 2
    dist = np.hypot(centres[:, 0] - w / 2, centres[:, 1] - h / 2)
    return int(np.argmin(dist))


def centre_fallback(image_hw: tuple[int, int], fraction: float = FALLBACK_FRACTION) -> Faces:
    """One face covering the central ``fraction`` of the image, with landmarks placed where the
    ArcFace 112x112 template puts them in that box (so both aligners can cut a chip)."""
    h, w = image_hw
    side = fraction * min(h, w)
    x1, y1 = (w - side) / 2, (h - side) / 2
    landmarks = ARCFACE_112 / 112.0 * side + np.array([x1, y1])
    return Faces(np.array([[x1, y1, x1 + side, y1 + side]]), np.zeros(1), landmarks[None])


def embed_images(pipe: Any, paths: Sequence[Any], chunk: int = 512,
                 on_image: Callable[[int], None] | None = None,
                 choice: str = "centre") -> tuple[Embeddings, np.ndarray]:
    """One embedding per image: the centre face, else the centre fallback (``choice="centre"``),
    or the largest face, else a NaN row (``choice="largest"``).

    Images stream through :meth:`FacePipeline.embed_many` ``chunk`` at a time (each is read
    when the pipeline reaches it), so detection of later images overlaps embedding of earlier
    ones; images with no face are read again for the fallback.

    Returns ``(embeddings (N, D), no_face (N,) bool)``.

    Raises:
        ImageDecodeError: an image cannot be read.
        ConfigError: ``choice`` is not one of :data:`FACE_CHOICES`.
    """
    if choice not in FACE_CHOICES:
        raise ConfigError(f"face choice must be one of {', '.join(FACE_CHOICES)}, got {choice!r}")
    spec = pipe.spec
    vectors = np.zeros((len(paths), spec.dim), np.float32)
    no_face = np.zeros(len(paths), bool)
    for start in range(0, len(paths), chunk):
        shapes: list[tuple[int, int]] = []

        def read(batch: Sequence[Any] = paths[start:start + chunk]) -> Any:
            for path in batch:
                rgb = load_image(path)
                shapes.append(rgb.shape[:2])
                yield rgb

        done = (lambda i: on_image(start + i)) if on_image is not None else None
        results = pipe.embed_many(read(), on_image=done)
        missing = []
        for i, (hw, res) in enumerate(zip(shapes, results)):
            if len(res) == 0:
                missing.append(i)
            else:
                row = centre_face(res.faces, hw) if choice == "centre" else 0  # embed_many: largest first
                vectors[start + i] = res.embeddings.vectors[row]
        if choice == "largest":
            vectors[[start + i for i in missing]] = np.nan
            no_face[[start + i for i in missing]] = True
        elif missing:
            fallback = pipe.embed_many([load_image(paths[start + i]) for i in missing],
                                       faces=[centre_fallback(shapes[i]) for i in missing])
            for i, res in zip(missing, fallback):
                vectors[start + i] = res.embeddings.vectors[0]
                no_face[start + i] = True
    return Embeddings(vectors, spec.model_id, spec.metric), no_face


def paired_distances(emb: Embeddings, a_idx: np.ndarray, b_idx: np.ndarray) -> np.ndarray:
    """``(P,)`` distances between rows ``a_idx`` and ``b_idx`` under the model's metric."""
    return emb[a_idx].paired_distance(emb[b_idx])


@dataclass
class PairDistances:
    """Distances of every pair, with what produced them."""

    distances: np.ndarray
    labels: np.ndarray
    folds: np.ndarray
    no_face: int
    n_images: int
    seconds: float

    @property
    def images_per_s(self) -> float:
        return self.n_images / self.seconds if self.seconds > 0 else float("nan")


def pair_distances(pipe: Any, pairs: PairSet, chunk: int = 512,
                   on_image: Callable[[int], None] | None = None, choice: str = "centre") -> PairDistances:
    """Embed the unique images of ``pairs`` once each (face ``choice``, see :func:`embed_images`)
    and measure every pair's distance; a pair with a faceless image under ``"largest"`` gets
    :data:`NO_FACE_DISTANCE`."""
    paths, a_idx, b_idx = pairs.unique_images()
    t0 = time.perf_counter()
    emb, no_face = embed_images(pipe, paths, chunk, on_image, choice)
    seconds = time.perf_counter() - t0
    dist = paired_distances(emb, a_idx, b_idx)
    if choice == "largest":
        dist[no_face[a_idx] | no_face[b_idx]] = NO_FACE_DISTANCE
    return PairDistances(dist, pairs.labels, pairs.folds, int(no_face.sum()),
                         len(paths), seconds)


@dataclass
class EvalReport:
    """Verification metrics of one pipeline on one pairs file (see :meth:`to_dict` for the JSON)."""

    model_id: str
    detector: str
    metric: str
    pairs_file: str
    layout: str
    n_pairs: int
    n_same: int
    n_different: int
    n_folds: int
    protocol: str
    accuracy_mean: float
    accuracy_std: float
    fold_accuracies: list[float]
    thresholds: list[float]
    default_threshold: float
    accuracy_at_default_threshold: float
    auc: float
    eer: float
    eer_threshold: float
    tar_at_far: dict[str, float]
    threshold_at_far: dict[str, float]
    no_face: int
    n_images: int
    images_per_s: float
    seconds: float
    distances: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    labels: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, bool))
    flip: bool = False
    jitter: int = 0
    face_choice: str = "centre"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report (distances and labels left out)."""
        out = {k: v for k, v in self.__dict__.items() if k not in ("distances", "labels")}
        return _rounded(out)


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def report(dist: PairDistances, pairs: PairSet, model_id: str, detector: str, metric: str,
           default_threshold: float, flip: bool = False, jitter: int = 0,
           face_choice: str = "centre") -> EvalReport:
    """Metrics from measured distances (see :mod:`faceprint.evaluation.metrics`); ``flip``
    (flip-averaged embeddings), ``jitter`` (jittered copies averaged) and ``face_choice`` are
    only recorded."""
    d, y = dist.distances, dist.labels
    folds = metrics.kfold_accuracy(d, y, dist.folds)
    if pairs.n_folds > 1:
        protocol = f"{pairs.n_folds}-fold: threshold chosen on the other folds, accuracy on the held fold"
    else:
        protocol = "one split: threshold chosen on the same pairs (optimistic); see accuracy_at_default_threshold"
    rate, eer_t = metrics.eer(d, y)
    tar, thr = {}, {}
    for far in REPORT_FARS:
        t, _, tar_value = metrics.threshold_at_far(d, y, far)
        tar[metrics.far_key(far)], thr[metrics.far_key(far)] = tar_value, t
    return EvalReport(
        model_id=model_id, detector=detector, metric=metric, pairs_file=str(pairs.source), layout=pairs.layout,
        n_pairs=len(pairs), n_same=int(y.sum()), n_different=int((~y).sum()), n_folds=pairs.n_folds,
        protocol=protocol, accuracy_mean=folds.mean, accuracy_std=folds.std,
        fold_accuracies=[float(a) for a in folds.accuracies], thresholds=[float(t) for t in folds.thresholds],
        default_threshold=float(default_threshold),
        accuracy_at_default_threshold=metrics.accuracy_at(d, y, default_threshold),
        auc=metrics.auc(d, y), eer=rate, eer_threshold=eer_t, tar_at_far=tar, threshold_at_far=thr,
        no_face=dist.no_face, n_images=dist.n_images, images_per_s=dist.images_per_s, seconds=dist.seconds,
        distances=d, labels=y, flip=bool(flip), jitter=int(jitter),
        face_choice=face_choice,
    )


def evaluate(pipe: Any, pairs: PairSet, detector: str = "", chunk: int = 512,
             on_image: Callable[[int], None] | None = None, choice: str = "centre") -> EvalReport:
    """Run ``pipe`` over ``pairs`` and report accuracy (LFW protocol), AUC, EER and TAR@FAR.

    ``detector`` is only recorded in the report. The default threshold is the pipeline's
    (its calibration's, else the spec's).

    Raises:
        ImageDecodeError: an image cannot be read.
        ConfigError: the pairs lack a class (all same or all different).
    """
    dist = pair_distances(pipe, pairs, chunk, on_image, choice)
    return report(dist, pairs, pipe.spec.model_id, detector, pipe.spec.metric, pipe.threshold,
                  flip=bool(getattr(pipe.embedder, "flip", False)), jitter=int(getattr(pipe.embedder, "jitter", 0)),
                  face_choice=choice)


def format_report(rep: EvalReport) -> str:
    """A readable table of the report."""
    rows = [
        ("pairs", f"{rep.n_pairs} ({rep.n_same} same, {rep.n_different} different) from {rep.pairs_file}"),
        ("model", f"{rep.model_id} ({rep.metric}), detector {rep.detector or '?'}"
                  + (", flip-averaged" if rep.flip else "")
                  + (f", {rep.jitter} jitters averaged" if rep.jitter else "")),
        ("protocol", rep.protocol),
        ("accuracy", f"{rep.accuracy_mean:.4f}" + (f" +/- {rep.accuracy_std:.4f}" if rep.n_folds > 1 else "")),
        ("thresholds", ", ".join(f"{t:.4f}" for t in rep.thresholds)),
        ("accuracy @ default", f"{rep.accuracy_at_default_threshold:.4f} (threshold {rep.default_threshold:g})"),
        ("AUC", f"{rep.auc:.5f}"),
        ("EER", f"{rep.eer:.4f} (threshold {rep.eer_threshold:.4f})"),
    ]
    for key, value in rep.tar_at_far.items():
        rows.append((f"TAR @ FAR {key}", f"{value:.4f} (threshold {rep.threshold_at_far[key]:.4f})"))
    no_face = "fallback" if rep.face_choice == "centre" else f"pairs set to distance {NO_FACE_DISTANCE:g}"
    rows += [("face choice", f"{rep.face_choice} face"),
             (f"no face ({no_face})", f"{rep.no_face} of {rep.n_images} images"),
             ("speed", f"{rep.images_per_s:.1f} images/s ({rep.seconds:.1f} s)")]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


__all__ = ["FACE_CHOICES", "NO_FACE_DISTANCE", "EvalReport", "PairDistances", "centre_face", "centre_fallback", "embed_images", "evaluate",
           "format_report", "pair_distances", "paired_distances", "report"]
