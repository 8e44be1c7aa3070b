"""Threads for pipelines whose steps release the GIL: a bounded read-ahead stage and a fan-out.

Decoding (Pillow, OpenCV), ONNX Runtime and most numpy work release the GIL, so a stage on its
own thread runs on the second core while the caller works on earlier items, and independent
model calls (the parts of a batch, the levels of an image pyramid) run side by side.
"""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

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


_opencv_lock = threading.Lock()
_opencv_users = 0
_opencv_saved = 0


@contextmanager
def opencv_one_thread() -> Iterator[None]:
    """Run OpenCV's calls on their caller's thread while the block runs, then give OpenCV back
    the thread count it had.

    For code whose own threads already keep every core busy (the stages of
    :meth:`~faceprint.pipeline.FacePipeline.embed_many`): OpenCV's pool would split each small
    resize or remap over the cores the other stages are using, which costs CPU (on LFW's
    pipeline ~4 % of it) and gives the same pixels. The setting is process-wide; blocks
    on several threads at once share one change, undone when the last one ends.
    """
    global _opencv_users, _opencv_saved
    import cv2

    with _opencv_lock:
        if _opencv_users == 0:
            _opencv_saved = cv2.getNumThreads()
            cv2.setNumThreads(1)
        _opencv_users += 1
    try:
        yield
    finally:
        with _opencv_lock:
            _opencv_users -= 1
            if _opencv_users == 0:
                cv2.setNumThreads(_opencv_saved)


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


class Fanout:
    """Runs independent calls side by side: ``map(fn, items)`` is ``[fn(item) for item in items]``
    with the items spread over ``workers`` threads (the caller is one of them).

    Used instead of ONNX Runtime's intra-op threads: single-threaded sessions run on parts of the
    work at once (a batch split in two, the levels of a pyramid) spend ~15-30 % less CPU than one
    session splitting each operator over two threads, and give the same values (every part is
    computed alone either way). The helper threads start on the first call that needs them; a
    part that no helper has started yet when the caller is free is run by the caller, so callers
    on several threads sharing one ``Fanout`` never wait behind each other's work.

    Args:
        workers: threads per call, the caller's included; 0 = :func:`cpu_count`.

    Raises:
        ValueError: ``workers`` is negative.
    """

    def __init__(self, workers: int = 0) -> None:
        if workers < 0:
            raise ValueError(f"workers must be >= 0 (0 = all cores), got {workers}")
        self.workers = int(workers) or cpu_count()
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, int]:  # copies and pickles (process workers) start their own helpers
        return {"workers": self.workers}

    def __setstate__(self, state: dict[str, int]) -> None:
        self.__init__(state["workers"])  # type: ignore[misc]

    def _helpers(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.workers - 1, thread_name_prefix="faceprint-fanout")
            return self._pool

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``[fn(item) for item in items]``, in order; the first exception is raised after every
        started part has finished."""
        if self.workers == 1 or len(items) < 2:
            return [fn(item) for item in items]
        pool = self._helpers()
        futures: list[Future] = [pool.submit(fn, item) for item in items[1:]]
        try:
            out = [fn(items[0])]
            for future, item in zip(futures, items[1:]):
                out.append(fn(item) if future.cancel() else future.result())
            return out
        finally:
            for future in futures:
                if not future.cancel():
                    future.exception()  # wait: no part still runs once the caller has moved on


__all__ = ["Fanout", "cpu_count", "opencv_one_thread", "prefetch"]
