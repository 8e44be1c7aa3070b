"""Plain CLI values converted without pydantic: a faster start for every command.

Typer >= 0.26 converts every parameter through a pydantic ``TypeAdapter`` built when the
command runs, and one more per path value: importing pydantic and building the adapters cost
~75 ms CPU of each ``faceprint`` process (~90 ms for 200 file arguments), more than the rest of
the argument parsing. The values faceprint's commands take are plain: ``str``, ``bool``,
``int`` and ``float`` with an optional range, ``Path`` without checks, and lists of those.
:func:`install` has Typer convert exactly those directly when the value is unambiguous (a
decimal string, an in-range number, a path string); anything else (a value out of range, an
unusual spelling, another type, options Typer checks such as ``exists=True``) goes to Typer's
own conversion, so results and error messages are Typer's. ``tests/test_cli_coercion.py``
compares both on every parameter of the app.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Callable, get_args, get_origin

_SLOW = object()  # "let Typer convert this value"
_INT = re.compile(r"-?(0|[1-9][0-9]*)\Z")
_FLOAT = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?\Z")
#: ParameterInfo attributes whose Typer defaults leave a ``Path`` unchecked but for readability.
_PLAIN_PATH = {"exists": False, "resolve_path": False, "file_okay": True, "dir_okay": True, "readable": True,
               "writable": False, "allow_dash": False, "path_type": None}


def _in_range(value: float, info: Any) -> bool:
    return (info.min is None or value >= info.min) and (info.max is None or value <= info.max)


def _number(kind: type, info: Any) -> Callable[[Any], Any]:
    pattern = _INT if kind is int else _FLOAT

    def convert(value: Any) -> Any:
        if isinstance(value, str):
            if not pattern.match(value):
                return _SLOW
            number = kind(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and (kind is float or isinstance(value, int)):
            number = kind(value)
        else:
            return _SLOW
        return number if _in_range(number, info) else _SLOW

    return convert


def _str(value: Any) -> Any:
    return value if isinstance(value, str) else _SLOW


def _bool(value: Any) -> Any:
    return value if isinstance(value, bool) else _SLOW


def _path(value: Any) -> Any:
    if isinstance(value, Path):
        path = value
    elif isinstance(value, str) and value:
        path = Path(value)
    else:
        return _SLOW
    # Typer refuses an existing path that cannot be read (readable=True): leave that to it
    return path if not os.path.exists(path) or os.access(path, os.R_OK) else _SLOW


def _leaf(annotation: Any, info: Any) -> Callable[[Any], Any] | None:
    if annotation is bool:
        return _bool
    if getattr(info, "clamp", False):
        return None
    if annotation in (int, float):
        return _number(annotation, info)
    if info.min is not None or info.max is not None:
        return None
    if annotation is str:
        return _str
    if annotation is Path and all(getattr(info, k, v) == v for k, v in _PLAIN_PATH.items()):
        return _path
    return None


def plain_converter(annotation: Any, info: Any) -> Callable[[Any], Any] | None:
    """A function converting one CLI value of ``annotation`` (returning ``_SLOW`` when Typer must
    decide), or None when the parameter is not plain (a parser, click type, choice, file...)."""
    if getattr(info, "parser", None) is not None or getattr(info, "click_type", None) is not None:
        return None
    if get_origin(annotation) is list:
        (item,) = get_args(annotation) or (None,)
        leaf = _leaf(item, info)
        if leaf is None:
            return None

        def convert_list(value: Any) -> Any:
            if not isinstance(value, (list, tuple)):
                return _SLOW
            out = [leaf(v) for v in value]
            return _SLOW if any(v is _SLOW for v in out) else out

        return convert_list
    return _leaf(annotation, info)


class PlainRuntimeParam:
    """Typer's runtime-parameter interface (``coerce(value, param, ctx)``) for a plain parameter;
    Typer's own conversion is built, on first need, for the values this one does not take."""

    def __init__(self, descriptor: Any, convert: Callable[[Any], Any], fallback: Callable[[Any], Any]) -> None:
        self.descriptor = descriptor
        self.parameter_info = descriptor.parameter_info
        self.annotation = descriptor.annotation
        self._convert = convert
        self._fallback = fallback
        self._typer: Any = None

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        multi = param.multiple or param.nargs == -1
        if value is None:  # as Typer's RuntimeParam.coerce
            return () if multi else None
        out = _SLOW if multi and isinstance(value, str) else self._convert(value)
        if out is not _SLOW:
            return out
        if self._typer is None:
            self._typer = self._fallback(self.descriptor)
        return self._typer.coerce(value, param=param, ctx=ctx)


def install() -> bool:
    """Route Typer's conversion of plain parameters through :class:`PlainRuntimeParam` (once per
    process); False when this Typer has no such hook (its own conversion stays)."""
    try:
        import typer.core as core
    except ImportError:  # pragma: no cover
        return False
    original = getattr(core, "build_runtime_param", None)
    if original is None or not hasattr(core, "_TyperParameter"):  # pragma: no cover - another Typer layout
        return False
    if getattr(original, "_faceprint", False):
        return True
    fallback: Callable[[Any], Any] = original

    def build_runtime_param(descriptor: Any) -> Any:
        convert = None
        if getattr(descriptor, "file_annotation", None) is None:
            convert = plain_converter(descriptor.annotation, descriptor.parameter_info)
        return fallback(descriptor) if convert is None else PlainRuntimeParam(descriptor, convert, fallback)

    build_runtime_param._faceprint = True  # type: ignore[attr-defined]
    core.build_runtime_param = build_runtime_param
    return True


__all__ = ["PlainRuntimeParam", "install", "plain_converter"]
