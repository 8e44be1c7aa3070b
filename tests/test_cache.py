"""The model cache's remembered file digests: equal to hashing the file, kept across processes,
recomputed when the file changes or the remembered value is damaged."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from faceprint import cache


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("FACEPRINT_CACHE_DIR", str(folder))
    return folder


def _reference(path: Path, salt: str, length: int) -> str:
    return hashlib.sha1(salt.encode() + path.read_bytes()).hexdigest()[:length]


def _memo_files() -> list[Path]:
    return sorted(cache.cache_dir().glob("digest-*.txt"))


def test_digest_equals_hashing_and_is_remembered_across_processes(tmp_path: Path) -> None:
    model = tmp_path / "weights.dat"
    model.write_bytes(os.urandom(3 << 20))  # over one 1 MiB read
    want = _reference(model, "converter-1:", 12)
    assert cache.file_digest(model, "converter-1:", 12) == want
    (memo,) = _memo_files()
    assert memo.read_text() == want
    # a new process gets it without reading the file: opening it fails there on purpose
    code = ("import sys; from pathlib import Path; from faceprint import cache\n"
            "def refuse(*a, **k): raise AssertionError('the file was read again')\n"
            "cache.open = refuse\n"
            "print(cache.file_digest(Path(sys.argv[1]), 'converter-1:', 12))\n")
    out = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True, text=True, check=True,
                         env=dict(os.environ))
    assert out.stdout.strip() == want
    # another salt or length is another entry
    assert cache.file_digest(model, "converter-2:", 16) == _reference(model, "converter-2:", 16)
    assert len(_memo_files()) == 2


def test_a_changed_file_or_a_damaged_memo_is_hashed_again(tmp_path: Path) -> None:
    model = tmp_path / "weights.dat"
    model.write_bytes(b"a" * 1000)
    first = cache.file_digest(model, "s:", 12)
    model.write_bytes(b"b" * 1001)  # new size and modification time
    assert cache.file_digest(model, "s:", 12) == _reference(model, "s:", 12) != first
    for memo in _memo_files():
        memo.write_text("not a digest")
    assert cache.file_digest(model, "s:", 12) == _reference(model, "s:", 12)
    with pytest.raises(OSError):
        cache.file_digest(tmp_path / "missing.dat", "s:", 12)


def test_a_cache_that_cannot_be_written_still_gives_the_digest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "weights.dat"
    model.write_bytes(b"c" * 100)

    def refuse(*_: object) -> None:
        raise PermissionError("read-only cache")

    monkeypatch.setattr(cache.os, "replace", refuse)
    assert cache.file_digest(model, "s:", 12) == _reference(model, "s:", 12)
    assert not _memo_files() and not list(cache.cache_dir().glob("*.part"))
