"""The Milvus gallery: the same :class:`~faceprint.gallery.base.Gallery` on Milvus (pymilvus).

``milvus://host:port[/prefix]`` talks to a Milvus server; a path ending in ``.milvus.db``
runs embedded milvus-lite (``pip install 'faceprint[scale]'``). Three collections per
gallery, named ``<prefix>_people`` (name primary key, JSON metadata; one reserved row holds the
model id, metric and dim), ``<prefix>_samples`` (int64 id, person, source, vector; FLAT index,
exact, or HNSW with ``index="HNSW"``) and ``<prefix>_cohort``.

Milvus has no multi-statement transactions: ``add_faces`` is one insert request (all rows or
none); ``rename``/``merge`` upsert the moved samples before deleting the old person, so a
failure in between leaves the samples under the new name (never lost); ``remove`` deletes the
samples before the person.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError, GalleryError, PersonExistsError, PersonNotFoundError
from ..types import Embeddings
from .base import Gallery, Person

_META = "__faceprint_meta__"
_BATCH = 1000


def _lit(text: str) -> str:
    """A Milvus filter string literal."""
    return json.dumps(text)


class MilvusGallery(Gallery):
    """A gallery in Milvus collections.

    Args:
        uri: ``milvus://host:port[/prefix]`` or ``PATH.milvus.db`` (milvus-lite).
        model_id, metric: fix the model now (else the first ``add_faces`` does).
        index: ``"FLAT"`` (exact, default) or ``"HNSW"`` for the samples collection.
        policy: default :class:`~faceprint.gallery.scoring.OpenSetPolicy`.
        token: Milvus credentials for a server.

    Raises:
        GalleryError: pymilvus/milvus-lite missing or the server unreachable.
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
        self.uri, self.index, self.policy = uri, index, policy
        self.prefix = "faceprint"
        target = uri
        if uri.startswith("milvus://"):
            hostport, _, prefix = uri[len("milvus://"):].partition("/")
            target, self.prefix = f"http://{hostport}", (prefix or "faceprint")
        self._lock = threading.RLock()
        try:
            self._client = MilvusClient(target, token=token) if token else MilvusClient(target)
        except Exception as exc:  # pymilvus raises its own hierarchy
            raise GalleryError(f"cannot open Milvus at {uri} ({exc})") from exc
        self._people_c, self._samples_c, self._cohort_c = (f"{self.prefix}_{n}" for n in ("people", "samples", "cohort"))
        self._ensure_people()
        meta = self._get_people([_META])
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
            return
        schema = self._client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("name", DataType.VARCHAR, is_primary=True, max_length=512)
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
        schema.add_field("person", DataType.VARCHAR, max_length=512)
        schema.add_field("source", DataType.VARCHAR, max_length=4096)
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

    def _get_people(self, names: Sequence[str]) -> list[dict[str, Any]]:
        if not names:
            return []
        return list(self._client.get(self._people_c, ids=list(names), output_fields=["name", "metadata"]))

    def _query(self, collection: str, expr: str, fields: list[str]) -> list[dict[str, Any]]:
        if not self._client.has_collection(collection):
            return []
        out: list[dict[str, Any]] = []
        it = self._client.query_iterator(collection, batch_size=_BATCH, filter=expr, output_fields=fields)
        while True:
            batch = it.next()
            if not batch:
                it.close()
                return out
            out.extend(batch)

    def _bind(self, emb: Embeddings) -> None:
        if self.model_id is None or self.dim is None:
            if self.model_id is not None:
                self.check_model(emb)
            self.model_id, self.metric, self.dim = emb.model_id, emb.metric, emb.dim
            self._client.upsert(self._people_c, [{"name": _META, "v": [0.0, 0.0], "metadata": {
                "model_id": self.model_id, "metric": self.metric, "dim": self.dim}}])
        self.check_model(emb)
        self._ensure_vectors(self._samples_c)

    def _new_ids(self, n: int) -> list[int]:
        """Increasing int64 ids from the nanosecond clock (never reused by this client)."""
        base = max(time.time_ns(), getattr(self, "_last_id", 0) + 1)
        self._last_id = base + n - 1
        return [base + i for i in range(n)]

    # ---- writes ---------------------------------------------------------------------------------------------
    def add_person(self, name: str, metadata: dict[str, Any] | None = None) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"a person needs a non-empty name, got {name!r}")
        with self._lock:
            if self._get_people([name]):
                raise PersonExistsError(f"a person named {name!r} already exists in {self.uri}")
            self._client.insert(self._people_c, [{"name": name, "metadata": metadata or {}, "v": [0.0, 0.0]}])

    def add_faces(self, name: str, embeddings: Embeddings, *, sources: Sequence[str | None] | None = None,
                  crops: np.ndarray | None = None, create: bool = True, hashes: Sequence[str | None] | None = None,
                  metadata: dict[str, Any] | None = None, template: str = "") -> list[int]:
        """See :meth:`Gallery.add_faces`; crops are not stored in Milvus (ignored)."""
        n = len(embeddings)
        for label, seq in (("sources", sources), ("hashes", hashes)):
            if seq is not None and len(seq) != n:
                raise ConfigError(f"{label} has {len(seq)} entries for {n} embeddings")
        self._bind(embeddings)
        with self._lock:
            if not self._get_people([name]):
                if not create:
                    raise PersonNotFoundError(f"no person named {name!r} in {self.uri}")
                self.add_person(name, metadata)
            ids = self._new_ids(n)
            rows = [{"id": ids[i], "person": name, "source": (sources[i] if sources is not None else None) or "",
                     "photo": (hashes[i] if hashes is not None else None) or "",
                     "vector": embeddings.vectors[i].tolist()} for i in range(n)]
            if rows:
                self._client.insert(self._samples_c, rows)
        return ids

    def _move(self, src: str, dst: str) -> int:
        rows = self._query(self._samples_c, f"person == {_lit(src)}", ["id", "person", "source", "photo", "vector"])
        for r in rows:
            r["person"] = dst
        for start in range(0, len(rows), _BATCH):
            self._client.upsert(self._samples_c, rows[start:start + _BATCH])
        return len(rows)

    def _require(self, name: str) -> dict[str, Any]:
        got = self._get_people([name]) if name != _META else []
        if not got:
            raise PersonNotFoundError(f"no person named {name!r} in {self.uri}")
        return got[0]

    def rename(self, old: str, new: str) -> None:
        with self._lock:
            person = self._require(old)
            if self._get_people([new]):
                raise PersonExistsError(f"cannot rename {old!r}: a person named {new!r} already exists")
            self.add_person(new, person.get("metadata") or {})
            self._move(old, new)
            self._client.delete(self._people_c, ids=[old])

    def merge(self, src: str, dst: str) -> int:
        if src == dst:
            raise ConfigError(f"cannot merge {src!r} into itself")
        with self._lock:
            self._require(src)
            self._require(dst)
            moved = self._move(src, dst)
            self._client.delete(self._people_c, ids=[src])
        return moved

    def remove(self, name: str) -> int:
        with self._lock:
            self._require(name)
            n = len(self._query(self._samples_c, f"person == {_lit(name)}", ["id"]))
            if self._client.has_collection(self._samples_c):
                self._client.delete(self._samples_c, filter=f"person == {_lit(name)}")
            self._client.delete(self._people_c, ids=[name])
        return n

    def _import_rows(self, people: list[dict[str, Any]], emb: Embeddings, names: list[str],
                     sources: list[str | None]) -> int:
        existing = self._get_people([p["name"] for p in people])
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
        self._client.insert(self._cohort_c, [{"id": i, "person": "", "source": "", "photo": "", "vector": v.tolist()}
                                             for i, v in zip(ids, embeddings.vectors)])
        return len(ids)

    # ---- reads ----------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._query(self._people_c, f"name != {_lit(_META)}", ["name"]))

    def people(self) -> list[Person]:
        with self._lock:
            rows = self._query(self._people_c, f"name != {_lit(_META)}", ["name", "metadata"])
            counts: dict[str, int] = {}
            for r in self._query(self._samples_c, "id >= 0", ["person"]):
                counts[r["person"]] = counts.get(r["person"], 0) + 1
        return sorted((Person(r["name"], counts.get(r["name"], 0), r["metadata"] or {}) for r in rows),
                      key=lambda p: p.name)

    def person(self, name: str) -> Person:
        with self._lock:
            meta = self._require(name)
            rows = self._query(self._samples_c, f"person == {_lit(name)}", ["id", "source"])
        rows.sort(key=lambda r: r["id"])
        return Person(name, len(rows), meta.get("metadata") or {}, [r["source"] for r in rows if r["source"]])

    def samples(self, name: str | None = None) -> tuple[Embeddings, list[str], list[int]]:
        with self._lock:
            if name is not None:
                self._require(name)
            expr = "id >= 0" if name is None else f"person == {_lit(name)}"
            rows = sorted(self._query(self._samples_c, expr, ["id", "person", "vector"]), key=lambda r: r["id"])
        dim = self.dim or 0
        vec = np.array([r["vector"] for r in rows], np.float32).reshape(len(rows), dim)
        return (Embeddings(vec, self.model_id or "", self.metric or "euclidean"), [r["person"] for r in rows],
                [int(r["id"]) for r in rows])

    def find_photo(self, sha256: str) -> str | None:
        with self._lock:
            rows = self._query(self._samples_c, f"photo == {_lit(sha256)}", ["person"]) if sha256 else []
        return rows[0]["person"] if rows else None

    def _sources_for(self, sample_ids: Sequence[int]) -> list[str]:
        src = {int(r["id"]): r["source"] for r in self._query(self._samples_c, "id >= 0", ["id", "source"])}
        return [src.get(int(i), "") for i in sample_ids]

    def _search(self, collection: str, vectors: np.ndarray, k: int, fields: list[str]) -> list[list[dict[str, Any]]]:
        if not self._client.has_collection(collection):
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
