"""Every training loss and miner equals a plain Python loop on random embeddings."""

from __future__ import annotations

import math
import random

import pytest

torch = pytest.importorskip("torch")

from faceprint.errors import ConfigError, UnknownModelError  # noqa: E402
from faceprint.training import losses, miners  # noqa: E402
from faceprint.training.factory import create_loss  # noqa: E402


def batch(n: int = 12, d: int = 6, classes: int = 4, seed: int = 0) -> tuple:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.arange(n) % classes
    return x, y[torch.randperm(n, generator=g)]


def rows(x) -> list[list[float]]:
    return [[float(v) for v in r] for r in x]


def sqdist(a: list[float], b: list[float]) -> float:
    return sum((u - v) ** 2 for u, v in zip(a, b))


def unit(a: list[float]) -> list[float]:
    n = math.sqrt(sum(v * v for v in a))
    return [v / n for v in a]


# -- miners --------------------------------------------------------------------------------

def ref_all(y: list[int]) -> set[tuple[int, int, int]]:
    n = len(y)
    return {(a, p, q) for a in range(n) for p in range(n) for q in range(n)
            if a != p and y[a] == y[p] and y[q] != y[a]}


def ref_hard(x: list[list[float]], y: list[int]) -> set[tuple[int, int, int]]:
    out = set()
    for a in range(len(y)):
        pos = [p for p in range(len(y)) if p != a and y[p] == y[a]]
        neg = [q for q in range(len(y)) if y[q] != y[a]]
        if pos and neg:
            out.add((a, max(pos, key=lambda p: sqdist(x[a], x[p])), min(neg, key=lambda q: sqdist(x[a], x[q]))))
    return out


def ref_semi(x: list[list[float]], y: list[int]) -> set[tuple[int, int, int]]:
    out = set()
    for a in range(len(y)):
        neg = [q for q in range(len(y)) if y[q] != y[a]]
        for p in range(len(y)):
            if p == a or y[p] != y[a] or not neg:
                continue
            d_ap = sqdist(x[a], x[p])
            farther = [q for q in neg if sqdist(x[a], x[q]) > d_ap]
            if farther:
                out.add((a, p, min(farther, key=lambda q: sqdist(x[a], x[q]))))
            else:
                out.add((a, p, max(neg, key=lambda q: sqdist(x[a], x[q]))))
    return out


def as_set(triplets) -> set[tuple[int, int, int]]:
    return set(zip(*(t.tolist() for t in triplets)))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_miners_match_reference_loops(seed: int) -> None:
    x, y = batch(seed=seed)
    xl, yl = rows(x), y.tolist()
    assert as_set(miners.BatchAllMiner()(x, y)) == ref_all(yl)
    assert as_set(miners.BatchHardMiner()(x, y)) == ref_hard(xl, yl)
    assert as_set(miners.SemiHardMiner()(x, y)) == ref_semi(xl, yl)


