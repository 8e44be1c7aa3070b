"""Background cluster jobs over the photo index (``faceprint index``) in the shared database.

One job runs at a time, in its own thread with its own database connection, so requests keep
being answered while a collection is clustered. Jobs live in memory: the last ``keep`` are
listed, and a restart forgets them (the clusters themselves are stored in the database).
"""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .problems import problem_for


@dataclass
class Job:
    """A cluster run: ``status`` goes queued -> running -> done | failed."""

    id: int
    params: dict[str, Any]
    status: str = "queued"
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def to_dict(self, with_result: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "status": self.status, "params": self.params,
                                "created_at": round(self.created_at, 3),
                                "started_at": None if self.started_at is None else round(self.started_at, 3),
                                "finished_at": None if self.finished_at is None else round(self.finished_at, 3)}
        if self.result is not None:
            data["summary"] = {"clusters": len(self.result["clusters"]), "noise": len(self.result["noise"]),
                               "incremental": self.result.get("incremental", False)}
            if with_result:
                data["result"] = self.result
        if self.error is not None:
            data["error"] = self.error
        return data


class ClusterJobs:
    """Queue and run :func:`faceprint.collections.assign.cluster_index` on ``db``."""

    def __init__(self, db: Path | None, keep: int = 50) -> None:
        self.db = db
        self.keep = keep
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None  # started by the first job (again after a shutdown)

    def submit(self, params: dict[str, Any]) -> Job:
        """Queue a job; ``params`` are ``algorithm``, ``threshold``, ``full`` and clusterer options.

        Raises:
            UnknownModelError: unknown algorithm.
            ConfigError: options the algorithm does not take or out of range.
        """
        from ..collections.clustering import create_clusterer

        options = {k: v for k, v in params.items() if k not in ("algorithm", "full") and v is not None}
        if self.db is None:
            raise ConfigError("cluster jobs need the photo index's SQLite file: serve a SQLite gallery or "
                              "pass --keys-db PATH")
        create_clusterer(params["algorithm"], **options)  # fail now, in the request, not in the job
        with self._lock:
            job = Job(next(self._ids), params)
            self._jobs[job.id] = job
            for old in sorted(self._jobs)[:-self.keep]:
                if self._jobs[old].status in ("done", "failed"):
                    del self._jobs[old]
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="faceprint-cluster")
            self._pool.submit(self._run, job)
        return job

    def get(self, job_id: int) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def list(self) -> list[Job]:
        with self._lock:
            return [self._jobs[i] for i in sorted(self._jobs)]

    def _run(self, job: Job) -> None:
        from ..collections.assign import cluster_index
        from ..collections.store import connect

        job.status, job.started_at = "running", time.time()
        conn = None
        try:
            conn = connect(self.db)
            options = {k: v for k, v in job.params.items() if k not in ("algorithm", "full", "threshold") and v is not None}
            clustering = cluster_index(conn, job.params["algorithm"], full=bool(job.params.get("full")),
                                       threshold=job.params.get("threshold"), **options)
            job.result = {**clustering.to_dict(), "incremental": clustering.incremental}
            job.status = "done"
        except Exception as exc:  # the job fails; the error is reported as a problem body
            job.error = problem_for(exc, hide=str(self.db))[1]
            job.status = "failed"
        finally:
            job.finished_at = time.time()
            if conn is not None:
                conn.close()

    def shutdown(self) -> None:
        """Cancel queued jobs and stop the worker (the app may start again: a new worker then)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
