"""Photos in, names out: :class:`Recognizer` joins a :class:`~faceprint.pipeline.FacePipeline`
and a :class:`~faceprint.gallery.base.Gallery`.

    >>> rec = Recognizer(FacePipeline(), open_gallery("people.db"))
    >>> rec.enroll("ada", ["ada1.jpg", "ada2.jpg"]).enrolled      # photos that passed the gate
    >>> [r.to_record() for r in rec.identify("group.jpg")]        # every face in the photo
    [{"box": [x1, y1, x2, y2], "name": "ada", "distance": 0.31, "candidates": [...]}, ...]

This is the stable surface the CLI, the REST service and the video tools build on.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import ConfigError, FaceprintError
from ..image import ImageInput, describe, load_image
from ..types import AlignedFaces, Faces
from .base import DEFAULT_TOP_K, Gallery
from .quality import QualityGate
from .results import Candidate, Identification

#: Two photos of one person whose vectors are closer than this are taken as the same shot: for
#: dlib_resnet, a re-encoded copy lands at ~0.08 (JPEG q80, same or half size) and 0.10-0.15
#: after heavier re-compression or downscaling to 30%.
DUPLICATE_DISTANCE = 0.12

#: How every duplicate rejection starts (:attr:`EnrollReport.already_enrolled` looks for it).
DUPLICATE_REASON = "duplicate photo"

#: Jittered views averaged into each enrolled face's vector (plain chip + this many small
#: warps and mirrors, :mod:`faceprint.embedders.tta`). Enrollment happens once per photo, so
#: the 5x embedding cost is paid there and queries stay plain: on LFW View 1 (one enrolled
#: photo per person) this raised the open-set DIR at FAR 2% by 1-2 points on both halves
#: (README, Galleries). Jitter 10 gave the same.
ENROLL_JITTER = 4


def enrollment_embedder(embedder: Any, jitter: int = ENROLL_JITTER) -> Any:
    """``embedder`` with ``jitter`` extra jittered views, sharing its loaded model; ``embedder``
    itself when ``jitter`` is 0 or it cannot make such a copy (no ``with_views``)."""
    if jitter <= 0 or not hasattr(embedder, "with_views"):
        return embedder
    getattr(embedder, "session", None)  # load the model once so that the copy shares it
    return embedder.with_views(jitter=jitter)


@dataclass
class EnrollReport:
    """What :meth:`Recognizer.enroll` did with each photo of one person.

    Attributes:
        name: the person.
        enrolled: sources (paths, or ``#i`` for in-memory images) stored as samples.
        rejected: ``(source, reason)`` for photos left out (quality gate, unreadable, duplicate).
        sample_ids: gallery ids of the new samples, row for row with ``enrolled``.
        taken: ``(source, box, faces)`` for each accepted photo that showed several faces: the
            ``xyxy`` box of the face enrolled (its clear subject) and how many faces it showed.
    """

    name: str
    enrolled: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    sample_ids: list[int] = field(default_factory=list)
    taken: list[tuple[str, list[float], int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """At least one photo was enrolled."""
        return bool(self.enrolled)

    @property
    def already_enrolled(self) -> bool:
        """Nothing was enrolled because every photo is already in the gallery (a re-run)."""
        return not self.enrolled and bool(self.rejected) and \
            all(r.startswith(DUPLICATE_REASON) for _s, r in self.rejected)

    def to_dict(self) -> dict[str, Any]:
        """``{"name", "enrolled", "rejected": [{"source", "reason"}], "taken": [{"source", "box", "faces"}]}``."""
        return {"name": self.name, "enrolled": self.enrolled,
                "rejected": [{"source": s, "reason": r} for s, r in self.rejected],
                "taken": [{"source": s, "box": [round(v, 2) for v in box], "faces": n} for s, box, n in self.taken]}


@dataclass(frozen=True)
class FaceResult:
    """One face of a photo and who it is: ``box`` is ``xyxy`` pixels, ``name`` None = unknown;
    ``score`` is what the open-set decision compared with ``threshold``."""

    box: tuple[float, float, float, float]
    name: str | None
    distance: float
    candidates: list[Candidate]
    score: float = float("nan")
    threshold: float = float("nan")

    @classmethod
    def of(cls, box: np.ndarray, ident: Identification) -> FaceResult:
        return cls(tuple(float(v) for v in box), ident.name, ident.distance, ident.candidates,  # type: ignore[arg-type]
                   ident.score, ident.threshold)

    def to_record(self) -> dict[str, Any]:
        """``{"box": [...], "name": str|None, "distance", "score", "threshold",
        "candidates": [{"name", "distance"}]}``."""
        rec = Identification(self.name, self.distance, self.candidates, self.score, self.threshold).to_dict()
        return {"box": [round(v, 2) for v in self.box], **rec}


def _photo_hash(image: ImageInput) -> str | None:
    """SHA-256 of a file's or buffer's bytes (of the pixels for arrays); None if unreadable."""
    h = hashlib.sha256()
    try:
        if isinstance(image, (str, os.PathLike)):
            h.update(Path(image).read_bytes())
        elif isinstance(image, (bytes, bytearray, memoryview)):
            h.update(bytes(image))
        elif isinstance(image, np.ndarray):
            h.update(np.ascontiguousarray(image).tobytes())
        else:
            return None
    except OSError:
        return None
    return h.hexdigest()


class Recognizer:
    """Enroll people from photos and identify every face of a photo.

    Args:
        pipeline: a :class:`~faceprint.pipeline.FacePipeline` whose embedder matches the gallery.
        gallery: any :class:`~faceprint.gallery.base.Gallery` (``open_gallery(...)``).
        gate: the default :class:`QualityGate` for :meth:`enroll`.
        threshold: default open-set threshold for :meth:`identify` (None = the gallery's policy).
        enroll_jitter: jittered views averaged into each enrolled vector (:data:`ENROLL_JITTER`;
            0 = the pipeline's embedder as it is). Queries always use the pipeline's embedder.
    """

    def __init__(self, pipeline: Any, gallery: Gallery, gate: QualityGate | None = None,
                 threshold: float | None = None, enroll_jitter: int = ENROLL_JITTER) -> None:
        if int(enroll_jitter) < 0:
            raise ConfigError(f"enroll_jitter must be >= 0, got {enroll_jitter}")
        self.pipeline, self.gallery = pipeline, gallery
        self.gate = gate if gate is not None else QualityGate()
        self.threshold = threshold
        self.enroll_jitter = int(enroll_jitter)
        self._enroll_embedder: Any = None

    @property
    def enroll_embedder(self) -> Any:
        """The embedder enrollment uses: the pipeline's with :attr:`enroll_jitter` views."""
        if self._enroll_embedder is None:
            self._enroll_embedder = enrollment_embedder(self.pipeline.embedder, self.enroll_jitter)
        return self._enroll_embedder

    # ---- enrollment ---------------------------------------------------------------------------------
    def enroll(self, name: str, images: Sequence[ImageInput], *, gate: QualityGate | None = None,
               metadata: dict[str, Any] | None = None, keep_crops: bool = False, dedupe: bool = True,
               on_image: Callable[[int], None] | None = None,
               sources: Sequence[str] | None = None) -> EnrollReport:
        """Add the photos of one person that pass the quality gate, in one transaction.

        Each photo must show one face, or a clear subject among several (see
        :class:`QualityGate`; :attr:`EnrollReport.taken` says which face was taken);
        unreadable photos, rejected ones and duplicates (a photo already enrolled, or a second
        copy of the same shot) are listed in :attr:`EnrollReport.rejected` instead of raising.
        ``keep_crops`` stores the aligned chips (off by default: privacy) so the gallery can
        be re-embedded with another model later. ``sources`` names the photos in the report and
        the gallery (default: their paths, ``#i`` for in-memory images).

        Raises:
            ModelMismatchError: the pipeline's model differs from the gallery's.
            ConfigError: ``sources`` does not name every image.
        """
        gate = gate if gate is not None else self.gate
        report = EnrollReport(name)
        if sources is not None and len(sources) != len(images):
            raise ConfigError(f"{len(sources)} source names for {len(images)} images")
        names, chips, sources, hashes = sources, [], [], []
        for i, image in enumerate(images):
            src = (names[i] if names is not None else describe(image) if isinstance(image, (str, os.PathLike))
                   else f"#{i}")
            self._screen(image, src, gate, dedupe, hashes, report, chips, sources)
            if on_image is not None:
                on_image(i)
        if not chips:
            return report
        emb = self.enroll_embedder.embed(AlignedFaces(np.stack(chips), self.pipeline.aligner.template))
        keep = self._drop_near_duplicates(name, emb.vectors, sources, report) if dedupe else list(range(len(emb)))
        if not keep:
            return report
        rows = dict(sources=[sources[i] for i in keep], crops=np.stack([chips[i] for i in keep]) if keep_crops else None,
                    metadata=metadata, template=self.pipeline.aligner.template)
        if dedupe:  # the photo check again, inside the write (another enroller may have stored it meanwhile)
            ids, known = self.gallery.add_new_faces(name, emb[np.array(keep)], hashes=[hashes[i] for i in keep],
                                                    **rows)
            report.rejected += [(sources[keep[j]], f"{DUPLICATE_REASON} (already enrolled as {owner!r})")
                                for j, owner in sorted(known.items())]
            keep = [k for j, k in enumerate(keep) if j not in known]
        else:
            ids = self.gallery.add_faces(name, emb[np.array(keep)], hashes=[hashes[i] for i in keep], **rows)
        report.enrolled = [sources[i] for i in keep]
        report.taken = [t for t in report.taken if t[0] in report.enrolled]
        report.sample_ids = ids
        return report

    def _screen(self, image: ImageInput, src: str, gate: QualityGate, dedupe: bool, hashes: list[str | None],
                report: EnrollReport, chips: list[np.ndarray], sources: list[str]) -> None:
        """Load, hash, detect, gate; append the accepted chip or a rejection."""
        digest = _photo_hash(image)
        if dedupe and digest is not None:
            owner = self.gallery.find_photo(digest)
            if owner is not None or digest in hashes:
                who = f"enrolled as {owner!r}" if owner is not None else "listed twice"
                report.rejected.append((src, f"{DUPLICATE_REASON} (already {who})"))
                return
        try:
            rgb = load_image(image)
            faces = self.pipeline.detect(rgb)
            index, reason = gate.subject(faces, rgb.shape)
            chip = self.pipeline.aligner.align(rgb, faces[index]).chips[0] if index is not None else None
        except FaceprintError as exc:
            report.rejected.append((src, str(exc).replace(f"{src}: ", "")))
            return
        if index is not None:
            reason = gate.check(faces, chip, index)
        if reason is not None:
            report.rejected.append((src, reason))
            return
        if len(faces) > 1:
            report.taken.append((src, [float(v) for v in faces.xyxy[index]], len(faces)))
        chips.append(chip)
        sources.append(src)
        hashes.append(digest)

    def _drop_near_duplicates(self, name: str, vectors: np.ndarray, sources: list[str],
                              report: EnrollReport) -> list[int]:
        """Indices of ``vectors`` that are not copies of each other or of the person's stored samples."""
        from .scoring import distances

        try:
            stored = self.gallery.samples(name)[0].vectors
        except FaceprintError:
            stored = np.zeros((0, vectors.shape[1]), np.float32)
        keep: list[int] = []
        metric = self.pipeline.spec.metric
        for i, v in enumerate(vectors):
            pool = np.concatenate([stored, vectors[keep]]) if keep else stored
            if len(pool) and float(distances(v[None], pool, metric).min()) < DUPLICATE_DISTANCE:
                report.rejected.append((sources[i], f"{DUPLICATE_REASON} (same shot as an enrolled photo)"))
            else:
                keep.append(i)
        return keep

    def enroll_folders(self, root: str | Path, **kwargs: Any) -> list[EnrollReport]:
        """Enroll ``root/<name>/*`` for every sub-folder (sorted); one transaction per person.

        Files that are not images are reported as rejected; an empty sub-folder gives a report
        with nothing enrolled. ``kwargs`` go to :meth:`enroll`.

        Raises:
            ConfigError: ``root`` is not a folder or has no sub-folders.
        """
        return [self.enroll(name, files, **kwargs) for name, files in person_folders(root)]

    def add_cohort(self, images: Sequence[ImageInput]) -> int:
        """Store every face of ``images`` as cohort faces (people who will never be enrolled);
        they sharpen the unknown decision (see :mod:`faceprint.gallery.scoring`). Returns the count.

        Raises:
            ImageDecodeError: an image cannot be read.
            GalleryError: the backend keeps no cohort.
        """
        found = self.pipeline.embed_many(list(images))
        vectors = [f.embeddings.vectors for f in found if len(f)]
        if not vectors:
            return 0
        from ..types import Embeddings

        return self.gallery.add_cohort(Embeddings(np.concatenate(vectors), self.pipeline.spec.model_id,
                                                  self.pipeline.spec.metric))

    # ---- identification -------------------------------------------------------------------------------
    def identify(self, image: ImageInput, threshold: float | None = None,
                 top_k: int = DEFAULT_TOP_K) -> list[FaceResult]:
        """Every face of ``image`` (largest first) with its identity or ``None`` (unknown).

        Raises:
            ImageDecodeError: the image cannot be read.
            ModelMismatchError: the pipeline's model differs from the gallery's.
        """
        found = self.pipeline.embed(image)
        return self.identify_faces(found.faces, found.embeddings, threshold, top_k)

    def identify_faces(self, faces: Faces, embeddings: Any, threshold: float | None = None,
                       top_k: int = DEFAULT_TOP_K) -> list[FaceResult]:
        """Identify already embedded faces (row ``i`` of ``embeddings`` is face ``i``), e.g. video tracks.

        Without a threshold, registered models use the gallery's calibrated open-set policy;
        models loaded from a path (no calibration) use the pipeline's distance threshold.
        """
        thr = threshold if threshold is not None else self.threshold
        if thr is None:
            from .scoring import model_spec

            if model_spec(self.gallery.model_id or "") is None:  # a model from a path: its spec's threshold
                thr = self.pipeline.threshold
        idents = self.gallery.identify(embeddings, threshold=thr, top_k=top_k)
        return [FaceResult.of(faces.xyxy[i], ident) for i, ident in enumerate(idents)]


def known_people(root: Path) -> list[tuple[str, list[Path]]]:
    """``[(name, files)]`` of known people: ``DIR/<name>/*`` folders, or face_recognition's layout
    ``DIR/<name>.jpg`` (one photo each), or both.

    Raises:
        ConfigError: ``root`` is not a folder or holds neither.
    """
    if not root.is_dir():
        raise ConfigError(f"{root}: not a folder")
    files = sorted(f for f in root.iterdir() if f.is_file() and not f.name.startswith("."))
    people = [(f.stem, [f]) for f in files]
    if any(d.is_dir() for d in root.iterdir()):
        people += person_folders(root)
    if not people:
        raise ConfigError(f"{root}: no known people (expected DIR/<name>.jpg or DIR/<name>/<photos>)")
    return people


def person_folders(root: str | Path) -> list[tuple[str, list[Path]]]:
    """``[(name, files)]`` for each sub-folder of ``root`` (hidden entries skipped, sorted).

    Raises:
        ConfigError: ``root`` is not a folder or holds no sub-folders.
    """
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: not a folder (expected DIR/<name>/<photos>)")
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not dirs:
        raise ConfigError(f"{root}: no person sub-folders (expected DIR/<name>/<photos>)")
    return [(d.name, sorted(f for f in d.iterdir() if f.is_file() and not f.name.startswith("."))) for d in dirs]
