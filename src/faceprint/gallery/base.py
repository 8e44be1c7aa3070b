"""The :class:`Gallery` interface every backend implements (results: :mod:`faceprint.gallery.results`).

A gallery holds people (a unique name, optional JSON metadata) with face samples: one
embedding each, tied to the gallery's model id, optionally with the source path and the
aligned crop. Backends implement storage and nearest-sample search
(:meth:`Gallery._neighbours`, :meth:`Gallery._person_vectors`); identification (per-identity
aggregation, the open-set decision, the margin test) is shared and lives in
:mod:`faceprint.gallery.scoring`.
"""

from __future__ import annotations

import abc
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError, GalleryError, ModelMismatchError
from ..types import Embeddings
from .results import Identification, Match, Person
from .scoring import OpenSetPolicy, identify_rows

#: ``export``/``import_`` file format version.
EXPORT_FORMAT = 1

#: Candidates listed per face by identify, in the library, the CLI (--top-k) and the service (top_k).
DEFAULT_TOP_K = 5


def check_sample_rows(n: int, sources: Sequence[Any] | None, crops: np.ndarray | None,
                      hashes: Sequence[Any] | None) -> int:
    """``n`` when the per-sample lists of :meth:`Gallery.add_faces` fit ``n`` embeddings.

    Raises:
        ConfigError: a list of another length, or crops that are not ``(N, H, W, 3)`` chips.
    """
    for label, seq in (("sources", sources), ("crops", crops), ("hashes", hashes)):
        if seq is not None and len(seq) != n:
            raise ConfigError(f"{label} has {len(seq)} entries for {n} embeddings")
    if crops is not None and (np.ndim(crops) != 4 or np.shape(crops)[-1] != 3):
        raise ConfigError(f"crops must be (N, H, W, 3) uint8 chips, got shape {np.shape(crops)}")
    return n


