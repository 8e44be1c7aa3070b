"""``index_folder``: walk a tree, detect and embed every new or changed photo, store the faces.

Resumable: each finished chunk of photos is committed with its faces, so after an interrupted
run the next one finds those photos unchanged and processes only the rest.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from .scan import PhotoFile, plan, walk
from ..sqlitedb import transaction
from .workers import Item, PhotoResult, PipelineConfig, make_runner, threads_per_worker


@dataclass
class IndexReport:
    """What one index run did; ``images_per_s`` counts processed photos over wall time and
    ``unreadable`` lists ``(path, reason)`` for the photos of this run that could not be read."""

    files: int
    new: int
    changed: int
    unchanged: int
    touched: int
    removed: int
    processed: int
    faces: int
    errors: int
    seconds: float
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def images_per_s(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {**asdict(self), "seconds": round(self.seconds, 3), "images_per_s": round(self.images_per_s, 2)}


def _chunks(files: list[PhotoFile], size: int) -> Iterator[list[Item]]:
    for start in range(0, len(files), size):
        yield [(f, None) for f in files[start:start + size]]


def store_results(conn: sqlite3.Connection, results: list[PhotoResult], model_id: str, metric: str) -> int:
    """Write photos and their faces in one transaction (replacing older faces); returns faces stored."""
    faces = 0
    with transaction(conn):
        for r in results:
            f = r.file
            conn.execute(
                "INSERT INTO photos (path, size, mtime_ns, sha256, width, height, error) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, "
                "sha256 = excluded.sha256, width = excluded.width, height = excluded.height, error = excluded.error",
                (f.path, f.size, f.mtime_ns, r.sha256, r.width, r.height, r.error))
            photo_id = conn.execute("SELECT id FROM photos WHERE path = ?", (f.path,)).fetchone()[0]
            conn.execute("DELETE FROM faces WHERE photo_id = ?", (photo_id,))
            conn.executemany(
                "INSERT INTO faces (photo_id, x1, y1, x2, y2, score, model_id, metric, embedding) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(photo_id, *map(float, r.xyxy[k]), float(r.score[k]), model_id, metric,
                  r.vectors[k].astype("float32").tobytes()) for k in range(len(r.xyxy))])
            faces += len(r.xyxy)
    return faces


def index_folder(conn: sqlite3.Connection, root: str | Path, config: PipelineConfig | None = None,
                 workers: int = 1, ray_address: str | None = None, chunk: int = 16,
                 on_plan: Callable[[int], None] | None = None,
                 on_chunk: Callable[[int], None] | None = None) -> IndexReport:
    """Index every image under ``root`` into ``conn``; only new or changed files are processed.

    Args:
        config: the pipeline each worker builds (default detector and model; ONNX Runtime
            threads split between local workers).
        workers: processes (or Ray actors) detecting and embedding in parallel.
        ray_address: run the workers as Ray actors on this cluster (``"local"``: a local runtime).
        chunk: photos per work unit (their chips share embedder batches).
        on_plan: called with the number of photos to process, before any work.
        on_chunk: called with the number of photos of each stored chunk.

    Raises:
        CollectionError: ``root`` is not a folder.
        ConfigError: ``workers < 1`` or Ray is missing.
    """
    from ..registry import create_embedder

    t0 = time.perf_counter()
    if config is None:
        config = PipelineConfig(threads=threads_per_worker(workers) if ray_address is None else 1)
    files = walk(root)
    work = plan(conn, root, files)
    if on_plan is not None:
        on_plan(len(work.todo))
    spec = create_embedder(config.model).spec
    processed = faces = errors = 0
    unreadable: list[tuple[str, str]] = []
    if work.todo:
        runner = make_runner(config, workers, ray_address)
        try:
            for results in runner.map(_chunks(work.todo, chunk)):
                faces += store_results(conn, results, spec.model_id, spec.metric)
                processed += len(results)
                errors += sum(r.error is not None for r in results)
                unreadable += [(r.file.path, str(r.error)) for r in results if r.error is not None]
                if on_chunk is not None:
                    on_chunk(len(results))
        finally:
            runner.close()
    return IndexReport(len(files), work.new, work.changed, work.unchanged, work.touched, work.removed,
                       processed, faces, errors, time.perf_counter() - t0, unreadable)


__all__ = ["IndexReport", "index_folder", "store_results"]
