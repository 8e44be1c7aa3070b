"""The fine-tuning benchmark's protocol: one untouched test split for every choice.

The order is fixed, and :func:`run_protocol` is the only path through it:

1. :func:`split_protocol` puts the **test** identities aside first, drawn by ``test_seed``
   alone (identity-disjoint), and seals them in a :class:`SealedTest`. Only then are the
   remaining identities split into **train** and **validation** (``val_seed``).
2. :func:`choose` trains every candidate recipe on train and scores it on validation. The
   trainer picks each run's epoch and early stop on validation, and the recipe with the best
   validation :func:`~.trainer.selection_score` wins. Nothing in this step can reach the
   test chips.
3. The sealed test split scores the pretrained start and the chosen model, once each.
   Scoring a name a second time raises.

A grid of one candidate chooses nothing: :attr:`ProtocolResult.recipe_chosen_here` is False,
and a report must say that the recipe was fixed before the run. Fixing it on one split and
then reporting it on others is the biased protocol this module exists to prevent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import ConfigError
from .data import ChipSet, split_identities
from .factory import create_backbone
from .trainer import TrainConfig, Trainer, selection_score
from .validate import ValidationResult, embed_chips, score_embeddings

#: The test split's seed. No earlier run used it for any choice (the 2025 grid chose its
#: recipe on split seed 123, then reported on seeds 123, 1, 2 and 3).
TEST_SEED = 20261202

#: chips ``(N, S, S, 3)`` uint8 -> embeddings ``(N, D)``
EmbedFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Candidate:
    """One recipe of the grid: a name for the table and the settings to train."""

    name: str
    config: TrainConfig


@dataclass(frozen=True)
class ScoredModel:
    """What the test split scores: a name, an embedding function and how to compare vectors."""

    name: str
    embed: EmbedFn
    metric: str
    normalize: bool


@dataclass
class Fitted:
    """A candidate after training, scored on validation only.

    Attributes:
        start: validation at epoch 0 (the starting weights).
        best: validation at ``best_epoch``, the epoch the trainer kept.
        model: the kept weights as a :class:`ScoredModel` (weights loaded when it embeds).
    """

    candidate: Candidate
    start: ValidationResult
    best: ValidationResult
    best_epoch: int
    epochs_run: int
    seconds: float
    model: ScoredModel


#: trains one candidate: ``fit(candidate, train, val) -> Fitted``
FitFn = Callable[[Candidate, ChipSet, ChipSet], Fitted]


class SealedTest:
    """The test identities. They only ever reach :meth:`score`, once per model name.

    Args:
        chips: the test chips.
        seed: the seed that drew them (for the report).
    """

    def __init__(self, chips: ChipSet, seed: int) -> None:
        self._chips = chips
        self.seed = int(seed)
        self.scored: dict[str, ValidationResult] = {}

    @property
    def names(self) -> list[str]:
        """The test identities' names."""
        return list(self._chips.names)

    def __len__(self) -> int:
        return len(self._chips)

    def score(self, model: ScoredModel) -> ValidationResult:
        """Every genuine and impostor pair of the test chips under ``model``.

        Raises:
            ConfigError: ``model.name`` was scored already (a second look at the test split
                is a choice made on it).
        """
        if model.name in self.scored:
            raise ConfigError(f"the test split already scored {model.name!r}; it scores each reported model "
                              "once, and every choice is made on validation identities")
        vectors = model.embed(self._chips.chips)
        self.scored[model.name] = score_embeddings(vectors, self._chips.labels, model.metric, model.normalize, seed=0)
        return self.scored[model.name]


@dataclass
class ProtocolSplit:
    """Identity-disjoint train, validation and sealed test sets."""

    train: ChipSet
    val: ChipSet
    test: SealedTest
    val_seed: int


def split_protocol(chips: ChipSet, test_fraction: float = 0.35, test_seed: int = TEST_SEED,
                   val_fraction: float = 0.25, val_seed: int = 0) -> ProtocolSplit:
    """Put ``test_fraction`` of the identities aside (drawn by ``test_seed`` only), then split
    the rest into train and ``val_fraction`` validation identities (``val_seed``).

    The test identities depend on ``chips``' labels, ``test_fraction`` and ``test_seed``, never
    on the validation split or the grid.

    Raises:
        TrainingDataError: a fraction outside ``(0, 1)`` or too few identities for a split.
    """
    dev_mask, test_mask = split_identities(chips.labels, test_fraction, seed=test_seed)
    dev = chips.subset(dev_mask)
    train_mask, val_mask = split_identities(dev.labels, val_fraction, seed=val_seed)
    return ProtocolSplit(dev.subset(train_mask), dev.subset(val_mask), SealedTest(chips.subset(test_mask), test_seed),
                         val_seed)


