"""``faceprint`` command line: a thin layer over the library.

Every command takes ``--json``. Failures print one line to stderr and exit non-zero
(``faceprint --debug ...`` prints the traceback too).
"""

from __future__ import annotations

import atexit
import json
import math
import os
import sys
import threading
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

import typer

from ..errors import FaceprintError
from ..registry import DEFAULT_DETECTOR, DEFAULT_EMBEDDER
from .coercion import install as install_plain_coercion

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Face detection, embedding and verification on ONNX Runtime.")
_state = {"debug": False}


def _hide_flag_types() -> None:
    """Help lists a flag without a value type (Typer's Rich help shows ``<bool>`` on ``--json``,
    ``--help`` and every other flag, which take no value)."""
    try:
        from typer.core import TyperOption
    except ImportError:  # pragma: no cover - another Typer layout: its help is left as it is
        return
    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is None or getattr(shown, "_faceprint", False):
        return

    def display_type_rich(self: Any, ctx: Any) -> Any:
        return None if getattr(self, "is_flag", False) and not getattr(self, "count", False) else shown(self, ctx)

    display_type_rich._faceprint = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_hide_flag_types()
install_plain_coercion()

JsonOpt = typer.Option(False, "--json", help="Print machine-readable JSON.")
DetectorOpt = typer.Option(DEFAULT_DETECTOR, "--detector", help="Detector name (see `faceprint models`) or .onnx path.")
ModelOpt = typer.Option(DEFAULT_EMBEDDER, "--model", help="Embedder name (see `faceprint models`) or .onnx path.")


def positive_threshold(value: Optional[float]) -> Optional[float]:
    """A ``--threshold`` callback: a finite distance > 0, as the service accepts (``gt=0``)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"a distance threshold must be a number > 0, got {value:g}")
    return value
FlipOpt = typer.Option(False, "--flip", help="Test-time augmentation: average each face's embedding with its "
                                            "mirror image's (about 2x embedding time).")
JitterOpt = typer.Option(0, "--jitter", min=0, help="Test-time augmentation: also average N fixed jittered copies "
                                                   "of each face (about N+1 times the embedding time).")


def _show_own_warning(message: Any, category: Any, filename: str, *_a: Any, **_k: Any) -> None:
    """faceprint's own warnings as one line without a source path; a dependency's (pkg_resources'
    deprecation, Pillow's EXIF notes, scikit-learn's FutureWarnings) are dropped (``--debug`` shows them)."""
    if (Path(filename).resolve().is_relative_to(Path(__file__).resolve().parent)
            and not issubclass(category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning))):
        typer.echo(f"warning: {' '.join(str(message).split())}", err=True)


def _version(show: bool) -> None:
    if show:
        from .. import __version__

        typer.echo(f"faceprint {__version__}")
        raise typer.Exit()


@app.callback()
def _main(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors, and dependencies' warnings."),
          _show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                             help="Print the version and exit.")) -> None:
    _state["debug"] = debug
    if not debug:
        import warnings

        warnings.showwarning = _show_own_warning


#: Optional modules: ``{module: (PyPI package, {command: extra}, default extra)}`` for the message
#: a command prints when the base install lacks them.
OPTIONAL_MODULES: dict[str, tuple[str, dict[str, str], str]] = {
    "sklearn": ("scikit-learn", {"cluster": "collections", "train": "train"}, "eval"),
    "scipy": ("scipy", {"cluster": "collections"}, "eval"),
    "matplotlib": ("matplotlib", {"train": "train"}, "eval"),
    "torch": ("torch", {}, "train"),
    "fastapi": ("fastapi", {}, "service"),
    "uvicorn": ("uvicorn", {}, "service"),
    "multipart": ("python-multipart", {}, "service"),
    "prometheus_client": ("prometheus-client", {}, "service"),
    "usearch": ("usearch", {"cluster": "collections", "index": "collections"}, "scale"),
    "pymilvus": ("pymilvus", {}, "scale"),
    "milvus_lite": ("milvus-lite", {}, "scale"),
    "psycopg": ("psycopg", {}, "postgres"),
    "pgvector": ("pgvector", {}, "postgres"),
    "ray": ("ray", {}, "ray"),
}

#: Exit code when a command needs an optional extra that is not installed.
EXIT_MISSING_EXTRA = 8


def missing_extra_message(module: str | None, command: str | None) -> str | None:
    """``"<command> needs <package>: pip install 'faceprint[<extra>]'"`` for an optional module, else
    None; ``command`` is the command path after the program name (``"eval cluster"``)."""
    entry = OPTIONAL_MODULES.get((module or "").split(".")[0])
    if entry is None:
        return None
    package, by_command, default = entry
    extra = by_command.get((command or "").split(" ")[-1], default)
    who = f"`faceprint {command}`" if command else "this command"
    return f"{who} needs {package}, which the base install leaves out: pip install 'faceprint[{extra}]'"


def _command_name() -> str | None:
    """The running command's path after the program name (``"eval cluster"``), from the CLI
    framework's context (Typer >= 0.20 vendors click as ``typer._click``)."""
    import importlib

    for module in ("typer._click.globals", "click"):
        try:
            ctx = importlib.import_module(module).get_current_context(silent=True)
        except (ImportError, AttributeError):
            continue
        if ctx is not None:
            return " ".join(ctx.command_path.split(" ")[1:]) or None
    return None


