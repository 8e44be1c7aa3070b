"""Which files of a folder tree need indexing: new, changed (size, mtime, then SHA-256) or gone."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CollectionError
from ..image import IMAGE_SUFFIXES  # the file name endings indexed (lower case)


@dataclass(frozen=True)
class PhotoFile:
    """A file to index: absolute ``path``, ``size`` in bytes and ``mtime_ns``."""

    path: str
    size: int
    mtime_ns: int


@dataclass
class Plan:
    """The work of one index run: ``todo`` files to (re)process, counts of the rest."""

    todo: list[PhotoFile] = field(default_factory=list)
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    touched: int = 0  # mtime changed, content (SHA-256) did not: only the row is updated
    removed: int = 0


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def walk(root: str | Path) -> list[PhotoFile]:
    """Image files under ``root`` (symbolic links followed), sorted by path.

    Raises:
        CollectionError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise CollectionError(f"{root}: not a folder")
    files = []
    for folder, dirs, names in os.walk(root.resolve(), followlinks=True):
        dirs.sort()
        for name in sorted(names):
            if os.path.splitext(name)[1].lower() not in IMAGE_SUFFIXES:
                continue
            path = os.path.join(folder, name)
            try:
                st = os.stat(path)
            except OSError:  # a dangling link: nothing to index
                continue
            files.append(PhotoFile(path, int(st.st_size), int(st.st_mtime_ns)))
    return files


def plan(conn: sqlite3.Connection, root: str | Path, files: list[PhotoFile]) -> Plan:
    """Compare ``files`` with the index and drop photos under ``root`` that no longer exist.

    A file whose size and mtime match its row is unchanged. When they differ the content hash
    decides: same SHA-256 only refreshes the row, a different one re-indexes the file.
    """
    out = Plan()
    known = {row[0]: row[1:] for row in conn.execute("SELECT path, id, size, mtime_ns, sha256 FROM photos")}
    prefix = os.path.join(str(Path(root).resolve()), "")
    present = {f.path for f in files}
    gone = [known[p][0] for p in known if p.startswith(prefix) and p not in present]
    conn.execute("BEGIN IMMEDIATE")
    try:
        for photo_id in gone:
            conn.execute("DELETE FROM photos WHERE id = ?", (photo_id,))
        for f in files:
            row = known.get(f.path)
            if row is None:
                out.new += 1
                out.todo.append(f)
            elif (row[1], row[2]) == (f.size, f.mtime_ns):
                out.unchanged += 1
            elif _file_sha(f.path) == row[3]:
                out.touched += 1
                conn.execute("UPDATE photos SET size = ?, mtime_ns = ? WHERE id = ?", (f.size, f.mtime_ns, row[0]))
            else:
                out.changed += 1
                out.todo.append(f)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    out.removed = len(gone)
    return out


def _file_sha(path: str) -> str | None:
    try:
        with open(path, "rb") as fh:
            return sha256_bytes(fh.read())
    except OSError:
        return None


__all__ = ["IMAGE_SUFFIXES", "PhotoFile", "Plan", "plan", "sha256_bytes", "walk"]
