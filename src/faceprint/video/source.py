"""Video input and output through OpenCV: files, camera indices, RTSP/HTTP streams."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import VideoSourceError

_URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")


@dataclass(frozen=True)
class Frame:
    """One decoded frame: ``rgb`` ``(H, W, 3)`` uint8, 0-based ``index``, ``time_s`` from the
    start (media time for files, wall-clock time for live sources)."""

    rgb: np.ndarray
    index: int
    time_s: float


def describe_source(source: str | int) -> str:
    """``"camera 0"``, the URL, or the file path, for messages."""
    return f"camera {source}" if isinstance(source, int) else str(source)


def parse_source(source: str | int | Path) -> str | int:
    """A camera index (``"0"`` -> ``0``), a URL, or an existing file path.

    Raises:
        VideoSourceError: a file path that does not exist or is not a file.
    """
    if isinstance(source, int):
        return source
    text = str(source)
    if text.isdigit():
        return int(text)
    if text.lower().startswith(_URL_SCHEMES):
        return text
    path = Path(text)
    if not path.exists():
        raise VideoSourceError(f"video source {text!r}: no such file (expected a video file, a camera index or a URL)")
    if not path.is_file():
        raise VideoSourceError(f"video source {text!r} is not a file")
    return text


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Collect what native code (OpenCV, FFmpeg) writes to file descriptor 2 meanwhile, so a
    failed open becomes one error line rather than backend noise; yields a list that holds
    the captured lines after the block."""
    lines: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            text = tmp.read().decode("utf-8", "replace")
            lines.extend(line.strip() for line in text.splitlines() if line.strip())


def _backend_reason(lines: list[str]) -> str:
    """The first backend message without its ``[tag @ 0x...]`` / ``[ WARN:...]`` prefix."""
    if not lines:
        return ""
    msg = lines[0]
    if msg.startswith("["):
        msg = msg.split("]", 1)[-1].strip()
    return f": {msg}" if msg else ""


class VideoSource:
    """Iterate RGB frames from ``source`` (file path, camera index or URL).

    Opening happens in :meth:`open` (or on entering the ``with`` block); the first frame is
    read there so a source that opens but yields nothing fails early.

    Raises:
        VideoSourceError: the source does not exist, cannot be opened, or yields no frame.
    """

    def __init__(self, source: str | int | Path) -> None:
        self.source = parse_source(source)
        self.live = not isinstance(self.source, str) or "://" in self.source
        self._cap: Any = None
        self._first: np.ndarray | None = None
        self.fps = 30.0
        self.size: tuple[int, int] = (0, 0)

    def open(self) -> VideoSource:
        import cv2

        with _captured_stderr() as noise:
            cap = cv2.VideoCapture(self.source)
            opened = cap.isOpened()
            ok, bgr = cap.read() if opened else (False, None)
        if not opened:
            cap.release()
            raise VideoSourceError(f"cannot open video source {describe_source(self.source)} (unreadable file, "
                                   f"unsupported codec, or camera/stream unavailable){_backend_reason(noise)}")
        if not ok or bgr is None or bgr.size == 0:
            cap.release()
            raise VideoSourceError(f"video source {describe_source(self.source)} opened but yielded no frame"
                                   f"{_backend_reason(noise)}")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 1.0 <= fps <= 1000.0 else 30.0
        self.size = (int(bgr.shape[1]), int(bgr.shape[0]))
        self._cap, self._first = cap, bgr
        return self

    @property
    def frame_count(self) -> int | None:
        """Frames in a file as its header says (``None`` for live sources or when unknown)."""
        import cv2

        if self.live or self._cap is None:
            return None
        n = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        return n if n > 0 else None

    def frames(self, max_frames: int | None = None) -> Iterator[Frame]:
        """Decoded frames until the source ends (or ``max_frames``); one pass per source.

        A background thread decodes ahead (up to 4 frames; OpenCV releases the GIL), so
        decoding overlaps the caller's work on the previous frame. For live sources (cameras,
        streams) the oldest waiting frame is dropped when the caller falls behind, so results
        stay current instead of lagging ever further.
        """
        import queue
        import threading

        import cv2

        if self._cap is None:
            self.open()
        frames: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=4)
        stop = threading.Event()

        def decode() -> None:
            bgr, n = self._first, 0
            while bgr is not None and not stop.is_set() and (max_frames is None or n < max_frames):
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                if self.live and frames.full():
                    with contextlib.suppress(queue.Empty):
                        frames.get_nowait()  # drop the stalest frame
                frames.put(rgb)
                n += 1
                ok, bgr = self._cap.read()
                if not ok:
                    bgr = None
            frames.put(None)

        thread = threading.Thread(target=decode, name="faceprint-video-source", daemon=True)
        thread.start()
        start = time.monotonic()
        index = 0
        try:
            while (rgb := frames.get()) is not None:
                t = time.monotonic() - start if self.live else index / self.fps
                yield Frame(rgb, index, t)
                index += 1
        finally:
            stop.set()
            while thread.is_alive():  # unblock a decoder waiting on a full queue
                try:
                    frames.get(timeout=0.05)
                except queue.Empty:
                    pass
            thread.join()
            self._first = None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> VideoSource:
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()


class VideoSink:
    """Writes RGB frames to a video file with OpenCV's ``mp4v`` codec.

    Encoding runs on a background thread (OpenCV releases the GIL), overlapping the next
    frame's recognition; :meth:`close` waits for every queued frame.

    Raises:
        VideoSourceError: the file cannot be created.
    """

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int], fourcc: str = "mp4v",
                 queue_size: int = 8) -> None:
        import queue
        import threading

        import cv2

        self.path = Path(path)
        if not self.path.parent.exists():
            raise VideoSourceError(f"cannot write video {self.path}: folder {self.path.parent} does not exist")
        self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*fourcc), float(fps), size)
        if not self._writer.isOpened():
            raise VideoSourceError(f"cannot write video {self.path} with codec {fourcc!r}")
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._drain, name="faceprint-video-sink", daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        import cv2

        while True:
            rgb = self._queue.get()
            if rgb is None:
                return
            self._writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))

    def write(self, rgb: np.ndarray) -> None:
        """Queue one RGB ``(H, W, 3)`` uint8 frame (the array must not be modified afterwards)."""
        self._queue.put(rgb)

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._writer.release()

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["Frame", "VideoSink", "VideoSource", "describe_source", "parse_source"]
