"""Training data: folder layout errors, alignment through faceprint's pipeline (cached),
identity-disjoint splits, P x K sampler balance, augmentation."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from faceprint.errors import TrainingDataError
from faceprint.training.data import PKSampler, align_identities, scan_identities, split_identities

from .conftest import shared


def write_chip(path, value: int = 128, size: int = 150) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)


def test_scan_reads_identities_and_skips_small_ones(tmp_path) -> None:
    for name, n in (("ann", 3), ("bob", 1), ("cy", 2)):
        for i in range(n):
            write_chip(tmp_path / name / f"{i}.jpg", 10 * i)
    (tmp_path / "ann" / "notes.txt").write_text("not an image")
    folder = scan_identities(tmp_path)
    assert folder.names == ["ann", "bob", "cy"] and folder.counts().tolist() == [3, 1, 2]
    assert folder.labels.tolist() == [0, 0, 0, 1, 2, 2]
    assert scan_identities(tmp_path, min_images=2).names == ["ann", "cy"]


@pytest.mark.parametrize("layout,fragment", [
    ({"ann": 2, "empty": 0}, "holds no image"),
    ({"ann": 2}, "training needs at least 2"),
    ({}, "no identity folders"),
])
def test_scan_rejects_bad_layouts(tmp_path, layout: dict, fragment: str) -> None:
    for name, n in layout.items():
        (tmp_path / name).mkdir()
        for i in range(n):
            write_chip(tmp_path / name / f"{i}.png")
    with pytest.raises(TrainingDataError, match=fragment):
        scan_identities(tmp_path)


def test_scan_rejects_loose_images_and_missing_folders(tmp_path) -> None:
    with pytest.raises(TrainingDataError, match="not found"):
        scan_identities(tmp_path / "nope")
    write_chip(tmp_path / "loose.jpg")
    with pytest.raises(TrainingDataError, match="one folder per identity"):
        scan_identities(tmp_path)


def test_aligned_chips_must_have_the_template_size(tmp_path) -> None:
    write_chip(tmp_path / "ann" / "0.jpg", size=112)
    write_chip(tmp_path / "bob" / "0.jpg")
    with pytest.raises(TrainingDataError, match="expected an aligned 150x150 chip"):
        align_identities(scan_identities(tmp_path), "dlib_150", aligned=True)
    (tmp_path / "ann" / "0.jpg").unlink()
    write_chip(tmp_path / "ann" / "0.jpg")
    chips = align_identities(scan_identities(tmp_path), "dlib_150", aligned=True)
    assert chips.chips.shape == (2, 150, 150, 3) and chips.labels.tolist() == [0, 1]


def test_alignment_uses_the_pipeline_and_is_cached(tmp_path, monkeypatch) -> None:
    import shutil

    root = tmp_path / "train"
    shutil.copytree(shared("people", "knn_examples", "train"), root)
    folder = scan_identities(root)
    seen: list[int] = []
    chips = align_identities(folder, "dlib_150", on_image=seen.append)
    assert chips.chips.shape == (len(folder.paths), 150, 150, 3) and chips.chips.dtype == np.uint8
    assert seen == list(range(len(folder.paths))) and not chips.no_face.any()
    # the chip is the one the default pipeline cuts for the image's face
    from faceprint.pipeline import FacePipeline

    pipe = FacePipeline()
    expected = pipe.align(folder.paths[0]).chips[0]
    assert np.abs(chips.chips[0].astype(int) - expected.astype(int)).max() <= 1
    import faceprint.registry

    def no_detector(*_a: object, **_k: object) -> None:
        raise AssertionError("a cached alignment ran the detector again")

    monkeypatch.setattr(faceprint.registry, "create_detector", no_detector)
    again_seen: list[int] = []
    again = align_identities(folder, "dlib_150", on_image=again_seen.append)  # served from the cache
    assert again_seen == []
    monkeypatch.undo()
    assert np.array_equal(again.chips, chips.chips)
    from faceprint.cache import cache_dir

    cached = list((cache_dir() / "training-chips").glob("*.npz"))
    assert cached
    # a changed file invalidates the cache key
    from faceprint.training.data import _cache_key

    assert _cache_key(folder, "dlib_150", "mtcnn") in {p.stem for p in cached}
    os.utime(folder.paths[0], ns=(1, 1))
    assert _cache_key(folder, "dlib_150", "mtcnn") not in {p.stem for p in cached}


def test_split_is_identity_disjoint_and_seeded() -> None:
    labels = np.repeat(np.arange(40), [1 + i % 5 for i in range(40)])
    train, val = split_identities(labels, 0.25, seed=3)
    assert not set(labels[train]) & set(labels[val])
    assert (train | val).all() and not (train & val).any()
    val_ids = set(labels[val])
    assert len(val_ids) == 10 and all((labels == i).sum() >= 2 for i in val_ids)
    assert np.array_equal(split_identities(labels, 0.25, seed=3)[1], val)
    assert not np.array_equal(split_identities(labels, 0.25, seed=4)[1], val)
    with pytest.raises(TrainingDataError, match="validation fraction"):
        split_identities(labels, 1.5)
    with pytest.raises(TrainingDataError, match="cannot hold out"):
        split_identities(np.array([0, 1, 2]), 0.5)


def test_pk_sampler_batches_are_identity_balanced() -> None:
    counts = [1, 2, 3, 5, 8, 2, 4, 6, 7, 3]
    labels = np.repeat(np.arange(10), counts)
    sampler = PKSampler(labels, p=3, k=4, min_per_identity=2, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == (sum(counts) - 1) // 12
    visits = np.zeros(10, int)
    for rows in batches:
        ids, per = np.unique(labels[rows], return_counts=True)
        assert len(ids) == 3 and per.tolist() == [4, 4, 4]  # exactly P identities, K images each
        assert 0 not in ids  # the single-image identity is never drawn
        for i in ids:
            visits[i] += 1
            picked = rows[labels[rows] == i]
            if counts[i] >= 4:
                assert len(set(picked.tolist())) == 4  # no repeats when the identity has K images
    assert visits[1:].max() - visits[1:].min() <= 1  # identities are visited evenly over an epoch
    # seeded per epoch: the same epoch repeats, another differs
    sampler.set_epoch(0)
    assert all(np.array_equal(a, b) for a, b in zip(batches, sampler))
    sampler.set_epoch(1)
    assert not all(np.array_equal(a, b) for a, b in zip(batches, sampler))


def test_pk_sampler_rejects_too_few_identities() -> None:
    with pytest.raises(TrainingDataError, match="a batch needs p=4"):
        PKSampler(np.array([0, 0, 1, 1, 2]), p=4, k=2)
    with pytest.raises(TrainingDataError, match="p >= 2"):
        PKSampler(np.array([0, 1]), p=1, k=2)


def test_augmentations_keep_shape_range_and_seed() -> None:
    torch = pytest.importorskip("torch")
    from faceprint.training import augment

    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 150, 150, generator=g) * 255
    for aug in (augment.Flip(), augment.ColorJitter(), augment.SmallAffine(), augment.Blur(),
                augment.Occlusion(), augment.default_augment(), augment.light_augment()):
        y = aug(x, torch.Generator().manual_seed(1))
        assert y.shape == x.shape and y.dtype == x.dtype
        assert float(y.min()) >= 0 and float(y.max()) <= 255
        assert torch.equal(y, aug(x, torch.Generator().manual_seed(1)))  # seeded
    assert torch.equal(augment.Flip(p=1.0)(x, g), x.flip(3))
    assert torch.equal(augment.Flip(p=0.0)(x, g), x)
    occluded = augment.Occlusion(p=1.0)(x, g)
    assert ((occluded == 127.5).flatten(1).sum(1) > 0.005 * x[0].numel()).all()
    blurred = augment.Blur(p=1.0)(x, g)
    assert blurred.std() < x.std()  # blur smooths noise
    flat = torch.full_like(x, 100.0)
    assert torch.allclose(augment.Blur(p=1.0)(flat, g), flat)  # and keeps flat areas
