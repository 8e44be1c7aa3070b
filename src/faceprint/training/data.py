"""Training data: a folder of identities, aligned once with faceprint's own pipeline.

Layout: ``DIR/<identity>/*.jpg`` (any format in ``faceprint.image.IMAGE_SUFFIXES``), one folder per
person. :func:`scan_identities` reads the layout, :func:`align_identities` turns every image
into one chip of the model's template (the detected face nearest the image centre, else the
centre fallback that ``faceprint eval`` uses) and caches the chips in the faceprint cache, so
a second run starts at once. :func:`split_identities` holds out whole identities for
validation, and :class:`PKSampler` draws identity-balanced ``P x K`` batches.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..errors import TrainingDataError
from ..image import IMAGE_SUFFIXES
from ..registry import DEFAULT_DETECTOR


@dataclass
class IdentityFolder:
    """The images of a training folder, one label per image.

    Attributes:
        root: the folder.
        names: identity names ``(C,)``, sorted; label ``i`` is ``names[i]``.
        paths: image paths ``(N,)``, grouped by identity.
        labels: ``(N,)`` int64 identity labels.
    """

    root: Path
    names: list[str]
    paths: list[Path]
    labels: np.ndarray

    def counts(self) -> np.ndarray:
        """Images per identity ``(C,)``."""
        return np.bincount(self.labels, minlength=len(self.names))


def scan_identities(root: str | Path, min_images: int = 1) -> IdentityFolder:
    """Read ``root/<identity>/<image>`` into an :class:`IdentityFolder`.

    Identities with fewer than ``min_images`` images are left out (e.g. ``min_images=2`` for
    losses that need a positive pair).

    Raises:
        TrainingDataError: ``root`` is not a folder, holds loose images or no identity
            folders, an identity folder holds no image, or fewer than 2 identities keep
            ``min_images`` images.
    """
    root = Path(root)
    if not root.is_dir():
        raise TrainingDataError(f"training data folder not found: {root}")
    loose = [p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if loose:
        raise TrainingDataError(f"{root}: images must sit in one folder per identity (DIR/<name>/*.jpg); "
                                f"found loose images such as {loose[0]!r}")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise TrainingDataError(f"{root}: no identity folders (expected DIR/<name>/*.jpg)")
    names: list[str] = []
    paths: list[Path] = []
    labels: list[int] = []
    for folder in folders:
        images = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise TrainingDataError(f"identity folder {folder} holds no image "
                                    f"({', '.join(sorted(IMAGE_SUFFIXES))}); remove it or add images")
        if len(images) < min_images:
            continue
        labels += [len(names)] * len(images)
        names.append(folder.name)
        paths += images
    if len(names) < 2:
        raise TrainingDataError(f"{root}: {len(names)} identit{'y' if len(names) == 1 else 'ies'} with at least "
                                f"{min_images} image(s); training needs at least 2")
    return IdentityFolder(root, names, paths, np.asarray(labels, np.int64))


@dataclass
class ChipSet:
    """Aligned chips with identity labels.

    Attributes:
        chips: ``(N, S, S, 3)`` uint8 RGB chips of ``template``.
        labels: ``(N,)`` int64 labels indexing ``names``.
        names: identity names.
        template: the alignment template of the chips.
        no_face: ``(N,)`` bool, True where no face was detected and the centre fallback was cut.
    """

    chips: np.ndarray
    labels: np.ndarray
    names: list[str]
    template: str
    no_face: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: np.ndarray) -> ChipSet:
        """The rows where ``mask`` holds, labels renumbered ``0..C'-1`` in the same order."""
        mask = np.asarray(mask, bool)
        kept = np.unique(self.labels[mask])
        remap = np.full(len(self.names), -1, np.int64)
        remap[kept] = np.arange(len(kept))
        return ChipSet(self.chips[mask], remap[self.labels[mask]], [self.names[i] for i in kept],
                       self.template, self.no_face[mask])

    def counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=len(self.names))


