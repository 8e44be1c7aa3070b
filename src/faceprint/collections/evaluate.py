"""Clustering quality on a labelled folder tree ``ROOT/<person>/<photos>``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import ConfigError
from .clustering import create_clusterer
from .metrics import ClusterScores, cluster_scores
from .scan import walk


@dataclass
class LabelledFaces:
    """One face per photo (its largest): ``vectors (N, D)`` for the photos where a face was
    found (``found`` mask over ``photos``), and each photo's person."""

    photos: list[str]
    people: list[str]
    vectors: np.ndarray
    found: np.ndarray
    metric: str
    embed_seconds: float


def embed_labelled(root: str | Path, pipe: Any, chunk: int = 32,
                   on_image: Callable[[int], None] | None = None) -> LabelledFaces:
    """Embed the largest face of every photo under ``root/<person>/``.

    Raises:
        CollectionError: ``root`` is not a folder.
        ConfigError: it holds no photos in person folders.
    """
    root = Path(root).resolve()
    files = [f for f in walk(root) if Path(f.path).parent != root]
    if not files:
        raise ConfigError(f"{root}: no photos in person folders (expected ROOT/<name>/*.jpg)")
    photos = [f.path for f in files]
    people = [Path(p).relative_to(root).parts[0] for p in photos]
    t0 = time.perf_counter()
    vectors, found = [], []
    for start in range(0, len(photos), chunk):
        for res in pipe.embed_many(photos[start:start + chunk], on_image=on_image):
            found.append(len(res) > 0)
            if len(res):
                vectors.append(res.embeddings.vectors[0])
    vec = np.stack(vectors) if vectors else np.zeros((0, pipe.spec.dim), np.float32)
    return LabelledFaces(photos, people, vec, np.array(found), pipe.spec.metric, time.perf_counter() - t0)


def score_clustering(data: LabelledFaces, algorithm: str, **params: Any) -> tuple[ClusterScores, float]:
    """Cluster ``data`` and score it (photos without a face count as noise); returns scores and seconds."""
    t0 = time.perf_counter()
    labels = create_clusterer(algorithm, metric=data.metric, **params).fit(data.vectors).labels_
    seconds = time.perf_counter() - t0
    pred = -np.ones(len(data.photos), dtype=np.int64)
    pred[data.found] = labels
    return cluster_scores(data.people, pred), seconds


__all__ = ["LabelledFaces", "embed_labelled", "score_clustering"]
