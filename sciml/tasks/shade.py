"""Dynamic scene reconstruction (SHaDe and its HexPlane-style baseline): fit a dynamic radiance field to a
multi-view capture by volume rendering, with SHaDe's latent diffusion prior, and judge it on held-out views
and times.

    rays (o, d, t) --clip to the scene box and [near, far]--> stratified samples x_i along each ray
    field(x_i, d, t) -> (sigma_i, c_i) --volume rendering--> rgb, depth, accumulation

Two stages in one ``fit``, split at global step ``joint_start`` (the paper's schedule; a stage runs alone
with ``--trainer.max_steps <joint_start>`` for stage 1, and ``--model.joint_start 0 --model.init_from
<stage-1 checkpoint>`` for stage 2):

1. The field fits the images (mean squared colour error of random ray batches, plus ``tv_weight`` x the
   planes' total variation and ``time_smoothness_weight`` x the field's time-smoothness term) and the
   prior (:class:`sciml.models.shade.LatentPrior`) is pre-trained on its own on the field's detached plane
   features at ``prior_batch`` random scene times: no gradient passes between them.
2. Jointly: the same losses, plus ``denoising_weight`` x the prior's noise-prediction error of the live
   planes through the frozen prior (the latent prior refines the planes; the prior keeps training on the
   detached planes), plus ``temporal_weight`` x a temporal-consistency loss: the colours of ``temporal_rays``
   rays of the batch rendered at ``t + temporal_delta`` (at the same sample depths) against those at ``t``.

The paper names the three joint losses but not their form or weights; these are sciml's choices (defaults
below, all configurable). Stage 1 trains the field by reconstruction while the prior learns because the
prior needs planes that hold a scene, and a single capture has no other source of them. Without a prior
(``prior: null``, e.g. the baseline) the stages differ only by the temporal loss.

Optimizer (choices): Adam with a larger learning rate for the feature planes (``plane_lr``) than for the
field's small networks (``lr``) and the prior (``prior_lr``), all decayed by ``lr_decay`` over training.
``num_samples`` stratified samples per ray (jittered in training, bin midpoints in evaluation).

Validation renders each held-out image at its own time, in chunks of ``eval_chunk`` rays, and logs the
mean PSNR and SSIM over the views (:mod:`sciml.metrics.images`); the per-view scores are written to
``plots/<stage>/views_epoch<N>.csv`` and the first ``render_count`` images (those rank 0 evaluates) are
saved next to the truth as PNGs. Evaluation draws no random numbers (samples at the bin midpoints) and
counts each view once however many processes share the split (:mod:`sciml.tasks.gathering`), so its
numbers do not depend on the number of processes or devices.
When the capture has a ``video`` split (one camera through consecutive times; the generated scene writes
one) its frames are rendered and scored by :func:`sciml.metrics.images.temporal_consistency` (mean
absolute error of the frame-to-frame change, 0 for a perfect video) and saved as a GIF beside the truth;
an orbit of ``val_orbit_frames`` views through time is saved as a GIF too.

``predict`` renders a camera path through time (an orbit, or a nerfstudio ``camera_path.json`` with
per-keyframe times: :class:`sciml.data.captures.CaptureDataModule`) and :class:`FrameWriter` saves the
frames and a GIF.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from jaxtyping import Float
from PIL import Image
from pytorch_lightning.callbacks import BasePredictionWriter
from pytorch_lightning.utilities import rank_zero_warn
from rich.console import Console
from torch import Tensor, nn

from sciml.core.atomic import atomic_path
from sciml.core.errors import ConfigError
from sciml.metrics.images import psnr, ssim, temporal_consistency
from sciml.models.shade import LatentPrior
from sciml.nn.planes import FeaturePlanes
from sciml.rendering import clip_near_far, sample_points, stratified_samples, uniform_bins, volume_render
from sciml.tasks import plots
from sciml.tasks.checkpointing import InjectedNetCheckpoint
from sciml.tasks.gathering import gather_unique

#: Columns of the per-view table of an evaluation (``plots/<stage>/views_epoch<N>.csv``).
VIEW_COLUMNS = ("view", "time", "psnr", "ssim")


class ShadeTask(InjectedNetCheckpoint):
    """Fits ``field(points (N, 3), directions (N, 3), times (N,)) -> {"density", "rgb"}`` to a capture.

    Args:
        field: the dynamic radiance field (:class:`sciml.models.shade.ShadeField` or the baseline
            :class:`sciml.models.shade.HexPlaneField`).
        prior: SHaDe's latent diffusion prior over the field's planes (needs a field with
            ``plane_features``); ``None`` trains without one.
        num_samples: samples per ray.
        lr, plane_lr, prior_lr: Adam learning rates of the field's networks, its feature planes and the prior.
        lr_decay: final learning rate as a fraction of the initial one (exponential decay per step).
        tv_weight, time_smoothness_weight: regularizer weights.
        joint_start: global step at which stage 2 (joint training) begins.
        prior_batch: scene times per step the prior sees.
        prior_every: the prior's losses are added at every ``prior_every``-th step only (cheaper; on other
            steps the field trains by reconstruction alone).
        denoising_weight: weight of the prior's refinement loss on the planes in stage 2.
        temporal_weight, temporal_rays, temporal_delta: the temporal-consistency loss of stage 2.
        init_from: a checkpoint whose field (and prior, when it has one) weights start the fit.
        eval_chunk: rays rendered at once in evaluation.
        render_count: validation images saved as PNGs.
        val_orbit_frames: views of the orbit GIF made at each validation (0: none).
        fps: frame rate of the GIFs.
    """

    injected = ("field", "prior")

    def __init__(
        self,
        field: nn.Module,
        prior: LatentPrior | None = None,
        num_samples: int = 64,
        lr: float = 1e-3,
        plane_lr: float = 2e-2,
        prior_lr: float = 1e-3,
        lr_decay: float = 0.1,
        tv_weight: float = 1e-4,
        time_smoothness_weight: float = 1e-3,
        joint_start: int = 0,
        prior_batch: int = 2,
        prior_every: int = 1,
        denoising_weight: float = 1e-3,
        temporal_weight: float = 1e-2,
        temporal_rays: int = 256,
        temporal_delta: float = 0.01,
        init_from: str | None = None,
        eval_chunk: int = 8192,
        render_count: int = 4,
        val_orbit_frames: int = 24,
        fps: int = 8,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["field", "prior"])
        if prior is not None:
            if not hasattr(field, "plane_features"):
                raise ConfigError(
                    "model.init_args.prior",
                    f"the latent prior models plane features, which {type(field).__name__} does not expose; "
                    "use sciml.models.shade.ShadeField or set prior: null",
                )
            channels = getattr(field, "config", {}).get("channels")
            if channels is not None and channels != prior.channels:
                raise ConfigError(
                    "model.init_args.prior.init_args.channels",
                    f"must equal the field's plane channels ({channels}), got {prior.channels}",
                )
        if isinstance(prior_every, bool) or not isinstance(prior_every, int) or prior_every < 1:
            raise ConfigError("model.init_args.prior_every", f"expected an integer >= 1, got {prior_every!r}")
        if not 0 <= temporal_delta <= 1:
            raise ConfigError(
                "model.init_args.temporal_delta", f"expected a time step in [0, 1], got {temporal_delta}"
            )
        self.field, self.prior = field, prior
        # The capture's geometry travels in the checkpoint so a loaded model renders on its own.
        self.register_buffer("scene_box", torch.tensor([[-1.5] * 3, [1.5] * 3]))
        self.register_buffer("near_far", torch.tensor([2.0, 6.0]))
        self.register_buffer("background", torch.ones(3))
        self._scores: list[Tensor] = []
        self.summary: dict[str, object] = {}

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if stage == "fit" and self.hparams.init_from is not None:
            self._load_initial_weights(Path(self.hparams.init_from))
        if datamodule is None or stage != "fit":
            return
        self.scene_box.copy_(torch.as_tensor(datamodule.scene_box, dtype=torch.float32))
        self.near_far.copy_(torch.tensor([float(datamodule.near), float(datamodule.far)]))
        self.background.copy_(torch.as_tensor(datamodule.background, dtype=torch.float32))

    def _load_initial_weights(self, path: Path) -> None:
        key = "model.init_args.init_from"
        if not path.is_file():
            raise ConfigError(key, f"no checkpoint at {path}")
        state = torch.load(path, map_location="cpu", weights_only=False).get("state_dict")
        if state is None:
            raise ConfigError(key, f"{path} holds no 'state_dict' (not a Lightning checkpoint)")
        try:
            missing, unexpected = self.load_state_dict(state, strict=False)
        except RuntimeError as error:  # shapes differ
            detail = str(error).splitlines()[1].strip() if "\n" in str(error) else str(error)
            raise ConfigError(key, f"{path} does not match this model: {detail}") from None
        wrong = unexpected + [name for name in missing if not name.startswith("prior.")]
        if wrong:
            raise ConfigError(
                key, f"{path} does not match this model: {len(wrong)} weight(s) differ, e.g. {wrong[:3]}"
            )
        if missing:
            rank_zero_warn(f"{path} has no prior weights: the prior starts from scratch")

    def stage_at(self, step: int) -> int:
        """1 (field and prior apart) before ``joint_start``, 2 (joint) from it (module docstring)."""
        return 1 if step < self.hparams.joint_start else 2

    @property
    def stage(self) -> int:
        return self.stage_at(self.global_step)

    # ------------------------------------------------------------------ rendering
    def render_rays(
        self,
        origins: Float[Tensor, "R 3"],
        directions: Float[Tensor, "R 3"],
        times: Float[Tensor, " R"],
        perturb: bool = False,
        depths: Float[Tensor, "R S"] | None = None,
    ) -> dict[str, Tensor]:
        """Volume-render rays at their times: ``rgb (R, 3)``, ``depth (R,)``, ``accumulation (R,)``, and the
        sample ``depths (R, S)`` and ``points (R, S, 3)``; passing ``depths`` reuses another render's."""
        near, far = float(self.near_far[0]), float(self.near_far[1])
        near_t, far_t, _ = clip_near_far(origins, directions, near, far, self.scene_box)
        samples = self.hparams.num_samples
        if depths is None:
            depths = stratified_samples(near_t, far_t, samples, perturb=perturb)  # (R, S)
        deltas = uniform_bins(near_t, far_t, samples).diff(dim=1)  # (R, S) bin widths
        points = sample_points(origins, directions, depths)  # (R, S, 3)
        rays = origins.shape[0]
        flat = self.field(
            points.reshape(-1, 3),
            directions[:, None].expand(rays, samples, 3).reshape(-1, 3),
            times[:, None].expand(rays, samples).reshape(-1),
        )
        rendered = volume_render(
            flat["density"].view(rays, samples),
            flat["rgb"].view(rays, samples, 3),
            depths,
            deltas,
            background=self.background,
        )
        rendered["points"], rendered["depths"] = points, depths
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
        rays = target.shape[0]
        rendered = self.render_rays(origins, directions, times, perturb=True)
        loss, logged = self.objective(rendered, origins, directions, times, target, self.global_step)
        for name, value in logged.items():
            self.log(f"train/{name}", value, batch_size=rays)
        self.log("train/loss", loss, prog_bar=True, batch_size=rays)
        self.log("train/psnr", -10 * torch.log10(logged["mse"]), prog_bar=True, batch_size=rays)
        self.log("train/stage", float(self.stage_at(self.global_step)), batch_size=rays)
        return loss

    def objective(
        self,
        rendered: dict[str, Tensor],
        origins: Float[Tensor, "R 3"],
        directions: Float[Tensor, "R 3"],
        times: Float[Tensor, " R"],
        target: Float[Tensor, "R 3"],
        step: int,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """The training loss at global ``step`` of rays rendered by :meth:`render_rays` (module docstring),
        and its unweighted parts (detached, for logging). Also what the nerfstudio method optimizes."""
        hp, stage = self.hparams, self.stage_at(step)
        mse = F.mse_loss(rendered["rgb"], target)
        logged = {"mse": mse.detach()}
        # Regularize at a subset of this batch's sample points (time smoothness renders the deformation
        # at several times: a few hundred points suffice).
        sample = rendered["points"].reshape(-1, 3)[:: max(1, rendered["points"].numel() // 3 // 512)]
        terms = self.field.regularizers(sample.detach())
        loss = mse + hp.tv_weight * terms["tv"]
        if "time_smoothness" in terms:
            loss = loss + hp.time_smoothness_weight * terms["time_smoothness"]
        if stage == 2 and hp.temporal_weight > 0:
            temporal = self._temporal_loss(origins, directions, times, rendered)
            loss = loss + hp.temporal_weight * temporal
            logged["temporal"] = temporal.detach()
        if self.prior is not None and step % hp.prior_every == 0:
            prior_terms = self._prior_losses(stage)
            loss = loss + prior_terms.pop("loss")
            logged.update({name: value.detach() for name, value in prior_terms.items()})
        return loss, logged

    def _temporal_loss(self, origins: Tensor, directions: Tensor, times: Tensor, rendered: dict) -> Tensor:
        k, delta = min(self.hparams.temporal_rays, times.shape[0]), self.hparams.temporal_delta
        later = times[:k] + delta
        shifted = torch.where(later <= 1, later, times[:k] - delta)  # stay inside [0, 1]
        moved = self.render_rays(origins[:k], directions[:k], shifted, depths=rendered["depths"][:k])
        return (moved["rgb"] - rendered["rgb"][:k]).square().mean()

    def _prior_losses(self, stage: int) -> dict[str, Tensor]:
        """``loss`` (what the prior adds to the objective) and its logged parts."""
        assert self.prior is not None
        scene_times = torch.rand(self.hparams.prior_batch, device=self.device)
        planes = self.field.plane_features(scene_times, self.prior.resolution)
        terms = self.prior.losses(planes.detach(), scene_times)
        parts = {"prior_reconstruction": terms["reconstruction"], "prior_denoising": terms["denoising"]}
        loss = terms["reconstruction"] + terms["denoising"]
        if stage == 2 and self.hparams.denoising_weight > 0:
            # The frozen prior's score of the live planes: its gradient reaches the field only.
            frozen = {name: weight.detach() for name, weight in self.prior.named_parameters()}
            parts["refinement"] = torch.func.functional_call(self.prior, frozen, (planes, scene_times))
            loss = loss + self.hparams.denoising_weight * parts["refinement"]
        return {"loss": loss, **parts}

    def configure_optimizers(self):
        hp = self.hparams
        planes = [p for m in self.field.modules() if isinstance(m, FeaturePlanes) for p in m.parameters()]
        plane_ids = {id(p) for p in planes}
        others = [p for p in self.field.parameters() if id(p) not in plane_ids and p.requires_grad]
        groups = [{"params": planes, "lr": hp.plane_lr}, {"params": others, "lr": hp.lr}]
        if self.prior is not None:
            groups.append({"params": list(self.prior.parameters()), "lr": hp.prior_lr})
        optimizer = torch.optim.Adam(groups)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        gamma = hp.lr_decay ** (1.0 / total)
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
                torch.tensor(time, device=target.device),
                psnr(prediction[None], target[None])[0],
                ssim(prediction[None], target[None])[0],
            ]
        )  # (4,): one row of the view table (VIEW_COLUMNS)
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
        (table,) = gather_unique(self, torch.stack(self._scores))
        table = table.cpu()  # (views, 4), padding repeats once
        self._scores = []
        mean_psnr, mean_ssim = table[:, 2].mean().item(), table[:, 3].mean().item()
        # Identical on every rank after the gather; sync_dist only keeps Lightning's DDP check quiet.
        self.log(f"{prefix}/psnr", mean_psnr, prog_bar=True, sync_dist=True)
        self.log(f"{prefix}/ssim", mean_ssim, sync_dist=True)
        if self.trainer.sanity_checking:
            return
        directory = self._plot_directory(prefix)
        self.summary = {
            "stage": prefix,
            "epoch": self.current_epoch,
            "views": len(table),
            "psnr": mean_psnr,
            "ssim": mean_ssim,
            "field": type(self.field).__name__,
            "parameters": sum(p.numel() for p in self.field.parameters()),
        }
        if self.prior is not None:
            self.summary["training stage"] = self.stage
            self.summary["prior parameters"] = sum(p.numel() for p in self.prior.parameters())
        if self.trainer.is_global_zero:
            _write_view_table(table, directory / f"views_epoch{self.current_epoch:04d}.csv")
            self._render_videos(prefix, directory)
        self.summary["renders"] = str(directory)

    def _render_videos(self, prefix: str, directory: Path) -> None:
        """The video split (temporal consistency, GIF beside the truth) and the orbit GIF (rank 0 only)."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is None:
            return
        epoch, fps = self.current_epoch, self.hparams.fps
        if datamodule.has_capture("video"):
            predictions, truths = [], []
            for item in datamodule.dataset("video"):
                rendered = self.render_image(
                    item["origins"].to(self.device), item["directions"].to(self.device), float(item["time"])
                )
                predictions.append(rendered["rgb"].clamp(0, 1).cpu())
                truths.append(item["rgb"])
            prediction, truth = torch.stack(predictions), torch.stack(truths)
            error = temporal_consistency(prediction, truth)
            self.summary["temporal error"] = error
            self.summary["video psnr"] = psnr(prediction, truth).mean().item()
            self.log(f"{prefix}/temporal_error", error, rank_zero_only=True)
            side_by_side = torch.cat([prediction, truth], dim=2)  # (T, H, 2 W, 3): model | truth
            plots.save_gif(_to_uint8(side_by_side), directory / f"video_epoch{epoch:04d}.gif", fps)
        if self.hparams.val_orbit_frames > 0:
            split = "val" if datamodule.has_capture("val") else prefix
            frames = [
                self.render_image(
                    item["origins"].to(self.device), item["directions"].to(self.device), float(item["time"])
                )["rgb"]
                .clamp(0, 1)
                .cpu()
                for item in datamodule.orbit(split, self.hparams.val_orbit_frames)
            ]
            plots.save_gif(_to_uint8(torch.stack(frames)), directory / f"orbit_epoch{epoch:04d}.gif", fps)

    def _plot_directory(self, prefix: str) -> Path:
        return Path(self.trainer.log_dir or self.trainer.default_root_dir) / "plots" / prefix

    def _save_render(
        self, prefix: str, index: int, time: float, prediction: Tensor, target: Tensor, depth: Tensor
    ) -> None:
        directory = self._plot_directory(prefix)
        directory.mkdir(parents=True, exist_ok=True)
        plots.plot_render_comparison(
            prediction.cpu().numpy(),
            target.cpu().numpy(),
            depth.cpu().numpy(),
            directory / f"view{index:03d}_epoch{self.current_epoch:04d}.png",
            title=f"{prefix} view {index}, t = {time:.3f}",
        )


def _write_view_table(table: Tensor, path: Path) -> None:
    """The per-view scores ``(views, 4)`` as CSV (VIEW_COLUMNS; ``inf`` PSNR for an exact view)."""
    lines = [",".join(VIEW_COLUMNS)]
    lines += [
        f"{int(index)},{time!r},{value_psnr!r},{value_ssim!r}"
        for index, time, value_psnr, value_ssim in table.tolist()
    ]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def _to_uint8(frames: Tensor) -> list[np.ndarray]:
    return list((frames.numpy() * 255).round().astype(np.uint8))


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
        for index in sorted(frames):
            with atomic_path(self.output_dir / f"frame_{index:04d}.png") as tmp:
                Image.fromarray(frames[index]).save(tmp, format="PNG")
        plots.save_gif([frames[index] for index in sorted(frames)], self.output_dir / "path.gif", self.fps)
        Console().print(f"[bold]sciml[/]: wrote {len(frames)} frames and path.gif to {self.output_dir}/")
