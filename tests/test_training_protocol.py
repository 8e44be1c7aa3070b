"""The fine-tuning benchmark's protocol: the test split is identity-disjoint and put aside first,
its identities never reach the trainer (training or validation) or the choice of recipe, and
it scores each reported model exactly once, after every choice is made.

Each chip's first pixel codes its identity, so any set of chips the code under test handles can
be traced back to identities without trusting its labels."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from faceprint.errors import ConfigError  # noqa: E402
from faceprint.training import protocol, trainer  # noqa: E402
from faceprint.training.data import ChipSet  # noqa: E402
from faceprint.training.factory import create_backbone  # noqa: E402
from faceprint.training.protocol import (  # noqa: E402
    Candidate, Fitted, ScoredModel, choose, run_protocol, split_protocol, trainer_fit)
from faceprint.training.trainer import TrainConfig  # noqa: E402
from faceprint.training.validate import ValidationResult  # noqa: E402

SIZE = 112  # arcface_112 chips keep the real trainer fast on CPU


def coded_chips(n_ids: int = 30, per_id: int = 3) -> ChipSet:
    """Random chips whose pixel ``[0, 0, 0]`` is the identity number (names ``id000``...)."""
    labels = np.repeat(np.arange(n_ids), per_id)
    chips = np.random.default_rng(0).integers(0, 256, (len(labels), SIZE, SIZE, 3), dtype=np.uint8)
    chips[:, 0, 0, 0] = labels
    return ChipSet(chips, labels, [f"id{i:03d}" for i in range(n_ids)], "arcface_112", np.zeros(len(labels), bool))


def identities(chips: np.ndarray) -> set[int]:
    """The identities coded in uint8 chips ``(N, S, S, 3)``, whatever their labels say."""
    return set(np.unique(np.asarray(chips)[:, 0, 0, 0]).tolist())


def test_test_split_is_identity_disjoint_and_put_aside_first() -> None:
    chips = coded_chips()
    split = split_protocol(chips, test_fraction=0.3, test_seed=7, val_fraction=0.25, val_seed=0)
    train, val, test = identities(split.train.chips), identities(split.val.chips), identities(split.test._chips.chips)
    assert not train & val and not train & test and not val & test
    assert train | val | test == set(range(30)) and len(test) == 9
    # the names agree with the pixels, and each side's labels are its own 0..C-1
    assert {int(n[2:]) for n in split.test.names} == test
    assert {int(n[2:]) for n in split.val.names} == val
    # the test identities depend on the test seed only, never on the validation split
    for val_fraction, val_seed in ((0.25, 1), (0.4, 5)):
        other = split_protocol(chips, 0.3, 7, val_fraction, val_seed)
        assert other.test.names == split.test.names
        assert identities(other.val.chips) != val
    assert split_protocol(chips, 0.3, 8).test.names != split.test.names


class Recorder:
    """Logs every batch of chips that the trainer and the test split embed, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, set[int]]] = []
        real = trainer.embed_chips

        def spy(where: str):
            def embed(model, chips, *args, **kwargs):
                self.events.append((where, identities(chips)))
                return real(model, chips, *args, **kwargs)
            return embed

        monkeypatch.setattr(trainer, "embed_chips", spy("trainer"))
        monkeypatch.setattr(protocol, "embed_chips", spy("test"))
        recorder = self

        class RecordingTrainer(trainer.Trainer):
            def __post_init__(self) -> None:
                recorder.events.append(("train", identities(self.train.chips)))
                recorder.events.append(("val", identities(self.val.chips)))
                super().__post_init__()

            def _batch(self, rows, generator):
                recorder.events.append(("batch", set(self.train.chips[rows.copy(), 0, 0, 0].tolist())))
                return super()._batch(rows, generator)

        monkeypatch.setattr(protocol, "Trainer", RecordingTrainer)


def tiny(lr: float) -> TrainConfig:
    return TrainConfig(backbone="small_resnet", template="arcface_112", dim=8, loss="triplet", miner="batch_hard",
                       epochs=1, steps_per_epoch=1, batch_p=3, batch_k=2, lr=lr, augment="none", patience=0)


