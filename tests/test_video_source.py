"""Video input: every frame of a file in order; live sources drop stale frames; sources parse."""

from __future__ import annotations

import time

import numpy as np
import pytest

from faceprint.errors import VideoSourceError
from faceprint.video.source import VideoSource, parse_source

from .conftest import shared


def test_parse_source() -> None:
    assert parse_source("0") == 0 and parse_source(2) == 2
    assert parse_source("rtsp://cam/stream") == "rtsp://cam/stream"
    with pytest.raises(VideoSourceError, match="no such file"):
        parse_source("no/such/clip.mp4")


def _read(live: bool, n: int, delay_s: float) -> list:
    with VideoSource(shared("video", "face_recognition_short_hamilton_clip.mp4")) as src:
        src.live = live
        out = []
        for frame in src.frames(n):
            out.append(frame)
            time.sleep(delay_s)
    return out


def test_file_frames_all_in_order_and_live_sources_drop_when_behind() -> None:
    frames = _read(False, 30, 0.01)
    assert [f.index for f in frames] == list(range(30))
    assert [f.time_s for f in frames] == pytest.approx([i / 29.97 for i in range(30)], abs=1e-3)
    assert frames[0].rgb.shape == (360, 640, 3) and frames[0].rgb.dtype == np.uint8
    slow = _read(True, 60, 0.03)  # a consumer slower than decoding
    assert 4 <= len(slow) < 60
    assert all(b.time_s > a.time_s for a, b in zip(slow, slow[1:]))
