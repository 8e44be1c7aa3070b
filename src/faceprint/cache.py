"""Where converted models live, and how they get there safely.

Converted weights go to ``$FACEPRINT_CACHE_DIR`` or the user cache dir. A conversion writes
to a temporary file and renames it into place under a file lock, so two processes that
convert at once both end with the same complete file and never read a partial one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from importlib.util import find_spec
from pathlib import Path
from typing import Callable

from .errors import ModelLoadError


def cache_dir() -> Path:
    """The faceprint cache folder (created on demand)."""
    env = os.environ.get("FACEPRINT_CACHE_DIR")
    if env:
        path = Path(env)
    else:
        import platformdirs

        path = Path(platformdirs.user_cache_dir("faceprint"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def package_file(package: str, relative: str, pip_name: str) -> Path:
    """A data file shipped inside an installed package, found without importing the package
    (``face_recognition_models`` imports the slow, deprecated ``pkg_resources``; ``mtcnn``
    imports TensorFlow).

    Raises:
        ModelLoadError: the package is not installed, or the file is missing from it.
    """
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"this model's weights come from the {pip_name!r} package: pip install {pip_name}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ModelLoadError(f"model file not found: {path} (reinstall the {pip_name!r} package)")
    return path


def cached_file(name: str, build: Callable[[Path], None]) -> Path:
    """Return ``cache_dir()/name``, calling ``build(tmp_path)`` once to create it.

    ``build`` must write the complete file to the path it is given. Concurrent callers
    serialise on a lock file; the result appears atomically.

    Raises:
        ModelLoadError: ``build`` failed (the message names the file).
    """
    target = cache_dir() / name
    if target.exists():
        return target
    from filelock import FileLock  # only a conversion needs it (~20 ms of imports)

    with FileLock(str(target) + ".lock"):
        if target.exists():  # another process finished while we waited
            return target
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".part")
        os.close(fd)
        try:
            build(Path(tmp))
            os.replace(tmp, target)
        except Exception as exc:
            raise ModelLoadError(f"could not build cached file {target}: {exc}") from exc
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return target


def file_digest(path: Path, salt: str, length: int) -> str:
    """``sha1(salt + the bytes of path)``'s first ``length`` hex digits, remembered in the cache
    by the file's resolved path, size and modification time (as :func:`~faceprint.onnx_graph.optimized_model_path`
    keys its files): a model's ``.dat`` is read and hashed once, not in every process (the
    dlib ResNet's 22 MB took ~35 ms CPU per start).

    Raises:
        OSError: the file cannot be read.
    """
    source = Path(path).resolve()
    stat = source.stat()
    key = "|".join([str(source), str(stat.st_size), str(stat.st_mtime_ns), salt, str(length)])
    memo = cache_dir() / f"digest-{hashlib.sha1(key.encode()).hexdigest()[:16]}.txt"
    try:
        known = memo.read_text(encoding="ascii").strip()
        if len(known) == length and all(c in "0123456789abcdef" for c in known):
            return known
    except (OSError, UnicodeDecodeError):
        pass
    digest = hashlib.sha1(salt.encode())
    with open(source, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    value = digest.hexdigest()[:length]
    tmp = memo.with_name(f"{memo.name}.{os.getpid()}.part")
    try:  # atomic: a reader sees the whole digest or none
        tmp.write_text(value, encoding="ascii")
        os.replace(tmp, memo)
    except OSError:  # a read-only cache still works, it hashes every time
        tmp.unlink(missing_ok=True)
    return value
