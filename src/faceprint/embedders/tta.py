"""Test-time augmentation of aligned chips: fixed random jitters (small similarity warps and
mirrors), in the spirit of dlib's ``num_jitters``.

The jitters are drawn once from a seeded generator, so the same chip always gives the same
averaged embedding. Each jitter rotates the chip by up to +/-3 degrees about its centre, zooms
in by 1-3%, shifts it by up to 2% of its side and mirrors it with probability 1/2; pixels
that come from outside the chip are filled by reflecting it.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

MAX_ROTATION_DEG = 3.0
ZOOM_RANGE = (1.01, 1.03)
MAX_SHIFT = 0.02  # of the chip side


def jitter_transforms(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` jitters for ``size x size`` chips: ``(n, 2, 3)`` maps from jittered chip pixels to
    source chip pixels, and ``(n,)`` mirror flags.

    Raises:
        ConfigError: ``n`` is negative.
    """
    if n < 0:
        raise ConfigError(f"jitter must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    maps = np.zeros((n, 2, 3))
    mirror = np.zeros(n, bool)
    centre = np.full(2, (size - 1) / 2.0)
    for i in range(n):
        angle = np.deg2rad(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG))
        zoom = rng.uniform(*ZOOM_RANGE)
        shift = rng.uniform(-MAX_SHIFT, MAX_SHIFT, 2) * size
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) / zoom
        maps[i, :, :2] = rot
        maps[i, :, 2] = centre + shift - rot @ centre
        mirror[i] = rng.random() < 0.5
    return maps, mirror


def jitter_chips(chips: np.ndarray, maps: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """``(n * N, S, S, 3)`` jittered copies of uint8 ``(N, S, S, 3)`` chips, jitter-major
    (rows ``k * N .. k * N + N - 1`` hold jitter ``k`` of every chip)."""
    import cv2

    n, size = len(maps), chips.shape[1]
    out = np.empty((n * len(chips), size, size, 3), np.uint8)
    for k, (m, flip) in enumerate(zip(maps, mirror)):
        for i, chip in enumerate(chips):
            warped = cv2.warpAffine(chip, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                    borderMode=cv2.BORDER_REFLECT_101)
            out[k * len(chips) + i] = warped[:, ::-1] if flip else warped
    return out


__all__ = ["jitter_chips", "jitter_transforms"]
