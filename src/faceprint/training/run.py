"""One call from a folder of identities to an exported model: what ``faceprint train`` runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from ..errors import TrainingDataError
from ..registry import DEFAULT_DETECTOR
from .data import ChipSet, align_identities, scan_identities, split_identities
from .factory import loss_info
from .trainer import EpochRow, TrainConfig, Trainer


def prepare_data(data: str | Path, template: str, pairs: bool, val_fraction: float, seed: int = 0,
                 detector: str = DEFAULT_DETECTOR, aligned: bool = False,
                 on_image: Callable[[int, int], None] | None = None) -> tuple[ChipSet, ChipSet]:
    """Scan, align (cached) and split ``data`` into identity-disjoint ``(train, val)`` sets.

    ``on_image(i, n)`` reports alignment progress.

    Raises:
        TrainingDataError: bad folder layout (see :func:`scan_identities`); ``pairs`` (a loss
            comparing images of one identity) and no identity with 2 or more images; a split
            that leaves fewer than 2 identities on a side.
        ImageDecodeError: an image cannot be read.
    """
    folder = scan_identities(data)
    counts = folder.counts()
    if pairs and int((counts >= 2).sum()) < 2:
        raise TrainingDataError(f"{data}: pair and triplet losses need identities with at least 2 images; "
                                f"{int((counts >= 2).sum())} of {len(counts)} identities have more than one")
    n = len(folder.paths)
    chips = align_identities(folder, template, detector=detector, aligned=aligned,
                             on_image=None if on_image is None else (lambda i: on_image(i, n)))
    train_mask, val_mask = split_identities(chips.labels, val_fraction, seed=seed)
    return chips.subset(train_mask), chips.subset(val_mask)


def train_folder(data: str | Path, out: str | Path, config: TrainConfig, val_fraction: float = 0.2,
                 detector: str = DEFAULT_DETECTOR, aligned: bool = False, resume: bool = False, device: Any = None,
                 dat_path: str | Path | None = None, export: bool = True,
                 on_image: Callable[[int, int], None] | None = None,
                 on_step: Callable[[int, int], None] | None = None,
                 on_epoch: Callable[[EpochRow], None] | None = None) -> dict[str, Any]:
    """Train ``config`` on the identities in ``data``, write everything to ``out``, export the
    best epoch, and return a summary (also written to ``out/summary.json``).

    ``on_image(i, n)`` reports alignment, ``on_step(i, total)`` training steps (the total
    assumes no early stop), ``on_epoch(row)`` each validated epoch.

    Raises:
        TrainingDataError, ConfigError, UnknownModelError: bad data or settings.
    """
    config.check()
    template = "dlib_150" if config.backbone == "dlib_resnet" else config.template
    train, val = prepare_data(data, template, loss_info(config.loss).pairs, val_fraction, config.seed, detector,
                              aligned, on_image)
    trainer = Trainer(config, train, val, Path(out), device=device,
                      dat_path=None if dat_path is None else Path(dat_path))
    if resume:
        trainer.resume()
    total = max(0, config.epochs - trainer.epoch) * trainer.steps_per_epoch
    done = iter(range(total + 1_000_000))
    step = None if on_step is None else (lambda: on_step(next(done), total))
    history = trainer.fit(on_step=step, on_epoch=on_epoch)
    summary: dict[str, Any] = {
        "out": str(out), "device": str(trainer.device), "epochs_run": history[-1].epoch,
        "best_epoch": trainer.best_epoch, "train_identities": len(train.names), "train_images": len(train),
        "val_identities": len(val.names), "val_images": len(val), "no_face": int(train.no_face.sum() + val.no_face.sum()),
        "start": history[0].val.to_dict(), "best": next(r for r in history if r.epoch == trainer.best_epoch).val.to_dict(),
        "history": [r.to_row() for r in history],
    }
    if export:
        from .export import export_model

        summary["model"] = str(export_model(out))
    Path(out, "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


__all__ = ["prepare_data", "train_folder"]
