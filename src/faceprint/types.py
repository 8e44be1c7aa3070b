"""Columnar batch types that flow through the pipeline.

Conventions, checked at the boundaries and nowhere else:

- images are RGB ``uint8`` arrays of shape ``(H, W, 3)``;
- boxes are ``xyxy`` in pixels (``x1, y1, x2, y2``), float32;
- landmarks are ``(5, 2)`` ``x, y`` pixels in :data:`LANDMARK_ORDER`, where "left" means the
  left side of the *image* (the subject's right eye);
- similarity is "higher = closer"; distances are converted at the edges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .errors import ConfigError, ModelMismatchError

LANDMARK_ORDER: tuple[str, ...] = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")

Index = int | slice | Sequence[int] | np.ndarray


def _as_index(item: Index) -> Any:
    if isinstance(item, (int, np.integer)):
        return [int(item)]  # keep the batch dimension: indexing returns the same type
    return item


@dataclass
class Faces:
    """Faces found in one image.

    Attributes:
        xyxy: ``(N, 4)`` float32 boxes in pixels.
        score: ``(N,)`` float32 detector confidences in ``[0, 1]``.
        landmarks: ``(N, 5, 2)`` float32 points in :data:`LANDMARK_ORDER`.
        track_id: optional ``(N,)`` int64 track ids (video).
        extras: per-face arrays whose first dimension is ``N`` (e.g. dlib's own 5 points).
    """

    xyxy: np.ndarray
    score: np.ndarray
    landmarks: np.ndarray
    track_id: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.xyxy = np.asarray(self.xyxy, dtype=np.float32).reshape(-1, 4)
        n = len(self.xyxy)
        self.score = np.asarray(self.score, dtype=np.float32).reshape(n)
        self.landmarks = np.asarray(self.landmarks, dtype=np.float32).reshape(n, 5, 2)
        if self.track_id is not None:
            self.track_id = np.asarray(self.track_id, dtype=np.int64).reshape(n)
        for key, value in self.extras.items():
            if len(value) != n:
                raise ConfigError(f"Faces.extras[{key!r}] has {len(value)} rows, expected {n}")

    @classmethod
    def empty(cls) -> Faces:
        """A batch with no faces (what detectors return when they find nothing)."""
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2)))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, item: Index) -> Faces:
        idx = _as_index(item)
        return Faces(
            self.xyxy[idx],
            self.score[idx],
            self.landmarks[idx],
            None if self.track_id is None else self.track_id[idx],
            {k: v[idx] for k, v in self.extras.items()},
        )

    @property
    def area(self) -> np.ndarray:
        """``(N,)`` box areas in square pixels."""
        wh = np.clip(self.xyxy[:, 2:] - self.xyxy[:, :2], 0, None)
        return wh[:, 0] * wh[:, 1]

    def by_size(self) -> Faces:
        """The same faces, largest box first (stable for equal areas)."""
        return self[np.argsort(-self.area, kind="stable")]

    def to_records(self) -> list[dict[str, Any]]:
        """JSON-ready dicts: ``box``, ``score``, ``landmarks`` (rounded to 0.01 px)."""
        return [
            {
                "box": [round(float(v), 2) for v in self.xyxy[i]],
                "score": round(float(self.score[i]), 4),
                "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks[i]],
            }
            for i in range(len(self))
        ]


@dataclass
class AlignedFaces:
    """Face crops warped to an embedder's template.

    Attributes:
        chips: ``(N, H, W, 3)`` uint8 RGB crops.
        template: name of the alignment template the chips follow (e.g. ``"dlib_150"``).
        faces: the detections the chips come from (empty when chips were given directly).
        transforms: ``(N, 2, 3)`` float32 affine maps from image pixels to chip pixels.
    """

    chips: np.ndarray
    template: str
    faces: Faces = field(default_factory=Faces.empty)
    transforms: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.chips = np.asarray(self.chips)
        if self.chips.ndim != 4 or self.chips.shape[-1] != 3 or self.chips.dtype != np.uint8:
            raise ConfigError(
                f"chips must be uint8 (N, H, W, 3), got {self.chips.dtype} {self.chips.shape}"
            )

    def __len__(self) -> int:
        return len(self.chips)

    def __getitem__(self, item: Index) -> AlignedFaces:
        idx = _as_index(item)
        return AlignedFaces(
            self.chips[idx],
            self.template,
            self.faces[idx] if len(self.faces) else self.faces,
            None if self.transforms is None else self.transforms[idx],
        )


@dataclass
class Embeddings:
    """Face embeddings tied to the model that produced them.

    Attributes:
        vectors: ``(N, D)`` float32.
        model_id: id of the producing model; vectors of different ids never compare.
        metric: ``"euclidean"`` or ``"cosine"``, the distance the model was trained for.
    """

    vectors: np.ndarray
    model_id: str
    metric: str = "euclidean"

    def __post_init__(self) -> None:
        self.vectors = np.asarray(self.vectors, dtype=np.float32)
        if self.vectors.ndim == 1:
            self.vectors = self.vectors[None, :]
        if self.vectors.ndim != 2:
            raise ConfigError(f"vectors must be (N, D), got shape {self.vectors.shape}")
        if self.metric not in ("euclidean", "cosine"):
            raise ConfigError(f"metric must be 'euclidean' or 'cosine', got {self.metric!r}")

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __getitem__(self, item: Index) -> Embeddings:
        return Embeddings(self.vectors[_as_index(item)], self.model_id, self.metric)

    def check_compatible(self, other: Embeddings) -> None:
        """Raise :class:`ModelMismatchError` unless ``other`` comes from the same model."""
        if other.model_id != self.model_id or other.dim != self.dim:
            raise ModelMismatchError(
                f"cannot compare embeddings of model {self.model_id!r} (dim {self.dim}) "
                f"with model {other.model_id!r} (dim {other.dim})"
            )

    def distance(self, other: Embeddings) -> np.ndarray:
        """``(len(self), len(other))`` distances under the model's metric.

        Euclidean distance for ``"euclidean"``, ``1 - cos`` for ``"cosine"``.
        """
        self.check_compatible(other)
        return distance_matrix(self._as_metric(), other._as_metric(), self.metric).astype(np.float32)

    def paired_distance(self, other: Embeddings) -> np.ndarray:
        """``(N,)`` float64 distances between row ``i`` of ``self`` and row ``i`` of ``other``.

        Raises:
            ModelMismatchError: ``other`` comes from another model.
            ConfigError: the batches differ in length.
        """
        self.check_compatible(other)
        if len(other) != len(self):
            raise ConfigError(f"paired_distance needs batches of equal length, got {len(self)} and {len(other)}")
        a, b = self._as_metric(), other._as_metric()
        if self.metric == "cosine":
            return 1.0 - (a * b).sum(1)
        return np.linalg.norm(a - b, axis=1)

    def _as_metric(self) -> np.ndarray:
        """float64 vectors, unit-normalised for the cosine metric."""
        v = self.vectors.astype(np.float64)
        if self.metric == "cosine":
            v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        return v


def distance_matrix(a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """``(len(a), len(b))`` distances between rows: Euclidean, or ``1 - a.b`` for ``"cosine"``
    (rows must already be unit length). One matrix product; dtype follows the inputs."""
    if metric == "cosine":
        return 1.0 - a @ b.T
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.clip(sq, 0.0, None))


@dataclass(frozen=True)
class Verification:
    """Result of a 1:1 comparison: ``match`` is ``distance <= threshold``."""

    match: bool
    distance: float
    threshold: float
    model_id: str
    metric: str

    @property
    def similarity(self) -> float:
        """Higher = closer: ``-distance`` shifted so the threshold sits at 0."""
        return self.threshold - self.distance

    def to_dict(self) -> dict[str, Any]:
        return {
            "match": self.match,
            "distance": round(self.distance, 6),
            "threshold": self.threshold,
            "model": self.model_id,
        }


__all__ = ["LANDMARK_ORDER", "AlignedFaces", "Embeddings", "Faces", "Verification"]
