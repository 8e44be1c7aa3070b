"""API keys in the shared SQLite database (the service's ``api_keys`` table).

A key is ``fp_`` + 43 URL-safe characters (256 random bits). Only its SHA-256 is stored: a
fast hash is enough for secrets of that entropy (no dictionary to try), and lets a request be
checked with one indexed lookup. The clear key is shown once, by :meth:`KeyStore.create`.
Scopes nest: ``admin`` can do what ``enroll`` can, ``enroll`` what ``read`` can.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..sqlitedb import connect, migrate

COMPONENT = "service"
SCOPES: tuple[str, ...] = ("read", "enroll", "admin")
KEY_PREFIX = "fp_"

#: Ordered migrations of the service's tables (shared-database convention, :mod:`faceprint.sqlitedb`).
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE api_keys (
        id INTEGER PRIMARY KEY,
        key_hash TEXT NOT NULL UNIQUE,
        hint TEXT NOT NULL,
        scope TEXT NOT NULL CHECK (scope IN ('read', 'enroll', 'admin')),
        name TEXT NOT NULL DEFAULT '',
        rate_per_minute INTEGER CHECK (rate_per_minute IS NULL OR rate_per_minute >= 0),
        created_at TEXT NOT NULL,
        revoked_at TEXT
    );
    """,
)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def scope_allows(granted: str, needed: str) -> bool:
    """``admin`` covers ``enroll`` covers ``read``."""
    return SCOPES.index(granted) >= SCOPES.index(needed)


@dataclass(frozen=True)
class ApiKey:
    """A stored key (never its clear text)."""

    id: int
    hint: str
    scope: str
    name: str
    rate_per_minute: int | None
    created_at: str
    revoked_at: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "hint": self.hint, "scope": self.scope, "name": self.name,
                "rate_per_minute": self.rate_per_minute, "created_at": self.created_at,
                "revoked": self.revoked_at is not None}


_COLUMNS = "id, hint, scope, name, rate_per_minute, created_at, revoked_at"


class KeyStore:
    """Create, look up, list and revoke API keys; safe to share between threads."""

    def __init__(self, db: str | Path) -> None:
        self.db = Path(db)
        self._conn = connect(self.db)
        self._lock = threading.Lock()
        with self._lock:
            migrate(self._conn, COMPONENT, MIGRATIONS)

    def close(self) -> None:
        self._conn.close()

    def create(self, scope: str, name: str = "", rate_per_minute: int | None = None) -> tuple[ApiKey, str]:
        """A new key: the stored record and the clear key (show it once; it cannot be recovered).

        Raises:
            ConfigError: unknown scope or a negative rate.
        """
        if scope not in SCOPES:
            raise ConfigError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        if rate_per_minute is not None and rate_per_minute < 0:
            raise ConfigError(f"rate_per_minute must be >= 0, got {rate_per_minute}")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._lock:
            cur = self._conn.execute(
                "INSERT INTO api_keys (key_hash, hint, scope, name, rate_per_minute, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (hash_key(key), key[:7], scope, name, rate_per_minute, now))
        record = self.get(int(cur.lastrowid or 0))
        assert record is not None
        return record, key

    def get(self, key_id: int) -> ApiKey | None:
        with self._lock:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)).fetchone()
        return None if row is None else ApiKey(*row)

    def lookup(self, key: str) -> ApiKey | None:
        """The live (not revoked) key with this clear text, else ``None``."""
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        with self._lock:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL",
                                     (hash_key(key),)).fetchone()
        return None if row is None else ApiKey(*row)

    def list(self) -> list[ApiKey]:
        with self._lock:
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY id").fetchall()
        return [ApiKey(*row) for row in rows]

    def revoke(self, key_id: int) -> ApiKey:
        """Mark a key revoked (kept for the record).

        Raises:
            ConfigError: no key with this id.
        """
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        with self._lock:
            cur = self._conn.execute("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
                                     (now, key_id))
        if cur.rowcount == 0:
            raise ConfigError(f"no API key with id {key_id}")
        record = self.get(key_id)
        assert record is not None
        return record
