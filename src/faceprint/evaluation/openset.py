"""Open-set identification protocol and metrics (DIR vs FAR).

Protocol on a folder of ``<Name>/<Name>_NNNN.jpg`` images (LFW): people with two or more
images are enrolled with their first image and queried with the rest; people with a single
image are never enrolled and serve as strangers. People are split into two halves by a stable
hash of the name (:func:`person_half`), so methods and thresholds can be chosen on one half
and reported on the other.

- DIR (detection and identification rate) at a threshold: the fraction of enrolled people's
  queries whose best identity is correct *and* accepted.
- FAR (false alarm rate): the fraction of strangers accepted as anyone.

:func:`openset_parts` is the protocol the gallery's defaults were chosen with (issue 14): View 1
split afresh by a salted SHA-256 of the name into a tuning part (0) and a report part (1), each
with its single-photo people split again into enrolled distractors (never queried) and strangers.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field
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
    distractors: np.ndarray = field(default_factory=lambda: np.zeros(0, int))


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


def salted_part(name: str, salt: str) -> int:
    """0 or 1 from the first byte of SHA-256(``salt + name``)."""
    return hashlib.sha256((salt + name).encode("utf-8")).digest()[0] % 2


def openset_parts(names: Sequence[str], part: int) -> OpenSetSplit:
    """Part ``part`` (0 = tuning, 1 = report) of the salted split described above, people sorted by
    name: each person with 2+ images enrolled with their first and queried with the rest; each
    single-image person a distractor (enrolled, never queried) or a stranger, by a second hash."""
    by_person: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        if salted_part(n, "faceprint-openset-2026") == part:
            by_person.setdefault(n, []).append(i)
    out = OpenSetSplit(np.zeros(0, int), [], np.zeros(0, int), [], np.zeros(0, int))
    enroll, queries, strangers, distractors = [], [], [], []
    for person in sorted(by_person):
        idx = by_person[person]
        if len(idx) == 1:
            (distractors if salted_part(person, "faceprint-distractor") == 0 else strangers).append(idx[0])
            continue
        enroll.append(idx[0])
        out.enroll_names.append(person)
        queries += idx[1:]
        out.query_names += [person] * (len(idx) - 1)
    out.enroll, out.queries = np.array(enroll, int), np.array(queries, int)
    out.strangers, out.distractors = np.array(strangers, int), np.array(distractors, int)
    return out


def fit_identity_gaussian(vectors: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    """A Gaussian model of a face embedding: ``{"mean", "between", "within"}`` where ``between``
    and ``within`` are square roots (``R @ R.T = covariance``) of the covariance of identity
    centres and of the pooled within-identity covariance (people with 2+ vectors, unbiased).
    A synthetic photo of a new person is ``mean + between @ z1 + within @ z2`` (``z`` standard
    normal): see :func:`faceprint.gallery.scoring.phantom_faces`."""
    x = np.asarray(vectors, np.float64)
    labels, inv, counts = np.unique(np.asarray(names), return_inverse=True, return_counts=True)
    centres = np.zeros((len(labels), x.shape[1]))
    np.add.at(centres, inv, x)
    centres /= counts[:, None]
    many = counts[inv] >= 2
    scale = np.sqrt(counts[inv][many] / (counts[inv][many] - 1))[:, None]
    resid = (x - centres[inv])[many] * scale
    within = resid.T @ resid / len(resid)
    between = np.cov(x.T, bias=True) - within

    def root(cov: np.ndarray) -> np.ndarray:
        w, v = np.linalg.eigh(cov)
        return v * np.sqrt(np.clip(w, 0, None))

    return {"mean": x.mean(0), "between": root(between), "within": root(within)}


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
