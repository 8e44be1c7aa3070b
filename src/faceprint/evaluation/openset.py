"""Open-set identification protocol and metrics (DIR vs FAR).

Protocol on a folder of ``<Name>/<Name>_NNNN.jpg`` images (LFW): people with two or more
images are enrolled with their first image and queried with the rest; people with a single
image are never enrolled and serve as strangers. People are split into two halves by a stable
hash of the name (:func:`person_half`), so methods and thresholds can be chosen on one half
and reported on the other.

- DIR (detection and identification rate) at a threshold: the fraction of enrolled people's
  queries whose best identity is correct *and* accepted.
- FAR (false alarm rate): the fraction of strangers accepted as anyone.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np


def person_half(name: str) -> int:
    """0 or 1, stable across runs and machines (CRC-32 of the name)."""
    return zlib.crc32(name.encode("utf-8")) % 2


@dataclass
class OpenSetSplit:
    """Indices into an image list: ``enroll`` (one per person, names in ``enroll_names``),
    ``queries`` (their other images, true names in ``query_names``) and ``strangers``."""

    enroll: np.ndarray
    enroll_names: list[str]
    queries: np.ndarray
    query_names: list[str]
    strangers: np.ndarray


def openset_split(names: Sequence[str], half: int | None = None) -> OpenSetSplit:
    """The protocol above over images labelled ``names`` (in file order), optionally one half."""
    by_person: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        if half is None or person_half(n) == half:
            by_person.setdefault(n, []).append(i)
    enroll, enames, queries, qnames, strangers = [], [], [], [], []
    for person in sorted(by_person):
        idx = by_person[person]
        if len(idx) == 1:
            strangers.append(idx[0])
            continue
        enroll.append(idx[0])
        enames.append(person)
        queries += idx[1:]
        qnames += [person] * (len(idx) - 1)
    return OpenSetSplit(np.array(enroll, int), enames, np.array(queries, int), qnames, np.array(strangers, int))


def lfw_images(root: str | Path) -> tuple[list[Path], list[str]]:
    """Every ``root/<Name>/*.jpg`` (sorted) and its person name."""
    paths = sorted(Path(root).glob("*/*.jpg"))
    return paths, [p.parent.name for p in paths]


def dir_far_curve(known_scores: np.ndarray, known_correct: np.ndarray,
                  stranger_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(thresholds, dir, far)`` over every distinct score (accept when score <= threshold).

    ``known_correct[i]`` says whether query ``i``'s best identity is the right one.
    """
    ks, ss = np.asarray(known_scores, float), np.asarray(stranger_scores, float)
    ok = np.asarray(known_correct, bool)
    thresholds = np.unique(np.concatenate([ks, ss]))
    thresholds = thresholds[np.isfinite(thresholds)]
    ks_ok = np.sort(ks[ok])
    dir_ = np.searchsorted(ks_ok, thresholds, side="right") / max(len(ks), 1)
    far = np.searchsorted(np.sort(ss), thresholds, side="right") / max(len(ss), 1)
    return thresholds, dir_, far


def dir_at_far(known_scores: np.ndarray, known_correct: np.ndarray, stranger_scores: np.ndarray,
               far: float) -> float:
    """The best DIR at a threshold whose FAR is <= ``far``."""
    _t, d, f = dir_far_curve(known_scores, known_correct, stranger_scores)
    ok = f <= far
    return float(d[ok].max()) if ok.any() else 0.0


def plot_dir_far(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path, title: str,
                 points: dict[str, tuple[float, float]] | None = None) -> None:
    """Plot ``{label: (far, dir)}`` curves on a log FAR axis (plus ``{label: (far, dir)}`` points) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=110)
    colours = {}
    for label, (far, dir_) in curves.items():
        colours[label] = ax.plot(np.clip(far, 1e-3, 1), dir_, label=label)[0].get_color()
    for label, (far, dir_) in (points or {}).items():  # a point "<curve label> @ ..." takes its curve's colour
        colour = colours.get(label.rsplit(" @ ", 1)[0])
        ax.plot([max(far, 1e-3)], [dir_], "o", label=label, **({"color": colour} if colour else {}))
    ax.axvline(0.02, color="grey", ls=":", lw=1)
    ax.axhline(0.80, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlim(1e-3, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("FAR (strangers accepted as someone)")
    ax.set_ylabel("DIR (queries identified correctly)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
