"""The Milvus gallery: the same :class:`~faceprint.gallery.base.Gallery` on Milvus (pymilvus).

``milvus://host:port[/prefix]`` talks to a Milvus server; a path ending in ``.milvus.db``
runs embedded milvus-lite (``pip install 'faceprint[scale]'``). Three collections per
gallery, named ``<prefix>_people`` (int64 id, name, JSON metadata; the reserved id 0 holds the
model id, metric, dim and layout version), ``<prefix>_samples`` (int64 id, person id, person
name, source, photo hash, vector; FLAT index, exact, or HNSW with ``index="HNSW"``) and
``<prefix>_cohort``. Collections are loaded on open, so any process opens a gallery another
one wrote.

A person's id is derived from the name (the first 63 bits of its SHA-256), so lookups go by
id and every filter expression is built from integers only: a name never becomes part of an
expression, whatever characters it holds. Names are at most :data:`MAX_NAME_BYTES` bytes and
sources :data:`MAX_SOURCE_BYTES` (UTF-8), checked before anything is written.

Milvus has no multi-statement transactions: ``add_faces`` is one insert request (all rows or
none); ``rename``/``merge`` upsert the moved samples before deleting the old person, so a
failure in between leaves the samples under the new name (never lost); ``remove`` deletes the
samples before the person.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError, GalleryError, PersonExistsError, PersonNotFoundError
from ..types import Embeddings
from .base import Gallery, check_sample_rows
from .results import Person

_META_ID = 0
_BATCH = 1000
#: Layout of the collections (1: name as primary key, before ids; 2: int64 ids).
LAYOUT = 2
#: Longest person name and sample source, in UTF-8 bytes (the VARCHAR limits).
MAX_NAME_BYTES = 512
MAX_SOURCE_BYTES = 4096
#: Seconds to wait for a Milvus server before giving up.
CONNECT_TIMEOUT_S = 5.0
_SHA256 = re.compile(r"[0-9a-f]{64}")


def person_id(name: str) -> int:
    """The int64 id of a person name (never 0, the reserved meta row)."""
    return (int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big") >> 1) or 1


def _check_name(name: str) -> str:
    """The rules every backend shares (:func:`~faceprint.gallery.names.check_name`), then Milvus's byte limit."""
    from .names import check_name

    name = check_name(name)
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ConfigError(f"a person name may have at most {MAX_NAME_BYTES} UTF-8 bytes in Milvus, "
                          f"got {len(name.encode('utf-8'))}")
    return name


