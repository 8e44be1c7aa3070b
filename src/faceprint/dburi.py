"""One parser for every ``--db``: what a database string names, decided before anything is opened.

=====================================  ===============  ==========================================
``--db``                               kind             opened as
=====================================  ===============  ==========================================
``people.db``, ``sqlite:///PATH``      ``sqlite``       a SQLite file (created when missing)
``PATH.milvus.db``                     ``milvus-lite``  embedded milvus-lite (a local directory)
``milvus://HOST:PORT[/PREFIX]``        ``milvus``       a Milvus server
``postgresql://USER:PASS@HOST:PORT/DB`` ``postgresql``   PostgreSQL with pgvector (also ``postgres://``)
=====================================  ===============  ==========================================

A string with a scheme (``name://``) is never a path: an unknown scheme raises
:class:`~faceprint.errors.GalleryError` and nothing is created locally. Servers are reached
by the backends with a bounded connect timeout (:data:`CONNECT_TIMEOUT_S`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, GalleryError

#: Seconds a backend waits for a database server before giving up.
CONNECT_TIMEOUT_S = 5
KINDS = ("sqlite", "milvus-lite", "milvus", "postgresql")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):/")
_SCHEMES = {"milvus": "milvus", "postgresql": "postgresql", "postgres": "postgresql"}


@dataclass(frozen=True)
class DbUri:
    """A parsed ``--db``: ``kind`` (one of :data:`KINDS`), the text as given, and the local
    ``path`` for ``sqlite`` and ``milvus-lite`` (``None`` for servers)."""

    kind: str
    text: str
    path: Path | None = None

    @property
    def is_server(self) -> bool:
        return self.path is None

    @property
    def has_sql(self) -> bool:
        """Whether the gallery's database can also hold SQL tables (API keys): SQLite, PostgreSQL."""
        return self.kind in ("sqlite", "postgresql")

    def display(self) -> str:
        """The URI without a password (for messages and logs)."""
        return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", self.text)


def parse_db(db: str | Path) -> DbUri:
    """What ``db`` names.

    Raises:
        GalleryError: an unknown scheme (``redis://...``), or a ``scheme:/`` string that lost a
            slash (a URI passed through a path type), which is never taken as a file name.
        ConfigError: an empty string.
    """
    text = str(db)
    if not text.strip():
        raise ConfigError("--db is empty: give a file path or a URI")
    match = _SCHEME.match(text)
    if match and len(match.group(1)) > 1:  # one letter is a Windows drive (C:/...)
        scheme = match.group(1).lower()
        if scheme == "sqlite" and text.startswith("sqlite:///"):
            return DbUri("sqlite", text, Path(text[len("sqlite:///"):]))  # sqlite:///rel.db, sqlite:////abs.db
        if scheme in _SCHEMES and text[len(scheme):].startswith("://"):
            return DbUri(_SCHEMES[scheme], text)
        raise GalleryError(f"unknown gallery URI {text!r}: use a path, sqlite:///PATH, milvus://HOST:PORT, "
                           "postgresql://USER:PASS@HOST:PORT/DB or a *.milvus.db path")
    if text.endswith(".milvus.db"):
        return DbUri("milvus-lite", text, Path(text))
    return DbUri("sqlite", text, Path(text))


def sqlite_path(db: str | Path, what: str) -> Path:
    """The SQLite file ``db`` names, for components that live only in SQLite (``what``, e.g.
    "the photo index").

    Raises:
        ConfigError: ``db`` is a server or milvus-lite URI.
        GalleryError: an unknown scheme.
    """
    uri = parse_db(db)
    if uri.kind != "sqlite" or uri.path is None:
        raise ConfigError(f"{what} lives in a SQLite file; {uri.display()} is a {uri.kind} database")
    return uri.path
