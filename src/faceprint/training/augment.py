"""Face processing for training: random augmentations of a batch of chips, on its device.

Each augmentation is a small callable ``aug(x, generator) -> x`` on float ``(N, 3, S, S)``
tensors in ``[0, 255]`` (before normalisation), applied per sample with probability ``p``;
:class:`Compose` chains them. :func:`default_augment` is the set ``faceprint train`` uses:
horizontal flip, colour jitter, a small affine warp, blur and occlusion.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch.nn import functional as F

Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _rand(n: int, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=g).to(device)


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.view(-1, 1, 1, 1), a, b)


class Flip:
    """Mirror left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return _where(_rand(len(x), g, x.device) < self.p, x.flip(3), x)


class ColorJitter:
    """Brightness, contrast and saturation each scaled by ``1 +- strength`` (uniform)."""

    def __init__(self, strength: float = 0.3, p: float = 0.8) -> None:
        self.strength, self.p = strength, p

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, dev = len(x), x.device

        def factor() -> torch.Tensor:
            return (1 + self.strength * (2 * _rand(n, g, dev) - 1)).view(-1, 1, 1, 1)

        y = x * factor()
        mean = y.mean(dim=(1, 2, 3), keepdim=True)
        y = (y - mean) * factor() + mean
        gray = y.mean(dim=1, keepdim=True)
        y = (y - gray) * factor() + gray
        return _where(_rand(n, g, dev) < self.p, y.clamp(0, 255), x)


class SmallAffine:
    """Rotation up to ``degrees``, scale ``1 +- scale``, shift up to ``shift`` of the side."""

    def __init__(self, degrees: float = 8.0, scale: float = 0.06, shift: float = 0.04, p: float = 0.5) -> None:
        self.degrees, self.scale, self.shift, self.p = degrees, scale, shift, p

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, dev = len(x), x.device
        angle = math.radians(self.degrees) * (2 * _rand(n, g, dev) - 1)
        s = 1 + self.scale * (2 * _rand(n, g, dev) - 1)
        tx, ty = (2 * self.shift * (2 * _rand(n, g, dev) - 1) for _ in range(2))
        theta = torch.stack([torch.stack([angle.cos() / s, -angle.sin() / s, tx], 1),
                             torch.stack([angle.sin() / s, angle.cos() / s, ty], 1)], 1).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        y = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return _where(_rand(n, g, dev) < self.p, y, x)


class Blur:
    """Gaussian blur with sigma uniform in ``(0.1, max_sigma)`` pixels (5x5 kernel)."""

    def __init__(self, max_sigma: float = 1.5, p: float = 0.2) -> None:
        self.max_sigma, self.p = max_sigma, p

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, dev = len(x), x.device
        sigma = 0.1 + (self.max_sigma - 0.1) * _rand(n, g, dev)
        r = torch.arange(-2, 3, device=dev, dtype=x.dtype)
        k1 = torch.exp(-(r[None, :] ** 2) / (2 * sigma[:, None] ** 2))
        k1 = k1 / k1.sum(1, keepdim=True)  # (N, 5)
        c = x.shape[1]
        # separable blur: one group per (sample, channel)
        flat = x.reshape(1, n * c, *x.shape[2:])
        kx = k1.repeat_interleave(c, 0).view(n * c, 1, 1, 5)
        y = F.conv2d(F.pad(flat, (2, 2, 0, 0), mode="replicate"), kx, groups=n * c)
        y = F.conv2d(F.pad(y, (0, 0, 2, 2), mode="replicate"), kx.transpose(2, 3), groups=n * c)
        return _where(_rand(n, g, dev) < self.p, y.view_as(x), x)


class Occlusion:
    """A grey rectangle of ``(0.1..max_frac)`` of the side, at a random place."""

    def __init__(self, max_frac: float = 0.35, p: float = 0.25) -> None:
        self.max_frac, self.p = max_frac, p

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape
        dev = x.device
        size_h = (0.1 + (self.max_frac - 0.1) * _rand(n, g, dev)) * h
        size_w = (0.1 + (self.max_frac - 0.1) * _rand(n, g, dev)) * w
        y0, x0 = _rand(n, g, dev) * (h - size_h), _rand(n, g, dev) * (w - size_w)
        rows = torch.arange(h, device=dev)[None, :]
        cols = torch.arange(w, device=dev)[None, :]
        in_r = (rows >= y0[:, None]) & (rows < (y0 + size_h)[:, None])
        in_c = (cols >= x0[:, None]) & (cols < (x0 + size_w)[:, None])
        box = (in_r[:, :, None] & in_c[:, None, :])[:, None] & (_rand(n, g, dev) < self.p).view(-1, 1, 1, 1)
        return torch.where(box, torch.full_like(x, 127.5), x)


class Compose:
    """Apply ``augmentations`` in order."""

    def __init__(self, augmentations: Sequence[Augmentation]) -> None:
        self.augmentations = list(augmentations)

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        for aug in self.augmentations:
            x = aug(x, g)
        return x


def default_augment() -> Compose:
    """Flip, colour jitter, small affine, blur and occlusion (the ``faceprint train`` set)."""
    return Compose([Flip(), ColorJitter(), SmallAffine(), Blur(), Occlusion()])


def light_augment() -> Compose:
    """Flip and colour jitter only (gentler, for fine-tuning a pretrained model)."""
    return Compose([Flip(), ColorJitter()])


__all__ = ["Blur", "ColorJitter", "Compose", "Flip", "Occlusion", "SmallAffine", "default_augment", "light_augment"]
