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


class _CountingCapture:
    """Wraps the source's capture to count the frames it has read (the decoder's progress)."""

    def __init__(self, cap: object) -> None:
        self.cap, self.reads = cap, 0

    def read(self) -> tuple[bool, object]:
        out = self.cap.read()
        self.reads += 1
        return out

    def __getattr__(self, name: str) -> object:
        return getattr(self.cap, name)


def _read_stalled(live: bool, n: int) -> list:
    """Take one frame, stall until the decoder has read all ``n`` (polled, with a deadline), take the rest."""
    with VideoSource(shared("video", "face_recognition_short_hamilton_clip.mp4")) as src:
        src.live = live
        src._cap = counting = _CountingCapture(src._cap)
        out = []
        for frame in src.frames(n):
            out.append(frame)
            if len(out) == 1:
                deadline = time.monotonic() + 30
                # a file's decoder waits on its full queue (4 ahead); a live one keeps reading, dropping
                while counting.reads < (4 if not live else n - 1) and time.monotonic() < deadline:
                    time.sleep(0.01)
                assert counting.reads >= (4 if not live else n - 1), "the decoder made no progress in 30 s"
    return out


def test_file_frames_all_in_order_and_live_sources_drop_when_behind() -> None:
    frames = _read(False, 30, 0.01)
    assert [f.index for f in frames] == list(range(30))
    assert [f.time_s for f in frames] == pytest.approx([i / 29.97 for i in range(30)], abs=1e-3)
    assert frames[0].rgb.shape == (360, 640, 3) and frames[0].rgb.dtype == np.uint8
    # a consumer that falls behind: a file still yields every frame in order, a live source only
    # the first and the freshest few (its queue holds 4), never a stale backlog
    assert [f.index for f in _read_stalled(False, 60)] == list(range(60))
    slow = _read_stalled(True, 60)
    assert 2 <= len(slow) <= 6
    assert all(b.time_s > a.time_s for a, b in zip(slow, slow[1:]))
