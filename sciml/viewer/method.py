"""The ``shade`` nerfstudio method: SHaDe trained by ``ns-train shade`` and shown by ``ns-viewer``.

The nerfstudio model holds a :class:`sciml.tasks.shade.ShadeTask` and renders through its
``render_rays``: the same field, prior, ray clipping, sampling and compositing as the Lightning task, so a
Lightning checkpoint exported with :mod:`sciml.viewer.export` renders identically here.

Time: rays carry ``ray_bundle.times`` (D-NeRF data and the viewer's time slider, which nerfstudio shows
when the dataparser has times; ``ns-render`` camera paths with a ``render_time`` per keyframe). A ray
bundle without times renders at ``ShadeModelConfig.default_time`` (0.0, the first frame) instead of failing.

Training in nerfstudio: the Lightning task's objective (:meth:`ShadeTask.objective`, both stages, split
at the task's ``joint_start`` by nerfstudio's step). Parameter groups ``planes``, ``fields`` and ``prior``
each get an optimizer entry in :data:`shade_method`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.configs.base_config import ViewerConfig
from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManagerConfig
from nerfstudio.data.dataparsers.dnerf_dataparser import DNeRFDataParserConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.schedulers import Scheduler, SchedulerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.models.base_model import Model, ModelConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig
from nerfstudio.plugins.types import MethodSpecification
from torch import Tensor
from torch.optim.lr_scheduler import LambdaLR

from sciml.metrics.images import psnr, ssim
from sciml.nn.planes import FeaturePlanes
from sciml.tasks.checkpointing import build_net
from sciml.tasks.shade import ShadeTask

#: The CPU-sized SHaDe of ``configs/shade.yaml`` (field and prior descriptions as in the config).
DEFAULT_FIELD: dict[str, Any] = {
    "class_path": "sciml.models.shade.ShadeField",
    "init_args": {
        "resolution": 64,
        "channels": 16,
        "deformation_resolution": 32,
        "deformation_channels": 16,
        "sh_degree": 2,
        "token_dim": 16,
        "heads": 2,
    },
}
DEFAULT_PRIOR: dict[str, Any] = {
    "class_path": "sciml.models.shade.LatentPrior",
    "init_args": {"channels": 16, "resolution": 32, "dim": 64, "depth": 2, "heads": 2},
}
DEFAULT_TASK: dict[str, Any] = {
    "num_samples": 48,
    "joint_start": 1250,
    "prior_every": 4,
    "temporal_rays": 128,
}


@dataclass
class ShadeModelConfig(ModelConfig):
    """``field``/``prior``: ``{"class_path", "init_args"}`` of the networks (``prior`` None: none);
    ``task``: :class:`ShadeTask` keyword arguments; ``default_time``: for rays without times."""

    _target: type = dataclasses.field(default_factory=lambda: ShadeModel)
    field: dict[str, Any] = dataclasses.field(default_factory=lambda: dict(DEFAULT_FIELD))
    prior: dict[str, Any] | None = dataclasses.field(default_factory=lambda: dict(DEFAULT_PRIOR))
    task: dict[str, Any] = dataclasses.field(default_factory=lambda: dict(DEFAULT_TASK))
    default_time: float = 0.0
    near_plane: float = 2.0
    far_plane: float = 6.0
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    enable_collider: bool = False  # ShadeTask clips rays to the scene box and [near, far] itself
    eval_num_rays_per_chunk: int = 4096


class ShadeModel(Model):
    """A nerfstudio model around :class:`ShadeTask` (module docstring)."""

    config: ShadeModelConfig

    def populate_modules(self) -> None:
        super().populate_modules()
        prior = None if self.config.prior is None else build_net(self.config.prior)
        # Private: the viewer reads every public attribute of the model's modules, and a LightningModule's
        # trainer properties raise outside a Trainer.
        self._task = ShadeTask(build_net(self.config.field), prior=prior, **self.config.task)
        with torch.no_grad():
            self._task.scene_box.copy_(self.scene_box.aabb.float())
            self._task.near_far.copy_(torch.tensor([self.config.near_plane, self.config.far_plane]))
            self._task.background.copy_(torch.tensor(self.config.background))
        self.step = 0

    def get_param_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        planes = [
            p for m in self._task.field.modules() if isinstance(m, FeaturePlanes) for p in m.parameters()
        ]
        plane_ids = {id(p) for p in planes}
        groups = {
            "planes": planes,
            "fields": [p for p in self._task.field.parameters() if id(p) not in plane_ids],
        }
        groups["prior"] = [] if self._task.prior is None else list(self._task.prior.parameters())
        return groups

    def get_training_callbacks(self, training_callback_attributes):
        from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackLocation

        def set_step(step: int) -> None:
            self.step = step

        return [TrainingCallback([TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], set_step)]

    def _times(self, ray_bundle: RayBundle, rays: int) -> Tensor:
        if ray_bundle.times is None:
            return torch.full((rays,), float(self.config.default_time), device=ray_bundle.origins.device)
        return ray_bundle.times.reshape(-1).float()

    def get_outputs(self, ray_bundle: RayBundle) -> dict[str, Tensor]:
        origins = ray_bundle.origins.reshape(-1, 3)
        directions = ray_bundle.directions.reshape(-1, 3)
        times = self._times(ray_bundle, origins.shape[0])
        rendered = self._task.render_rays(origins, directions, times, perturb=self.training)
        outputs = {  # rgb first: the viewer shows the first output
            "rgb": rendered["rgb"],
            "depth": rendered["depth"][:, None],
            "accumulation": rendered["accumulation"][:, None],
        }
        if self.training:
            outputs["_rendered"] = rendered
            outputs["_rays"] = (origins, directions, times)
        return outputs

    def get_metrics_dict(self, outputs, batch) -> dict[str, Tensor]:
        target = batch["image"].to(self.device)[..., :3]
        return {"psnr": -10 * torch.log10(F.mse_loss(outputs["rgb"].detach(), target))}

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> dict[str, Tensor]:
        target = batch["image"].to(self.device)[..., :3]
        if "_rendered" not in outputs:  # evaluation batches
            return {"rgb_loss": F.mse_loss(outputs["rgb"], target)}
        loss, _ = self._task.objective(outputs["_rendered"], *outputs["_rays"], target, self.step)
        return {"loss": loss}

    def get_image_metrics_and_images(self, outputs, batch) -> tuple[dict[str, float], dict[str, Tensor]]:
        target = batch["image"].to(self.device)[..., :3]
        prediction = outputs["rgb"].clamp(0, 1)
        metrics = {
            "psnr": float(psnr(prediction[None], target[None])[0]),
            "ssim": float(ssim(prediction[None], target[None])[0]),
        }
        return metrics, {"img": torch.cat([target, prediction], dim=1)}


@dataclass
class ExponentialDecayConfig(SchedulerConfig):
    """The learning rate decays exponentially to ``lr_final`` over ``max_steps`` (as in the Lightning task).

    Not nerfstudio's ExponentialDecayScheduler: its multipliers are numpy scalars, which end up in the
    checkpoint's scheduler state, and nerfstudio 1.1.5 then cannot load its own checkpoints with torch >= 2.6
    (``torch.load`` defaults to ``weights_only=True``; nerfstudio issue 3683). These are Python floats."""

    _target: type = dataclasses.field(default_factory=lambda: ExponentialDecay)
    lr_final: float = 1e-4
    max_steps: int = 2500


class ExponentialDecay(Scheduler):
    config: ExponentialDecayConfig

    def get_scheduler(self, optimizer, lr_init: float) -> LambdaLR:
        ratio, steps = self.config.lr_final / lr_init, self.config.max_steps
        return LambdaLR(optimizer, lambda step: float(ratio ** min(step / steps, 1.0)))


def _optimizer(lr: float, final: float, steps: int) -> dict[str, Any]:
    return {
        "optimizer": AdamOptimizerConfig(lr=lr, eps=1e-15),
        "scheduler": ExponentialDecayConfig(lr_final=final, max_steps=steps),
    }


STEPS = 2500
shade_method = MethodSpecification(
    config=TrainerConfig(
        method_name="shade",
        steps_per_eval_batch=500,
        steps_per_eval_image=500,
        steps_per_save=1000,
        max_num_iterations=STEPS,
        mixed_precision=False,
        pipeline=VanillaPipelineConfig(
            datamanager=VanillaDataManagerConfig(
                dataparser=DNeRFDataParserConfig(),
                train_num_rays_per_batch=1024,
                eval_num_rays_per_batch=1024,
            ),
            model=ShadeModelConfig(),
        ),
        optimizers={
            "planes": _optimizer(2e-2, 2e-3, STEPS),
            "fields": _optimizer(2e-3, 2e-4, STEPS),
            "prior": _optimizer(1e-3, 1e-4, STEPS),
        },
        viewer=ViewerConfig(num_rays_per_chunk=4096),
        vis="viewer",
    ),
    description="SHaDe (sciml): tri-plane deformation, SH-attention colour head, latent diffusion prior",
)
