"""``faceprint info``: what is installed and cached, without loading any model."""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any

import typer

from .common import OPTIONAL_MODULES, JsonOpt, app, emit, run_command


def _present(module: str) -> bool:
    """True when ``module`` can be imported (found without importing it: torch or ray take seconds)."""
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def installed_extras() -> dict[str, bool]:
    """``{extra: installed}``: an extra is installed when every optional module it needs is found."""
    needs: dict[str, set[str]] = {}
    for module, (_package, by_command, default) in OPTIONAL_MODULES.items():
        for extra in {default, *by_command.values()}:
            needs.setdefault(extra, set()).add(module)
    return {extra: all(_present(m) for m in sorted(modules)) for extra, modules in sorted(needs.items())}


def cached_models(files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each registered model with the converted files of it found in the cache (by name prefix)."""
    from ..registry import DETECTORS, EMBEDDERS, LANDMARKS

    rows = []
    for kind, table in (("detector", DETECTORS), ("embedder", EMBEDDERS), ("landmarks", LANDMARKS)):
        for name, entry in table.items():
            mine = [f for f in files if entry.cache_prefix and f["name"].startswith(entry.cache_prefix)]
            rows.append({"name": name, "kind": kind, "converted": bool(mine) if entry.cache_prefix else None,
                         "files": [f["name"] for f in mine], "bytes": sum(f["bytes"] for f in mine)})
    return rows


def info_report() -> dict[str, Any]:
    """Version, extras, ONNX Runtime, cache folder and converted models, as ``faceprint info --json`` prints."""
    from .. import __version__
    from ..cache import cache_dir

    folder = cache_dir()
    files = [{"name": p.name, "bytes": p.stat().st_size} for p in sorted(folder.iterdir())
             if p.is_file() and not p.name.endswith((".lock", ".part"))]
    try:
        import onnxruntime as ort

        runtime: dict[str, Any] = {"version": ort.__version__, "providers": list(ort.get_available_providers())}
    except ImportError:
        runtime = {"version": None, "providers": []}
    return {"version": __version__, "extras": installed_extras(),
            "optional_modules": {m: _present(m) for m in OPTIONAL_MODULES},
            "onnxruntime": runtime, "cache_dir": str(folder), "cache_files": files,
            "models": cached_models(files)}


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.1f} MB"


@app.command()
def info(as_json: bool = JsonOpt) -> None:
    """Version, installed extras, ONNX Runtime providers, the cache folder and which models are converted."""

    def body() -> None:
        rep = info_report()
        if as_json:
            emit(rep)
            return
        extras = rep["extras"]
        typer.echo(f"faceprint {rep['version']}")
        typer.echo(f"extras installed: {', '.join(e for e, ok in extras.items() if ok) or 'none'}")
        typer.echo(f"extras missing: {', '.join(e for e, ok in extras.items() if not ok) or 'none'}")
        ort = rep["onnxruntime"]
        typer.echo(f"onnxruntime {ort['version'] or 'not installed'}; providers: {', '.join(ort['providers']) or '-'}")
        typer.echo(f"cache: {rep['cache_dir']}")
        for row in rep["models"]:
            if row["converted"] is None:
                state = "read from its package (no conversion)"
            elif row["converted"]:
                state = f"converted ({', '.join(row['files'])}; {_size(row['bytes'])})"
            else:
                state = "not converted yet (converted on first use)"
            typer.echo(f"  {row['kind']} {row['name']}: {state}")

    run_command(body)
