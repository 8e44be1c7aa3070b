"""Training names become objects here: backbones, losses and miners by name.

The tables are what ``faceprint train --backbone/--loss/--miner`` accept. Each loss entry also
says what the exported model's metric is and whether the loss needs two images per identity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ConfigError, UnknownModelError


@dataclass(frozen=True)
class LossInfo:
    """How a loss is built and what it implies.

    Attributes:
        metric: the exported model's metric (``"euclidean"`` on unit vectors, or ``"cosine"``).
        pairs: the loss compares images of one identity (needs identities with >= 2 images).
        classes: the loss has a class head over the training identities.
        miner: the loss takes a triplet miner.
    """

    metric: str
    pairs: bool
    classes: bool = False
    miner: bool = False


LOSSES: dict[str, LossInfo] = {
    "triplet": LossInfo("euclidean", pairs=True, miner=True),
    "contrastive": LossInfo("euclidean", pairs=True),
    "siamese_l1": LossInfo("euclidean", pairs=True),
    "siamese_chi2": LossInfo("euclidean", pairs=True),
    "softmax": LossInfo("cosine", pairs=False, classes=True),
    "sphereface": LossInfo("cosine", pairs=False, classes=True),
    "cosface": LossInfo("cosine", pairs=False, classes=True),
    "arcface": LossInfo("cosine", pairs=False, classes=True),
}
MINERS = ("batch_all", "batch_hard", "semi_hard")
BACKBONES = ("dlib_resnet", "small_resnet")


def _pick(kind: str, name: str, names: Any) -> None:
    if name not in names:
        raise UnknownModelError(f"unknown {kind} {name!r}; choose one of {sorted(names)}")


def loss_info(name: str) -> LossInfo:
    """The :class:`LossInfo` of a loss name.

    Raises:
        UnknownModelError: not a known loss.
    """
    _pick("loss", name, LOSSES)
    return LOSSES[name]


def create_backbone(name: str, dim: int = 128, template: str = "dlib_150") -> Any:
    """A backbone ``nn.Module`` by name (``template`` applies to ``small_resnet`` only).

    Raises:
        UnknownModelError: unknown name.
    """
    _pick("backbone", name, BACKBONES)
    from .backbones import DlibResNet, SmallResNet

    return DlibResNet(dim) if name == "dlib_resnet" else SmallResNet(dim, template=template)


def create_miner(name: str) -> Callable[..., Any]:
    """A triplet miner by name.

    Raises:
        UnknownModelError: unknown name.
    """
    _pick("miner", name, MINERS)
    from . import miners

    return {"batch_all": miners.BatchAllMiner, "batch_hard": miners.BatchHardMiner,
            "semi_hard": miners.SemiHardMiner}[name]()


def create_loss(name: str, dim: int, num_classes: int = 0, miner: str | None = None,
                margin: float | None = None, normalize: bool = True, pos_margin: float | None = None) -> Any:
    """A loss module by name; ``margin`` overrides the loss's default margin, ``normalize``
    (pair and triplet losses) L2-normalises embeddings first, ``pos_margin`` is the
    contrastive loss's positive margin.

    Raises:
        UnknownModelError: unknown loss or miner name.
        ConfigError: a miner for a loss that takes none, or a class loss with < 2 classes.
    """
    info = loss_info(name)
    if miner is not None and not info.miner:
        raise ConfigError(f"loss {name!r} takes no miner (only 'triplet' does)")
    from . import losses

    kw: dict[str, Any] = {} if margin is None else {"margin": margin}
    if pos_margin is not None and name != "contrastive":
        raise ConfigError(f"only the contrastive loss has a positive margin, not {name!r}")
    if name == "triplet":
        return losses.TripletLoss(miner=create_miner(miner or "semi_hard"), normalize=normalize, **kw)
    if name == "contrastive":
        return losses.ContrastiveLoss(normalize=normalize, pos_margin=pos_margin or 0.0, **kw)
    if name.startswith("siamese_"):
        if margin is not None:
            raise ConfigError(f"loss {name!r} has no margin")
        return losses.SiameseLoss(dim, form=name.split("_", 1)[1], normalize=normalize)
    if name == "softmax":
        if margin is not None:
            raise ConfigError("loss 'softmax' has no margin")
        return losses.SoftmaxLoss(dim, num_classes)
    if name == "sphereface" and margin is not None:
        kw["margin"] = int(margin)
    cls = {"sphereface": losses.SphereFaceLoss, "cosface": losses.CosFaceLoss, "arcface": losses.ArcFaceLoss}[name]
    return cls(dim, num_classes, **kw)


__all__ = ["BACKBONES", "LOSSES", "MINERS", "LossInfo", "create_backbone", "create_loss", "create_miner", "loss_info"]
