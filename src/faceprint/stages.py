"""A bounded read-ahead stage on a thread, for pipelines whose steps release the GIL.

Decoding (Pillow, OpenCV), ONNX Runtime and most numpy work release the GIL, so a stage on its
own thread runs on the second core while the caller works on earlier items.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_DONE = object()


def prefetch(items: Iterable[T], fn: Callable[[T], R], depth: int = 2) -> Iterator[R]:
    """``fn(item)`` for every item, in order, computed up to ``depth`` items ahead on one thread.

    ``items`` may be a generator: it is advanced on the worker thread only, one item at a time.
    An exception raised by ``fn`` or by ``items`` is raised to the caller when its turn comes
    (items before it are yielded first). When the caller stops early (``break``, an exception,
    or closing the generator) the worker stops after at most the item it is on.

    Raises:
        ValueError: ``depth`` is below 1.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    results: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[bool, object]) -> bool:
        while not stop.is_set():
            try:
                results.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if stop.is_set() or not put((True, fn(item))):
                    return
        except BaseException as exc:  # handed to the caller, in order
            put((False, exc))
            return
        put((True, _DONE))

    worker = threading.Thread(target=work, name="faceprint-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            ok, value = results.get()
            if not ok:
                raise value  # type: ignore[misc]
            if value is _DONE:
                return
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()


__all__ = ["prefetch"]
