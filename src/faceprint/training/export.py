"""Export a trained backbone as ONNX plus the model spec every faceprint command reads.

``export_model(out_dir)`` writes ``out_dir/model.onnx`` (input ``(N, 3, S, S)`` normalised
chips, output ``(N, dim)`` raw embeddings) and the sidecar ``out_dir/model.onnx.json`` with the
:class:`~faceprint.spec.ModelSpec` fields: input size, mean/std, template, dimension, metric,
L2 normalisation, and the thresholds calibrated on the validation split. ``--model out_dir``
or ``--model out_dir/model.onnx`` then works with every command.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..spec import ModelSpec
from .factory import create_backbone, loss_info

MODEL_FILE = "model.onnx"


def _l2(config: dict[str, Any]) -> bool:
    from .trainer import TrainConfig

    return TrainConfig(**config).l2_normalize


def _spec(model: Any, config: dict[str, Any], validation: dict[str, Any], model_id: str, source: str) -> ModelSpec:
    info = loss_info(config["loss"])
    thresholds = {k: max(float(v), 1e-6) for k, v in validation.get("thresholds", {}).items()}
    return ModelSpec(model_id=model_id, input_size=model.input_size, mean=tuple(model.mean), std=tuple(model.std),
                     template=model.template, dim=model.dim, metric=info.metric,
                     threshold=thresholds.get("accuracy", 1.0), normalize=_l2(config),
                     thresholds=thresholds, thresholds_source=source)


def export_onnx(model: Any, path: str | Path) -> Path:
    """Write ``model`` (a backbone ``nn.Module``, put in eval mode on the CPU) as ONNX with a
    dynamic batch axis."""
    import torch

    model = model.cpu().eval()
    x = torch.zeros(2, 3, model.input_size, model.input_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
        torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=["input"], output_names=["output"],
                          dynamic_axes={"input": {0: "N"}, "output": {0: "N"}}, opset_version=17)
    return Path(path)


def export_model(out_dir: str | Path, checkpoint: str | Path | None = None) -> Path:
    """Export ``checkpoint`` (default ``out_dir/best.pt``) to ``out_dir/model.onnx`` + its spec.

    Returns the ``.onnx`` path.

    Raises:
        ConfigError: the checkpoint is missing or unreadable.
    """
    import torch

    out_dir = Path(out_dir)
    checkpoint = Path(checkpoint) if checkpoint is not None else out_dir / "best.pt"
    if not checkpoint.is_file():
        raise ConfigError(f"no checkpoint to export: {checkpoint} not found")
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several types for a bad file
        raise ConfigError(f"cannot read checkpoint {checkpoint}: {exc}") from exc
    config = state["config"]
    model = create_backbone(config["backbone"], config["dim"], config["template"])
    model.load_state_dict(state["model"])
    onnx_path = export_onnx(model, out_dir / MODEL_FILE)
    digest = hashlib.sha1(onnx_path.read_bytes()).hexdigest()[:10]
    model_id = f"faceprint-train:{config['backbone']}-{config['loss']}:{digest}"
    source = (f"faceprint train validation split ({state['validation']['n_genuine']} genuine, "
              f"{state['validation']['n_impostor']} impostor pairs), epoch {state['epoch']}")
    spec = _spec(model, config, state["validation"], model_id, source)
    sidecar = onnx_path.with_name(onnx_path.name + ".json")
    sidecar.write_text(json.dumps({**spec.to_dict(), "training": {**config, "epoch": state["epoch"],
                                                                    "validation": state["validation"]}},
                                  indent=2) + "\n", encoding="utf-8")
    return onnx_path


__all__ = ["MODEL_FILE", "export_model", "export_onnx"]