class Gallery(abc.ABC):
    """A persistent set of enrolled people and their face vectors.

    Every vector is tied to the gallery's ``model_id`` and ``metric`` (fixed by the first
    vectors added, or by ``open_gallery(model_id=...)``); adding or searching with another
    model's :class:`~faceprint.types.Embeddings` raises :class:`ModelMismatchError`.
    Backends raise :class:`~faceprint.errors.PersonNotFoundError` for unknown names,
    :class:`~faceprint.errors.PersonExistsError` for taken ones and
    :class:`~faceprint.errors.GalleryError` for storage failures. Writes are transactions:
    on error nothing of the call is stored.
    """

    model_id: str | None
    metric: str | None
    dim: int | None

    # ---- people -------------------------------------------------------------------------
    @abc.abstractmethod
    def add_person(self, name: str, metadata: dict[str, Any] | None = None) -> None:
        """Create a person with no samples. Raises PersonExistsError, ConfigError (empty name)."""

    @abc.abstractmethod
    def add_faces(self, name: str, embeddings: Embeddings, *, sources: Sequence[str | None] | None = None,
                  crops: np.ndarray | None = None, create: bool = True, hashes: Sequence[str | None] | None = None,
                  metadata: dict[str, Any] | None = None, template: str = "") -> list[int]:
        """Store ``embeddings`` (``(N, D)``) as samples of ``name``; returns the N new sample ids.

        ``sources[i]`` (a path or label), ``crops[i]`` (an aligned ``(H, W, 3)`` uint8 chip in
        alignment ``template``; backends without crop storage ignore it) and ``hashes[i]`` (the
        photo's SHA-256, see :meth:`find_photo`) are kept beside vector ``i`` when given. The
        person is created (with ``metadata``) when missing unless ``create`` is false.
        All-or-nothing: one transaction.

        Raises:
            ModelMismatchError: the vectors come from another model than the gallery's.
            PersonNotFoundError: ``name`` is unknown and ``create`` is false.
            ConfigError: ``sources``/``crops`` lengths differ from ``len(embeddings)``.
        """

    def add_new_faces(self, name: str, embeddings: Embeddings, *, hashes: Sequence[str | None],
                      **kwargs: Any) -> tuple[list[int], dict[int, str]]:
        """:meth:`add_faces` for the rows whose photo (``hashes[i]``, see :meth:`find_photo`) no
        stored sample comes from; returns the new ids and ``{row: owner's name}`` of the rows left out.

        Backends with write transactions check inside the transaction that stores the rows (so
        concurrent enrollers of one photo store it once); this default checks just before it.
        ``kwargs`` are :meth:`add_faces`'s (``sources``, ``crops``, ...), row for row.
        """
        known = {i: owner for i, h in enumerate(hashes) if h is not None and (owner := self.find_photo(h))}
        keep = [i for i in range(len(embeddings)) if i not in known]
        if not keep:
            return [], known
        rows = {k: (v if k not in ("sources", "crops") or v is None else [v[i] for i in keep])
                for k, v in kwargs.items()}
        if rows.get("crops") is not None:
            rows["crops"] = np.stack(rows["crops"])
        ids = self.add_faces(name, embeddings[np.array(keep)], hashes=[hashes[i] for i in keep], **rows)
        return ids, known

    @abc.abstractmethod
    def people(self) -> list[Person]:
        """Every person, sorted by name."""

    @abc.abstractmethod
    def person(self, name: str) -> Person:
        """One person. Raises PersonNotFoundError."""

    @abc.abstractmethod
    def rename(self, old: str, new: str) -> None:
        """Rename a person. Raises PersonNotFoundError, PersonExistsError."""

    @abc.abstractmethod
    def merge(self, src: str, dst: str) -> int:
        """Move every sample of ``src`` to ``dst`` and delete ``src``; returns samples moved.

        Raises PersonNotFoundError for either name, ConfigError when they are the same."""

    @abc.abstractmethod
    def remove(self, name: str) -> int:
        """Delete a person with every vector and crop; returns the samples deleted."""

    @abc.abstractmethod
    def samples(self, name: str | None = None) -> tuple[Embeddings, list[str], list[int]]:
        """Stored vectors (of one person, or all), with their owners' names and sample ids."""

    def find_photo(self, sha256: str) -> str | None:
        """The person holding a sample from the photo with this SHA-256, or None."""
        return None

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of people."""

    def sample_count(self) -> int:
        """Number of stored face vectors (backends answer without reading them)."""
        return len(self.samples()[2])

    def close(self) -> None:
        """Release files and connections (persisting any ANN index)."""

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- search backends implement -------------------------------------------------------
    @abc.abstractmethod
    def _neighbours(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
        """The ``k`` nearest samples of each query: distances ``(Q, k)`` float (``inf`` pad),
        sample ids ``(Q, k)`` int64 (``-1`` pad) and owner names per row."""

    def _cohort_neighbours(self, vectors: np.ndarray, k: int) -> np.ndarray:
        """``(Q, <=k)`` distances to the nearest cohort faces (none by default)."""
        return np.zeros((len(vectors), 0), np.float32)

    def add_cohort(self, embeddings: Embeddings) -> int:
        """Store faces of people who will never be enrolled, for score normalisation.

        Raises GalleryError when the backend keeps no cohort."""
        raise GalleryError(f"{type(self).__name__} does not store a cohort")

    def _person_vectors(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        """``{name: (n_i, D) float32}`` for re-scoring shortlisted identities."""
        out = {}
        for name in names:
            out[name] = self.samples(name)[0].vectors
        return out

    # ---- shared logic ----------------------------------------------------------------------
    def check_model(self, embeddings: Embeddings) -> None:
        """Raise ModelMismatchError unless ``embeddings`` match the gallery's model, metric and size."""
        if not isinstance(embeddings, Embeddings):
            raise ConfigError(f"expected faceprint.Embeddings, got {type(embeddings).__name__}")
        if self.model_id is None:
            return
        if (embeddings.model_id, embeddings.metric) != (self.model_id, self.metric) or \
                (self.dim is not None and embeddings.dim != self.dim):
            raise ModelMismatchError(
                f"gallery holds {self.model_id!r} vectors ({self.metric}, dim {self.dim}); got "
                f"{embeddings.model_id!r} ({embeddings.metric}, dim {embeddings.dim}); re-embed with the "
                f"gallery's model or `reindex` the gallery")

    def search(self, embeddings: Embeddings, k: int = 5) -> list[list[Match]]:
        """The ``k`` nearest samples (not identities) of each query vector, nearest first.

        Raises:
            ModelMismatchError: the queries come from another model.
        """
        self.check_model(embeddings)
        if len(embeddings) == 0 or k < 1:
            return [[] for _ in range(len(embeddings))]
        dist, ids, names = self._neighbours(embeddings.vectors, int(k))
        return [[Match(n, float(d), int(i)) for d, i, n in zip(dr, ir, nr) if i >= 0]
                for dr, ir, nr in zip(dist, ids, names)]

    def identify(self, embeddings: Embeddings, *, threshold: float | None = None, top_k: int = DEFAULT_TOP_K,
                 policy: Any = None) -> list[Identification]:
        """Who is each query face? One :class:`Identification` per row of ``embeddings``.

        Candidates are identities (each scored by ``policy.aggregation`` over its samples).
        With ``threshold=None`` the best one is accepted when its cohort-normalised score
        passes the policy's calibrated ratio threshold (see
        :mod:`faceprint.gallery.scoring`); a ``threshold`` is a plain distance threshold.
        The margin test against the second best applies either way; a rejected face gets
        ``name=None`` (unknown).

        Raises:
            ModelMismatchError: the queries come from another model.
            ConfigError: ``top_k < 1``.
        """

        if top_k < 1:
            raise ConfigError(f"top_k must be >= 1, got {top_k}")
        self.check_model(embeddings)
        pol = policy if policy is not None else getattr(self, "policy", None) or OpenSetPolicy()
        return identify_rows(self, embeddings, pol, threshold, top_k)

    # ---- export / import ----------------------------------------------------------------
    def export(self, path: str | Path) -> int:
        """Write every person and vector to a portable ``.npz`` file; returns samples written."""
        emb, names, _ids = self.samples()
        people = [p.to_dict() for p in self.people()]
        header = {"format": EXPORT_FORMAT, "model_id": self.model_id, "metric": self.metric, "people": people}
        srcs = self._sources_for(_ids)
        with open(path, "wb") as fh:
            np.savez_compressed(fh, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
                                vectors=emb.vectors, names=np.array(names, dtype=str),
                                sources=np.array(srcs, dtype=str))
        return len(emb)

    def _sources_for(self, sample_ids: Sequence[int]) -> list[str]:
        return [""] * len(sample_ids)

    def import_(self, path: str | Path) -> int:
        """Add the people and vectors of an :meth:`export` file; returns samples added.

        Raises:
            GalleryError: the file is not a faceprint export.
            PersonExistsError: a person in the file already exists here (nothing is imported).
            ModelMismatchError: the file holds another model's vectors.
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(bytes(data["header"]).decode())
                vectors, names, sources = data["vectors"], [str(n) for n in data["names"]], list(data["sources"])
        except (OSError, KeyError, ValueError) as exc:
            raise GalleryError(f"{path}: not a faceprint gallery export ({exc})") from exc
        if header.get("format") != EXPORT_FORMAT:
            raise GalleryError(f"{path}: unsupported export format {header.get('format')!r}")
        emb = Embeddings(vectors.reshape(len(names), -1), header["model_id"] or "", header["metric"] or "euclidean")
        people = header["people"]
        return self._import_rows(people, emb, names, [str(s) or None for s in sources])

    @abc.abstractmethod
    def _import_rows(self, people: list[dict[str, Any]], emb: Embeddings, names: list[str],
                     sources: list[str | None]) -> int:
        """Insert people and their samples in one transaction (PersonExistsError if any exists)."""
