"""Galleries of enrolled people: one-shot enrollment, open-set identification, persistent stores.

    >>> from faceprint.gallery import open_gallery, Recognizer
    >>> gallery = open_gallery("people.db")          # SQLite (created if missing)
    >>> rec = Recognizer(FacePipeline(), gallery)
    >>> rec.enroll("ada", ["ada.jpg"])
    >>> [face.to_record() for face in rec.identify("party.jpg")]

Backends share the :class:`Gallery` interface: :class:`~faceprint.gallery.sqlite.SqliteGallery`
(the default, one file) and :class:`~faceprint.gallery.milvus.MilvusGallery`
(``milvus://host:port`` or a ``*.milvus.db`` milvus-lite file; ``pip install 'faceprint[scale]'``) and
:class:`~faceprint.gallery.postgres.PostgresGallery` (``postgresql://...``; ``pip install 'faceprint[postgres]'``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import GalleryError
from .base import Gallery
from .quality import QualityGate
from .recognizer import EnrollReport, FaceResult, Recognizer
from .results import Candidate, Identification, Match, Person
from .scoring import OpenSetPolicy


#: Gallery backend per kind of ``--db`` (:data:`faceprint.dburi.KINDS`): ``"module:Class"``,
#: imported only when a gallery of that kind is opened.
BACKENDS: dict[str, str] = {
    "sqlite": ".sqlite:SqliteGallery",
    "milvus-lite": ".milvus:MilvusGallery",
    "milvus": ".milvus:MilvusGallery",
    "postgresql": ".postgres:PostgresGallery",
}


def open_gallery(uri: str | Path, *, model_id: str | None = None, metric: str | None = None,
                 **options: Any) -> Gallery:
    """Open (creating when missing) the gallery at ``uri``.

    ``uri`` is a file path or ``sqlite:///path`` (SQLite), ``milvus://host:port[/collection]``
    (a Milvus server), a path ending in ``.milvus.db`` (embedded milvus-lite) or
    ``postgresql://user:pass@host:port/db`` (PostgreSQL + pgvector); see :mod:`faceprint.dburi`. ``model_id``
    and ``metric`` fix the gallery's model up front (otherwise the first vectors added do);
    ``options`` go to the backend (e.g. ``dtype="int8"``, ``ann="on"``, ``policy=...``).

    Raises:
        GalleryError: the URI scheme is unknown or the store cannot be opened.
        ModelMismatchError: the store holds another model's vectors.
    """
    from importlib import import_module

    from ..dburi import parse_db

    target = parse_db(uri)
    module, _, name = BACKENDS[target.kind].partition(":")
    backend = getattr(import_module(module, __package__), name)
    where = target.path if target.kind == "sqlite" else target.text
    return backend(where, model_id=model_id, metric=metric, **options)


__all__ = [
    "Candidate",
    "EnrollReport",
    "FaceResult",
    "Gallery",
    "GalleryError",
    "Identification",
    "Match",
    "OpenSetPolicy",
    "Person",
    "QualityGate",
    "Recognizer",
    "open_gallery",
]
