"""The CLI's plain-value conversion (faceprint.cli.coercion) against Typer's own, on every
parameter of the app: the same values and types, the same error messages, and no pydantic in a
command's process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

typer = pytest.importorskip("typer")
_coercion = pytest.importorskip("typer._coercion", reason="this Typer has no runtime coercion layer")

from faceprint.cli import app  # noqa: E402
from faceprint.cli.coercion import PlainRuntimeParam  # noqa: E402

from .conftest import shared  # noqa: E402


def _params() -> Iterator[tuple[str, Any, Any]]:
    import typer.main

    def walk(cmd: Any, path: str) -> Iterator[tuple[str, Any, Any]]:
        for param in cmd.params:
            if hasattr(param, "type_descriptor"):
                yield f"{path} {param.name}", cmd, param
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, f"{path} {name}".strip())

    yield from walk(typer.main.get_command(app), "")


_LEAF_VALUES: dict[Any, list[Any]] = {
    int: ["0", "1", "7", "-3", "32", "010", "+5", "1.5", "1_000", " 4", "x", "", 0, 5, 99999, -1, 2.0, True],
    float: ["0.6", "1e-3", "0", "-1", "1", "0.5", "2", "1E5", "nan", "inf", "-inf", ".5", "1.", "x", "", 0, 1, 0.5, 2.5, -0.1],
    str: ["abc", "", "-", "ünï", "0"],
    bool: [True, False],
    Path: ["a.jpg", "", "-", "/nonexistent/dir/x.png", "__EXISTING__", "__FOLDER__", Path("x")],
}


def _values(annotation: Any) -> list[Any]:
    from typing import get_args, get_origin

    if get_origin(annotation) is list:
        leaf = _LEAF_VALUES[get_args(annotation)[0]]
        return [[v] for v in leaf] + [list(leaf[:3]), [], (leaf[0], leaf[1]), leaf[0]]
    return _LEAF_VALUES[annotation]


def _outcome(runtime: Any, value: Any, param: Any, ctx: Any) -> tuple[str, Any]:
    try:
        out = runtime.coerce(value, param=param, ctx=ctx)
    except Exception as exc:  # Typer's BadParameter / UsageError: compare type and message
        return "error", (type(exc).__name__, str(exc))
    return "ok", (type(out).__name__, repr(out))  # repr: types of list items too, and nan == nan


def test_plain_conversion_equals_typers_on_every_parameter() -> None:
    from typer._click import Context

    photo = str(shared("people", "obama.jpg"))
    folder = str(shared("people"))
    checked = plain = 0
    for name, cmd, param in _params():
        descriptor = param.type_descriptor
        ours = param.get_runtime_param()
        theirs = _coercion.build_runtime_param(descriptor)
        plain += isinstance(ours, PlainRuntimeParam)
        ctx = Context(cmd)
        for value in _values(descriptor.annotation) + [None]:
            if isinstance(value, str):
                value = {"__EXISTING__": photo, "__FOLDER__": folder}.get(value, value)
            if isinstance(value, list):
                value = [{"__EXISTING__": photo, "__FOLDER__": folder}.get(v, v) if isinstance(v, str) else v
                         for v in value]
            assert _outcome(ours, value, param, ctx) == _outcome(theirs, value, param, ctx), f"{name} = {value!r}"
            checked += 1
    assert plain >= 150 and checked > 1500  # every parameter of the app today is plain


def test_a_command_process_does_not_import_pydantic(tmp_path: Path) -> None:
    chip = tmp_path / "chip.png"
    from PIL import Image

    Image.new("RGB", (150, 150), (120, 110, 100)).save(chip)
    code = ("import atexit, sys\n"
            "atexit.register(lambda: print('pydantic imported:', 'pydantic' in sys.modules))\n"
            "from faceprint.cli import main\n"
            "sys.argv = ['faceprint', 'embed', '--aligned', '--batch-size', '8', '--threads', '1', sys.argv[1]]\n"
            "main()\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"),
                                                       os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", code, str(chip)], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "1 face(s), model dlib_resnet_v1" in proc.stdout
    assert "pydantic imported: False" in proc.stdout
    # a bad value still gets Typer's message (its conversion runs for it), one line, exit 2
    bad = subprocess.run([sys.executable, "-c", code.replace("'8'", "'0'"), str(chip)], capture_output=True,
                         text=True, env=env, timeout=300, check=False)
    assert bad.returncode == 2
    assert "Invalid value for '--batch-size': Input should be greater than or equal to 1" in bad.stderr
