"""dlib itself (the ``dlib-bin`` wheel), for the few features that still run it.

The default pipeline runs without dlib: the 5-point shape predictor and the face chips are
ported (:mod:`faceprint.dlibport.shape`, :mod:`faceprint.dlibport.chip`) and the ResNet runs on ONNX
Runtime. dlib's HOG detector, the 68-point predictor (blink liveness) and the bit-exact
``chip_backend="dlib"`` need ``pip install 'faceprint[dlib]'``.
"""

from __future__ import annotations

from types import ModuleType

from ..errors import ModelLoadError

#: The extra that installs dlib-bin.
DLIB_EXTRA = "faceprint[dlib]"


def import_dlib(feature: str) -> ModuleType:
    """``import dlib``, or a one-line error naming ``feature`` and the extra to install.

    Raises:
        ModelLoadError: dlib is not installed.
    """
    try:
        import dlib
    except ImportError as exc:
        raise ModelLoadError(f"{feature} needs dlib, which is not installed: pip install '{DLIB_EXTRA}'") from exc
    return dlib


__all__ = ["DLIB_EXTRA", "import_dlib"]
