"""Embedding networks as ``torch.nn.Module``s: ``(N, 3, S, S)`` normalised chips -> ``(N, dim)``.

- :class:`DlibResNet`: dlib's face ResNet (the architecture of
  :mod:`faceprint.embedders.dlib_resnet`), which loads the weights of
  ``dlib_face_recognition_resnet_model_v1.dat`` with :meth:`DlibResNet.load_dlib` and then
  gives the same outputs as the ONNX port, for fine-tuning.
- :class:`SmallResNet`: a compact residual net (BatchNorm, PReLU, a BatchNorm'd embedding
  layer as in ArcFace's heads) for training from scratch.

Every backbone carries the :class:`~faceprint.spec.ModelSpec` fields its input needs
(``input_size``, ``mean``, ``std``, ``template``) so that training, validation and the exported
model all preprocess the same way.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ..dlibport.resnet import BLOCKS
from ..embedders.dlib_resnet import DLIB_RESNET_SPEC
from ..errors import ConfigError


class _Affine(nn.Module):
    """dlib's ``affine_`` layer: per-channel ``gamma * x + beta`` (learnable, no statistics)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma.view(1, -1, 1, 1) + self.beta.view(1, -1, 1, 1)


def _add_prev(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: sum over the element-wise max shape; each input aligned top-left,
    zero where it does not reach."""
    shape = [max(i, j) for i, j in zip(a.shape[1:], b.shape[1:])]

    def pad(t: torch.Tensor) -> torch.Tensor:
        c, h, w = t.shape[1:]
        if (c, h, w) == tuple(shape):
            return t
        return F.pad(t, (0, shape[2] - w, 0, shape[1] - h, 0, shape[0] - c))

    return pad(a) + pad(b)


class _DlibBlock(nn.Module):
    """``relu(affine(conv(relu(affine(conv(x))))) + shortcut(x))``; the shortcut of a
    downsampling block is a 2x2 stride-2 average pool (dlib's ``ares_down``)."""

    def __init__(self, c_in: int, width: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv1 = nn.Conv2d(c_in, width, 3, stride=2 if down else 1, padding=0 if down else 1)
        self.aff1 = _Affine(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.aff2 = _Affine(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.aff2(self.conv2(F.relu(self.aff1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(_add_prev(y, shortcut))


class DlibResNet(nn.Module):
    """dlib's 150x150 face ResNet (29 conv layers, 5.6 M parameters).

    Args:
        dim: embedding size. With 128 the final layer can load dlib's weights; other sizes
            keep dlib's trunk and start a new final layer.

    Input: ``(N, 3, 150, 150)`` float32, ``(rgb - mean) / 256`` per :data:`DLIB_RESNET_SPEC`.
    Output: ``(N, dim)`` raw embeddings (not normalised; dlib's threshold 0.6 is Euclidean).
    """

    input_size = DLIB_RESNET_SPEC.input_size
    mean = DLIB_RESNET_SPEC.mean
    std = DLIB_RESNET_SPEC.std
    template = DLIB_RESNET_SPEC.template

    def __init__(self, dim: int = 128) -> None:
        super().__init__()
        if dim < 1:
            raise ConfigError(f"embedding size must be >= 1, got {dim}")
        self.dim = int(dim)
        self.stem = nn.Conv2d(3, 32, 7, stride=2, padding=0)
        self.stem_aff = _Affine(32)
        blocks, c_in = [], 32
        for width, down in BLOCKS:
            blocks.append(_DlibBlock(c_in, width, down))
            c_in = width
        self.blocks = nn.ModuleList(blocks)
        self.fc = nn.Linear(c_in, self.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.stem_aff(self.stem(x))), 3, 2)
        for block in self.blocks:
            x = block(x)
        return self.fc(x.mean(dim=(2, 3)))

    def load_dlib(self, dat_path: str | Path | None = None) -> DlibResNet:
        """Copy dlib's weights in (the final layer too when ``dim == 128``); returns self.

        Raises:
            ModelLoadError: the file is missing or not dlib's face ResNet.
        """
        from ..dlibport.resnet import _Layers, default_dat_path, read_resnet_weights

        path = Path(dat_path) if dat_path is not None else default_dat_path()
        layers = _Layers(read_resnet_weights(path), path)

        def conv(module: nn.Conv2d, affine: _Affine, **attrs: int) -> None:
            layer = layers.take("con", **attrs)
            module.weight.copy_(torch.from_numpy(layer.arrays["weight"]))
            module.bias.copy_(torch.from_numpy(layer.arrays["bias"]))
            aff = layers.take("affine")
            affine.gamma.copy_(torch.from_numpy(aff.arrays["gamma"]))
            affine.beta.copy_(torch.from_numpy(aff.arrays["beta"]))

        with torch.no_grad():
            conv(self.stem, self.stem_aff, kernel=7, stride=2, num_filters=32)
            layers.take("relu")
            layers.take("max_pool", kernel=3, stride=2)
            for block, (width, down) in zip(self.blocks, BLOCKS):
                conv(block.conv1, block.aff1, kernel=3, stride=2 if down else 1, num_filters=width)
                layers.take("relu")
                conv(block.conv2, block.aff2, kernel=3, stride=1, num_filters=width)
                if down:
                    layers.take("avg_pool", kernel=2, stride=2)
                layers.take("add_prev")
                layers.take("relu")
            layers.take("avg_pool", kernel=0)
            fc = layers.take("fc", num_inputs=self.fc.in_features, num_outputs=128)
            if self.dim == 128:
                self.fc.weight.copy_(torch.from_numpy(fc.arrays["weight"]).T)
            layers.done()
        return self

    def stages(self) -> list[nn.Module]:
        """Parameter groups from the input side: the stem, then each block, then the final
        layer (for freezing the first ``n`` when fine-tuning)."""
        return [nn.ModuleList([self.stem, self.stem_aff]), *self.blocks, self.fc]


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
            nn.PReLU(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = (nn.Identity() if stride == 1 and c_in == c_out else
                         nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class SmallResNet(nn.Module):
    """A small residual embedding net for training from scratch (about 1.3 M parameters at
    the default widths).

    Args:
        dim: embedding size.
        widths: channels of the four stages (each halves the resolution).
        template: the chips it reads: ``"dlib_150"`` (default, 150x150) or ``"arcface_112"``.
        dropout: dropout before the embedding layer.

    Input: ``(N, 3, S, S)`` float32, ``(rgb - 127.5) / 128``. Output: ``(N, dim)``.
    """

    mean = (127.5, 127.5, 127.5)
    std = (128.0, 128.0, 128.0)

    def __init__(self, dim: int = 128, widths: tuple[int, int, int, int] = (32, 64, 128, 192),
                 template: str = "dlib_150", dropout: float = 0.0) -> None:
        super().__init__()
        from ..spec import TEMPLATES

        if template not in TEMPLATES:
            raise ConfigError(f"unknown template {template!r}; expected one of {sorted(TEMPLATES)}")
        if dim < 1:
            raise ConfigError(f"embedding size must be >= 1, got {dim}")
        self.dim, self.template, self.input_size = int(dim), template, TEMPLATES[template]
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.PReLU(widths[0]))
        stages, c_in = [], widths[0]
        for width in widths:
            stages.append(nn.Sequential(_BasicBlock(c_in, width, 2), _BasicBlock(width, width, 1)))
            c_in = width
        self.stages_ = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.BatchNorm2d(c_in), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(c_in, self.dim), nn.BatchNorm1d(self.dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages_(self.stem(x)))

    def stages(self) -> list[nn.Module]:
        return [self.stem, *self.stages_, self.head]


__all__ = ["DlibResNet", "SmallResNet"]
