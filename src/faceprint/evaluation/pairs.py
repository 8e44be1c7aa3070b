"""Readers for labelled face pairs: LFW ``pairs*.txt`` (View 1 and View 2) and a generic CSV.

LFW layouts (whitespace separated; images at ``ROOT/<name>/<name>_<NNNN>.jpg``):

- **View 2** (``pairs.txt``): first line ``"<folds> <n>"`` (``10 300``); then per fold ``n``
  matched pairs ``name n1 n2`` followed by ``n`` mismatched pairs ``name1 n1 name2 n2``.
- **View 1** (``pairsDevTrain.txt`` / ``pairsDevTest.txt``): first line ``"<n>"``; then ``n``
  matched pairs followed by ``n`` mismatched pairs; one split (one fold).

CSV: one pair per row ``path_a,path_b,same`` with ``same`` one of ``1/0/true/false/yes/no``
(case-insensitive); an optional header row (a row whose third field is not such a value) is
skipped. Relative paths resolve against ``root`` when given, else the CSV's folder.

Every reader checks that the images exist; problems raise :class:`PairsFileError` naming the
file and the 1-based line number.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import PairsFileError

_TRUE = {"1", "true", "yes"}
_FALSE = {"0", "false", "no"}


@dataclass(frozen=True)
class Pair:
    """One labelled pair: two image paths, ``same`` (one identity), its fold and source line."""

    path_a: Path
    path_b: Path
    same: bool
    fold: int
    line: int


@dataclass
class PairSet:
    """Pairs read from one file.

    Attributes:
        pairs: in file order.
        n_folds: 10 for LFW View 2, 1 for View 1 and CSV.
        layout: ``"lfw_view2"``, ``"lfw_view1"`` or ``"csv"``.
        source: the file read.
    """

    pairs: list[Pair]
    n_folds: int
    layout: str
    source: Path

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def labels(self) -> np.ndarray:
        """``(P,)`` bool, True for matched (same identity) pairs."""
        return np.array([p.same for p in self.pairs], dtype=bool)

    @property
    def folds(self) -> np.ndarray:
        """``(P,)`` int fold of each pair."""
        return np.array([p.fold for p in self.pairs], dtype=np.int64)

    def unique_images(self) -> tuple[list[Path], np.ndarray, np.ndarray]:
        """Unique image paths (first-seen order) and ``(P,)`` indices of each pair's two images."""
        index: dict[Path, int] = {}
        a_idx, b_idx = [], []
        for p in self.pairs:
            a_idx.append(index.setdefault(p.path_a, len(index)))
            b_idx.append(index.setdefault(p.path_b, len(index)))
        return list(index), np.array(a_idx, np.int64), np.array(b_idx, np.int64)

    def head(self, n_same: int, n_different: int) -> PairSet:
        """The first ``n_same`` matched and ``n_different`` mismatched pairs, as one fold."""
        same = [p for p in self.pairs if p.same][:n_same]
        diff = [p for p in self.pairs if not p.same][:n_different]
        return PairSet([Pair(p.path_a, p.path_b, p.same, 0, p.line) for p in same + diff], 1, self.layout, self.source)


def default_lfw_root(pairs_file: Path) -> Path:
    """The pairs file's folder, or its ``images/`` subfolder where LFW's layout keeps them."""
    images = pairs_file.parent / "images"
    return images if images.is_dir() else pairs_file.parent


def lfw_image_path(root: Path, name: str, number: int) -> Path:
    """``root/<name>/<name>_<NNNN>.jpg``."""
    return Path(root) / name / f"{name}_{number:04d}.jpg"


def _number(token: str, source: Path, line: int) -> int:
    try:
        value = int(token)
    except ValueError:
        raise PairsFileError(f"{source}:{line}: expected an image number, got {token!r}") from None
    if value < 1:
        raise PairsFileError(f"{source}:{line}: image numbers start at 1, got {value}")
    return value