def test_semi_hard_falls_back_to_farthest_negative() -> None:
    # anchor 0's positive is far; every negative is nearer than it
    x = torch.tensor([[0.0, 0.0], [5.0, 0.0], [1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])
    found = as_set(miners.SemiHardMiner()(x, y))
    assert (0, 1, 3) in found
    assert found == ref_semi(rows(x), y.tolist())


def test_miners_with_no_valid_triplet_return_empty() -> None:
    x, _ = batch(n=4)
    y = torch.tensor([0, 1, 2, 3])  # no positive pair
    for miner in (miners.BatchAllMiner(), miners.BatchHardMiner(), miners.SemiHardMiner()):
        assert all(len(t) == 0 for t in miner(x, y))
    loss = losses.TripletLoss(miner=miners.BatchHardMiner())(x.requires_grad_(), y)
    assert float(loss.detach()) == 0.0
    loss.backward()


def test_squared_distances_match_loop() -> None:
    x, _ = batch()
    d = miners.squared_distances(x)
    xl = rows(x)
    for i in range(len(xl)):
        for j in range(len(xl)):
            assert d[i, j].item() == pytest.approx(sqdist(xl[i], xl[j]), abs=1e-9)


# -- triplet and contrastive ---------------------------------------------------------------

@pytest.mark.parametrize("miner", ["batch_all", "batch_hard", "semi_hard"])
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("reduction", ["mean", "active"])
def test_triplet_loss_matches_loop(miner: str, normalize: bool, reduction: str) -> None:
    x, y = batch(seed=3)
    margin = 0.3 if normalize else 2.0
    loss = losses.TripletLoss(margin, create_loss("triplet", 6, miner=miner).miner, normalize, reduction)
    xl = [unit(r) for r in rows(x)] if normalize else rows(x)
    refs = {"batch_all": ref_all(y.tolist()), "batch_hard": ref_hard(xl, y.tolist()),
            "semi_hard": ref_semi(xl, y.tolist())}[miner]
    terms = [max(0.0, sqdist(xl[a], xl[p]) - sqdist(xl[a], xl[q]) + margin) for a, p, q in sorted(refs)]
    if reduction == "active":
        terms = [t for t in terms if t > 0]
    assert loss(x, y).item() == pytest.approx(sum(terms) / len(terms), rel=1e-9)


@pytest.mark.parametrize("normalize,margin,pos_margin", [(True, 1.0, 0.0), (False, 3.5, 2.5), (True, 1.2, 0.9)])
def test_contrastive_loss_matches_loop(normalize: bool, margin: float, pos_margin: float) -> None:
    x, y = batch(seed=4)
    xl = [unit(r) for r in rows(x)] if normalize else rows(x)
    pos, neg = [], []
    for i in range(len(xl)):
        for j in range(i + 1, len(xl)):
            d = math.sqrt(sqdist(xl[i], xl[j]))
            if y[i] == y[j]:
                pos.append(max(0.0, d - pos_margin) ** 2)
            else:
                neg.append(max(0.0, margin - d) ** 2)
    expected = sum(pos) / len(pos) + sum(neg) / len(neg)
    got = losses.ContrastiveLoss(margin, pos_margin, normalize)(x, y).item()
    assert got == pytest.approx(expected, rel=1e-7)


# -- Siamese head --------------------------------------------------------------------------

@pytest.mark.parametrize("form", ["l1", "chi2"])
def test_siamese_loss_matches_loop(form: str) -> None:
    x, y = batch(seed=5)
    loss = losses.SiameseLoss(6, form=form, normalize=True).double()
    with torch.no_grad():
        loss.weight.copy_(torch.linspace(-2, 1, 6))
        loss.bias.fill_(0.7)
    w, b = loss.weight.tolist(), loss.bias.item()
    xl = [unit(r) for r in rows(x)]
    same_terms, diff_terms = [], []
    for i in range(len(xl)):
        for j in range(i + 1, len(xl)):
            if form == "l1":
                feats = [abs(u - v) for u, v in zip(xl[i], xl[j])]
            else:
                feats = [(u - v) ** 2 / (abs(u) + abs(v) + 1e-6) for u, v in zip(xl[i], xl[j])]
            z = sum(wk * fk for wk, fk in zip(w, feats)) + b
            p = 1 / (1 + math.exp(-z))
            if y[i] == y[j]:
                same_terms.append(-math.log(p))
            else:
                diff_terms.append(-math.log(1 - p))
    expected = (sum(same_terms) / len(same_terms) + sum(diff_terms) / len(diff_terms)) / 2
    assert loss(x, y).item() == pytest.approx(expected, rel=1e-7)


# -- classification losses -----------------------------------------------------------------

def cross_entropy(logits: list[list[float]], y: list[int]) -> float:
    total = 0.0
    for row, t in zip(logits, y):
        m = max(row)
        total += -(row[t] - m - math.log(sum(math.exp(v - m) for v in row)))
    return total / len(y)


def cosines(x: list[list[float]], w: list[list[float]]) -> list[list[float]]:
    return [[sum(a * b for a, b in zip(unit(xi), unit(wj))) for wj in w] for xi in x]


def head(loss):
    loss.double()
    return loss, [[float(v) for v in r] for r in loss.weight]


def test_softmax_loss_matches_loop() -> None:
    x, y = batch(seed=6)
    loss, w = head(losses.SoftmaxLoss(6, 4))
    with torch.no_grad():
        loss.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    bias = loss.bias.tolist()
    logits = [[sum(a * b for a, b in zip(xi, wj)) + bj for wj, bj in zip(w, bias)] for xi in rows(x)]
    assert loss(x, y).item() == pytest.approx(cross_entropy(logits, y.tolist()), rel=1e-9)


def test_cosface_loss_matches_loop() -> None:
    x, y = batch(seed=7)
    loss, w = head(losses.CosFaceLoss(6, 4, scale=16.0, margin=0.3))
    logits = [[16.0 * (c - (0.3 if j == t else 0.0)) for j, c in enumerate(row)]
              for row, t in zip(cosines(rows(x), w), y.tolist())]
    assert loss(x, y).item() == pytest.approx(cross_entropy(logits, y.tolist()), rel=1e-9)


def test_arcface_loss_matches_loop_including_the_fallback() -> None:
    x, y = batch(seed=8)
    loss, w = head(losses.ArcFaceLoss(6, 4, scale=16.0, margin=0.5))
    x[0] = -torch.tensor(w[int(y[0])], dtype=torch.float64)  # theta = pi: theta + m passes pi
    logits = []
    for row, t in zip(cosines(rows(x), w), y.tolist()):
        out = []
        for j, c in enumerate(row):
            c = min(max(c, -1 + 1e-7), 1 - 1e-7)
            if j == t:
                theta = math.acos(c)
                c = math.cos(theta + 0.5) if theta + 0.5 < math.pi else c - math.sin(math.pi - 0.5) * 0.5
            out.append(16.0 * c)
        logits.append(out)
    assert loss(x, y).item() == pytest.approx(cross_entropy(logits, y.tolist()), rel=1e-6)


@pytest.mark.parametrize("margin,lam", [(4, 0.0), (4, 5.0), (2, 1.0)])
def test_sphereface_loss_matches_loop(margin: int, lam: float) -> None:
    x, y = batch(seed=9)
    loss, w = head(losses.SphereFaceLoss(6, 4, margin=margin, lambda_=lam))
    logits, ks = [], set()
    for xi, row, t in zip(rows(x), cosines(rows(x), w), y.tolist()):
        norm = math.sqrt(sum(v * v for v in xi))
        out = []
        for j, c in enumerate(row):
            c = min(max(c, -1 + 1e-7), 1 - 1e-7)
            if j == t:
                theta = math.acos(c)
                k = math.floor(margin * theta / math.pi)
                ks.add(k)
                psi = (-1) ** k * math.cos(margin * theta) - 2 * k
                out.append(norm * (lam * c + psi) / (1 + lam))
            else:
                out.append(norm * c)
        logits.append(out)
    assert len(ks) > 1  # the piecewise psi is exercised on more than one piece
    assert loss(x, y).item() == pytest.approx(cross_entropy(logits, y.tolist()), rel=1e-7)


def test_weighted_sum_composes_losses() -> None:
    x, y = batch(seed=10)
    trip, cont = losses.TripletLoss(0.2), losses.ContrastiveLoss()
    total = losses.WeightedSum((0.5, trip), (2.0, cont))
    assert total(x, y).item() == pytest.approx(0.5 * trip(x, y).item() + 2.0 * cont(x, y).item(), rel=1e-12)
    with pytest.raises(ConfigError):
        losses.WeightedSum()


@pytest.mark.parametrize("name", ["triplet", "contrastive", "siamese_l1", "siamese_chi2", "softmax", "sphereface",
                                  "cosface", "arcface"])
def test_every_loss_trains(name: str) -> None:
    """Each registered loss gives a finite loss and gradients, and a few SGD steps lower it."""
    random.seed(0)
    torch.manual_seed(0)
    x, y = batch(n=16, d=8, seed=11)
    x = x.float().requires_grad_()
    loss = create_loss(name, 8, num_classes=4)
    opt = torch.optim.SGD([x, *loss.parameters()], lr=0.05)
    first = None
    for _ in range(20):
        value = loss(x, y)
        assert torch.isfinite(value)
        opt.zero_grad()
        value.backward()
        assert torch.isfinite(x.grad).all()
        opt.step()
        first = value.item() if first is None else first
    assert loss(x, y).item() < first


def test_factory_rejects_bad_names_and_options() -> None:
    with pytest.raises(UnknownModelError, match="unknown loss 'nope'"):
        create_loss("nope", 8)
    with pytest.raises(UnknownModelError, match="unknown miner"):
        create_loss("triplet", 8, miner="hardest")
    with pytest.raises(ConfigError, match="takes no miner"):
        create_loss("arcface", 8, num_classes=4, miner="batch_hard")
    with pytest.raises(ConfigError, match=">= 2 classes"):
        create_loss("cosface", 8, num_classes=1)
    with pytest.raises(ConfigError, match="positive integer"):
        losses.SphereFaceLoss(8, 4, margin=1.5)
