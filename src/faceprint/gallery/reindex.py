"""Re-embed a gallery with another model into a new gallery.

Each sample is re-embedded from its stored aligned crop when the new model uses the same
alignment template, else from its source photo (largest face), with the jittered views that
enrollment uses (:func:`~faceprint.gallery.recognizer.enrollment_embedder`). Samples with
neither are reported as skipped. The source gallery is never modified.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FaceprintError
from ..types import AlignedFaces
from .base import Gallery


@dataclass
class ReindexReport:
    """``reembedded`` samples per source (``"crop"``/``"photo"``), ``skipped`` ``(person, why)``."""

    people: int = 0
    reembedded: dict[str, int] = field(default_factory=lambda: {"crop": 0, "photo": 0})
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"people": self.people, "reembedded": self.reembedded,
                "skipped": [{"person": p, "reason": r} for p, r in self.skipped]}


def reindex(src: Gallery, pipeline: Any, dst: Gallery) -> ReindexReport:
    """Copy every person of ``src`` into ``dst`` with vectors from ``pipeline``'s model.

    Person metadata is copied; crops are copied too when re-embedded from crops.
    """
    from ..pipeline import FacePipeline
    from .recognizer import enrollment_embedder

    report = ReindexReport()
    template = pipeline.aligner.template
    pipeline = FacePipeline(pipeline.detector, enrollment_embedder(pipeline.embedder), pipeline.aligner)
    for person in src.people():
        chips, sources = _crops(src, person.name, template)
        if chips is not None:
            emb = pipeline.embedder.embed(AlignedFaces(chips, template))
            kind = "crop"
        else:
            emb, sources = _from_photos(pipeline, src, person.name, report)
            kind = "photo"
        if len(emb) == 0:
            report.skipped.append((person.name, "no stored crop and no readable source photo"))
            continue
        extra = {"metadata": person.metadata} if person.metadata else {}
        dst.add_faces(person.name, emb, sources=sources, crops=chips if kind == "crop" else None, **extra)
        report.people += 1
        report.reembedded[kind] += len(emb)
    return report


def _crops(src: Gallery, name: str, template: str) -> tuple[np.ndarray | None, list[str | None]]:
    """The person's stored crops when every sample has one in ``template``'s size."""
    getter = getattr(src, "crops", None)
    if getter is None:
        return None, []
    chips, ids = getter(name)
    _emb, _names, all_ids = src.samples(name)
    from ..spec import TEMPLATES

    if not ids or len(ids) != len(all_ids) or chips.shape[1] != TEMPLATES.get(template, -1):
        return None, []
    by_id = dict(zip(_sample_ids(src, name), _sources(src, name)))
    return chips, [by_id.get(i) for i in ids]


def _sample_ids(src: Gallery, name: str) -> list[int]:
    return src.samples(name)[2]


def _sources(src: Gallery, name: str) -> list[str | None]:
    srcs = src._sources_for(_sample_ids(src, name))
    return [s or None for s in srcs]


def _from_photos(pipeline: Any, src: Gallery, name: str, report: ReindexReport) -> tuple[Any, list[str | None]]:
    vectors, kept = [], []
    for path in _sources(src, name):
        if path is None or not Path(path).is_file():
            continue
        try:
            vectors.append(pipeline.face_embedding(path).vectors[0])
            kept.append(path)
        except FaceprintError as exc:
            report.skipped.append((name, f"{path}: {exc}"))
    from ..types import Embeddings

    dim = pipeline.spec.dim
    arr = np.stack(vectors) if vectors else np.zeros((0, dim), np.float32)
    return Embeddings(arr, pipeline.spec.model_id, pipeline.spec.metric), kept
