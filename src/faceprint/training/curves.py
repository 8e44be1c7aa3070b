"""Training curves as a PNG (matplotlib, Agg backend; imported only when a run writes them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence


def plot_curves(rows: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Write the training loss and the validation metrics per epoch (rows of ``log.csv``)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    epochs = [int(r["epoch"]) for r in rows]
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 4))
    trained = [(int(r["epoch"]), float(r["train_loss"])) for r in rows if r["train_loss"] not in ("", None)]
    if trained:
        ax_loss.plot(*zip(*trained), marker="o")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="training loss")
    for key, label in (("pair_accuracy", "pair accuracy"), ("tar_far_1e-2", "TAR @ FAR 1e-2"),
                       ("tar_far_1e-3", "TAR @ FAR 1e-3")):
        ax_val.plot(epochs, [float(r[key]) for r in rows], marker="o", label=label)
    ax_val.set(xlabel="epoch (0 = start)", ylabel="held-out identities", title="validation")
    ax_val.legend(loc="lower right")
    ax_val.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


__all__ = ["plot_curves"]
