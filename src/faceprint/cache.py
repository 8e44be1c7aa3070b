"""Where converted models live, and how they get there safely.

Converted weights go to ``$FACEPRINT_CACHE_DIR`` or the user cache dir. A conversion writes
to a temporary file and renames it into place under a file lock, so two processes that
convert at once both end with the same complete file and never read a partial one.
"""

from __future__ import annotations

import os
import tempfile
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


def cached_file(name: str, build: Callable[[Path], None]) -> Path:
    """Return ``cache_dir()/name``, calling ``build(tmp_path)`` once to create it.

    ``build`` must write the complete file to the path it is given. Concurrent callers
    serialise on a lock file; the result appears atomically.

    Raises:
        ModelLoadError: ``build`` failed (the message names the file).
    """
    from filelock import FileLock

    target = cache_dir() / name
    if target.exists():
        return target
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
