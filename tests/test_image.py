"""Image input: every accepted form, conversions, and every bad-input case."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from faceprint import ImageDecodeError, load_image

from .conftest import shared


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.fixture
def rgb() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(40, 60, 3), dtype=np.uint8)


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "WEBP", "TIFF"])
def test_lossless_formats_round_trip(rgb: np.ndarray, fmt: str) -> None:
    kw = {"lossless": True} if fmt == "WEBP" else {}
    out = load_image(_encode(Image.fromarray(rgb), fmt, **kw))
    assert out.dtype == np.uint8 and out.shape == (40, 60, 3)
    np.testing.assert_array_equal(out, rgb)


def test_jpeg_path_bytes_pil_and_array_agree(tmp_path) -> None:
    yy, xx = np.mgrid[0:40, 0:60]
    rgb = np.stack([xx * 4, yy * 6, (xx + yy) * 2], axis=2).astype(np.uint8)  # smooth: JPEG keeps it
    path = tmp_path / "x.jpg"
    Image.fromarray(rgb).save(path, quality=95)
    from_path = load_image(path)
    np.testing.assert_array_equal(from_path, load_image(str(path)))
    np.testing.assert_array_equal(from_path, load_image(path.read_bytes()))
    np.testing.assert_array_equal(from_path, load_image(Image.open(path)))
    np.testing.assert_array_equal(from_path, load_image(from_path))
    assert np.abs(from_path.astype(int) - rgb).mean() < 3  # JPEG is lossy, but close


def test_gif_first_frame() -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    out = load_image(buf.getvalue())
    assert out.shape == (8, 8, 3)
    assert out[0, 0, 0] > 200 and out[0, 0, 2] < 50  # red, the first frame


def test_grayscale_palette_rgba_and_16bit() -> None:
    gray = Image.fromarray(np.full((5, 7), 100, np.uint8), "L")
    assert (load_image(_encode(gray, "PNG")) == 100).all()
    pal = Image.new("P", (4, 4), 3)
    pal.putpalette([0, 0, 0, 10, 20, 30, 40, 50, 60, 70, 80, 90] + [0] * (256 * 3 - 12))
    assert load_image(_encode(pal, "PNG"))[0, 0].tolist() == [70, 80, 90]
    rgba = np.zeros((3, 3, 4), np.uint8)
    rgba[..., :3] = 50
    rgba[0, 0, 3] = 255  # one opaque pixel, the rest transparent -> composited on white
    out = load_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert out[0, 0].tolist() == [50, 50, 50] and out[1, 1].tolist() == [255, 255, 255]
    deep = Image.fromarray(np.full((4, 4), 40000, np.uint16))
    assert (load_image(_encode(deep, "PNG")) == 40000 >> 8).all()
    assert (load_image(np.full((2, 2), 1.0)) == 255).all()
    assert load_image(np.zeros((2, 2, 4), np.uint8)).shape == (2, 2, 3)


def test_exif_orientation_is_applied(rgb: np.ndarray) -> None:
    img = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    out = load_image(_encode(img, "JPEG", exif=exif, quality=95))
    assert out.shape == (60, 40, 3)


def test_real_photo() -> None:
    out = load_image(shared("people", "obama.jpg"))
    assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8


@pytest.mark.parametrize(
    "source, fragment",
    [
        (b"", "no data"),
        (b"not an image at all", "not a readable image"),
        ("/nonexistent/face.jpg", "no such file"),
        (12345, "expected a path"),
        (np.zeros((0, 5, 3), np.uint8), "empty"),
        (np.zeros((4, 4, 2), np.uint8), "expected an"),
        (np.array([[np.nan]]), "NaN"),
        (np.zeros((2, 2), dtype=complex), "unsupported"),
    ],
)
def test_bad_inputs_raise_typed_error_naming_input(source: object, fragment: str) -> None:
    with pytest.raises(ImageDecodeError, match=fragment):
        load_image(source)


def test_empty_and_truncated_files(tmp_path, rgb: np.ndarray) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageDecodeError, match="empty.jpg: file is empty"):
        load_image(empty)
    data = _encode(Image.fromarray(rgb), "JPEG")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageDecodeError, match="cut.jpg"):
        load_image(truncated)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ImageDecodeError, match="notes.txt"):
        load_image(text)


def test_pixel_limit_guards_against_bombs() -> None:
    big = _encode(Image.new("L", (1000, 1000)), "PNG")  # compresses to a few KB
    with pytest.raises(ImageDecodeError, match="pixel limit"):
        load_image(big, max_pixels=500_000)
    assert load_image(big, max_pixels=1_000_000).shape == (1000, 1000, 3)
    with pytest.raises(ImageDecodeError, match="pixel limit"):
        load_image(np.zeros((100, 100, 3), np.uint8), max_pixels=9_999)