def _cache_key(folder: IdentityFolder, template: str, detector: str) -> str:
    digest = hashlib.sha1(f"{template}|{detector}|{folder.root.resolve()}".encode())
    for path in folder.paths:
        stat = path.stat()
        digest.update(f"{path.relative_to(folder.root)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _align_one(detector: Any, aligner: Any, path: Path) -> tuple[np.ndarray, bool]:
    """The chip of the face nearest the centre (as ``faceprint eval``), else of the centre fallback."""
    from ..evaluation.lfw import centre_face, centre_fallback
    from ..image import load_image

    rgb = load_image(path)
    faces = detector.detect(rgb)
    if len(faces):
        return aligner.align(rgb, faces[centre_face(faces, rgb.shape[:2])]).chips[0], False
    return aligner.align(rgb, centre_fallback(rgb.shape[:2])).chips[0], True


def align_identities(folder: IdentityFolder, template: str, detector: str = DEFAULT_DETECTOR, aligned: bool = False,
                     cache: bool = True, on_image: Callable[[int], None] | None = None) -> ChipSet:
    """One chip per image of ``folder``, cut for ``template``.

    Args:
        template: a key of :data:`faceprint.spec.TEMPLATES` (the backbone's).
        detector: detector name or path for :func:`faceprint.create_detector`.
        aligned: the images already are chips of the template's size (no detection).
        cache: keep the chips in the faceprint cache, keyed by the files' names, sizes and
            times, the template and the detector.
        on_image: called with each image's index once it is done (progress bars).

    Raises:
        ImageDecodeError: an image cannot be read.
        TrainingDataError: with ``aligned``, an image is not a chip of the template's size.
    """
    from ..spec import TEMPLATES

    size = TEMPLATES[template]
    target = None
    if cache and not aligned:
        from ..cache import cache_dir

        target = cache_dir() / "training-chips" / f"{_cache_key(folder, template, detector)}.npz"
        if target.is_file():
            with np.load(target) as saved:
                return ChipSet(saved["chips"], folder.labels.copy(), list(folder.names), template, saved["no_face"])
    chips = np.zeros((len(folder.paths), size, size, 3), np.uint8)
    no_face = np.zeros(len(folder.paths), bool)
    if aligned:
        from ..image import load_image

        for i, path in enumerate(folder.paths):
            rgb = load_image(path)
            if rgb.shape[:2] != (size, size):
                raise TrainingDataError(f"{path}: expected an aligned {size}x{size} chip ({template}), "
                                        f"got {rgb.shape[1]}x{rgb.shape[0]}")
            chips[i] = rgb
            if on_image is not None:
                on_image(i)
    else:
        from ..align import create_aligner
        from ..registry import create_detector

        det, aligner = create_detector(detector), create_aligner(template)
        for i, path in enumerate(folder.paths):
            chips[i], no_face[i] = _align_one(det, aligner, path)
            if on_image is not None:
                on_image(i)
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".part.npz")
        np.savez(tmp, chips=chips, no_face=no_face)
        tmp.replace(target)
    return ChipSet(chips, folder.labels.copy(), list(folder.names), template, no_face)


def split_identities(labels: np.ndarray, val_fraction: float, seed: int = 0,
                     min_val_images: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Identity-disjoint split: boolean masks ``(train, val)`` over the rows of ``labels``.

    About ``val_fraction`` of the identities with at least ``min_val_images`` images (so that
    each gives genuine pairs) go to validation; every other identity trains.

    Raises:
        TrainingDataError: ``val_fraction`` outside ``(0, 1)``, or the split leaves fewer than
            2 identities on either side.
    """
    if not 0.0 < val_fraction < 1.0:
        raise TrainingDataError(f"the validation fraction must be in (0, 1), got {val_fraction}")
    labels = np.asarray(labels)
    ids, counts = np.unique(labels, return_counts=True)
    eligible = ids[counts >= min_val_images]
    n_val = int(round(val_fraction * len(ids)))
    n_val = min(n_val, len(eligible), len(ids) - 2)
    if n_val < 2:
        raise TrainingDataError(f"cannot hold out 2 identities with >= {min_val_images} images for validation "
                                f"and keep 2 for training ({len(ids)} identities, {len(eligible)} eligible)")
    rng = np.random.default_rng(seed)
    val_ids = rng.choice(eligible, size=n_val, replace=False)
    val = np.isin(labels, val_ids)
    return ~val, val


class PKSampler:
    """Identity-balanced batches: ``p`` identities, ``k`` images of each.

    Identities are visited in a fresh random order each epoch; an identity with fewer than
    ``k`` images repeats some (augmentation makes the repeats differ). One epoch has
    ``len(self)`` batches: about as many images as the set holds.

    Args:
        labels: ``(N,)`` identity labels.
        p: identities per batch (at least 2, at most the number of identities).
        k: images per identity (at least 1).
        min_per_identity: identities with fewer images are never drawn (2 for losses that
            need positive pairs).
        seed: random seed; :meth:`set_epoch` varies it per epoch so resumed runs repeat batches.

    Raises:
        TrainingDataError: fewer than ``p`` usable identities, or ``p < 2`` / ``k < 1``.
    """

    def __init__(self, labels: np.ndarray, p: int, k: int, min_per_identity: int = 1, seed: int = 0) -> None:
        if p < 2 or k < 1:
            raise TrainingDataError(f"a P x K batch needs p >= 2 and k >= 1, got p={p}, k={k}")
        self.labels = np.asarray(labels)
        self.p, self.k, self.seed = int(p), int(k), int(seed)
        ids, counts = np.unique(self.labels, return_counts=True)
        self.identities = ids[counts >= min_per_identity]
        if len(self.identities) < self.p:
            raise TrainingDataError(f"{len(self.identities)} identities have >= {min_per_identity} image(s); "
                                    f"a batch needs p={self.p}")
        self._rows = {int(i): np.flatnonzero(self.labels == i) for i in self.identities}
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n_rows = sum(len(r) for r in self._rows.values())
        return max(1, n_rows // (self.p * self.k))

    def __iter__(self) -> Iterator[np.ndarray]:
        rng = np.random.default_rng((self.seed, self.epoch))
        order = rng.permutation(self.identities)
        pos = 0
        for _ in range(len(self)):
            if pos + self.p > len(order):
                order, pos = rng.permutation(self.identities), 0
            batch = []
            for ident in order[pos:pos + self.p]:
                rows = self._rows[int(ident)]
                batch.append(rng.choice(rows, size=self.k, replace=len(rows) < self.k))
            pos += self.p
            yield np.concatenate(batch)


__all__ = ["ChipSet", "IdentityFolder", "PKSampler", "align_identities", "scan_identities", "split_identities"]