def test_test_identities_never_reach_the_trainer_or_the_choice(tmp_path, monkeypatch) -> None:
    chips = coded_chips()
    test_ids = identities(split_protocol(chips, 0.3, 11).test._chips.chips)
    recorder = Recorder(monkeypatch)
    start = create_backbone("small_resnet", 8, "arcface_112")

    def start_embed(c: np.ndarray) -> np.ndarray:
        return protocol.embed_chips(start, c, start.mean, start.std, "cpu")

    grid = [Candidate("lr 0.01", tiny(0.01)), Candidate("lr 0.001", tiny(0.001))]
    res = run_protocol(chips, grid, trainer_fit(tmp_path), ScoredModel("start", start_embed, "euclidean", False),
                       test_fraction=0.3, test_seed=11)
    kinds = [k for k, _ in recorder.events]
    assert kinds.count("train") == 2 and "batch" in kinds and kinds[-2:] == ["test", "test"]
    # everything before the two test scorings (training batches, validation, the choice) is test-free
    for kind, seen in recorder.events[:-2]:
        assert kind != "test" and not seen & test_ids, (kind, seen & test_ids)
    assert all(seen == test_ids for _, seen in recorder.events[-2:])
    assert res.sizes["test"]["identities"] == len(test_ids) == 9
    assert res.recipe_chosen_here and res.chosen.candidate.name in {"lr 0.01", "lr 0.001"}
    assert res.pretrained.n_genuine == 9 * 3 and res.chosen_test.n_genuine == 9 * 3


def fake_result(tar: float) -> ValidationResult:
    return ValidationResult(0.9, {"1e-2": tar, "1e-3": tar / 2}, 0.99, n_genuine=1, n_impostor=1)


def test_the_choice_is_made_on_validation_and_the_test_scores_each_model_once() -> None:
    """The candidate best on validation is chosen even when another would score better on test."""
    chips = coded_chips()
    val_tar = {"a": 0.5, "b": 0.9, "c": 0.7}
    fitted_on: list[set[int]] = []

    def embed_for(name: str):
        # a model that separates identities well on test for "a" and badly for "b"
        def embed(c: np.ndarray) -> np.ndarray:
            ids = c[:, 0, 0, 0].astype(np.float64)
            noise = np.random.default_rng(1).normal(size=(len(c), 4)) * (10.0 if name == "b" else 0.01)
            return np.column_stack([ids, ids, ids, ids]) + noise
        return embed

    def fit(candidate: Candidate, train: ChipSet, val: ChipSet) -> Fitted:
        fitted_on.append(identities(train.chips) | identities(val.chips))
        model = ScoredModel(candidate.name, embed_for(candidate.name), "euclidean", False)
        return Fitted(candidate, fake_result(0.1), fake_result(val_tar[candidate.name]), 1, 1, 0.0, model)

    grid = [Candidate(n, tiny(0.01)) for n in val_tar]
    res = run_protocol(chips, grid, fit, ScoredModel("start", embed_for("a"), "euclidean", False), 0.3, 3)
    assert res.chosen.candidate.name == "b" and [f.candidate.name for f in res.fitted] == ["a", "b", "c"]
    assert res.chosen_test.tar["1e-2"] < res.pretrained.tar["1e-2"]  # worse on test, still the choice
    test_ids = identities(split_protocol(chips, 0.3, 3).test._chips.chips)
    assert len(fitted_on) == 3 and not any(seen & test_ids for seen in fitted_on)

    split = split_protocol(chips, 0.3, 3)
    split.test.score(res.chosen.model)
    with pytest.raises(ConfigError, match="already scored"):
        split.test.score(res.chosen.model)
    assert list(split.test.scored) == ["b"]


def test_a_grid_of_one_chooses_nothing_and_bad_grids_are_refused() -> None:
    chips = coded_chips()

    def fit(candidate: Candidate, train: ChipSet, val: ChipSet) -> Fitted:
        embed = lambda c: c[:, 0, 0, :].astype(np.float64)  # noqa: E731
        return Fitted(candidate, fake_result(0.1), fake_result(0.2), 1, 1, 0.0,
                      ScoredModel(candidate.name, embed, "euclidean", False))

    pretrained = ScoredModel("start", lambda c: c[:, 0, 0, :].astype(np.float64), "euclidean", False)
    assert not run_protocol(chips, [Candidate("only", tiny(0.01))], fit, pretrained, 0.3, 3).recipe_chosen_here
    split = split_protocol(chips, 0.3, 3)
    with pytest.raises(ConfigError, match="empty"):
        choose([], split.train, split.val, fit)
    with pytest.raises(ConfigError, match="distinct names"):
        choose([Candidate("x", tiny(0.01)), Candidate("x", tiny(0.1))], split.train, split.val, fit)
