"""dlib's 128-d face recognition ResNet, ported to ONNX Runtime (dlib is not used at run time).

The weights come from ``dlib_face_recognition_resnet_model_v1.dat`` in the
``face-recognition-models`` package. :func:`read_resnet_weights` parses the file's layer
bodies; :func:`convert_resnet` rebuilds the network as an ONNX graph following dlib's C++
definition (``dnn_face_recognition_ex.cpp``)::

    ares<N>      = relu(x + affine(con3x3(relu(affine(con3x3(x))))))
    ares_down<N> = relu(block(x) + avg_pool2x2s2(x)), the block's first conv 3x3 stride 2 pad 0
    net = fc_no_bias<128>(avg_pool_everything(
            ares_down<256>(ares<256> x2(ares_down<256>(ares<128> x2(ares_down<128>(
            ares<64> x3(ares_down<64>(ares<32> x3(
            max_pool3x3s2(relu(affine(con7x7s2(input)))))))))))))

Tag and skip layers store nothing in the file, so that wiring is fixed here and every layer
read from the file is checked against it.
:class:`~faceprint.embedders.dlib_resnet.DlibResnetEmbedder` converts once into the faceprint
cache and runs the ONNX file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelLoadError

DAT_NAME = "dlib_face_recognition_resnet_model_v1.dat"
#: Bump when the graph :func:`convert_resnet` writes changes, so cached conversions are rebuilt.
CONVERTER_VERSION = 1

EXPECTED_CONV = 29
EXPECTED_AFFINE = 29
EXPECTED_PARAMS = 5_614_592

#: ``(width, downsample)`` of each residual block, input side first (dlib's alevel4..alevel0).
BLOCKS: tuple[tuple[int, bool], ...] = (
    (32, False), (32, False), (32, False),
    (64, True), (64, False), (64, False), (64, False),
    (128, True), (128, False), (128, False),
    (256, True), (256, False), (256, False),
    (256, True),
)

_INPUT_TAG = "input_rgb_image_sized"


@dataclass
class DlibLayer:
    """One layer body from a dlib network file.

    Attributes:
        kind: ``"con"``, ``"affine"``, ``"relu"``, ``"max_pool"``, ``"avg_pool"``,
            ``"add_prev"`` or ``"fc"``.
        tag: the tag dlib wrote (e.g. ``"con_4"``).
        arrays: ``con``: ``weight`` ``(O, I, kh, kw)`` and ``bias`` ``(O,)``; ``affine``:
            ``gamma``, ``beta`` ``(C,)``; ``fc``: ``weight`` ``(num_inputs, num_outputs)``
            and ``bias`` ``(num_outputs,)`` or absent. All float32.
        attrs: ints such as ``stride``, ``pad``, ``kernel``, ``num_filters``.
    """

    kind: str
    tag: str
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def num_params(self) -> int:
        return int(sum(a.size for a in self.arrays.values()))


def default_dat_path() -> Path:
    """The ``.dat`` file shipped by ``face-recognition-models`` (found without importing it).

    Raises:
        ModelLoadError: the package or the file is missing.
    """
    from ..cache import package_file

    return package_file("face_recognition_models", f"models/{DAT_NAME}", "face-recognition-models")


# -- reading the .dat file -----------------------------------------------------------------

def _read_header(reader: Any) -> list[int]:
    """Loss layer and wrapper versions, through the input layer; returns the versions."""
    reader.expect_int(1, what="loss layer version")
    reader.expect_string("loss_metric_2", what="loss layer tag")
    reader.read_double("loss margin")
    reader.read_double("loss distance threshold")
    versions: list[int] = []
    while reader.peek_string(max_len=len(_INPUT_TAG)) != _INPUT_TAG:
        versions.append(reader.expect_int(1, 2, 3, what="layer wrapper version"))
        if len(versions) > 10_000:
            raise reader.error("no input layer found after 10000 wrapper versions")
    reader.read_string("input layer tag")
    for channel in ("red", "green", "blue"):
        reader.read_double(f"input mean {channel}")
    rows, cols = reader.read_int("input rows"), reader.read_int("input cols")
    if (rows, cols) != (150, 150):
        raise reader.error(f"expected a 150x150 input layer, got {rows}x{cols}")
    return versions


def _read_body(reader: Any) -> DlibLayer:
    """One layer's details (without the wrapper's bools and tensors)."""
    start = reader.offset
    tag = reader.read_string("layer tag", max_len=64)
    if tag in ("con_4", "con_5"):
        params = reader.read_tensor("conv params")
        num_filters = reader.read_int("num_filters")
        kh, kw = reader.read_int("kernel rows"), reader.read_int("kernel cols")
        sy, sx = reader.read_int("stride y"), reader.read_int("stride x")
        py, px = reader.read_int("pad y"), reader.read_int("pad x")
        w_shape = reader.read_alias_tensor("filters alias")
        b_shape = reader.read_alias_tensor("biases alias")
        for _ in range(4):
            reader.read_double("learning-rate multiplier")
        use_bias = reader.read_bool("use_bias") if tag == "con_5" else True
        if sy != sx or py != px or kh != kw:
            raise reader.error(f"{tag}: only square kernels/strides/pads are supported", start)
        n_w = int(np.prod(w_shape))
        n_b = num_filters if use_bias else 0
        if w_shape[0] != num_filters or w_shape[2:] != (kh, kw) or params.size != n_w + n_b:
            raise reader.error(f"{tag}: {params.size} params do not fit filters {w_shape} "
                               f"+ {n_b} biases", start)
        flat = params.reshape(-1)
        arrays = {"weight": flat[:n_w].reshape(w_shape),
                  "bias": flat[n_w:] if use_bias else np.zeros(num_filters, np.float32)}
        return DlibLayer("con", tag, arrays, {"num_filters": num_filters, "kernel": kh, "stride": sy, "pad": py})
    if tag == "affine_":
        params = reader.read_tensor("affine params")
        g_shape = reader.read_alias_tensor("gamma alias")
        reader.read_alias_tensor("beta alias")
        mode = reader.read_int("affine mode")
        channels = int(np.prod(g_shape))
        if params.size != 2 * channels:
            raise reader.error(f"affine_: {params.size} params for {channels} channels", start)
        flat = params.reshape(-1)
        return DlibLayer("affine", tag, {"gamma": flat[:channels], "beta": flat[channels:]},
                         {"mode": mode, "channels": channels})
    if tag in ("max_pool_2", "avg_pool_2"):
        kh, kw = reader.read_int("pool rows"), reader.read_int("pool cols")
        sy, sx = reader.read_int("pool stride y"), reader.read_int("pool stride x")
        py, px = reader.read_int("pool pad y"), reader.read_int("pool pad x")
        if sy != sx or py != px or kh != kw:
            raise reader.error(f"{tag}: only square windows/strides/pads are supported", start)
        return DlibLayer(tag[:-2], tag, {}, {"kernel": kh, "stride": sy, "pad": py})
    if tag == "relu_":
        return DlibLayer("relu", tag)
    if tag == "add_prev_":
        return DlibLayer("add_prev", tag)
    if tag == "fc_2":
        num_outputs = reader.read_int("fc num_outputs")
        num_inputs = reader.read_int("fc num_inputs")
        params = reader.read_tensor("fc params")
        reader.read_alias_tensor("fc weights alias")
        reader.read_alias_tensor("fc biases alias")
        bias_mode = reader.read_int("fc bias mode")  # 0 = FC_HAS_BIAS, 1 = FC_NO_BIAS
        for _ in range(4):
            reader.read_double("learning-rate multiplier")
        n_w = num_inputs * num_outputs
        n_b = 0 if bias_mode == 1 else num_outputs
        if params.size != n_w + n_b:
            raise reader.error(f"fc_2: {params.size} params for {num_inputs}->{num_outputs}", start)
        flat = params.reshape(-1)
        arrays = {"weight": flat[:n_w].reshape(num_inputs, num_outputs)}
        if n_b:
            arrays["bias"] = flat[n_w:]
        return DlibLayer("fc", tag, arrays, {"num_inputs": num_inputs, "num_outputs": num_outputs})
    raise reader.error(f"unexpected layer tag {tag!r}", start)


def _skip_wrapper_state(reader: Any) -> None:
    """An ``add_layer``'s 3 bools and its gradient/output/params-gradient tensors."""
    for _ in range(3):
        reader.read_bool("add_layer flag")
    for _ in range(3):
        reader.read_tensor("add_layer state tensor")


