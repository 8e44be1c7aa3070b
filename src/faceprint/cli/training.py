"""``faceprint train``: train or fine-tune an embedding model on a folder of identities
(needs ``pip install faceprint[train]``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ..progress import progress_bar
from .common import DetectorOpt, JsonOpt, app, emit, run_command


@app.command()
def train(data: Path = typer.Option(..., "--data", help="Folder of identities: DIR/<name>/*.jpg."),
          backbone: str = typer.Option("small_resnet", "--backbone", help="dlib_resnet or small_resnet."),
          loss: str = typer.Option("triplet", "--loss", help="triplet, contrastive, softmax, sphereface, cosface, "
                                                               "arcface, siamese_l1 or siamese_chi2."),
          miner: Optional[str] = typer.Option(None, "--miner", help="Triplet miner: batch_all, batch_hard or "
                                                                     "semi_hard (default semi_hard)."),
          init: Optional[str] = typer.Option(None, "--init", help="Start from pretrained weights: dlib_resnet."),
          epochs: int = typer.Option(10, "--epochs", min=1, help="Epochs to train (the last epoch, when resuming)."),
          out: Path = typer.Option(..., "--out", help="Output folder: checkpoints, log.csv, curves.png, model.onnx."),
          dim: int = typer.Option(128, "--dim", min=1, help="Embedding size."),
          lr: Optional[float] = typer.Option(None, "--lr", min=0.0, help="Learning rate (default 1e-4 with --init, "
                                                                          "1e-3 from scratch)."),
          batch_p: int = typer.Option(16, "--batch-p", min=2, help="Identities per batch."),
          batch_k: int = typer.Option(4, "--batch-k", min=1, help="Images per identity in a batch."),
          margin: Optional[float] = typer.Option(None, "--margin", help="The loss's margin (default: its own)."),
          val_fraction: float = typer.Option(0.2, "--val-fraction", help="Share of identities held out."),
          patience: int = typer.Option(5, "--patience", min=0, help="Early stopping: epochs without a better "
                                                                     "validation TAR@FAR 1e-2 (0 = off)."),
          steps_per_epoch: Optional[int] = typer.Option(None, "--steps-per-epoch", min=1,
                                                        help="Cap on batches per epoch."),
          freeze: int = typer.Option(0, "--freeze", min=0, help="Backbone stages kept fixed, from the input side."),
          augment: str = typer.Option("full", "--augment", help="full (flip, colour jitter, small affine, blur, "
                                                                 "occlusion), light (flip, jitter) or none."),
          normalize: Optional[bool] = typer.Option(None, "--normalize/--raw", help="L2-normalise embeddings "
                                                   "(default: yes, except with --init dlib_resnet)."),
          pos_margin: Optional[float] = typer.Option(None, "--pos-margin", help="Contrastive loss: distance "
                                                     "below which same-identity pairs cost nothing."),
          optimizer: str = typer.Option("adamw", "--optimizer", help="adamw or sgd (momentum 0.9)."),
          aligned: bool = typer.Option(False, "--aligned", help="Images already are chips of the backbone's template."),
          template: str = typer.Option("dlib_150", "--template", help="small_resnet chips: dlib_150 or arcface_112."),
          device: str = typer.Option("auto", "--device", help="auto (GPU when present), cpu, cuda, cuda:1, ..."),
          seed: int = typer.Option(0, "--seed", help="Seed of the split, batches, augmentation and heads."),
          resume: bool = typer.Option(False, "--resume", help="Continue from OUT/last.pt."),
          detector: str = DetectorOpt, as_json: bool = JsonOpt) -> None:
    """Train or fine-tune an embedding model; validates on held-out identities every epoch and
    exports OUT/model.onnx with its spec (use it as --model OUT)."""

    def body() -> None:
        from ..training.run import train_folder
        from ..training.trainer import TrainConfig, pick_device

        config = TrainConfig(backbone=backbone, loss=loss, miner=miner, init=init, dim=dim, template=template,
                             epochs=epochs, lr=lr, batch_p=batch_p, batch_k=batch_k, margin=margin,
                             patience=patience, steps_per_epoch=steps_per_epoch, freeze=freeze,
                             augment=augment, normalize=normalize, pos_margin=pos_margin, optimizer=optimizer,
                             seed=seed)
        config.check()
        align_bar, train_bar = _LazyBar("align", "img"), _LazyBar("train", "step")

        def on_epoch(row: Any) -> None:
            if not as_json:
                v = row.val
                loss_txt = "start" if row.train_loss is None else f"loss {row.train_loss:.4f}"
                typer.echo(f"epoch {row.epoch}: {loss_txt}; held-out pair accuracy {v.pair_accuracy:.4f}, "
                           f"TAR@FAR1e-2 {v.tar['1e-2']:.4f}, TAR@FAR1e-3 {v.tar['1e-3']:.4f}", err=True)

        try:
            summary = train_folder(data, out, config, val_fraction=val_fraction, detector=detector,
                                   aligned=aligned, resume=resume, device=pick_device(device),
                                   on_image=align_bar, on_step=train_bar, on_epoch=on_epoch)
        finally:
            align_bar.close()
            train_bar.close()
        if as_json:
            emit({k: v for k, v in summary.items() if k != "history"})
            return
        s, b = summary["start"], summary["best"]
        typer.echo(f"trained {summary['epochs_run']} epoch(s) on {summary['device']}: {summary['train_identities']} "
                   f"identities ({summary['train_images']} images); validated on {summary['val_identities']} "
                   f"held-out identities ({summary['val_images']} images)")
        typer.echo(f"TAR@FAR1e-2 {s['tar_far_1e-2']:.4f} -> {b['tar_far_1e-2']:.4f} (epoch {summary['best_epoch']}), "
                   f"pair accuracy {s['pair_accuracy']:.4f} -> {b['pair_accuracy']:.4f}")
        if "model" in summary:
            typer.echo(f"wrote {summary['model']} (+ .json spec); use it with --model {out}")

    run_command(body)


class _LazyBar:
    """A progress bar opened on the first ``bar(i, total)`` call (when the total is known)."""

    def __init__(self, label: str, unit: str) -> None:
        self.label, self.unit = label, unit
        self._progress: Any = None
        self._task: Any = None

    def __call__(self, i: int, total: int) -> None:
        if self._progress is None:
            self._progress = progress_bar(total, self.label, unit=self.unit).__enter__()
            self._task = self._progress.add_task(self.label, total=total)
        self._progress.update(self._task, completed=i + 1)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)
            self._progress = None