def choose(candidates: list[Candidate], train: ChipSet, val: ChipSet, fit: FitFn,
           on_fitted: Callable[[Fitted], None] | None = None) -> tuple[Fitted, list[Fitted]]:
    """Fit every candidate on ``train``, keep the best by validation :func:`selection_score`.

    Returns ``(chosen, every fitted candidate in grid order)``.

    Raises:
        ConfigError: no candidate, or two with one name.
    """
    if not candidates:
        raise ConfigError("the grid is empty: give at least one loss, optimizer and freeze depth")
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise ConfigError(f"grid candidates need distinct names, got {names}")
    fitted = []
    for candidate in candidates:
        fitted.append(fit(candidate, train, val))
        if on_fitted is not None:
            on_fitted(fitted[-1])
    return max(fitted, key=lambda f: selection_score(f.best)), fitted


@dataclass
class ProtocolResult:
    """One test split's outcome.

    Attributes:
        test_seed, val_seed: the seeds of the two splits.
        sizes: identities and images of ``train``, ``val`` and ``test``.
        pretrained, chosen_test: the test scores of the start and of the chosen model.
        chosen: the chosen candidate (its validation scores and epochs).
        fitted: every candidate, validation scores only.
        recipe_chosen_here: False for a grid of one (the recipe was fixed before this run).
    """

    test_seed: int
    val_seed: int
    sizes: dict[str, dict[str, int]]
    pretrained: ValidationResult
    chosen: Fitted
    chosen_test: ValidationResult
    fitted: list[Fitted] = field(default_factory=list)

    @property
    def recipe_chosen_here(self) -> bool:
        return len(self.fitted) > 1


def run_protocol(chips: ChipSet, candidates: list[Candidate], fit: FitFn, pretrained: ScoredModel,
                 test_fraction: float = 0.35, test_seed: int = TEST_SEED, val_fraction: float = 0.25,
                 val_seed: int = 0, on_fitted: Callable[[Fitted], None] | None = None) -> ProtocolResult:
    """Split (test first), choose on validation, then score the start and the choice on test.

    Raises:
        TrainingDataError: see :func:`split_protocol`. ConfigError: see :func:`choose`.
    """
    split = split_protocol(chips, test_fraction, test_seed, val_fraction, val_seed)
    chosen, fitted = choose(candidates, split.train, split.val, fit, on_fitted)
    sizes = {name: {"identities": len(s.names), "images": len(s)}
             for name, s in (("train", split.train), ("val", split.val))}
    sizes["test"] = {"identities": len(split.test.names), "images": len(split.test)}
    return ProtocolResult(test_seed, val_seed, sizes, split.test.score(pretrained), chosen,
                          split.test.score(chosen.model), fitted)


def trainer_fit(out_root: str | Path, device: Any = None, dat_path: Path | None = None) -> FitFn:
    """A :data:`FitFn` that runs :class:`~.trainer.Trainer` in ``out_root/<candidate name>``
    and embeds with the best epoch's weights (``best.pt``, loaded when the model embeds)."""

    def fit(candidate: Candidate, train: ChipSet, val: ChipSet) -> Fitted:
        import torch

        out = Path(out_root) / "".join(c if c.isalnum() or c in "-." else "_" for c in candidate.name)
        t0 = time.perf_counter()
        trainer = Trainer(candidate.config, train, val, out, device=device, dat_path=dat_path)
        history = trainer.fit()
        dev = trainer.device  # the closure keeps no trainer: the grid holds no weights in memory

        def embed(chips: np.ndarray) -> np.ndarray:
            config = candidate.config
            model = create_backbone(config.backbone, config.dim, config.template)
            model.load_state_dict(torch.load(out / "best.pt", map_location="cpu", weights_only=False)["model"])
            return embed_chips(model.to(dev), chips, model.mean, model.std, dev)

        best = next(r.val for r in history if r.epoch == trainer.best_epoch)
        return Fitted(candidate, history[0].val, best, trainer.best_epoch, history[-1].epoch,
                      time.perf_counter() - t0, ScoredModel(candidate.name, embed, trainer.metric, trainer.normalize))

    return fit


__all__ = ["TEST_SEED", "Candidate", "Fitted", "ProtocolResult", "ProtocolSplit", "ScoredModel", "SealedTest",
           "choose", "run_protocol", "split_protocol", "trainer_fit"]
