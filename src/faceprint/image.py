"""Image input: paths, bytes, numpy arrays and PIL images -> RGB uint8 ``(H, W, 3)``.

EXIF orientation is applied; grayscale, RGBA, palette and 16-bit images are converted; the
format is checked from the magic bytes and the declared size against a pixel limit and a
decode budget before anything is decoded (decompression bombs, formats such as EPS). Anything that cannot be read raises
:class:`~faceprint.errors.ImageDecodeError` naming the input.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any, Union

import numpy as np

from . import imageformat
from .errors import ImageDecodeError, ImageTooLargeError

ImageInput = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, np.ndarray, Any]

#: Default upper bound on width * height (8k x 8k, below Pillow's own 89M-pixel bomb warning);
#: ``load_image(max_pixels=...)`` overrides.
MAX_PIXELS = 64_000_000
#: Default upper bound on the memory one decode may take (:func:`decode_bytes`): 1 GiB.
DECODE_BUDGET_BYTES = 1 << 30

#: File name endings of the formats :func:`load_image` reads; folder walkers pick images by them.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})


def expand_images(paths: list[Path]) -> list[Path]:
    """``paths`` with each folder replaced by the image files under it (sorted, hidden ones
    skipped, chosen by :data:`IMAGE_SUFFIXES`, as ``faceprint index`` does); files stay as given.

    Raises:
        ImageDecodeError: a folder holds no image file.
    """
    out: list[Path] = []
    for path in paths:
        if not Path(path).is_dir():
            out.append(path)
            continue
        found = sorted(Path(d) / f for d, dirs, files in os.walk(path) for f in files
                       if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES
                       and not any(part.startswith(".") for part in Path(d).relative_to(path).parts))
        if not found:
            raise ImageDecodeError(f"{path}: a folder with no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
        out += found
    return out


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
        raise ImageTooLargeError(f"{name}: {arr.shape[1]}x{arr.shape[0]} exceeds the {max_pixels} pixel limit")
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
        raise ImageTooLargeError(f"{name}: {width}x{height} exceeds the {max_pixels} pixel limit")
    if width == 0 or height == 0:
        raise ImageDecodeError(f"{name}: image is empty ({width}x{height})")
    img.seek(0) if getattr(img, "is_animated", False) else None  # first frame of GIF/WebP
    if img.getexif().get(0x0112, 1) != 1:
        img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.uint32)
        return _from_array((arr >> 8 if arr.max(initial=0) > 255 else arr).astype(np.uint8), name, max_pixels)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        return _on_white(np.asarray(img.convert("RGBA")))
    # np.asarray reads an RGB image's pixels once (no intermediate converted copy)
    return np.ascontiguousarray(np.asarray(img if img.mode == "RGB" else img.convert("RGB"), dtype=np.uint8))


def _on_white(rgba: np.ndarray, rows: int = 512) -> np.ndarray:
    """Composite ``(H, W, 4)`` uint8 onto white (transparent areas must not turn black), a band
    of ``rows`` at a time so the float work stays small."""
    out = np.empty(rgba.shape[:2] + (3,), np.uint8)
    for top in range(0, len(rgba), rows):
        band = rgba[top:top + rows].astype(np.float32)
        alpha = band[..., 3:4] / 255.0
        out[top:top + rows] = (band[..., :3] * alpha + 255.0 * (1.0 - alpha) + 0.5).astype(np.uint8)
    return out


def decode_bytes(width: int, height: int, mode: str = "RGB") -> int:
    """Peak bytes :func:`load_image` needs to decode a ``width x height`` image, as measured:
    Pillow's buffer (4 bytes per pixel for colour), the RGB array (3) and the decoder's own
    buffers: 10.2 bytes per pixel measured on a 5000x5000 PNG, budgeted as 12; 16 with the RGBA
    copy of transparent images."""
    per_pixel = 16 if mode in ("RGBA", "LA", "PA", "P") else 12
    return int(width) * int(height) * per_pixel


def _check_budget(name: str, size: tuple[int, int], mode: str, max_pixels: int, max_decode_bytes: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageTooLargeError(f"{name}: {width}x{height} exceeds the {max_pixels} pixel limit")
    need = decode_bytes(width, height, mode)
    if need > max_decode_bytes:
        raise ImageTooLargeError(f"{name}: decoding {width}x{height} ({mode}) needs about {need >> 20} MiB, "
                                 f"over the {max_decode_bytes >> 20} MiB decode budget")


def _fits(size: tuple[int, int], factor: int, max_pixels: int, max_decode_bytes: int) -> bool:
    width, height = -(-size[0] // factor), -(-size[1] // factor)
    return width * height <= max_pixels and decode_bytes(width, height) <= max_decode_bytes


def load_image(source: ImageInput, max_pixels: int = MAX_PIXELS,
               max_decode_bytes: int = DECODE_BUDGET_BYTES) -> np.ndarray:
    """Read ``source`` into an RGB uint8 ``(H, W, 3)`` array.

    Encoded input is checked before any decoder runs: its magic bytes must name one of
    :data:`faceprint.imageformat.FORMATS` (JPEG, PNG, WebP, BMP, GIF, TIFF), and the size its
    header declares must fit ``max_pixels`` and ``max_decode_bytes`` (see
    :func:`decode_bytes`); a baseline JPEG whose data is too short for that size is refused.
    No global Pillow setting or warning filter is changed, so threads may call this at once.

    Args:
        source: a file path, encoded bytes, a numpy array (``(H, W)``, ``(H, W, 3)`` RGB or
            ``(H, W, 4)`` RGBA; uint8, uint16, bool or float in ``[0, 1]``) or a PIL image.
        max_pixels: refuse images with more pixels than this.
        max_decode_bytes: refuse encoded images whose decode would need more memory than this.

    Raises:
        ImageTooLargeError: over ``max_pixels`` or ``max_decode_bytes`` (nothing was decoded).
        ImageDecodeError: the input is missing, empty, corrupt, truncated, of a format not
            read here or of an unsupported type; the message names the input.
    """
    return load_image_scaled(source, max_pixels, max_decode_bytes)[0]


#: JPEG DCT scalings Pillow can decode at directly (``Image.draft``), smallest reduction first.
JPEG_REDUCTIONS = (1, 2, 4, 8)


def load_image_scaled(source: ImageInput, max_pixels: int = MAX_PIXELS, max_decode_bytes: int = DECODE_BUDGET_BYTES,
                      reduce: bool = False) -> tuple[np.ndarray, float]:
    """:func:`load_image`, and with ``reduce`` a JPEG over the limits is decoded at 1/2, 1/4 or
    1/8 size (the smallest reduction that fits; the decoder never builds the full image)
    instead of being refused. Returns the array and its scale: decoded pixels per pixel of
    the original (1.0 unless reduced), so coordinates found on the array divided by it are
    the original image's.

    Raises:
        ImageTooLargeError, ImageDecodeError: as :func:`load_image` (for a JPEG even 1/8 size
            does not fit; Pillow's own bomb guard also refuses headers over 179 M pixels).
    """
    name = describe(source)
    if isinstance(source, np.ndarray):
        return _from_array(source, name, max_pixels), 1.0
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, Image.Image):
        return _from_pil(source, name, max_pixels), 1.0
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) == 0:
            raise ImageDecodeError(f"{name}: no data")
        head = data[:imageformat.HEAD_BYTES]
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageDecodeError(f"{name}: no such file")
        if path.stat().st_size == 0:
            raise ImageDecodeError(f"{name}: file is empty")
        try:
            with open(path, "rb") as fh:
                head = fh.read(imageformat.HEAD_BYTES)
        except OSError as exc:
            raise ImageDecodeError(f"{name}: cannot read ({exc.strerror or exc})") from None
        data = None
    else:
        raise ImageDecodeError(f"{name}: expected a path, bytes, numpy array or PIL image")
    fmt = imageformat.sniff(head)
    if fmt is None:
        raise ImageDecodeError(f"{name}: not a readable image (not {', '.join(imageformat.FORMATS)} "
                               f"by its first bytes)")
    declared = imageformat.header_size(head, fmt)
    factor = 1
    if declared is not None and reduce and fmt == "JPEG":
        factor = next((k for k in JPEG_REDUCTIONS if _fits(declared, k, max_pixels, max_decode_bytes)),
                      JPEG_REDUCTIONS[-1])
    if declared is not None:
        _check_budget(name, tuple(-(-v // factor) for v in declared), "RGB", max_pixels, max_decode_bytes)
    try:
        if fmt == "JPEG":  # the plausibility check reads the whole stream
            data = data if data is not None else Path(source).read_bytes()  # type: ignore[arg-type]
            why = imageformat.implausible_jpeg(data)
            if why is not None:
                raise ImageDecodeError(f"{name}: not a readable image ({why})")
        with Image.open(io.BytesIO(data) if data is not None else path, formats=[fmt]) as img:
            full_width = img.size[0]
            if factor > 1:
                img.draft("RGB", (-(-img.size[0] // factor), -(-img.size[1] // factor)))
            _check_budget(name, img.size, img.mode, max_pixels, max_decode_bytes)
            img.load()
            return _from_pil(img, name, max_pixels), img.size[0] / full_width
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{name}: exceeds the pixel limit ({exc})") from None
    except UnidentifiedImageError:
        raise ImageDecodeError(f"{name}: not a readable image (its {fmt} header is corrupt)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        detail = re.sub(r"<[^<>]* object at 0x[0-9a-fA-F]+>", "the data", str(exc))  # no object reprs
        raise ImageDecodeError(f"{name}: not a readable image ({detail})") from None