def read_resnet_weights(dat_path: str | Path) -> list[DlibLayer]:
    """Parse dlib's face ResNet file into its layers, input side first.

    Returns:
        The layer bodies in network order (tag and skip layers, which store nothing, are
        absent): ``con`` filters ``(O, I, kh, kw)`` + bias, ``affine`` gamma/beta, ``fc``
        weight ``(256, 128)``, and the parameterless layers.

    Raises:
        ModelLoadError: the file is unreadable, truncated or malformed, or its layer counts
            (29 conv, 29 affine, 5,614,592 parameters) differ from dlib's face ResNet.
    """
    from .fmt import DlibReader

    reader = DlibReader.from_file(dat_path)
    versions = _read_header(reader)
    n_bodies = sum(v in (2, 3) for v in versions)  # add_layer wrappers; tag/skip are version 1
    layers: list[DlibLayer] = []
    for i in range(n_bodies):
        layers.append(_read_body(reader))
        _skip_wrapper_state(reader)
        if i == 0 and versions and versions[-1] == 3:
            reader.read_int("sample expansion factor")  # the input-side add_layer (version 3)
    if not reader.at_end():
        raise reader.error(f"{reader.remaining} unexpected bytes after the last layer")
    n_conv = sum(layer.kind == "con" for layer in layers)
    n_affine = sum(layer.kind == "affine" for layer in layers)
    n_params = sum(layer.num_params for layer in layers)
    if (n_conv, n_affine, n_params) != (EXPECTED_CONV, EXPECTED_AFFINE, EXPECTED_PARAMS):
        raise ModelLoadError(
            f"{dat_path}: expected dlib's face ResNet ({EXPECTED_CONV} conv, {EXPECTED_AFFINE} affine, "
            f"{EXPECTED_PARAMS:,} parameters), found {n_conv} conv, {n_affine} affine, {n_params:,} parameters"
        )
    return layers


