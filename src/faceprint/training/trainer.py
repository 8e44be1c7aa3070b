"""The training loop: P x K batches, augmentation, per-epoch validation, checkpoints, resume,
early stopping, a CSV log and PNG curves.

Files in ``out_dir``: ``last.pt`` (everything needed to resume), ``best.pt`` (the weights of
the best validation epoch), ``log.csv`` (one row per epoch; epoch 0 is the untrained start),
``curves.png``. :mod:`.export` then writes ``model.onnx`` and its spec from ``best.pt``.
"""

from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import ConfigError, TrainingDataError
from .data import ChipSet, PKSampler
from .factory import create_backbone, create_loss, loss_info
from .validate import ValidationResult, embed_chips, score_embeddings

#: Augmentation sets (see :mod:`.augment`).
AUGMENTS = ("full", "light", "none")

#: The validation number that picks the best epoch and drives early stopping.
MONITOR = "tar_far_1e-2"
LOG_FIELDS = ("epoch", "steps", "train_loss", "pair_accuracy", "tar_far_1e-2", "tar_far_1e-3", "auc",
              "lr", "seconds")


def selection_score(val: ValidationResult) -> float:
    """What picks the best epoch (and, in :mod:`.protocol`, the recipe): validation
    ``MONITOR``, with the pair accuracy breaking ties."""
    return val.to_dict()[MONITOR] + 1e-3 * val.pair_accuracy


@dataclass
class TrainConfig:
    """What ``faceprint train`` was asked for (saved in every checkpoint).

    Attributes:
        backbone, loss, miner: names from :mod:`.factory` (miner only for ``"triplet"``).
        init: ``"dlib_resnet"`` to start from dlib's weights (backbone ``dlib_resnet``), or None.
        dim: embedding size. template: chips of ``small_resnet`` (``dlib_resnet``: dlib_150).
        epochs: last epoch to train. lr: AdamW learning rate (None: 1e-4 from dlib's weights,
            1e-3 from scratch; class heads always get 10x).
        batch_p, batch_k: identities and images per identity in a batch.
        margin: the loss's margin (None: its default).
        patience: stop after this many epochs without a better validation ``MONITOR``
            (0 = never).
        steps_per_epoch: cap on batches per epoch (None: about one pass over the images).
        freeze: number of backbone stages (from the input side) kept fixed.
        augment: ``"full"`` (flip, colour jitter, small affine, blur, occlusion), ``"light"``
            (flip, colour jitter) or ``"none"``.
        normalize: L2-normalise embeddings in pair/triplet losses and in the exported spec
            (None: yes, except when starting from dlib's weights, whose metric is raw
            Euclidean with threshold 0.6). Cosine-metric losses always normalise.
        pos_margin: the contrastive loss's positive margin.
        optimizer: ``"adamw"`` or ``"sgd"`` (momentum 0.9).
        seed: seeds the split, the sampler, the augmentations and the heads.
    """

    backbone: str = "small_resnet"
    loss: str = "triplet"
    miner: str | None = None
    init: str | None = None
    dim: int = 128
    template: str = "dlib_150"
    epochs: int = 10
    lr: float | None = None
    weight_decay: float = 5e-4
    batch_p: int = 16
    batch_k: int = 4
    margin: float | None = None
    patience: int = 5
    steps_per_epoch: int | None = None
    freeze: int = 0
    augment: str = "full"
    normalize: bool | None = None
    pos_margin: float | None = None
    optimizer: str = "adamw"
    seed: int = 0

    def check(self) -> None:
        """Raises ConfigError / UnknownModelError for inconsistent settings."""
        info = loss_info(self.loss)
        if self.init not in (None, "dlib_resnet"):
            raise ConfigError(f"unknown --init {self.init!r}; the only pretrained start is 'dlib_resnet'")
        if self.init == "dlib_resnet" and self.backbone != "dlib_resnet":
            raise ConfigError("--init dlib_resnet needs --backbone dlib_resnet")
        if self.miner is not None and not info.miner:
            raise ConfigError(f"loss {self.loss!r} takes no miner (only 'triplet' does)")
        if self.epochs < 1 or self.dim < 1 or self.batch_p < 2 or self.batch_k < 1:
            raise ConfigError("epochs, dim and batch_k must be >= 1 and batch_p >= 2")
        if self.augment not in AUGMENTS:
            raise ConfigError(f"augment must be one of {AUGMENTS}, got {self.augment!r}")
        if self.optimizer not in ("adamw", "sgd"):
            raise ConfigError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if info.pairs and self.batch_k < 2:
            raise ConfigError(f"loss {self.loss!r} compares images of one identity: --batch-k must be >= 2")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (1e-4 if self.init else 1e-3)

    @property
    def l2_normalize(self) -> bool:
        """Whether embeddings are unit-normalised (in the loss, validation and the spec)."""
        if loss_info(self.loss).metric == "cosine":
            return True
        return self.normalize if self.normalize is not None else self.init is None


