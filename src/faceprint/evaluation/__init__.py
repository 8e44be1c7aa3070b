"""Verification benchmarks on labelled pairs: LFW protocol, ROC/AUC/EER/TAR@FAR, calibration.

- :mod:`.pairs`: read LFW ``pairs*.txt`` (View 1, View 2) and CSV pair files.
- :mod:`.metrics`: the protocol math from distances and labels.
- :mod:`.lfw`: run a pipeline over a pairs file and build a report.
- :mod:`.calibrate`: threshold for a target FAR and a distance -> P(same) fit.
- :mod:`.plots`: ROC and DET figures (needs matplotlib: ``pip install faceprint[eval]``).
"""

from __future__ import annotations

from .pairs import Pair, PairSet, read_pairs

__all__ = ["Pair", "PairSet", "read_pairs"]
