"""A small helper to build ONNX graphs from numpy weights, and to open ONNX Runtime sessions.

Used by the ports of dlib's ResNet and MTCNN. Importing this module imports ``onnx``; it is
only imported when a model is converted.
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np


class GraphBuilder:
    """Accumulates nodes and float32 initializers; :meth:`save` writes an ONNX file.

    Example::

        g = GraphBuilder("net")
        x = g.input("x", [None, 3, 150, 150])
        y = g.op("Relu", [x])
        g.save([(y, [None, 3, 150, 150])], path)
    """

    def __init__(self, name: str, opset: int = 17) -> None:
        self.name = name
        self.opset = opset
        self._nodes: list[Any] = []
        self._inits: list[Any] = []
        self._inputs: list[Any] = []
        self._count = 0

    def _fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def input(self, name: str, shape: Sequence[int | str | None]) -> str:
        from onnx import TensorProto, helper

        self._inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
        return name

    def const(self, array: np.ndarray, hint: str = "w") -> str:
        """Add an initializer (float arrays are stored as float32, ints as int64)."""
        from onnx import numpy_helper

        array = np.asarray(array)
        array = array.astype(np.int64 if array.dtype.kind in "iu" else np.float32)
        name = self._fresh(hint)
        self._inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], outputs: int = 1, **attrs: Any) -> Any:
        """Add a node; returns its output name (or a list of names when ``outputs > 1``)."""
        from onnx import helper

        names = [self._fresh(op_type.lower()) for _ in range(outputs)]
        self._nodes.append(helper.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names

    def conv(self, x: str, weight_oihw: np.ndarray, bias: np.ndarray | None,
             stride: int = 1, pad: int = 0) -> str:
        """2-D cross-correlation with an ``(O, I, kh, kw)`` kernel and symmetric padding."""
        inputs = [x, self.const(weight_oihw)]
        if bias is not None:
            inputs.append(self.const(bias))
        return self.op("Conv", inputs, strides=[stride, stride], pads=[pad] * 4,
                       kernel_shape=list(weight_oihw.shape[2:]))

    def affine(self, x: str, scale: np.ndarray, shift: np.ndarray) -> str:
        """Per-channel ``x * scale + shift`` on an NCHW tensor."""
        shape = (1, -1, 1, 1)
        y = self.op("Mul", [x, self.const(np.reshape(scale, shape))])
        return self.op("Add", [y, self.const(np.reshape(shift, shape))])

    def save(self, outputs: Sequence[tuple[str, Sequence[int | str | None]]], path: Path) -> None:
        """Check the graph and write it to ``path``."""
        import onnx
        from onnx import TensorProto, helper

        out_infos = []
        for i, (name, shape) in enumerate(outputs):
            final = f"output{i}" if len(outputs) > 1 else "output"
            self._nodes.append(helper.make_node("Identity", [name], [final]))
            out_infos.append(helper.make_tensor_value_info(final, TensorProto.FLOAT, list(shape)))
        graph = helper.make_graph(self._nodes, self.name, self._inputs, out_infos, self._inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                                  producer_name="faceprint")
        model.ir_version = 8
        onnx.checker.check_model(model)
        with open(path, "wb") as fh:
            fh.write(model.SerializeToString())


def open_session(path: str | Path, threads: int = 0, spinning: bool = True, fixed_shapes: bool = True) -> Any:
    """An ONNX Runtime CPU session; ``threads=0`` lets ORT use all cores.

    The first session of a model file is optimised (``ORT_ENABLE_ALL``) and the optimised graph
    saved to the faceprint cache (:func:`optimized_model_path`); later sessions, in any process,
    load that file with graph optimisations off, which skips most of the session set-up (the
    dlib ResNet: ~0.25 s instead of ~0.6 s). The outputs are the same.

    Args:
        spinning: let idle worker threads spin. Turn off for code that alternates several
            sessions with OpenCV/numpy work, where spinning workers steal the cores the next
            step needs (about 25% slower on 2 cores).
        fixed_shapes: keep ORT's memory-pattern planning, which pays off only when input
            shapes repeat; turn off when every call has a new shape (image pyramids).

    Raises:
        ModelLoadError: the file is missing or not a valid ONNX model.
    """
    import onnxruntime as ort

    from .errors import ModelLoadError

    def options(level: Any) -> Any:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = level
        opts.log_severity_level = 3
        if not spinning:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.enable_mem_pattern = bool(fixed_shapes)
        return opts

    def create(model: Path, opts: Any) -> Any:
        return ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])

    optimized = optimized_model_path(path)
    if optimized is not None and optimized.is_file():
        try:
            return create(optimized, options(ort.GraphOptimizationLevel.ORT_DISABLE_ALL))
        except Exception:  # a damaged cache file: optimise the original again below
            optimized.unlink(missing_ok=True)
    opts = options(ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    # one temporary name per process and thread: two openers never write the same file
    tmp = None if optimized is None else optimized.with_name(f"{optimized.name}.{os.getpid()}-{threading.get_ident()}.part")
    if tmp is not None:
        opts.optimized_model_filepath = str(tmp)
    try:
        session = create(Path(path), opts)
    except Exception as exc:  # ORT raises several unrelated types
        raise ModelLoadError(f"could not load ONNX model {path}: {exc}") from exc
    finally:
        if tmp is not None and tmp.is_file():
            try:
                os.replace(tmp, optimized)  # atomic: a reader sees the whole file or none
            except OSError:
                tmp.unlink(missing_ok=True)
    return session


def optimized_model_path(path: str | Path) -> Path | None:
    """Where the optimised copy of ONNX model ``path`` is cached, or None when the file is missing.

    The name is keyed by the model file (resolved path, size, modification time), the ONNX
    Runtime version and this CPU (an ``ORT_ENABLE_ALL`` graph may use kernels and layouts chosen
    for the machine that optimised it), so a changed model, upgrade or another machine sharing
    the cache never loads a stale graph.
    """
    import hashlib
    import platform

    import onnxruntime as ort

    from .cache import cache_dir

    source = Path(path).resolve()
    try:
        stat = source.stat()
    except OSError:
        return None
    key = "|".join([str(source), str(stat.st_size), str(stat.st_mtime_ns), ort.__version__,
                    platform.machine(), _cpu_flags()])
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return cache_dir() / f"ort-{Path(path).stem}-{digest}.onnx"


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> str:
    """The CPU's feature flags (Linux), so a cache shared by different machines keeps them apart
    (read once per process: every session opened asks)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor()
