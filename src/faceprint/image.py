"""Image input: paths, bytes, numpy arrays and PIL images -> RGB uint8 ``(H, W, 3)``.

EXIF orientation is applied; grayscale, RGBA, palette and 16-bit images are converted; a
pixel-count limit guards against decompression bombs. Anything that cannot be read raises
:class:`~faceprint.errors.ImageDecodeError` naming the input.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any, Union

import numpy as np

from .errors import ImageDecodeError

ImageInput = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, np.ndarray, Any]

#: Default upper bound on width * height (about 12k x 8k); ``load_image(max_pixels=...)`` overrides.
MAX_PIXELS = 100_000_000

#: File name endings of the formats :func:`load_image` reads; folder walkers pick images by them.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


def describe(source: ImageInput) -> str:
    """A short human name for an input, used in error messages and CLI output."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    if isinstance(source, np.ndarray):
        return f"<array {source.dtype} {source.shape}>"
    return f"<{type(source).__name__}>"


def _to_uint8(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return (arr >> 8).astype(np.uint8)
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ImageDecodeError(f"{name}: float image contains NaN or inf")
        scale = 255.0 if arr.max(initial=0.0) <= 1.0 else 1.0
        return np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8)
    if arr.dtype.kind in "iu":
        return np.clip(arr, 0, 255).astype(np.uint8)
    raise ImageDecodeError(f"{name}: unsupported array dtype {arr.dtype}")


def _from_array(arr: np.ndarray, name: str, max_pixels: int) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ImageDecodeError(f"{name}: expected an (H, W), (H, W, 3) or (H, W, 4) array, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageDecodeError(f"{name}: image is empty (shape {arr.shape})")
    if arr.shape[0] * arr.shape[1] > max_pixels:
        raise ImageDecodeError(f"{name}: {arr.shape[1]}x{arr.shape[0]} exceeds the {max_pixels} pixel limit")
    arr = _to_uint8(arr, name)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[:, :, :3]
    return np.ascontiguousarray(arr)


def _from_pil(img: Any, name: str, max_pixels: int) -> np.ndarray:
    from PIL import ImageOps

    width, height = img.size
    if width * height > max_pixels:
        raise ImageDecodeError(f"{name}: {width}x{height} exceeds the {max_pixels} pixel limit")
    if width == 0 or height == 0:
        raise ImageDecodeError(f"{name}: image is empty ({width}x{height})")
    img.seek(0) if getattr(img, "is_animated", False) else None  # first frame of GIF/WebP
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.uint32)
        return _from_array((arr >> 8 if arr.max(initial=0) > 255 else arr).astype(np.uint8), name, max_pixels)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # composite onto white so transparent areas do not turn black
        from PIL import Image

        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def load_image(source: ImageInput, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read ``source`` into an RGB uint8 ``(H, W, 3)`` array.

    Args:
        source: a file path, encoded bytes (JPEG/PNG/WebP/BMP/GIF/TIFF...), a numpy array
            (``(H, W)``, ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA; uint8, uint16, bool or float
            in ``[0, 1]``) or a PIL image.
        max_pixels: refuse images with more pixels than this.

    Raises:
        ImageDecodeError: the input is missing, empty, corrupt, truncated, too large or of an
            unsupported type; the message names the input.
    """
    name = describe(source)
    if isinstance(source, np.ndarray):
        return _from_array(source, name, max_pixels)
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, Image.Image):
        return _from_pil(source, name, max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageDecodeError(f"{name}: no data")
        fh: Any = io.BytesIO(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageDecodeError(f"{name}: no such file")
        if path.stat().st_size == 0:
            raise ImageDecodeError(f"{name}: file is empty")
        fh = path
    else:
        raise ImageDecodeError(f"{name}: expected a path, bytes, numpy array or PIL image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            saved = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = max_pixels
            try:
                with Image.open(fh) as img:
                    img.load()
                    return _from_pil(img, name, max_pixels)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except ImageDecodeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"{name}: exceeds the {max_pixels} pixel limit ({exc})") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageDecodeError(f"{name}: not a readable image ({exc})") from exc
