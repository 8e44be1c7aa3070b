"""ROC and DET plots (matplotlib, Agg backend; imported only when a plot is asked for)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import metrics


def plot_roc_det(distances: np.ndarray, labels: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Write a PNG with the ROC (TAR vs FAR, log FAR axis) and the DET (FRR vs FAR, log-log).

    Raises:
        ConfigError: a class is missing.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    curve = metrics.roc(distances, labels)
    floor = 1.0 / max(int((~np.asarray(labels, bool)).sum()), 1) / 2  # below the smallest non-zero FAR
    far = np.clip(curve.far, floor, 1.0)
    frr = np.clip(curve.frr, floor, 1.0)
    fig, (ax_roc, ax_det) = plt.subplots(1, 2, figsize=(10, 4.5))
    ax_roc.step(far, curve.tar, where="post")
    ax_roc.set(xscale="log", xlabel="FAR (false accept rate)", ylabel="TAR (true accept rate)",
               title=f"ROC (AUC {metrics.auc(distances, labels):.4f})", ylim=(0, 1.01))
    ax_det.plot(far, frr)
    rate, _ = metrics.eer(distances, labels)
    ax_det.plot([floor, 1], [floor, 1], ":", color="grey", linewidth=0.8)
    ax_det.set(xscale="log", yscale="log", xlabel="FAR", ylabel="FRR (false reject rate)",
               title=f"DET (EER {rate:.4f})")
    for ax in (ax_roc, ax_det):
        ax.grid(True, which="both", alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


__all__ = ["plot_roc_det"]
