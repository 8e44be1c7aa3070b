"""A reader for dlib's serialization primitives, over an in-memory buffer.

dlib writes every value with a handful of primitives (see ``shared/docs/dlib-models.md``):

- integers of any width: a control byte (low 4 bits = number of magnitude bytes, ``0x80`` =
  negative), then the magnitude little-endian: ``01 02`` is 2, ``81 1c`` is -28;
- floats outside tensors ("float_details"): a packed int64 mantissa then a packed int16
  exponent, value ``mantissa * 2**exponent``;
- bools as one ASCII byte ``'0'``/``'1'``; strings as a packed length then the bytes;
- tensors as a version, the NCHW shape, then raw little-endian float32 values;
- alias tensors as a version and a 4-int shape; matrices as ``-rows, -cols`` then float_details
  elements, row-major.

Everything malformed (an unexpected tag, a bad control byte, reading past the end) raises
:class:`~faceprint.errors.ModelLoadError` naming the byte offset.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import ModelLoadError

#: float_details exponents dlib uses for the special values.
_EXP_INF, _EXP_NINF, _EXP_NAN = 32000, 32001, 32002


class DlibReader:
    """Sequential reader of dlib-serialized values from ``data``, starting at ``offset``.

    Args:
        data: the whole serialized file (or a slice of it).
        offset: where reading starts; advanced by every ``read_*`` call.
        name: what to call the buffer in error messages (usually the file path).
    """

    def __init__(self, data: bytes, offset: int = 0, name: str = "<buffer>") -> None:
        self.data = data if isinstance(data, bytes) else bytes(data)
        self.offset = int(offset)
        self.name = name

    @classmethod
    def from_file(cls, path: str | Path) -> DlibReader:
        """Read the whole file into memory.

        Raises:
            ModelLoadError: the file cannot be read.
        """
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"cannot read dlib model file {path}: {exc}") from exc
        return cls(data, 0, str(path))

    # -- helpers -------------------------------------------------------------------------
    def error(self, message: str, offset: int | None = None) -> ModelLoadError:
        """A :class:`ModelLoadError` naming the buffer and the byte offset."""
        at = self.offset if offset is None else offset
        return ModelLoadError(f"{self.name}: malformed dlib file at byte {at}: {message}")

    @property
    def remaining(self) -> int:
        return len(self.data) - self.offset

    def at_end(self) -> bool:
        return self.offset >= len(self.data)

    def _take_check(self, n: int, what: str) -> int:
        """Check ``n`` bytes are left, advance past them, and return where they start."""
        if n < 0:
            raise self.error(f"negative size {n} for {what}")
        start, end = self.offset, self.offset + n
        if end > len(self.data):
            raise self.error(f"unexpected end of file reading {what}: need {n} bytes, {self.remaining} left")
        self.offset = end
        return start

    def _take(self, n: int, what: str) -> bytes:
        start = self._take_check(n, what)
        return self.data[start:self.offset]

    # -- primitives ----------------------------------------------------------------------
    def read_int(self, what: str = "integer") -> int:
        """A packed signed/unsigned integer (1 control byte + 1..8 magnitude bytes)."""
        start = self.offset
        control = self._take(1, what)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise self.error(f"bad control byte 0x{control:02x} for {what}", start)
        value = int.from_bytes(self._take(size, what), "little")
        return -value if control & 0x80 else value

    def read_double(self, what: str = "float") -> float:
        """A float_details value: packed int64 mantissa, then packed int16 exponent."""
        mantissa = self.read_int(what + " mantissa")
        exponent = self.read_int(what + " exponent")
        if exponent == _EXP_INF:
            return math.inf
        if exponent == _EXP_NINF:
            return -math.inf
        if exponent == _EXP_NAN:
            return math.nan
        if not -32768 <= exponent <= 32767:
            raise self.error(f"exponent {exponent} out of int16 range for {what}")
        return math.ldexp(float(mantissa), exponent)

    def read_bool(self, what: str = "bool") -> bool:
        start = self.offset
        byte = self._take(1, what)
        if byte not in (b"0", b"1"):
            raise self.error(f"expected '0' or '1' for {what}, got {byte!r}", start)
        return byte == b"1"

    def read_string(self, what: str = "string", max_len: int = 1 << 20) -> str:
        start = self.offset
        length = self.read_int(what + " length")
        if not 0 <= length <= max_len:
            raise self.error(f"implausible length {length} for {what}", start)
        raw = self._take(length, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.error(f"{what} is not text: {raw[:20]!r}", start) from exc

    def peek_string(self, max_len: int = 64) -> str | None:
        """The string at the current offset, without consuming it; ``None`` if there is none."""
        saved = self.offset
        try:
            text = self.read_string(max_len=max_len)
        except ModelLoadError:
            return None
        finally:
            self.offset = saved
        return text if text.isprintable() else None

    def expect_string(self, *allowed: str, what: str = "layer tag") -> str:
        """Read a string and check it is one of ``allowed``."""
        start = self.offset
        text = self.read_string(what, max_len=256)
        if text not in allowed:
            raise self.error(f"expected {what} {' or '.join(map(repr, allowed))}, got {text!r}", start)
        return text

    def expect_int(self, *allowed: int, what: str = "version") -> int:
        start = self.offset
        value = self.read_int(what)
        if value not in allowed:
            raise self.error(f"expected {what} {' or '.join(map(str, allowed))}, got {value}", start)
        return value

    def read_tensor(self, what: str = "tensor") -> np.ndarray:
        """A dlib tensor: version 2, ``N, K, rows, cols``, then raw float32 (NCHW).

        Returns:
            A float32 array of shape ``(N, K, rows, cols)`` (a copy, safe to keep).
        """
        self.expect_int(2, what=f"{what} version")
        shape = tuple(self.read_int(f"{what} shape") for _ in range(4))
        if any(d < 0 for d in shape):
            raise self.error(f"negative {what} shape {shape}")
        count = math.prod(shape)
        start = self._take_check(4 * count, f"{what} data ({count} floats)")
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=start)
        return values.astype(np.float32).reshape(shape)  # astype copies: the result owns its data

    def read_alias_tensor(self, what: str = "alias tensor") -> tuple[int, int, int, int]:
        """An alias_tensor: version 1 and a 4-int shape (no data)."""
        self.expect_int(1, what=f"{what} version")
        shape = tuple(self.read_int(f"{what} shape") for _ in range(4))
        return shape  # type: ignore[return-value]

    def read_matrix(self, what: str = "matrix") -> np.ndarray:
        """A dlib matrix: ``-rows, -cols``, then float_details elements row-major (float64)."""
        rows = self.read_int(f"{what} rows")
        cols = self.read_int(f"{what} cols")
        rows, cols = abs(rows), abs(cols)  # new format writes them negated
        if rows * cols > self.remaining // 4:  # every element takes at least 4 bytes
            raise self.error(f"{what} of {rows}x{cols} does not fit in the {self.remaining} bytes left")
        values = [self.read_double(what) for _ in range(rows * cols)]
        return np.asarray(values, dtype=np.float64).reshape(rows, cols)

    def read_int_stream(self, what: str = "integers") -> np.ndarray:
        """Every packed integer from the current offset to the end of the buffer, at once.

        For files made only of integers and float_details (shape predictors): the token
        starts are found by pointer doubling over the whole buffer (each byte's "next token"
        offset, squared ~log2(tokens) times), then all magnitudes are decoded together, so
        millions of values take about a second rather than a minute of :meth:`read_int` calls.

        Returns:
            ``(K,)`` int64 values, in file order. The offset moves to the end of the buffer.
        """
        buf = np.frombuffer(self.data, np.uint8)
        end = len(buf)
        if self.offset >= end:
            return np.zeros(0, np.int64)
        nxt = np.minimum(np.arange(1, end + 1, dtype=np.int64) + (buf & 0x0F), end).astype(np.int32)
        jump = np.append(nxt, np.int32(end))  # position ``end`` is absorbing
        starts = np.array([self.offset], np.int32)
        while starts[-1] < end:
            starts = np.concatenate([starts, jump[starts]])
            jump = jump[jump]
        starts = starts[starts < end].astype(np.int64)
        control = buf[starts]
        size = (control & 0x0F).astype(np.int64)
        bad = np.nonzero((size == 0) | (size > 8) | (control & 0x70 != 0))[0]
        if bad.size:
            raise self.error(f"bad control byte 0x{control[bad[0]]:02x} for {what}", int(starts[bad[0]]))
        if starts[-1] + 1 + size[-1] != end:
            raise self.error(f"unexpected end of file reading {what}", int(starts[-1]))
        magnitude = np.zeros(len(starts), np.uint64)
        for k in range(8):
            has = size > k
            magnitude[has] |= buf[starts[has] + 1 + k].astype(np.uint64) << np.uint64(8 * k)
        if (magnitude > np.uint64(2**63 - 1)).any():
            raise self.error(f"an integer of {what} does not fit in 63 bits")
        values = magnitude.astype(np.int64)
        self.offset = end
        return np.where(control & 0x80 != 0, -values, values)


def doubles_from_details(mantissa: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    """float64 values of float_details ``(mantissa, exponent)`` pairs (vectorised :meth:`DlibReader.read_double`).

    Raises:
        ModelLoadError: an exponent is neither in int16 range nor one of the special values.
    """
    mantissa, exponent = np.asarray(mantissa, np.int64), np.asarray(exponent, np.int64)
    special = exponent >= _EXP_INF
    if ((exponent > _EXP_NAN) | (exponent < -32768)).any():
        raise ModelLoadError("malformed dlib float: exponent out of int16 range")
    out = np.ldexp(mantissa.astype(np.float64), np.where(special, 0, exponent).astype(np.int32))
    out[exponent == _EXP_INF] = math.inf
    out[exponent == _EXP_NINF] = -math.inf
    out[exponent == _EXP_NAN] = math.nan
    return out


__all__ = ["DlibReader", "doubles_from_details"]
