"""MiniFASNet (Silent-Face anti-spoofing) rebuilt in PyTorch from a state dict, exported to ONNX.

The network is a MobileFaceNet-style stack for 80x80 inputs; its layer widths differ per
release (V1, V2, V1SE, V2SE), so they are read from the state dict's weight shapes, and a
block has a squeeze-excitation unit exactly when the state dict holds one for it:

- ``conv1`` 3x3 stride 2, ``conv2_dw`` depthwise 3x3 (conv + BN + PReLU);
- ``conv_23``, ``conv_34``, ``conv_45``: depthwise-separable blocks with stride 2
  (1x1 expand + PReLU, depthwise 3x3 + PReLU, 1x1 project + BN);
- ``conv_3``, ``conv_4``, ``conv_5``: residual stacks of such blocks with stride 1;
- ``conv_6_sep`` 1x1 to 512 + PReLU, ``conv_6_dw`` depthwise 5x5 (the whole 5x5 map) + BN,
  ``linear`` 512 -> 128 without bias, ``bn`` (1-D), ``prob`` 128 -> 3 logits.

Only PyTorch (``pip install 'faceprint[train]'``) reads ``.pth`` files; the exported ONNX
graph (cached) runs on ONNX Runtime like every other faceprint model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ModelLoadError

PREFIX = "module."


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise ModelLoadError("reading MiniFASNet .pth files needs PyTorch: pip install 'faceprint[train]' "
                             "(or give an exported .onnx model)") from exc
    return torch


def build_minifasnet(state: dict[str, Any]) -> Any:
    """A ``torch.nn.Module`` whose structure matches ``state`` (keys without ``module.``).

    Raises:
        ModelLoadError: the state dict is not a MiniFASNet's.
    """
    torch = _torch()
    nn = torch.nn

    def shape(key: str) -> tuple[int, ...]:
        if key not in state:
            raise ModelLoadError(f"not a MiniFASNet state dict: missing {key!r}")
        return tuple(state[key].shape)

    class ConvBN(nn.Module):
        def __init__(self, key: str, stride: int = 1, prelu: bool = True) -> None:
            super().__init__()
            out_c, in_per_group, k, _ = shape(f"{key}.conv.weight")
            groups = out_c if in_per_group == 1 and k > 1 else 1
            in_c = in_per_group * groups
            pad = (k // 2) if k == 3 else 0
            self.conv = nn.Conv2d(in_c, out_c, k, stride, pad, groups=groups, bias=False)
            self.bn = nn.BatchNorm2d(out_c)
            self.prelu = nn.PReLU(out_c) if prelu else None

        def forward(self, x: Any) -> Any:
            x = self.bn(self.conv(x))
            return self.prelu(x) if self.prelu is not None else x

    class SE(nn.Module):
        def __init__(self, key: str) -> None:
            super().__init__()
            mid, ch = shape(f"{key}.fc1.weight")[:2]
            self.fc1 = nn.Conv2d(ch, mid, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(mid)
            self.fc2 = nn.Conv2d(mid, ch, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(ch)

        def forward(self, x: Any) -> Any:
            w = x.mean(dim=(2, 3), keepdim=True)
            w = torch.relu(self.bn1(self.fc1(w)))
            return x * torch.sigmoid(self.bn2(self.fc2(w)))

    class Block(nn.Module):
        def __init__(self, key: str, stride: int, residual: bool) -> None:
            super().__init__()
            self.conv = ConvBN(f"{key}.conv")
            self.conv_dw = ConvBN(f"{key}.conv_dw", stride=stride)
            self.project = ConvBN(f"{key}.project", prelu=False)
            self.se_module = SE(f"{key}.se_module") if f"{key}.se_module.fc1.weight" in state else None
            self.residual = residual

        def forward(self, x: Any) -> Any:
            y = self.project(self.conv_dw(self.conv(x)))
            if self.se_module is not None:
                y = self.se_module(y)
            return x + y if self.residual else y

    class Stack(nn.Module):
        def __init__(self, key: str) -> None:
            super().__init__()
            n = 0
            while f"{key}.model.{n}.conv.conv.weight" in state:
                n += 1
            if n == 0:
                raise ModelLoadError(f"not a MiniFASNet state dict: no blocks under {key!r}")
            self.model = nn.Sequential(*[Block(f"{key}.model.{i}", 1, True) for i in range(n)])

        def forward(self, x: Any) -> Any:
            return self.model(x)

    class MiniFASNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = ConvBN("conv1", stride=2)
            self.conv2_dw = ConvBN("conv2_dw")
            self.conv_23 = Block("conv_23", 2, False)
            self.conv_3 = Stack("conv_3")
            self.conv_34 = Block("conv_34", 2, False)
            self.conv_4 = Stack("conv_4")
            self.conv_45 = Block("conv_45", 2, False)
            self.conv_5 = Stack("conv_5")
            self.conv_6_sep = ConvBN("conv_6_sep")
            self.conv_6_dw = ConvBN("conv_6_dw", prelu=False)
            emb, feat = shape("linear.weight")
            self.linear = nn.Linear(feat, emb, bias=False)
            self.bn = nn.BatchNorm1d(emb)
            self.prob = nn.Linear(emb, shape("prob.weight")[0], bias=False)

        def forward(self, x: Any) -> Any:
            for layer in (self.conv1, self.conv2_dw, self.conv_23, self.conv_3, self.conv_34, self.conv_4,
                          self.conv_45, self.conv_5, self.conv_6_sep, self.conv_6_dw):
                x = layer(x)
            return self.prob(self.bn(self.linear(x.flatten(1))))

    return MiniFASNet()


def load_state(path: str | Path) -> dict[str, Any]:
    """The state dict of a ``.pth`` file with any ``module.`` prefix removed.

    Raises:
        ModelLoadError: PyTorch is missing or the file cannot be read.
    """
    torch = _torch()
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises assorted types for bad files
        raise ModelLoadError(f"cannot read {path} as a PyTorch state dict: {exc}") from exc
    if not isinstance(state, dict):
        raise ModelLoadError(f"{path}: expected a state dict, got {type(state).__name__}")
    return {k[len(PREFIX):] if k.startswith(PREFIX) else k: v for k, v in state.items()}


def export_onnx(pth_path: str | Path, onnx_path: str | Path, input_size: int = 80) -> None:
    """Rebuild the network of ``pth_path``, load its weights, export logits to ONNX.

    The ONNX graph takes ``input`` ``(N, 3, S, S)`` float32 and returns ``logits`` ``(N, 3)``.

    Raises:
        ModelLoadError: the file is not a MiniFASNet state dict, or PyTorch is missing.
    """
    torch = _torch()
    state = load_state(pth_path)
    model = build_minifasnet(state)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelLoadError(f"{pth_path}: weights do not fit the MiniFASNet layout: {exc}") from exc
    model.eval()
    dummy = torch.zeros(1, 3, input_size, input_size)
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation
        torch.onnx.export(model, (dummy,), str(onnx_path), input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "n"}, "logits": {0: "n"}}, opset_version=17, dynamo=False)


__all__ = ["build_minifasnet", "export_onnx", "load_state"]