def run_command(fn: Callable[[], Any]) -> None:
    """Run a command body; map errors to one line on stderr and an exit code."""
    try:
        fn()
    except ModuleNotFoundError as exc:
        message = missing_extra_message(exc.name, _command_name())
        if message is None:
            _unexpected(exc)
        if _state["debug"]:
            traceback.print_exc()
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(EXIT_MISSING_EXTRA) from None
    except FaceprintError as exc:
        if _state["debug"]:
            traceback.print_exc()
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        raise typer.Exit(130) from None
    except Exception as exc:  # unexpected: still one line unless --debug
        _unexpected(exc)


def _unexpected(exc: BaseException) -> None:
    if _state["debug"]:
        traceback.print_exc()
    typer.echo(f"error: unexpected {type(exc).__name__}: {exc} (use --debug for a traceback)", err=True)
    raise typer.Exit(1) from None


def emit(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=None) + "\n")


def embedder_options(flip: bool, jitter: int = 0) -> dict[str, Any]:
    """Constructor options for ``create_embedder`` (only those set, so any backend accepts them)."""
    return {**({"flip": True} if flip else {}), **({"jitter": jitter} if jitter else {})}


def make_pipeline(detector: str, model: str, calibration: Optional[Path] = None, flip: bool = False,
              jitter: int = 0) -> Any:
    from ..pipeline import FacePipeline
    from ..registry import create_detector, create_embedder

    embedder = create_embedder(model, **embedder_options(flip, jitter))
    return FacePipeline(detector=create_detector(detector), embedder=embedder, calibration=calibration)


class NoDetector:
    """Placeholder for commands that never detect (``embed --aligned``)."""

    def detect(self, image: Any) -> Any:  # pragma: no cover - never called
        raise RuntimeError("no detector configured")


eval_app = typer.Typer(no_args_is_help=True, help="Benchmark a model on labelled face pairs.")
app.add_typer(eval_app, name="eval")

# Options and helpers of the gallery commands (enroll, identify, people, video, serve).
DbOpt = typer.Option(..., "--db", help="Gallery database (SQLite file, sqlite:///PATH, milvus://HOST:PORT, "
                                       "*.milvus.db, postgresql://USER:PASS@HOST:PORT/DB).")
ThresholdOpt = typer.Option(None, "--threshold", callback=positive_threshold,
                            help="Accept the best identity when its distance <= this (default: the model's "
                                 "open-set threshold).")