def _read_lfw(source: Path, root: Path) -> PairSet:
    lines = source.read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines or not lines[0].strip():
        raise PairsFileError(f"{source}:1: empty file; expected an LFW header '<n>' or '<folds> <n>'")
    head = lines[0].split()
    try:
        counts = [int(t) for t in head]
    except ValueError:
        raise PairsFileError(f"{source}:1: expected an LFW header '<n>' (View 1) or '<folds> <n>' (View 2), "
                             f"got {lines[0].strip()!r}") from None
    if len(counts) == 1:
        n_folds, per_fold, layout = 1, counts[0], "lfw_view1"
    elif len(counts) == 2:
        n_folds, per_fold, layout = counts[0], counts[1], "lfw_view2"
    else:
        raise PairsFileError(f"{source}:1: expected '<n>' or '<folds> <n>', got {lines[0].strip()!r}")
    if n_folds < 1 or per_fold < 1:
        raise PairsFileError(f"{source}:1: fold and pair counts must be positive, got {lines[0].strip()!r}")
    body = [(i + 2, text) for i, text in enumerate(lines[1:]) if text.strip()]
    expected = 2 * n_folds * per_fold
    if len(body) != expected:
        last = body[-1][0] if body else 1
        raise PairsFileError(f"{source}:{last}: header promises {expected} pairs "
                             f"({n_folds} fold(s) x {per_fold} matched + {per_fold} mismatched), found {len(body)}")
    pairs = []
    for k, (line, text) in enumerate(body):
        fold, within = divmod(k, 2 * per_fold)
        same = within < per_fold
        tokens = text.split()
        if same and len(tokens) == 3:
            a = lfw_image_path(root, tokens[0], _number(tokens[1], source, line))
            b = lfw_image_path(root, tokens[0], _number(tokens[2], source, line))
        elif not same and len(tokens) == 4:
            a = lfw_image_path(root, tokens[0], _number(tokens[1], source, line))
            b = lfw_image_path(root, tokens[2], _number(tokens[3], source, line))
        else:
            want = "a matched pair 'name n1 n2'" if same else "a mismatched pair 'name1 n1 name2 n2'"
            raise PairsFileError(f"{source}:{line}: expected {want} (fold {fold + 1}), got {text.strip()!r}")
        pairs.append(Pair(a, b, same, fold, line))
    return PairSet(pairs, n_folds, layout, source)


def _parse_same(token: str) -> bool | None:
    t = token.strip().lower()
    return True if t in _TRUE else False if t in _FALSE else None


def _read_csv(source: Path, root: Path | None) -> PairSet:
    base = Path(root) if root is not None else source.parent
    pairs = []
    with open(source, newline="", encoding="utf-8", errors="replace") as fh:
        for line, row in enumerate(csv.reader(fh), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != 3:
                raise PairsFileError(f"{source}:{line}: expected 3 fields 'path_a,path_b,same', got {len(row)}")
            same = _parse_same(row[2])
            if same is None:
                if not pairs and line == 1:
                    continue  # header row
                raise PairsFileError(f"{source}:{line}: 'same' must be 1/0/true/false/yes/no, got {row[2].strip()!r}")
            a, b = (base / row[0].strip(), base / row[1].strip())
            pairs.append(Pair(a, b, same, 0, line))
    if not pairs:
        raise PairsFileError(f"{source}:1: no pairs found; expected rows 'path_a,path_b,same'")
    return PairSet(pairs, 1, "csv", source)


def _check_images(pairs: PairSet) -> None:
    checked: set[Path] = set()
    for p in pairs.pairs:
        for path in (p.path_a, p.path_b):
            if path in checked:
                continue
            if not path.is_file():
                raise PairsFileError(f"{pairs.source}:{p.line}: image not found: {path}")
            checked.add(path)


def read_pairs(path: str | Path, root: str | Path | None = None, check_images: bool = True) -> PairSet:
    """Read an LFW pairs file (View 1 or View 2) or a CSV of labelled pairs.

    The format is chosen by content: a ``.csv`` suffix or a comma in the first line means CSV.

    Args:
        path: the pairs file.
        root: LFW image root (default: the pairs file's folder, or its ``images/`` subfolder); for CSV, the folder relative
            paths resolve against (default: the CSV's folder).
        check_images: fail on the first pair whose image file is missing.

    Raises:
        PairsFileError: the file is missing, malformed, or names a missing image; the message
            gives ``file:line``.
    """
    source = Path(path)
    if not source.is_file():
        raise PairsFileError(f"{source}: pairs file not found")
    with open(source, encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    if source.suffix.lower() == ".csv" or "," in first:
        pairs = _read_csv(source, None if root is None else Path(root))
    else:
        pairs = _read_lfw(source, Path(root) if root is not None else default_lfw_root(source))
    if check_images:
        _check_images(pairs)
    return pairs


__all__ = ["Pair", "PairSet", "lfw_image_path", "read_pairs"]