class MilvusGallery(Gallery):
    """A gallery in Milvus collections.

    Args:
        uri: ``milvus://host:port[/prefix]`` or ``PATH.milvus.db`` (milvus-lite).
        model_id, metric: fix the model now (else the first ``add_faces`` does).
        index: ``"FLAT"`` (exact, default) or ``"HNSW"`` for the samples collection.
        policy: default :class:`~faceprint.gallery.scoring.OpenSetPolicy`.
        token: Milvus credentials for a server.

    Raises:
        GalleryError: pymilvus/milvus-lite missing, the server unreachable (after
            :data:`CONNECT_TIMEOUT_S`) or collections of an older faceprint layout.
        ModelMismatchError: the collections hold another model's vectors.
    """

    def __init__(self, uri: str, *, model_id: str | None = None, metric: str | None = None, index: str = "FLAT",
                 policy: Any = None, token: str = "") -> None:
        try:
            from pymilvus import MilvusClient
        except ImportError as exc:
            raise GalleryError("the Milvus backend needs pymilvus (and milvus-lite for files): "
                               "pip install 'faceprint[scale]'") from exc
        if index not in ("FLAT", "HNSW"):
            raise ConfigError(f"index must be 'FLAT' or 'HNSW', got {index!r}")
        logging.getLogger("pymilvus").setLevel(logging.ERROR)  # iterator warnings are not the user's business
        self.uri, self.index, self.policy = uri, index, policy
        self.prefix = "faceprint"
        target = uri
        if uri.startswith("milvus://"):
            hostport, _, prefix = uri[len("milvus://"):].partition("/")
            target, self.prefix = f"http://{hostport}", (prefix or "faceprint")
        self._lock = threading.RLock()
        self._client: Any = None
        self._loaded: set[str] = set()
        try:
            kwargs = {"token": token} if token else {}
            self._client = MilvusClient(target, timeout=CONNECT_TIMEOUT_S, **kwargs)
            self._people_c, self._samples_c, self._cohort_c = (f"{self.prefix}_{n}"
                                                               for n in ("people", "samples", "cohort"))
            self._ensure_people()
            for c in (self._samples_c, self._cohort_c):
                self._ready(c)
            meta = self._get_people([_META_ID])
        except GalleryError:
            self.close()
            raise
        except Exception as exc:  # pymilvus raises its own hierarchy (and grpc's)
            self.close()
            raise GalleryError(f"cannot open Milvus at {uri}: {str(exc).splitlines()[0] if str(exc) else exc!r}"
                               ) from exc
        info = meta[0]["metadata"] if meta else {}
        self.model_id, self.metric, self.dim = info.get("model_id"), info.get("metric"), info.get("dim")
        if model_id is not None:
            probe = Embeddings(np.zeros((0, self.dim or 1)), model_id, metric or self.metric or "euclidean")
            if self.model_id is None:
                self.model_id, self.metric = model_id, probe.metric
            else:
                self.check_model(Embeddings(np.zeros((0, self.dim or 1)), model_id, probe.metric))

    # ---- collections ---------------------------------------------------------------------------------
    def _ensure_people(self) -> None:
        from pymilvus import DataType

        if self._client.has_collection(self._people_c):
            fields = self._client.describe_collection(self._people_c)["fields"]
            if any(f["name"] == "name" and f.get("is_primary") for f in fields):
                raise GalleryError(f"{self.uri}: collection {self._people_c!r} has the layout of faceprint < 0.2 "
                                   "(names as keys); export it with that version and import it into a new gallery")
            self._client.load_collection(self._people_c)
            return
        schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("name", DataType.VARCHAR, max_length=MAX_NAME_BYTES)
        schema.add_field("metadata", DataType.JSON)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)  # Milvus requires a vector field
        params = self._client.prepare_index_params()
        params.add_index(field_name="v", index_type="FLAT", metric_type="L2")
        self._client.create_collection(self._people_c, schema=schema, index_params=params)

    def _ensure_vectors(self, name: str) -> None:
        from pymilvus import DataType

        if self._client.has_collection(name):
            return
        schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("person_id", DataType.INT64)
        schema.add_field("person", DataType.VARCHAR, max_length=MAX_NAME_BYTES)
        schema.add_field("source", DataType.VARCHAR, max_length=MAX_SOURCE_BYTES)
        schema.add_field("photo", DataType.VARCHAR, max_length=64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(self.dim))
        params = self._client.prepare_index_params()
        metric = "COSINE" if self.metric == "cosine" else "L2"
        if self.index == "HNSW" and name == self._samples_c:
            params.add_index(field_name="vector", index_type="HNSW", metric_type=metric,
                             params={"M": 16, "efConstruction": 128})
        else:
            params.add_index(field_name="vector", index_type="FLAT", metric_type=metric)
        self._client.create_collection(name, schema=schema, index_params=params)

    def _ready(self, collection: str) -> bool:
        """Whether ``collection`` exists, loading it on first use here (another process may have
        created it after this one opened the gallery)."""
        if collection in self._loaded:
            return True
        if not self._client.has_collection(collection):
            return False
        self._client.load_collection(collection)
        self._loaded.add(collection)
        return True

    def _get_people(self, ids: Sequence[int]) -> list[dict[str, Any]]:
        if not ids:
            return []
        return list(self._client.get(self._people_c, ids=[int(i) for i in ids],
                                     output_fields=["id", "name", "metadata"]))

    def _get_person(self, name: str) -> dict[str, Any] | None:
        got = self._get_people([person_id(name)])
        return got[0] if got and got[0]["name"] == name else None

    def _query(self, collection: str, expr: str, fields: list[str]) -> list[dict[str, Any]]:
        """Rows matching ``expr``, which is built from integers and constants only."""
        if not self._ready(collection):
            return []
        out: list[dict[str, Any]] = []
        it = self._client.query_iterator(collection, batch_size=_BATCH, filter=expr, output_fields=fields)
        while True:
            batch = it.next()
            if not batch:
                it.close()
                return out
            out.extend(batch)

    def _of(self, name: str) -> str:
        """The filter selecting ``name``'s samples (by id: names never enter expressions)."""
        return f"person_id == {person_id(name)}"

    def _bind(self, emb: Embeddings) -> None:
        if self.dim is None:  # another process may have fixed the model since this one opened
            info = (self._get_people([_META_ID]) or [{"metadata": {}}])[0]["metadata"]
            if info.get("dim") is not None:
                self.model_id, self.metric, self.dim = info["model_id"], info["metric"], info["dim"]
        if self.model_id is None or self.dim is None:
            if self.model_id is not None:
                self.check_model(emb)
            self.model_id, self.metric, self.dim = emb.model_id, emb.metric, emb.dim
            self._client.upsert(self._people_c, [{"id": _META_ID, "name": "", "v": [0.0, 0.0], "metadata": {
                "model_id": self.model_id, "metric": self.metric, "dim": self.dim, "layout": LAYOUT}}])
        self.check_model(emb)
        self._ensure_vectors(self._samples_c)

    def _new_ids(self, n: int) -> list[int]:
        """Increasing int64 ids from the nanosecond clock (never reused by this client)."""
        base = max(time.time_ns(), getattr(self, "_last_id", 0) + 1)
        self._last_id = base + n - 1
        return [base + i for i in range(n)]

    # ---- writes ---------------------------------------------------------------------------------------------
    def add_person(self, name: str, metadata: dict[str, Any] | None = None) -> None:
        name = _check_name(name)
        with self._lock:
            if self._get_people([person_id(name)]):
                raise PersonExistsError(f"a person named {name!r} already exists in {self.uri}")
            self._client.insert(self._people_c, [{"id": person_id(name), "name": name, "metadata": metadata or {},
                                                  "v": [0.0, 0.0]}])

    def add_faces(self, name: str, embeddings: Embeddings, *, sources: Sequence[str | None] | None = None,
                  crops: np.ndarray | None = None, create: bool = True, hashes: Sequence[str | None] | None = None,
                  metadata: dict[str, Any] | None = None, template: str = "") -> list[int]:
        """See :meth:`Gallery.add_faces`; crops are not stored in Milvus (ignored).

        Raises ConfigError (before anything is written) for a name or source over the limits."""
        name = _check_name(name)
        n = check_sample_rows(len(embeddings), sources, None, hashes)
        for src in sources or []:
            if src and len(src.encode("utf-8")) > MAX_SOURCE_BYTES:
                raise ConfigError(f"a sample source may have at most {MAX_SOURCE_BYTES} UTF-8 bytes, "
                                  f"got {src[:40]!r}...")
        self._bind(embeddings)
        with self._lock:
            if self._get_person(name) is None:
                if not create:
                    raise PersonNotFoundError(f"no person named {name!r} in {self.uri}")
                self.add_person(name, metadata)
            ids = self._new_ids(n)
            rows = [{"id": ids[i], "person_id": person_id(name), "person": name,
                     "source": (sources[i] if sources is not None else None) or "",
                     "photo": (hashes[i] if hashes is not None else None) or "",
                     "vector": embeddings.vectors[i].tolist()} for i in range(n)]
            if rows:
                self._client.insert(self._samples_c, rows)
        return ids

    def _move(self, src: str, dst: str) -> int:
        rows = self._query(self._samples_c, self._of(src), ["id", "person_id", "person", "source", "photo", "vector"])
        for r in rows:
            r["person"], r["person_id"] = dst, person_id(dst)
        for start in range(0, len(rows), _BATCH):
            self._client.upsert(self._samples_c, rows[start:start + _BATCH])
        return len(rows)

    def _require(self, name: str) -> dict[str, Any]:
        got = self._get_person(name) if isinstance(name, str) and name else None
        if got is None:
            raise PersonNotFoundError(f"no person named {name!r} in {self.uri}")
        return got

    def rename(self, old: str, new: str) -> None:
        new = _check_name(new)
        with self._lock:
            person = self._require(old)
            if self._get_people([person_id(new)]):
                raise PersonExistsError(f"cannot rename {old!r}: a person named {new!r} already exists")
            self.add_person(new, person.get("metadata") or {})
            self._move(old, new)
            self._client.delete(self._people_c, ids=[person_id(old)])

    def merge(self, src: str, dst: str) -> int:
        if src == dst:
            raise ConfigError(f"cannot merge {src!r} into itself")
        with self._lock:
            self._require(src)
            self._require(dst)
            moved = self._move(src, dst)
            self._client.delete(self._people_c, ids=[person_id(src)])
        return moved

    def remove(self, name: str) -> int:
        with self._lock:
            self._require(name)
            n = len(self._query(self._samples_c, self._of(name), ["id"]))
            if self._client.has_collection(self._samples_c):
                self._client.delete(self._samples_c, filter=self._of(name))
            self._client.delete(self._people_c, ids=[person_id(name)])
        return n

    def _import_rows(self, people: list[dict[str, Any]], emb: Embeddings, names: list[str],
                     sources: list[str | None]) -> int:
        for p in people:
            _check_name(p["name"])
        existing = self._get_people([person_id(p["name"]) for p in people])
        if existing:
            raise PersonExistsError(f"a person named {existing[0]['name']!r} already exists in {self.uri}")
        for p in people:
            self.add_person(p["name"], p.get("metadata"))
        for name in dict.fromkeys(names):
            rows = [i for i, n in enumerate(names) if n == name]
            self.add_faces(name, emb[np.array(rows)], sources=[sources[i] for i in rows])
        return len(names)

    def add_cohort(self, embeddings: Embeddings) -> int:
        self._bind(embeddings)
        self._ensure_vectors(self._cohort_c)
        ids = self._new_ids(len(embeddings))
        self._client.insert(self._cohort_c, [{"id": i, "person_id": 0, "person": "", "source": "", "photo": "",
                                              "vector": v.tolist()} for i, v in zip(ids, embeddings.vectors)])
        return len(ids)

    # ---- reads ----------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._query(self._people_c, f"id != {_META_ID}", ["id"]))

    def sample_count(self) -> int:
        return len(self._query(self._samples_c, "id >= 0", ["id"]))

    def people(self) -> list[Person]:
        with self._lock:
            rows = self._query(self._people_c, f"id != {_META_ID}", ["name", "metadata"])
            counts: dict[str, int] = {}
            for r in self._query(self._samples_c, "id >= 0", ["person"]):
                counts[r["person"]] = counts.get(r["person"], 0) + 1
        return sorted((Person(r["name"], counts.get(r["name"], 0), r["metadata"] or {}) for r in rows),
                      key=lambda p: p.name)

    def person(self, name: str) -> Person:
        with self._lock:
            meta = self._require(name)
            rows = self._query(self._samples_c, self._of(name), ["id", "source"])
        rows.sort(key=lambda r: r["id"])
        return Person(name, len(rows), meta.get("metadata") or {}, [r["source"] for r in rows if r["source"]])

    def samples(self, name: str | None = None) -> tuple[Embeddings, list[str], list[int]]:
        with self._lock:
            if name is not None:
                self._require(name)
            expr = "id >= 0" if name is None else self._of(name)
            rows = sorted(self._query(self._samples_c, expr, ["id", "person", "vector"]), key=lambda r: r["id"])
        dim = len(rows[0]["vector"]) if rows else (self.dim or 0)
        vec = np.array([r["vector"] for r in rows], np.float32).reshape(len(rows), dim)
        return (Embeddings(vec, self.model_id or "", self.metric or "euclidean"), [r["person"] for r in rows],
                [int(r["id"]) for r in rows])

    def find_photo(self, sha256: str) -> str | None:
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            return None  # only hex digests are stored (and only they may enter an expression)
        with self._lock:
            rows = self._query(self._samples_c, f'photo == "{sha256}"', ["person"])
        return rows[0]["person"] if rows else None

    def _sources_for(self, sample_ids: Sequence[int]) -> list[str]:
        src = {int(r["id"]): r["source"] for r in self._query(self._samples_c, "id >= 0", ["id", "source"])}
        return [src.get(int(i), "") for i in sample_ids]

    def _search(self, collection: str, vectors: np.ndarray, k: int, fields: list[str]) -> list[list[dict[str, Any]]]:
        if not self._ready(collection):
            return [[] for _ in range(len(vectors))]
        res = self._client.search(collection, [v.tolist() for v in vectors], limit=k, output_fields=fields)
        return [list(hits) for hits in res]

    def _to_distance(self, raw: float) -> float:
        # Milvus L2 returns squared distances, COSINE returns the similarity
        return float(np.sqrt(max(raw, 0.0))) if self.metric != "cosine" else 1.0 - float(raw)

    def _neighbours(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
        with self._lock:
            hits = self._search(self._samples_c, vectors, k, ["person"])
        dist = np.full((len(vectors), k), np.inf, np.float32)
        ids = np.full((len(vectors), k), -1, np.int64)
        names = [[""] * k for _ in range(len(vectors))]
        for q, row in enumerate(hits):
            for j, h in enumerate(row[:k]):
                dist[q, j], ids[q, j], names[q][j] = self._to_distance(h["distance"]), int(h["id"]), h["entity"]["person"]
        return dist, ids, names

    def _cohort_neighbours(self, vectors: np.ndarray, k: int) -> np.ndarray:
        with self._lock:
            hits = self._search(self._cohort_c, vectors, k, [])
        width = min((len(h) for h in hits), default=0)
        return np.array([[self._to_distance(h["distance"]) for h in row[:width]] for row in hits],
                        np.float32).reshape(len(vectors), width)

    def drop(self) -> None:
        """Delete this gallery's collections."""
        with self._lock:
            for c in (self._samples_c, self._people_c, self._cohort_c):
                if self._client.has_collection(c):
                    self._client.drop_collection(c)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
