"""The detector interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from ..image import ImageInput, load_image
from ..types import Faces


class Detector(ABC):
    """Finds faces: boxes, scores in ``[0, 1]`` and 5 landmarks in ``LANDMARK_ORDER``.

    Subclasses implement :meth:`_detect` on an RGB uint8 array; models load on first use.
    """

    name: str = "detector"

    def detect(self, image: ImageInput) -> Faces:
        """Detect faces in one image (any input :func:`~faceprint.load_image` accepts).

        Returns an empty :class:`Faces` when there is none.

        Raises:
            ImageDecodeError: the image cannot be read.
        """
        return self._detect(load_image(image))

    @abstractmethod
    def _detect(self, rgb: np.ndarray) -> Faces: ...

    def describe(self) -> dict[str, Any]:
        """Name and parameters, for ``faceprint models``."""
        return {"name": self.name}


def estimate_mouth(landmarks3: np.ndarray) -> np.ndarray:
    """Complete ``(N, 3, 2)`` eye/eye/nose points to ``(N, 5, 2)`` with estimated mouth corners.

    Fits a similarity transform from the ArcFace template's eyes and nose to the points and
    maps the template's mouth corners through it. Used by detectors that find no mouth.
    """
    from ..align import ARCFACE_112, similarity_transform

    out = np.zeros((len(landmarks3), 5, 2), dtype=np.float32)
    for i, pts in enumerate(landmarks3):
        m = similarity_transform(ARCFACE_112[:3], pts)
        out[i, :3] = pts
        out[i, 3:] = ARCFACE_112[3:] @ m[:, :2].T + m[:, 2]
    return out
