"""Detect and embed chunks of photos: in this process, a process pool, or Ray actors.

Every runner has ``map(chunks) -> iterator of list[PhotoResult]`` yielding chunks as they
finish (any order). Each worker builds its pipeline once (:class:`PipelineConfig`), reads a
file's bytes once to hash and decode them, and embeds the chips of a whole chunk in shared
embedder batches. dlib and the Python parts hold the GIL, so parallelism is across processes.
"""

from __future__ import annotations

import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np

from ..errors import ConfigError, FaceprintError
from ..registry import DEFAULT_DETECTOR, DEFAULT_EMBEDDER
from .scan import PhotoFile, sha256_bytes


@dataclass(frozen=True)
class PipelineConfig:
    """How a worker builds its :class:`~faceprint.pipeline.FacePipeline` (picklable)."""

    detector: str = DEFAULT_DETECTOR
    model: str = DEFAULT_EMBEDDER
    threads: int = 0  # ONNX Runtime intra-op threads per worker (0 = all cores)
    batch_size: int = 32

    def build(self) -> Any:
        from ..pipeline import FacePipeline
        from ..registry import create_detector, create_embedder

        embedder = create_embedder(self.model, batch_size=self.batch_size, threads=self.threads)
        return FacePipeline(detector=create_detector(self.detector), embedder=embedder)


@dataclass
class PhotoResult:
    """One processed photo: its file, content hash, size in pixels, faces or an error.

    ``xyxy (K, 4)``, ``score (K,)``, ``vectors (K, D)`` float32, largest face first.
    """

    file: PhotoFile
    sha256: str
    width: int
    height: int
    xyxy: np.ndarray
    score: np.ndarray
    vectors: np.ndarray
    error: str | None = None


Item = tuple[PhotoFile, bytes | None]  # bytes travel with the file when workers share no disk


def process_chunk(pipe: Any, items: list[Item]) -> list[PhotoResult]:
    """Hash, decode, detect and embed a chunk of photos; unreadable files get ``error`` set."""
    from ..image import load_image

    dim = pipe.spec.dim
    results: list[PhotoResult] = []
    images, slots = [], []
    for file, data in items:
        empty = PhotoResult(file, "", 0, 0, np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                            np.zeros((0, dim), np.float32))
        try:
            if data is None:
                with open(file.path, "rb") as fh:
                    data = fh.read()
            empty.sha256 = sha256_bytes(data)
            rgb = load_image(data)
        except (OSError, FaceprintError) as exc:
            empty.error = str(exc)
            results.append(empty)
            continue
        empty.height, empty.width = rgb.shape[:2]
        images.append(rgb)
        slots.append(len(results))
        results.append(empty)
    for slot, found in zip(slots, pipe.embed_many(images) if images else []):
        res = results[slot]
        res.xyxy, res.score, res.vectors = found.faces.xyxy, found.faces.score, found.embeddings.vectors
    return results


_WORKER: dict[str, Any] = {}


def _init_worker(config: PipelineConfig) -> None:
    _WORKER["pipe"] = config.build()


def _run_chunk(items: list[Item]) -> list[PhotoResult]:
    return process_chunk(_WORKER["pipe"], items)


class InlineRunner:
    """Everything in this process (``--workers 1``)."""

    def __init__(self, config: PipelineConfig) -> None:
        self.pipe = config.build()

    def map(self, chunks: Iterable[list[Item]]) -> Iterator[list[PhotoResult]]:
        for chunk in chunks:
            yield process_chunk(self.pipe, chunk)

    def close(self) -> None:
        pass


class ProcessRunner:
    """A pool of ``workers`` processes, each with its own pipeline; at most 2 chunks queued per worker."""

    def __init__(self, config: PipelineConfig, workers: int) -> None:
        import multiprocessing

        self.workers = workers
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_init_worker, initargs=(config,))

    def map(self, chunks: Iterable[list[Item]]) -> Iterator[list[PhotoResult]]:
        pending: set[Any] = set()
        for chunk in chunks:
            pending.add(self.pool.submit(_run_chunk, chunk))
            if len(pending) >= 2 * self.workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                yield from (f.result() for f in done)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (f.result() for f in done)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class RayRunner:
    """``workers`` Ray actors on the cluster at ``address`` (``"local"`` starts one here).

    Photos travel as bytes, so the cluster's machines need not see the folder.

    Raises:
        ConfigError: Ray is not installed (``pip install faceprint[ray]``).
    """

    def __init__(self, config: PipelineConfig, workers: int, address: str) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ConfigError("--ray needs Ray: pip install 'faceprint[ray]'") from exc
        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=None if address == "local" else address, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        actor = ray.remote(num_cpus=1)(_RayWorker)
        self.actors = [actor.remote(config) for _ in range(workers)]

    def map(self, chunks: Iterable[list[Item]]) -> Iterator[list[PhotoResult]]:
        from ray.util import ActorPool

        def with_bytes(chunk: list[Item]) -> list[Item]:
            out = []
            for file, data in chunk:
                try:
                    with open(file.path, "rb") as fh:
                        out.append((file, fh.read()))
                except OSError:
                    out.append((file, data))
            return out

        pool = ActorPool(self.actors)
        yield from pool.map_unordered(lambda a, c: a.run.remote(with_bytes(c)), chunks)

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)


class _RayWorker:
    def __init__(self, config: PipelineConfig) -> None:
        self.pipe = config.build()

    def run(self, items: list[Item]) -> list[PhotoResult]:
        return process_chunk(self.pipe, items)


def make_runner(config: PipelineConfig, workers: int = 1, ray_address: str | None = None) -> Any:
    """The runner for ``workers`` processes (inline for 1) or Ray actors.

    Raises:
        ConfigError: ``workers < 1``, or Ray is missing.
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if ray_address is not None:
        return RayRunner(config, workers, ray_address)
    if workers == 1:
        return InlineRunner(config)
    return ProcessRunner(config, workers)


def threads_per_worker(workers: int) -> int:
    """ONNX Runtime threads per worker so that workers together use the machine's cores once."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


__all__ = ["InlineRunner", "PhotoResult", "PipelineConfig", "ProcessRunner", "RayRunner", "make_runner",
           "process_chunk", "threads_per_worker"]
