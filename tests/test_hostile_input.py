"""Hostile input to the library and the CLI: formats, headers that lie, decode budgets, names,
metadata, and two enrollers on one fresh database (issue 17)."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
import threading
import unicodedata
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from faceprint import imageformat
from faceprint.errors import ConfigError, ImageDecodeError, ImageTooLargeError
from faceprint.gallery.names import MAX_METADATA_DEPTH, check_metadata, check_name, lookup_name
from faceprint.image import decode_bytes, load_image

from .conftest import shared

CLI = [sys.executable, "-c", "from faceprint.cli import main; main()"]


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _lying_jpeg(width: int, height: int) -> bytes:
    """A 64x64 JPEG whose frame header claims ``width x height``."""
    data = bytearray(_encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)),
                             "JPEG"))
    sof = data.find(b"\xff\xc0")
    data[sof + 5:sof + 7], data[sof + 7:sof + 9] = height.to_bytes(2, "big"), width.to_bytes(2, "big")
    return bytes(data)


@settings(max_examples=30, deadline=None)
@given(w=st.integers(1, 300), h=st.integers(1, 300), fmt=st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"]),
       mode=st.sampled_from(["RGB", "L", "RGBA"]))
def test_format_and_header_size_match_pillow(w: int, h: int, fmt: str, mode: str) -> None:
    if fmt == "JPEG" and mode == "RGBA":
        mode = "RGB"
    data = _encode(Image.new(mode, (w, h), 90), fmt)
    assert imageformat.sniff(data) == fmt
    with Image.open(io.BytesIO(data)) as ref:
        assert imageformat.header_size(data, fmt) in (ref.size, None)
        assert fmt == "TIFF" or imageformat.header_size(data, fmt) == ref.size
    assert load_image(data).shape == (h, w, 3)


@pytest.mark.parametrize("data", [
    b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", b"%PDF-1.4\n", b"<svg xmlns='x'/>",
    b"\x00\x00\x01\x00\x01\x00" + b"\x00" * 30, b"P6\n2 2\n255\n" + b"\x00" * 12,
])
def test_formats_outside_the_allowlist_are_refused_by_magic_bytes(data: bytes) -> None:
    with pytest.raises(ImageDecodeError, match="not a readable image .not JPEG, PNG"):
        load_image(data)


def test_a_jpeg_whose_header_claims_more_than_its_data_holds_is_refused(tmp_path) -> None:
    with pytest.raises(ImageDecodeError, match="too short for that size"):
        load_image(_lying_jpeg(7000, 7000))  # within the pixel limit: the data check refuses it
    liar = _lying_jpeg(9000, 9000)  # over the default pixel limit as well
    path = tmp_path / "liar.jpg"
    path.write_bytes(liar)
    done = subprocess.run([*CLI, "detect", str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == ImageDecodeError.exit_code and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"error: {path}: ")
    good = shared("people", "obama.jpg")
    assert load_image(good).ndim == 3  # real photos pass the check


def test_the_header_is_checked_against_the_limits_before_decoding() -> None:
    bomb = _encode(Image.new("L", (3000, 3000)), "PNG")
    with pytest.raises(ImageTooLargeError, match="pixel limit"):
        load_image(bomb, max_pixels=8_999_999)
    with pytest.raises(ImageTooLargeError, match="decode budget"):
        load_image(bomb, max_decode_bytes=decode_bytes(3000, 3000) - 1)
    assert load_image(bomb, max_decode_bytes=decode_bytes(3000, 3000, "L")).shape == (3000, 3000, 3)


def test_no_global_pillow_state_is_touched_and_threads_do_not_race() -> None:
    small, big = _encode(Image.new("RGB", (100, 100)), "PNG"), _encode(Image.new("RGB", (1000, 1000)), "PNG")
    before = (Image.MAX_IMAGE_PIXELS, list(warnings.filters))
    errors: list[str] = []

    def worker(i: int) -> None:
        for _ in range(15):
            try:
                assert load_image(big, max_pixels=2_000_000).shape == (1000, 1000, 3)
                with pytest.raises(ImageTooLargeError):
                    load_image(big, max_pixels=10_000 + i)
                assert load_image(small, max_pixels=10_000 + i).shape == (100, 100, 3)
            except BaseException as exc:  # noqa: BLE001 - collected and reported below
                errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert (Image.MAX_IMAGE_PIXELS, list(warnings.filters)) == before


def test_peak_memory_of_a_decode_stays_within_its_stated_budget(tmp_path) -> None:
    """A fresh process decodes a 5000x5000 PNG; its peak RSS rise must stay below
    :func:`decode_bytes`, the budget the limits are checked against."""
    path = tmp_path / "big.png"
    Image.new("RGB", (5000, 5000), (10, 20, 30)).save(path)
    code = ("import sys; from faceprint.image import load_image; import numpy as np; "
            "hwm = lambda: int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1]); "
            "base = hwm(); a = load_image(sys.argv[1]); assert a.shape == (5000, 5000, 3); "
            "print((hwm() - base) * 1024)")  # VmHWM: this process's peak resident memory (kB)
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    peak = int(done.stdout.strip())
    assert 75_000_000 <= peak <= decode_bytes(5000, 5000), peak  # at least the RGB array itself


def test_the_cli_refuses_a_decode_past_its_budget_in_one_line(tmp_path) -> None:
    path = tmp_path / "zeros.png"
    Image.new("L", (10000, 10000)).save(path)  # ~100 KB file, 100 M pixels
    done = subprocess.run([*CLI, "detect", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == ImageTooLargeError.exit_code, done.stderr
    assert done.stderr.count("\n") == 1 and "pixel limit" in done.stderr


def test_library_warnings_stay_off_the_cli_unless_debug(tmp_path) -> None:
    """Pillow's note on a broken EXIF block is a dependency's warning: not shown (issue 19), but
    ``--debug`` shows it."""
    jpeg = _encode(Image.new("RGB", (64, 64), 128), "JPEG")
    tiff = (b"II*\x00\x08\x00\x00\x00\x01\x00" + (0x010E).to_bytes(2, "little") + (2).to_bytes(2, "little")
            + (1000).to_bytes(4, "little") + (500).to_bytes(4, "little") + b"\x00" * 4)  # a tag past the end
    app1 = b"Exif\x00\x00" + tiff
    path = tmp_path / "bad_exif.jpg"
    path.write_bytes(jpeg[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + jpeg[2:])
    done = subprocess.run([*CLI, "detect", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    debug = subprocess.run([*CLI, "--debug", "detect", str(path)], capture_output=True, text=True, timeout=120)
    assert debug.returncode == 0 and "Tag data larger than file" in debug.stderr, debug.stderr


@pytest.mark.parametrize("name", ["a/b", ".", "..", "", "  ", "zw\u200bsp", "rlo\u202e", "esc\x1b", "nul\x00",
                                  "tab\tname", "x" * 201, "priv\ue000"])
def test_check_name_refuses(name: str) -> None:
    with pytest.raises(ConfigError):
        check_name(name)


def test_check_name_normalises() -> None:
    nfd = unicodedata.normalize("NFD", "José Ñúñez")
    assert check_name(f"  {nfd} ") == unicodedata.normalize("NFC", "José Ñúñez")
    assert check_name("李小龍") == "李小龍" and check_name("O'Brien-Smith Jr.") == "O'Brien-Smith Jr."
    assert lookup_name("esc\x1b") == "esc\x1b"  # lookups refuse nothing: old names stay reachable


def _depth(value: object) -> int:
    """Reference: nesting depth by plain recursion (the object itself is 1)."""
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                      max_size=3), max_leaves=40)


@settings(max_examples=80, deadline=None)
@given(meta=st.dictionaries(st.text(max_size=3), json_values, max_size=3))
def test_check_metadata_depth_against_a_recursive_reference(meta: dict) -> None:
    if _depth(meta) <= MAX_METADATA_DEPTH:
        assert check_metadata(meta) == meta
    else:
        with pytest.raises(ConfigError, match="nest"):
            check_metadata(meta)


def test_check_metadata_refuses_what_json_cannot_return() -> None:
    deep: dict = {}
    node = deep
    for _ in range(MAX_METADATA_DEPTH):
        node["a"] = {}
        node = node["a"]
    for bad in (deep, {"x": float("nan")}, {"x": float("inf")}, {"x": "y" * 20_000}, {1: "int key"}, {"x": {1, 2}},
                ["not", "an", "object"]):
        with pytest.raises(ConfigError):
            check_metadata(bad)


def test_two_enrollers_on_one_fresh_database(tmp_path) -> None:
    """Two `enroll --from-folders` at once on a database neither has seen: both succeed, and
    every photo is stored once."""
    train = shared("people", "knn_examples", "train")
    db = tmp_path / "fresh.db"
    procs = [subprocess.Popen([*CLI, "enroll", "--db", str(db), "--from-folders", str(train), "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    photos = sorted(f for d in train.iterdir() for f in d.iterdir())
    reports = [json.loads(out) for out, _ in outs]
    enrolled = sorted(s for rep in reports for r in rep for s in r["enrolled"])
    assert enrolled == sorted(str(p) for p in photos)  # each photo by exactly one of the two
    conn = sqlite3.connect(db)
    hashes = [h for (h,) in conn.execute("SELECT photo_sha256 FROM samples")]
    conn.close()
    assert len(hashes) == len(photos) == len(set(hashes))
