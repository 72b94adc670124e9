"""``python -m sciml export-viewer``: a Lightning SHaDe checkpoint as a nerfstudio run directory.

Writes ``<out>/<experiment>/shade/<timestamp>/config.yml`` (a nerfstudio ``TrainerConfig`` of the ``shade``
method whose model config names the checkpoint's field, prior and task settings) and
``nerfstudio_models/step-<step>.ckpt`` (the weights under nerfstudio's ``pipeline`` / ``_model.`` keys), the
layout ``ns-train`` writes, so ``ns-viewer --load-config <config.yml>`` and ``ns-render`` open it. nerfstudio
rebuilds its data manager when it loads a run, so the capture must stay where ``--data`` (by default the
path the Lightning run trained on) points; it must be in the D-NeRF layout (nerfstudio's own D-NeRF parser
gives the viewer its time slider).
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import torch
import yaml
from nerfstudio.data.scene_box import SceneBox

from sciml.core.atomic import atomic_path
from sciml.core.errors import ConfigError
from sciml.tasks.checkpointing import describe_net
from sciml.tasks.shade import ShadeTask
from sciml.viewer.method import ShadeModel, ShadeModelConfig, shade_method


def export_viewer(checkpoint: str | Path, out: str | Path, data: str | Path | None = None) -> Path:
    """Export ``checkpoint`` (a ShadeTask checkpoint) under ``out``; returns the written ``config.yml``."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise ConfigError("--ckpt", f"no checkpoint at {checkpoint}")
    stored = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if "state_dict" not in stored or not any(k.startswith("field.") for k in stored["state_dict"]):
        raise ConfigError("--ckpt", f"{checkpoint} is not a SHaDe (ShadeTask) checkpoint")
    if data is None:
        data = stored.get("datamodule_hyper_parameters", {}).get("path")
        if data is None:
            raise ConfigError(
                "--data", f"{checkpoint} does not name its capture; pass --data <capture folder>"
            )
    data = Path(data).resolve()
    if not (data / "transforms_train.json").is_file():
        raise ConfigError("--data", f"{data} is not a D-NeRF capture (no transforms_train.json)")
    task = ShadeTask.load_from_checkpoint(checkpoint, map_location="cpu")
    settings = {k: v for k, v in task.hparams.items() if k != "init_from"}
    model_config = ShadeModelConfig(
        field=describe_net(task.field),
        prior=None if task.prior is None else describe_net(task.prior),
        task=settings,
        near_plane=float(task.near_far[0]),
        far_plane=float(task.near_far[1]),
        background=tuple(float(v) for v in task.background),
    )
    config = copy.deepcopy(shade_method.config)
    config.pipeline.model = model_config
    config.pipeline.datamanager.data = data
    config.pipeline.datamanager.dataparser = dataclasses.replace(
        config.pipeline.datamanager.dataparser, data=data
    )
    config.output_dir = Path(out).resolve()
    config.experiment_name = data.name
    step = int(stored.get("global_step", 0))
    config.timestamp = f"lightning-step{step}"
    config.load_dir = None

    model = ShadeModel(config=model_config, scene_box=SceneBox(aabb=task.scene_box.clone()), num_train_data=1)
    model._task.load_state_dict(task.state_dict())
    state = {
        "step": step,
        "pipeline": {f"_model.{name}": value for name, value in model.state_dict().items()},
        "optimizers": {},
        "schedulers": {},
        "scalers": {},
    }
    base = config.get_base_dir()
    models = base / config.relative_model_dir
    models.mkdir(parents=True, exist_ok=True)
    with atomic_path(models / f"step-{step:09d}.ckpt") as tmp:
        torch.save(state, tmp)
    with atomic_path(base / "config.yml") as tmp:
        tmp.write_text(yaml.dump(config), encoding="utf8")
    return base / "config.yml"
