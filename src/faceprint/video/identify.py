"""Naming track embeddings through a gallery (``faceprint.gallery``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..types import Embeddings


class GalleryIdentifier:
    """``identify(emb) -> [(name or None, confidence)]`` over a :class:`~faceprint.gallery.Gallery`.

    The gallery makes the open-set decision (threshold and margin, see its ``identify``);
    the confidence of a named match is ``1 - distance / (2 * reference)`` clipped to
    ``[0, 1]``: 1 for an exact match, 0.5 at the reference distance (the model's threshold).

    Args:
        gallery: an open gallery.
        reference_distance: the model's decision distance (e.g. ``pipeline.threshold``).
        threshold: passed to ``gallery.identify`` (``None`` = the gallery's policy).
    """

    def __init__(self, gallery: Any, reference_distance: float, threshold: float | None = None) -> None:
        self.gallery = gallery
        self.reference_distance = float(reference_distance)
        self.threshold = threshold

    def identify(self, embeddings: Embeddings) -> list[tuple[str | None, float]]:
        idents = self.gallery.identify(embeddings, threshold=self.threshold, top_k=2)
        out: list[tuple[str | None, float]] = []
        for ident in idents:
            if ident.name is None or not np.isfinite(ident.distance):
                out.append((None, 0.0))
            else:
                conf = 1.0 - float(ident.distance) / (2 * self.reference_distance)
                out.append((ident.name, float(np.clip(conf, 0.0, 1.0))))
        return out


__all__ = ["GalleryIdentifier"]