# -- building the ONNX graph ---------------------------------------------------------------

class _Layers:
    """Hands out the parsed layers in order, checking each against the expected architecture."""

    def __init__(self, layers: list[DlibLayer], path: Path) -> None:
        self._layers = layers
        self._pos = 0
        self._path = path

    def take(self, kind: str, **attrs: int) -> DlibLayer:
        if self._pos >= len(self._layers):
            raise ModelLoadError(f"{self._path}: the file ends before the expected {kind} layer")
        layer = self._layers[self._pos]
        wrong = {k: layer.attrs.get(k) for k, v in attrs.items() if layer.attrs.get(k) != v}
        if layer.kind != kind or wrong:
            raise ModelLoadError(
                f"{self._path}: layer {self._pos} is {layer.tag} {layer.attrs}, "
                f"expected {kind} with {attrs} as in dlib's face ResNet"
            )
        self._pos += 1
        return layer

    def done(self) -> None:
        if self._pos != len(self._layers):
            raise ModelLoadError(f"{self._path}: {len(self._layers) - self._pos} layers left over")


Shape = tuple[int, int, int]  # (C, H, W) of one sample


def _conv_affine(g: Any, x: str, shape: Shape, conv: DlibLayer, affine: DlibLayer) -> tuple[str, Shape]:
    """dlib's ``affine(con(x))`` as one Conv: the affine is folded into the filters and bias."""
    gamma = affine.arrays["gamma"].astype(np.float64)
    if affine.attrs["channels"] != conv.attrs["num_filters"]:
        raise ModelLoadError(f"affine of {affine.attrs['channels']} channels after a conv "
                             f"of {conv.attrs['num_filters']} filters")
    if conv.arrays["weight"].shape[1] != shape[0]:
        raise ModelLoadError(f"{conv.tag} expects {conv.arrays['weight'].shape[1]} input channels, "
                             f"the network gives it {shape[0]}")
    weight = conv.arrays["weight"].astype(np.float64) * gamma[:, None, None, None]
    bias = conv.arrays["bias"].astype(np.float64) * gamma + affine.arrays["beta"]
    k, s, p = conv.attrs["kernel"], conv.attrs["stride"], conv.attrs["pad"]
    out = g.conv(x, weight.astype(np.float32), bias.astype(np.float32), stride=s, pad=p)
    _, h, w = shape
    return out, (conv.attrs["num_filters"], (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)


def _pool(g: Any, x: str, shape: Shape, layer: DlibLayer) -> tuple[str, Shape]:
    k, s, p = layer.attrs["kernel"], layer.attrs["stride"], layer.attrs["pad"]
    op = "MaxPool" if layer.kind == "max_pool" else "AveragePool"
    out = g.op(op, [x], kernel_shape=[k, k], strides=[s, s], pads=[p] * 4)
    c, h, w = shape
    return out, (c, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)


def _pad_to(g: Any, x: str, shape: Shape, target: Shape) -> str:
    """Zero-pad ``x`` at the end of C, H and W up to ``target`` (no node when equal)."""
    if shape == target:
        return x
    extra = [t - s for s, t in zip(shape, target)]
    return g.op("Pad", [x, g.const(np.array([0, 0, 0, 0, 0, *extra], np.int64), "pads")], mode="constant")


def _add_prev(g: Any, a: str, a_shape: Shape, b: str, b_shape: Shape) -> tuple[str, Shape]:
    """dlib's ``add_prev``: the sum has the element-wise max of both shapes; each input is
    aligned top-left and the part it does not cover counts as zero."""
    target: Shape = tuple(max(i, j) for i, j in zip(a_shape, b_shape))  # type: ignore[assignment]
    return g.op("Add", [_pad_to(g, a, a_shape, target), _pad_to(g, b, b_shape, target)]), target


def convert_resnet(dat_path: str | Path, onnx_path: str | Path) -> None:
    """Convert dlib's face ResNet ``.dat`` into an ONNX file.

    The graph takes ``input``: ``(N, 3, 150, 150)`` float32 RGB already mean-subtracted and
    divided by 256 (see :data:`DLIB_RESNET_SPEC`), and returns ``output``: ``(N, 128)``.

    Raises:
        ModelLoadError: the ``.dat`` file is not dlib's face ResNet.
    """
    from ..onnx_graph import GraphBuilder

    dat_path = Path(dat_path)
    layers = _Layers(read_resnet_weights(dat_path), dat_path)
    g = GraphBuilder("dlib_face_recognition_resnet_model_v1")
    x = g.input("input", ["N", 3, 150, 150])
    shape: Shape = (3, 150, 150)

    # stem: con 7x7 s2 p0 (32) -> affine -> relu -> max_pool 3x3 s2 p0
    conv = layers.take("con", kernel=7, stride=2, num_filters=32)
    x, shape = _conv_affine(g, x, shape, conv, layers.take("affine"))
    x = g.op("Relu", [x])
    layers.take("relu")
    x, shape = _pool(g, x, shape, layers.take("max_pool", kernel=3, stride=2))

    for width, down in BLOCKS:
        stride = 2 if down else 1
        conv = layers.take("con", kernel=3, stride=stride, num_filters=width)
        y, y_shape = _conv_affine(g, x, shape, conv, layers.take("affine"))
        y = g.op("Relu", [y])
        layers.take("relu")
        conv = layers.take("con", kernel=3, stride=1, num_filters=width)
        y, y_shape = _conv_affine(g, y, y_shape, conv, layers.take("affine"))
        if down:  # the shortcut is avg_pool 2x2 s2 of the block input
            x, shape = _pool(g, x, shape, layers.take("avg_pool", kernel=2, stride=2))
        layers.take("add_prev")
        x, shape = _add_prev(g, y, y_shape, x, shape)
        x = g.op("Relu", [x])
        layers.take("relu")

    layers.take("avg_pool", kernel=0)  # rows = cols = 0: avg_pool_everything
    x = g.op("GlobalAveragePool", [x])
    x = g.op("Flatten", [x], axis=1)
    fc = layers.take("fc", num_inputs=shape[0], num_outputs=128)
    x = g.op("MatMul", [x, g.const(fc.arrays["weight"], "fc_weight")])
    if "bias" in fc.arrays:
        x = g.op("Add", [x, g.const(fc.arrays["bias"], "fc_bias")])
    layers.done()
    g.save([(x, ["N", 128])], Path(onnx_path))


__all__ = ["CONVERTER_VERSION", "DAT_NAME", "DlibLayer", "convert_resnet", "default_dat_path", "read_resnet_weights"]
