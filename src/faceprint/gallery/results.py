"""What galleries return: identities proposed for a face, the open-set decision, stored people.

Kept apart from :mod:`faceprint.gallery.base` (the interface) and
:mod:`faceprint.gallery.scoring` (the decision), which both build these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Candidate:
    """One identity proposed for a face: ``distance`` is in the model's metric (lower = closer)."""

    name: str
    distance: float

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "distance": round(float(self.distance), 6)}


@dataclass(frozen=True)
class Identification:
    """The open-set decision for one face.

    Attributes:
        name: the identified person, or ``None`` for an unknown face (best candidate too far,
            or too close to the second best: see :class:`~faceprint.gallery.scoring.OpenSetPolicy`).
        distance: distance to the best candidate (``inf`` when the gallery is empty).
        candidates: up to ``top_k`` identities, nearest first.
        score: the decision score compared with the threshold (the distance itself unless
            cohort normalisation is on).
        threshold: the threshold ``score`` was compared with (accepted when ``score <=`` it).
    """

    name: str | None
    distance: float
    candidates: list[Candidate] = field(default_factory=list)
    score: float = float("nan")
    threshold: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "distance", "score", "threshold", "candidates"}`` (non-finite numbers as null)."""
        return {"name": self.name, "distance": _finite(self.distance), "score": _finite(self.score),
                "threshold": _finite(self.threshold), "candidates": [c.to_dict() for c in self.candidates]}


def _finite(value: float) -> float | None:
    return round(float(value), 6) if np.isfinite(value) else None


@dataclass(frozen=True)
class Match:
    """One nearest sample from :meth:`Gallery.search`."""

    name: str
    distance: float
    sample_id: int


@dataclass(frozen=True)
class Person:
    """A person as stored: ``samples`` counts their face vectors, ``sources`` lists known sources."""

    name: str
    samples: int
    metadata: dict[str, Any] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "samples": self.samples, "metadata": self.metadata, "sources": self.sources}