@dataclass
class EpochRow:
    epoch: int
    steps: int
    train_loss: float | None
    val: ValidationResult
    lr: float
    seconds: float

    def to_row(self) -> dict[str, Any]:
        v = self.val.to_dict()
        return {"epoch": self.epoch, "steps": self.steps,
                "train_loss": "" if self.train_loss is None else f"{self.train_loss:.6f}",
                "pair_accuracy": f"{v['pair_accuracy']:.6f}", "tar_far_1e-2": f"{v['tar_far_1e-2']:.6f}",
                "tar_far_1e-3": f"{v['tar_far_1e-3']:.6f}", "auc": f"{v['auc']:.6f}", "lr": f"{self.lr:g}",
                "seconds": f"{self.seconds:.1f}"}


def pick_device(name: str = "auto") -> Any:
    """``"auto"``: CUDA when available, else CPU; or any ``torch.device`` name."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class Trainer:
    """Trains ``config`` on ``train`` chips, validating on ``val`` (held-out identities).

    Args:
        config: the settings (see :class:`TrainConfig`).
        train, val: identity-disjoint :class:`ChipSet`s of the backbone's template.
        out_dir: where checkpoints, the log and the curves go.
        device: a ``torch.device`` (default: :func:`pick_device`).
        dat_path: dlib's ``.dat`` for ``init="dlib_resnet"`` (default: the packaged one).

    Raises:
        TrainingDataError: a pair loss and too few training identities with 2+ images, or a
            set whose template is not the backbone's.
    """

    config: TrainConfig
    train: ChipSet
    val: ChipSet
    out_dir: Path
    device: Any = None
    dat_path: Path | None = None
    history: list[EpochRow] = field(default_factory=list)

    def __post_init__(self) -> None:
        import torch

        self.config.check()
        self.out_dir = Path(self.out_dir)
        self.device = self.device if self.device is not None else pick_device()
        info = loss_info(self.config.loss)
        torch.manual_seed(self.config.seed)
        self.model = create_backbone(self.config.backbone, self.config.dim, self.config.template)
        for chips in (self.train, self.val):
            if chips.template != self.model.template:
                raise TrainingDataError(f"chips follow template {chips.template!r}; "
                                        f"backbone {self.config.backbone!r} reads {self.model.template!r}")
        if self.config.init == "dlib_resnet":
            self.model.load_dlib(self.dat_path)
        counts = self.train.counts()
        if info.pairs and int((counts >= 2).sum()) < self.config.batch_p:
            raise TrainingDataError(
                f"loss {self.config.loss!r} needs identities with at least 2 images: the training split has "
                f"{int((counts >= 2).sum())} such identities, a batch needs --batch-p {self.config.batch_p}")
        self.loss = create_loss(self.config.loss, self.config.dim, len(self.train.names), self.config.miner,
                                self.config.margin, self.config.l2_normalize, self.config.pos_margin)
        self.model.to(self.device)
        self.loss.to(self.device)
        for stage in self.model.stages()[:self.config.freeze]:
            for p in stage.parameters():
                p.requires_grad_(False)
        lr = self.config.learning_rate
        groups = [{"params": [p for p in self.model.parameters() if p.requires_grad], "lr": lr}]
        if list(self.loss.parameters()):
            groups.append({"params": list(self.loss.parameters()), "lr": lr * 10})
        if self.config.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=self.config.weight_decay)
        else:
            self.optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=self.config.weight_decay)
        self.sampler = PKSampler(self.train.labels, self.config.batch_p, self.config.batch_k,
                                 min_per_identity=2 if info.pairs else 1, seed=self.config.seed)
        self.metric, self.normalize = info.metric, self.config.l2_normalize
        self.epoch = 0
        self.best: float = -1.0
        self.best_epoch = 0
        self._chips = torch.from_numpy(self.train.chips).to(self.device)
        self._labels = torch.from_numpy(self.train.labels).to(self.device)

    # -- steps -------------------------------------------------------------------------
    @property
    def steps_per_epoch(self) -> int:
        n = len(self.sampler)
        return min(n, self.config.steps_per_epoch) if self.config.steps_per_epoch else n

    def _batch(self, rows: np.ndarray, generator: Any) -> tuple[Any, Any]:
        import torch

        idx = torch.from_numpy(rows).to(self.device)
        x = self._chips[idx].permute(0, 3, 1, 2).float()
        if self.config.augment != "none":
            from .augment import default_augment, light_augment

            augment = default_augment() if self.config.augment == "full" else light_augment()
            x = augment(x, generator)
        mean = torch.tensor(self.model.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.model.std, device=self.device).view(1, 3, 1, 1)
        return (x - mean) / std, self._labels[idx]

    def validate(self) -> ValidationResult:
        vectors = embed_chips(self.model, self.val.chips, self.model.mean, self.model.std, self.device)
        return score_embeddings(vectors, self.val.labels, self.metric, self.normalize, seed=self.config.seed)

    def train_epoch(self, on_step: Callable[[], None] | None = None) -> float:
        """One epoch of ``steps_per_epoch`` batches; returns the mean training loss."""
        import torch

        self.model.train()
        self.sampler.set_epoch(self.epoch)
        generator = torch.Generator().manual_seed(self.config.seed * 100_003 + self.epoch)
        total, steps = 0.0, 0
        for rows in self.sampler:
            if steps >= self.steps_per_epoch:
                break
            x, y = self._batch(rows, generator)
            loss = self.loss(self.model(x), y)
            if not torch.isfinite(loss):
                raise ConfigError(f"the loss became {loss.item()} at epoch {self.epoch}; lower --lr")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            total += float(loss.detach())
            steps += 1
            if on_step is not None:
                on_step()
        return total / max(steps, 1)

    # -- the run -----------------------------------------------------------------------
    def fit(self, on_step: Callable[[], None] | None = None,
            on_epoch: Callable[[EpochRow], None] | None = None) -> list[EpochRow]:
        """Validate the start (epoch 0, when not resumed), then train up to ``config.epochs``,
        validating, logging and checkpointing after each epoch; stops early after
        ``patience`` epochs without improvement. Returns the history."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if not self.history:
            self._record(EpochRow(0, 0, None, self.validate(), 0.0, 0.0), on_epoch)
        while self.epoch < self.config.epochs:
            if self.config.patience and self.epoch - self.best_epoch >= self.config.patience:
                break
            t0 = time.perf_counter()
            self.epoch += 1
            train_loss = self.train_epoch(on_step)
            row = EpochRow(self.epoch, self.steps_per_epoch, train_loss, self.validate(),
                           self.optimizer.param_groups[0]["lr"], time.perf_counter() - t0)
            self._record(row, on_epoch)
        return self.history

    def _record(self, row: EpochRow, on_epoch: Callable[[EpochRow], None] | None) -> None:
        import torch

        self.history.append(row)
        score = selection_score(row.val)
        if score > self.best:
            self.best, self.best_epoch = score, row.epoch
            torch.save({"model": self.model.state_dict(), "epoch": row.epoch, "config": asdict(self.config),
                        "validation": row.val.to_dict()}, self.out_dir / "best.pt")
        torch.save(self.state(), self.out_dir / "last.pt")
        self._write_log()
        from .curves import plot_curves

        plot_curves([r.to_row() for r in self.history], self.out_dir / "curves.png")
        if on_epoch is not None:
            on_epoch(row)

    def _write_log(self) -> None:
        with open(self.out_dir / "log.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=LOG_FIELDS)
            writer.writeheader()
            for row in self.history:
                writer.writerow(row.to_row())

    # -- checkpoints -------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "epoch": self.epoch, "model": self.model.state_dict(),
                "loss": self.loss.state_dict(), "optimizer": self.optimizer.state_dict(), "best": self.best,
                "best_epoch": self.best_epoch, "history": [
                    {**asdict(r), "val": r.val.to_dict()} for r in self.history]}

    def resume(self, path: str | Path | None = None) -> Trainer:
        """Continue from ``last.pt`` (or ``path``): weights, heads, optimizer, epoch, history.

        Raises:
            ConfigError: the checkpoint is missing, unreadable, or was made with another
                backbone, loss, miner, embedding size or template.
        """
        import torch

        path = Path(path) if path is not None else self.out_dir / "last.pt"
        if not path.is_file():
            raise ConfigError(f"nothing to resume: {path} not found")
        try:
            state = torch.load(path, map_location=self.device, weights_only=False)
        except Exception as exc:  # torch raises several types for a bad file
            raise ConfigError(f"cannot read checkpoint {path}: {exc}") from exc
        saved = state["config"]
        for key in ("backbone", "loss", "miner", "dim", "template", "normalize"):
            if saved[key] != getattr(self.config, key):
                raise ConfigError(f"{path} was trained with {key}={saved[key]!r}, not {getattr(self.config, key)!r}")
        self.model.load_state_dict(state["model"])
        self.loss.load_state_dict(state["loss"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.epoch, self.best, self.best_epoch = state["epoch"], state["best"], state["best_epoch"]
        self.history = [EpochRow(h["epoch"], h["steps"], h["train_loss"], _val_from_dict(h["val"]), h["lr"],
                                 h["seconds"]) for h in state["history"]]
        return self


def _val_from_dict(d: dict[str, Any]) -> ValidationResult:
    tar = {k[len("tar_far_"):]: v for k, v in d.items() if k.startswith("tar_far_")}
    return ValidationResult(d["pair_accuracy"], tar, d["auc"], d["thresholds"], d["n_genuine"], d["n_impostor"])


__all__ = ["LOG_FIELDS", "MONITOR", "EpochRow", "TrainConfig", "Trainer", "pick_device", "selection_score"]
