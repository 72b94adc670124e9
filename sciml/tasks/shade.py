"""Dynamic scene reconstruction (SHaDe and its HexPlane-style baseline): fit a dynamic radiance field to a
multi-view capture by volume rendering, and judge it on held-out views and times.

    rays (o, d, t) --clip to the scene box and [near, far]--> stratified samples x_i along each ray
    field(x_i, d, t) -> (sigma_i, c_i) --volume rendering--> rgb, depth, accumulation

Loss: mean squared colour error of random ray batches, plus ``tv_weight`` x the planes' total variation
and ``time_smoothness_weight`` x the field's time-smoothness term (second differences in time of the
deformation for SHaDe, of the space-time planes for HexPlane) at the batch's sample points.

Choices (configurable): Adam with a larger learning rate for the feature planes (``plane_lr``, as plane
methods train) than for the small networks (``lr``), both decayed by ``lr_decay`` over training;
``num_samples`` stratified samples per ray (jittered in training, bin midpoints in evaluation).
Validation renders each held-out image in chunks of ``eval_chunk`` rays and logs PSNR and SSIM
(:mod:`sciml.metrics.images`); the first ``render_count`` images are saved next to the truth as PNGs.

``predict`` renders a camera path through time (an orbit, or a nerfstudio ``camera_path.json`` with
per-keyframe times: :class:`sciml.data.captures.CaptureDataModule`) and :class:`FrameWriter` saves the
frames and a GIF.

This module covers the reconstruction stage; the latent diffusion prior and the two-stage schedule of the
paper build on it (issue 5, in progress).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float
from PIL import Image
from pytorch_lightning.callbacks import BasePredictionWriter
from rich.console import Console
from torch import Tensor, nn

from sciml.core.atomic import atomic_path
from sciml.metrics.images import psnr, ssim
from sciml.nn.planes import FeaturePlanes
from sciml.rendering import clip_near_far, sample_points, stratified_samples, uniform_bins, volume_render
from sciml.tasks import plots
from sciml.tasks.checkpointing import InjectedNetCheckpoint


class ShadeTask(InjectedNetCheckpoint):
    """Fits ``field(points (N, 3), directions (N, 3), times (N,)) -> {"density", "rgb"}`` to a capture.

    Args:
        field: the dynamic radiance field (:class:`sciml.models.shade.ShadeField` or the baseline
            :class:`sciml.models.shade.HexPlaneField`).
        num_samples: samples per ray.
        lr, plane_lr: Adam learning rates of the networks and of the feature planes.
        lr_decay: final learning rate as a fraction of the initial one (exponential decay per step).
        tv_weight, time_smoothness_weight: regularizer weights.
        eval_chunk: rays rendered at once in evaluation.
        render_count: validation images saved as PNGs.
    """

    injected = "field"

    def __init__(
        self,
        field: nn.Module,
        num_samples: int = 64,
        lr: float = 1e-3,
        plane_lr: float = 2e-2,
        lr_decay: float = 0.1,
        tv_weight: float = 1e-4,
        time_smoothness_weight: float = 1e-3,
        eval_chunk: int = 8192,
        render_count: int = 4,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["field"])
        self.field = field
        # The capture's geometry travels in the checkpoint so a loaded model renders on its own.
        self.register_buffer("scene_box", torch.tensor([[-1.5] * 3, [1.5] * 3]))
        self.register_buffer("near_far", torch.tensor([2.0, 6.0]))
        self.register_buffer("background", torch.ones(3))
        self._scores: list[Tensor] = []
        self.summary: dict[str, object] = {}

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None or stage != "fit":
            return
        self.scene_box.copy_(torch.as_tensor(datamodule.scene_box, dtype=torch.float32))
        self.near_far.copy_(torch.tensor([float(datamodule.near), float(datamodule.far)]))
        self.background.copy_(torch.as_tensor(datamodule.background, dtype=torch.float32))

    # ------------------------------------------------------------------ rendering
    def render_rays(
        self,
        origins: Float[Tensor, "R 3"],
        directions: Float[Tensor, "R 3"],
        times: Float[Tensor, " R"],
        perturb: bool = False,
    ) -> dict[str, Tensor]:
        """Volume-render rays at their times: ``rgb (R, 3)``, ``depth (R,)``, ``accumulation (R,)``."""
        near, far = float(self.near_far[0]), float(self.near_far[1])
        near_t, far_t, _ = clip_near_far(origins, directions, near, far, self.scene_box)
        samples = self.hparams.num_samples
        t = stratified_samples(near_t, far_t, samples, perturb=perturb)  # (R, S)
        deltas = uniform_bins(near_t, far_t, samples).diff(dim=1)  # (R, S) bin widths
        points = sample_points(origins, directions, t)  # (R, S, 3)
        rays = origins.shape[0]
        flat = self.field(
            points.reshape(-1, 3),
            directions[:, None].expand(rays, samples, 3).reshape(-1, 3),
            times[:, None].expand(rays, samples).reshape(-1),
        )
        rendered = volume_render(
            flat["density"].view(rays, samples),
            flat["rgb"].view(rays, samples, 3),
            t,
            deltas,
            background=self.background,
        )
        rendered["points"] = points
        return rendered

    @torch.no_grad()
    def render_image(
        self, origins: Float[Tensor, "H W 3"], directions: Float[Tensor, "H W 3"], time: float
    ) -> dict[str, Tensor]:
        """Render a whole image in chunks of ``eval_chunk`` rays: ``rgb (H, W, 3)``, ``depth (H, W)``."""
        height, width = origins.shape[:2]
        flat_o, flat_d = origins.reshape(-1, 3), directions.reshape(-1, 3)
        rgb, depth = [], []
        for start in range(0, flat_o.shape[0], self.hparams.eval_chunk):
            stop = start + self.hparams.eval_chunk
            times = torch.full((flat_o[start:stop].shape[0],), float(time), device=flat_o.device)
            out = self.render_rays(flat_o[start:stop], flat_d[start:stop], times)
            rgb.append(out["rgb"])
            depth.append(out["depth"])
        return {"rgb": torch.cat(rgb).view(height, width, 3), "depth": torch.cat(depth).view(height, width)}

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        origins, directions = batch["origins"].reshape(-1, 3), batch["directions"].reshape(-1, 3)
        times, target = batch["time"].reshape(-1), batch["rgb"].reshape(-1, 3)
        rendered = self.render_rays(origins, directions, times, perturb=True)
        mse = F.mse_loss(rendered["rgb"], target)
        # Regularize at a subset of this batch's sample points (time smoothness renders the deformation
        # at several times: a few hundred points suffice).
        sample = rendered["points"].reshape(-1, 3)[:: max(1, rendered["points"].numel() // 3 // 512)]
        terms = self.field.regularizers(sample.detach())
        loss = mse + self.hparams.tv_weight * terms["tv"]
        if "time_smoothness" in terms:
            loss = loss + self.hparams.time_smoothness_weight * terms["time_smoothness"]
        rays = target.shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=rays)
        self.log("train/psnr", -10 * torch.log10(mse.detach()), prog_bar=True, batch_size=rays)
        return loss

    def configure_optimizers(self):
        planes = [p for m in self.field.modules() if isinstance(m, FeaturePlanes) for p in m.parameters()]
        plane_ids = {id(p) for p in planes}
        others = [p for p in self.field.parameters() if id(p) not in plane_ids and p.requires_grad]
        optimizer = torch.optim.Adam(
            [{"params": planes, "lr": self.hparams.plane_lr}, {"params": others, "lr": self.hparams.lr}]
        )
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        gamma = self.hparams.lr_decay ** (1.0 / total)
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ evaluation
    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _evaluate(self, batch: dict[str, Tensor], prefix: str) -> None:
        origins, directions = batch["origins"][0], batch["directions"][0]  # the loader adds a batch of 1
        target, time, index = batch["rgb"][0], float(batch["time"].reshape(-1)[0]), int(batch["index"][0])
        rendered = self.render_image(origins, directions, time)
        prediction = rendered["rgb"].clamp(0, 1)
        scores = torch.stack(
            [
                torch.tensor(float(index), device=target.device),
                psnr(prediction[None], target[None])[0],
                ssim(prediction[None], target[None])[0],
            ]
        )
        self._scores.append(scores)
        if (
            self.trainer.is_global_zero
            and index < self.hparams.render_count
            and not self.trainer.sanity_checking
        ):
            self._save_render(prefix, index, time, prediction, target, rendered["depth"])

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor]:
        rendered = self.render_image(batch["origins"][0], batch["directions"][0], float(batch["time"][0]))
        return {
            "rgb": rendered["rgb"].clamp(0, 1).cpu(),
            "index": batch["index"].cpu(),
            "time": batch["time"],
        }

    def on_validation_epoch_end(self) -> None:
        self._epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._epoch_end("test")

    def _epoch_end(self, prefix: str) -> None:
        if not self._scores:
            return
        rows = torch.stack(self._scores)
        self._scores = []
        if self.trainer.world_size > 1:
            rows = self.all_gather(rows).reshape(-1, rows.shape[-1])
        unique = {int(row[0]): row for row in rows.cpu()}  # padding repeats count once
        table = torch.stack([unique[i] for i in sorted(unique)])
        mean_psnr, mean_ssim = table[:, 1].mean().item(), table[:, 2].mean().item()
        self.log(f"{prefix}/psnr", mean_psnr, prog_bar=True, sync_dist=True)
        self.log(f"{prefix}/ssim", mean_ssim, sync_dist=True)
        if self.trainer.sanity_checking:
            return
        self.summary = {
            "stage": prefix,
            "epoch": self.current_epoch,
            "views": len(table),
            "psnr": mean_psnr,
            "ssim": mean_ssim,
            "field": type(self.field).__name__,
            "parameters": sum(p.numel() for p in self.field.parameters()),
        }
        directory = Path(self.trainer.log_dir or self.trainer.default_root_dir) / "plots" / prefix
        self.summary["renders"] = str(directory)

    def _save_render(
        self, prefix: str, index: int, time: float, prediction: Tensor, target: Tensor, depth: Tensor
    ) -> None:
        directory = Path(self.trainer.log_dir or self.trainer.default_root_dir) / "plots" / prefix
        directory.mkdir(parents=True, exist_ok=True)
        plots.plot_render_comparison(
            prediction.cpu().numpy(),
            target.cpu().numpy(),
            depth.cpu().numpy(),
            directory / f"view{index:03d}_epoch{self.current_epoch:04d}.png",
            title=f"{prefix} view {index}, t = {time:.3f}",
        )


class FrameWriter(BasePredictionWriter):
    """Writes the frames of a rendered path as ``<output_dir>/frame_0000.png ...`` and ``path.gif``.

    Args:
        output_dir: where to write (created).
        fps: frame rate of the GIF.
    """

    def __init__(self, output_dir: str = "predictions/shade", fps: int = 12):
        super().__init__(write_interval="batch")
        self.output_dir, self.fps = Path(output_dir), fps
        self._frames: dict[int, np.ndarray] = {}

    def on_predict_epoch_start(self, trainer, pl_module) -> None:
        self._frames = {}

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ):
        self._frames[int(prediction["index"][0])] = (prediction["rgb"].numpy() * 255).round().astype(np.uint8)

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        frames = self._frames
        if trainer.world_size > 1:
            gathered = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, frames)
            frames = {index: frame for part in gathered for index, frame in part.items()}
        if not trainer.is_global_zero:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        images = [Image.fromarray(frames[index]) for index in sorted(frames)]
        for index, image in zip(sorted(frames), images):
            with atomic_path(self.output_dir / f"frame_{index:04d}.png") as tmp:
                image.save(tmp, format="PNG")
        with atomic_path(self.output_dir / "path.gif") as tmp:
            images[0].save(
                tmp, format="GIF", save_all=True, append_images=images[1:], duration=1000 // self.fps, loop=0
            )
        Console().print(f"[bold]sciml[/]: wrote {len(images)} frames and path.gif to {self.output_dir}/")
