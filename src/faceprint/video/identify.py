"""Naming track embeddings through a gallery (``faceprint.gallery``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..types import Embeddings, Faces


class GalleryIdentifier:
    """``identify(emb) -> [(name or None, confidence, distance)]`` over a gallery.

    Given a :class:`~faceprint.gallery.Recognizer`, each embedding gets exactly the open-set
    decision a photo's face gets (``Recognizer.identify_faces``: the gallery's calibrated
    policy, or the model's threshold for a model loaded from a path); given a
    :class:`~faceprint.gallery.Gallery`, its ``identify``. The confidence of a named match is
    ``1 - distance / (2 * reference)`` clipped to ``[0, 1]``: 1 for an exact match, 0.5 at the
    reference distance (the model's threshold). It is for display; the decision is the gallery's.

    Args:
        gallery: a :class:`~faceprint.gallery.Recognizer` (preferred) or an open gallery.
        reference_distance: the model's decision distance (e.g. ``pipeline.threshold``).
        threshold: a plain distance threshold for the decision (``None`` = the gallery's policy).
    """

    def __init__(self, gallery: Any, reference_distance: float, threshold: float | None = None) -> None:
        self.gallery = gallery
        self.reference_distance = float(reference_distance)
        self.threshold = threshold

    def identify(self, embeddings: Embeddings) -> list[tuple[str | None, float, float, float, float]]:
        """``(name or None, confidence, distance, score, threshold)`` per row: the decision's
        score and the threshold it was compared with come from the gallery's open-set rule."""
        if hasattr(self.gallery, "identify_faces"):
            boxes = Faces(np.zeros((len(embeddings), 4), np.float32), np.ones(len(embeddings)),
                          np.zeros((len(embeddings), 5, 2), np.float32))
            idents: list[Any] = self.gallery.identify_faces(boxes, embeddings, threshold=self.threshold, top_k=2)
        else:
            idents = self.gallery.identify(embeddings, threshold=self.threshold, top_k=2)
        out: list[tuple[str | None, float, float, float, float]] = []
        for ident in idents:
            distance, score, thr = float(ident.distance), float(ident.score), float(ident.threshold)
            if ident.name is None or not np.isfinite(distance):
                out.append((None, 0.0, distance, score, thr))
            else:
                conf = 1.0 - distance / (2 * self.reference_distance)
                out.append((ident.name, float(np.clip(conf, 0.0, 1.0)), distance, score, thr))
        return out


def video_recognizer(pipeline: Any, gallery: Any, threshold: float | None = None, **options: Any) -> Any:
    """The :class:`~faceprint.video.VideoRecognizer` that ``faceprint video`` and the service's
    live webcam use: the pipeline's models, each track named by the photo decision
    (``Recognizer(pipeline, gallery).identify_faces``) with ``threshold`` (``None`` = the
    gallery's policy); ``options`` go to the recognizer."""
    from ..gallery import Recognizer
    from .recognizer import VideoRecognizer

    identifier = GalleryIdentifier(Recognizer(pipeline, gallery, threshold=threshold), pipeline.threshold, threshold)
    return VideoRecognizer(pipeline.detector, pipeline.aligner, pipeline.embedder, identifier, **options)


__all__ = ["GalleryIdentifier", "video_recognizer"]
