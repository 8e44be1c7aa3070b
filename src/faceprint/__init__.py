"""faceprint: face detection, alignment, embedding and verification on ONNX Runtime.

Importing the package is cheap: models, ONNX Runtime, OpenCV and dlib load on first use.

    >>> import faceprint
    >>> pipe = faceprint.FacePipeline()
    >>> pipe.verify("a.jpg", "b.jpg").match
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .errors import (
    ConfigError,
    FaceprintError,
    ImageDecodeError,
    ModelLoadError,
    ModelMismatchError,
    NoFaceError,
    UnknownModelError,
)
from .image import load_image
from .types import AlignedFaces, Embeddings, Faces, Verification

__version__ = "0.1.0"

_LAZY = {
    "FacePipeline": ".pipeline",
    "Calibration": ".calibration",
    "FaceEmbeddings": ".pipeline",
    "ModelSpec": ".spec",
    "create_detector": ".registry",
    "create_embedder": ".registry",
    "create_aligner": ".align",
    "list_models": ".registry",
}

__all__ = [
    "AlignedFaces",
    "Calibration",
    "ConfigError",
    "Embeddings",
    "FaceEmbeddings",
    "FacePipeline",
    "FaceprintError",
    "Faces",
    "ImageDecodeError",
    "ModelLoadError",
    "ModelMismatchError",
    "ModelSpec",
    "NoFaceError",
    "UnknownModelError",
    "Verification",
    "__version__",
    "create_aligner",
    "create_detector",
    "create_embedder",
    "list_models",
    "load_image",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'faceprint' has no attribute {name!r}")
