"""What an encoded image claims to be, read from its first bytes before any decoder runs.

:func:`sniff` names the format from the magic bytes (only the formats faceprint reads:
anything else, EPS or PDF or SVG, never reaches a decoder); :func:`header_size` reads the
width and height from the header (PNG, JPEG, GIF, BMP, WebP; ``None`` for TIFF, whose
directory Pillow parses lazily); :func:`implausible_jpeg` flags a baseline JPEG whose
compressed data is too short for the size its header declares (Pillow would "decode" it by
filling the missing blocks with grey).
"""

from __future__ import annotations

import math

#: Formats :func:`faceprint.image.load_image` decodes, as Pillow names them.
FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
#: JPEG start-of-frame markers (all but DHT C4, JPG C8 and DAC CC).
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
#: Bytes a header scan reads at most (JPEG APPn segments with EXIF/ICC come before the frame).
HEAD_BYTES = 1 << 20


def sniff(head: bytes) -> str | None:
    """The format of an encoded image from its first bytes, or ``None`` when not one of :data:`FORMATS`."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    return None


def _u16be(b: bytes, i: int) -> int:
    return int.from_bytes(b[i:i + 2], "big")


def _jpeg_frame(data: bytes) -> tuple[int, int, int, int, int] | None:
    """``(marker, width, height, components, offset of the scan data)`` of a JPEG, or ``None``."""
    i, frame = 2, None
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = _u16be(data, i + 2)
        if length < 2:
            return None
        if marker in _SOF and i + 9 < len(data):
            frame = (marker, _u16be(data, i + 7), _u16be(data, i + 5), data[i + 9])
        if marker == 0xDA:  # start of scan: entropy-coded data follows the header
            return None if frame is None else (*frame, i + 2 + length)
        i += 2 + length
    return None


def header_size(head: bytes, fmt: str) -> tuple[int, int] | None:
    """``(width, height)`` declared by the header of a ``fmt`` image, ``None`` when not read here."""
    try:
        if fmt == "PNG" and head[12:16] == b"IHDR":
            return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        if fmt == "GIF":
            return int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
        if fmt == "BMP":
            if int.from_bytes(head[14:18], "little") == 12:
                return int.from_bytes(head[18:20], "little"), int.from_bytes(head[20:22], "little")
            return (abs(int.from_bytes(head[18:22], "little", signed=True)),
                    abs(int.from_bytes(head[22:26], "little", signed=True)))
        if fmt == "WEBP":
            return _webp_size(head)
        if fmt == "JPEG":
            frame = _jpeg_frame(head)
            return None if frame is None else (frame[1], frame[2])
    except IndexError:
        return None
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk = head[12:16]
    if chunk == b"VP8 " and len(head) >= 30:
        return int.from_bytes(head[26:28], "little") & 0x3FFF, int.from_bytes(head[28:30], "little") & 0x3FFF
    if chunk == b"VP8L" and len(head) >= 25:
        b = head[21:25]
        return 1 + (b[0] | (b[1] & 0x3F) << 8), 1 + (b[1] >> 6 | b[2] << 2 | (b[3] & 0x0F) << 10)
    if chunk == b"VP8X" and len(head) >= 30:
        return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
    return None


def implausible_jpeg(data: bytes) -> str | None:
    """Why a baseline JPEG cannot hold the pixels its header declares, or ``None``.

    A sequential Huffman scan spends at least 2 bits per 8x8 block (a DC code and an
    end-of-block code of at least one bit each), so its data is at least ``blocks / 4``
    bytes; corrupt or truncated data below that would decode as grey filler. Progressive
    and arithmetic-coded files (whose end-of-band runs cover many blocks) are not checked.
    """
    frame = _jpeg_frame(data[:HEAD_BYTES])
    if frame is None:
        return None
    marker, width, height, _components, start = frame
    if marker not in (0xC0, 0xC1):
        return None
    if b"\xff\xd9" not in data[start:]:
        return "the JPEG data has no end marker (truncated)"
    need = math.ceil(width / 8) * math.ceil(height / 8) // 4  # luma blocks alone (chroma may be subsampled)
    have = len(data) - start
    if have < need:
        return (f"the JPEG header declares {width}x{height} but its data ({have} bytes) is too short "
                f"for that size (at least {need} bytes); the file is corrupt or truncated")
    return None