def open_db(db: str, pipe: Any = None) -> Any:
    """The gallery ``db`` names, bound to ``pipe``'s model when one is given."""
    from ..gallery import open_gallery

    spec = None if pipe is None else pipe.spec
    return open_gallery(db) if spec is None else open_gallery(db, model_id=spec.model_id, metric=spec.metric)


def require_db(db: str) -> None:
    """Raise GalleryError when ``db`` names a local file that does not exist (reads never create one)."""
    from ..dburi import parse_db
    from ..errors import GalleryError

    uri = parse_db(db)
    if uri.path is not None and not uri.path.exists():
        raise GalleryError(f"{uri.path}: no such gallery")


people_app = typer.Typer(no_args_is_help=True, help="List and edit the people in a gallery.")
app.add_typer(people_app, name="people")
_people_state: dict[str, str] = {}


@people_app.callback()
def _people(db: str = DbOpt) -> None:
    _people_state["db"] = db


def people_db_uri() -> str:
    """The ``--db`` given to ``faceprint people``."""
    return _people_state["db"]


def people_db(create: bool = False) -> Any:
    """The gallery named by ``faceprint people --db PATH`` (for its subcommands in every module).

    Raises:
        GalleryError: a SQLite file that does not exist, unless ``create``.
    """
    db = people_db_uri()
    if not create:
        require_db(db)
    return open_db(db)



def _click_exceptions() -> Any:
    """The CLI framework's exception module (Typer >= 0.20 vendors click as ``typer._click``)."""
    try:
        from typer._click import exceptions
    except ImportError:  # older Typer on click
        from click import exceptions
    return exceptions


def main() -> None:
    """The ``faceprint`` entry point: usage errors (a bad value, an unknown option) are one line
    on stderr too, with click's usage exit code (2)."""
    exceptions = _click_exceptions()
    try:
        code = app(standalone_mode=False)
    except exceptions.NoArgsIsHelpError as exc:
        exc.show()
        code = exc.exit_code
    except exceptions.ClickException as exc:
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        typer.echo(f"error: {' '.join(exc.format_message().split())}{hint}", err=True)
        code = exc.exit_code
    except typer.Abort:  # Typer's own class: its vendored click's exceptions module has none
        typer.echo("error: aborted", err=True)
        code = 1
    code = code if isinstance(code, int) else 0
    if _command(sys.argv[1:]) in QUICK_EXIT and all(_idle_helper(t) for t in threading.enumerate()):
        _quick_exit(code)
    sys.exit(code)


#: Commands whose only output is what they print (no database, no file they write is left open):
#: they end without the interpreter's teardown (:func:`_quick_exit`).
QUICK_EXIT = frozenset({"verify", "detect", "embed", "models", "info"})


def _command(argv: list[str]) -> str | None:
    """The command name of a ``faceprint`` command line (the first word that is not an option)."""
    return next((a for a in argv if not a.startswith("-")), None)


def _idle_helper(thread: threading.Thread) -> bool:
    """The main thread, or a helper of the pipeline's (its parts run side by side and write
    nothing): once the command has returned they have nothing left to do."""
    return thread is threading.main_thread() or thread.name.startswith(("faceprint-fanout", "faceprint-prefetch"))


def _quick_exit(code: int) -> None:
    """End the process now: exit handlers run and output is flushed, but the interpreter's
    teardown (freeing NumPy, ONNX Runtime's sessions and every module, 0.13-0.2 s of a cold
    ``verify`` on a slow machine) is skipped. Only for :data:`QUICK_EXIT` commands, with no thread
    alive but the pipeline's idle helpers; ``FACEPRINT_FULL_EXIT=1`` keeps the full teardown."""
    if os.environ.get("FACEPRINT_FULL_EXIT"):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # the reader went away (a closed pipe), or the stream is closed
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
