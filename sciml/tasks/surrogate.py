"""Autoregressive field surrogate: train one step, evaluate long rollouts with flow statistics.

The task follows the training protocol of IFactFormer (Yang et al., 2024): the network maps the filtered
velocity at the last ``T_in`` time levels to the next one; it is trained on single (or ``T_out`` chained)
steps with the relative L2 loss, and judged by rolling it out autoregressively from the first window of each
held-out trajectory.

Choices where the paper is silent (all configurable):

* ``residual=True`` (default) adds the network's output, in units of the field's standard deviation, to
  the last input field, so the network learns the change over one step; over one snapshot interval the
  filtered field changes by about 10 % (the persistence error the task logs), and learning that small
  increment trains much faster than learning the whole next field. ``residual=False`` is the paper's
  formulation, where the network outputs the next field itself;
* the loss is the relative L2 error in physical units, per sample, averaged over the batch (and over the
  ``T_out`` chained steps); the network itself sees per-channel standardized fields, with the statistics of
  the training split held as buffers so a checkpoint predicts on its own;
* AdamW with a linear warm-up and cosine decay per optimizer step;
* a rollout counts as diverged at the first step whose prediction is not finite or whose kinetic energy
  exceeds ``divergence_factor`` times the true one; the remaining steps are reported as NaN;
* spectrum error and drifts are defined in :mod:`sciml.metrics.turbulence`; spectra are taken over the axes
  whose boundary conditions (``field_info["boundary_conditions"]``) are periodic on both sides and
  averaged over the others (a channel's wall-normal axis); data that states no boundary conditions counts
  as periodic on every axis. With no periodic axis there is no spectrum: its error is NaN, its figure is
  not drawn and the count of rollout steps within the spectrum tolerance is NaN;
* a network built with ``coordinates="data"`` (IFactFormer) gets the data's node coordinates
  (``field_info["coords"]``, in the data's axis order) in ``setup`` at every stage: they describe the
  fields it is about to see, unlike the normalization statistics, which belong to the trained model;
* under DDP every rank evaluates its shard; per-sample results are gathered at the end of the epoch and
  each sample (by its ``index``) counted once, so the logged metrics equal a single-process evaluation
  (the padding repeats that keep ranks in step are dropped).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor, nn

from sciml.core.errors import ConfigError
from sciml.metrics.turbulence import (
    first_step_above,
    periodic_energy_spectrum,
    relative_l2,
    spectrum_error,
    statistic_drift,
)
from sciml.physics.statistics import kinetic_energy
from sciml.tasks import plots
from sciml.tasks.checkpointing import InjectedNetCheckpoint
from sciml.tasks.gathering import gather_unique


class SurrogateTask(InjectedNetCheckpoint):
    """Trains ``net: (B, C, T_in, X, Y, Z) -> (B, C, X, Y, Z)`` as a one-step field surrogate.

    ``setup`` checks the data module's fields against the network (3-D, grid, channels, input window) and
    raises a ConfigError naming the network's config key and the data file on a mismatch. After each
    evaluation epoch, ``summary`` holds the headline numbers and ``rollout_curves`` the per-step curves.

    Args:
        net: the network; must expose ``in_channels`` (C) and ``in_steps`` (T_in), and ``out_channels`` and
            ``grid_shape`` (X, Y, Z) when it has them.
        lr: peak learning rate of AdamW.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up length in optimizer steps, then cosine decay to ``lr * min_lr_ratio``.
        min_lr_ratio: final learning rate as a fraction of ``lr``.
        spectrum_tolerance: spectrum error that ends the "good rollout" count in the summary.
        divergence_factor: kinetic-energy ratio (pred/true) above which a rollout counts as blown up.
        velocity_channels: channel indices of the three velocity components, used for spectra and energy.
        plot_steps: number of rollout steps shown in the spectra and slice figures.
        residual: predict the increment over the last input field, not the next field (module docstring).
    """

    def __init__(
        self,
        net: nn.Module,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        warmup_steps: int = 50,
        min_lr_ratio: float = 0.02,
        spectrum_tolerance: float = 0.1,
        divergence_factor: float = 10.0,
        velocity_channels: tuple[int, int, int] = (0, 1, 2),
        plot_steps: int = 4,
        residual: bool = True,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        self.net = net
        channels = int(net.in_channels)
        self.in_steps = int(net.in_steps)
        # Normalization statistics and domain size travel in the checkpoint (filled from the data module).
        self.register_buffer("field_mean", torch.zeros(channels))
        self.register_buffer("field_std", torch.ones(channels))
        self.register_buffer("domain_lengths", torch.full((3,), 2 * math.pi))
        self.register_buffer("periodic_axes", torch.ones(3, dtype=torch.bool))
        self.register_buffer("statistics_ready", torch.tensor(False))
        self._rollouts: list[dict[str, Tensor]] = []
        self._one_step: list[Tensor] = []
        self.summary: dict[str, object] = {}
        #: Per-step rollout curves (``rel_l2``, ``spectrum_error``, ...) of each evaluated trajectory, rows in
        #: trajectory-index order, ``(R, steps)``; NaN after a divergence.
        self.rollout_curves: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ setup and the physical-units step
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        normalization = getattr(datamodule, "normalization", None)
        if normalization is None:
            return
        # A data module with statistics describes its fields (sciml.data.fields.FieldDataModule.field_info).
        info = datamodule.field_info
        self._check_data_fits_net(info)
        if getattr(self.net, "coordinates", None) == "data":
            self._copy_coordinates_into_net(info)
        # Fitting always takes the data's statistics; evaluation keeps those stored in the checkpoint.
        if stage != "fit" and bool(self.statistics_ready):
            return
        mean, std = normalization["mean"], normalization["std"]
        self.field_mean.copy_(mean)
        self.field_std.copy_(std)
        self.domain_lengths.copy_(torch.as_tensor(info["lengths"], dtype=torch.float32))
        self.periodic_axes.copy_(torch.as_tensor(_periodic_axes(info)))
        self.statistics_ready.fill_(True)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Checkpoints written before the task knew about walls treated every axis as periodic.
        checkpoint["state_dict"].setdefault("periodic_axes", torch.ones(3, dtype=torch.bool))

    def _copy_coordinates_into_net(self, info: dict) -> None:
        """Hand the data's node coordinates, in the data's axis order, to a ``coordinates="data"`` network."""
        coords = info.get("coords")
        if coords is None:
            raise ConfigError(
                "model.init_args.net.init_args.coordinates",
                f"is 'data', but the data module of {info['path']} reports no node coordinates "
                "(field_info['coords']); choose 'periodic' or 'linspace'",
            )
        self.net.set_coordinates(*(coords[dim] for dim in info["spatial_dims"]))

    def _check_data_fits_net(self, info: dict) -> None:
        """Raise a ConfigError naming the network's config key and the data file when the data's spatial
        dimensions, grid, channels or input window do not fit the network: otherwise the mismatch surfaces
        as a shape error deep inside the network at the first batch."""
        key = "model.init_args.net.init_args."
        source = info["path"]
        dims, grid = list(info["spatial_dims"]), [int(n) for n in info["grid_shape"]]
        channels = list(info["channel_names"])
        net_grid = getattr(self.net, "grid_shape", None)  # only networks bound to one grid declare it
        if len(dims) != 3:
            # The task itself is 3-D (spectra, kinetic energy, (B, C, X, Y, Z) fields) whatever the network.
            raise ConfigError(
                key + "grid_shape" if net_grid is not None else "data.init_args.path",
                f"the surrogate works on 3-D fields, but {source} holds {len(dims)}-D fields over "
                f"({', '.join(dims)}) on a {grid} grid",
            )
        if net_grid is not None and [int(n) for n in net_grid] != grid:
            raise ConfigError(
                key + "grid_shape",
                f"is {[int(n) for n in net_grid]}, but {source} has a {grid} grid over ({', '.join(dims)})",
            )
        if len(channels) != self.field_mean.numel():
            raise ConfigError(
                key + "in_channels",
                f"is {self.field_mean.numel()}, but {source} serves {len(channels)} channels {channels}",
            )
        # The prediction is compared with the next frame and fed back as input: it needs every channel.
        out_channels = getattr(self.net, "out_channels", len(channels))
        if int(out_channels) != len(channels):
            raise ConfigError(
                key + "out_channels",
                f"is {out_channels}, but {source} serves {len(channels)} channels {channels}",
            )
        if int(info["t_in"]) != self.in_steps:
            raise ConfigError(
                key + "in_steps",
                f"is {self.in_steps}, but the data module serves windows of {info['t_in']} input frames "
                f"of {source} (data.init_args.t_in)",
            )

    def forward(self, window: Float[Tensor, "B C T X Y Z"]) -> Float[Tensor, "B C X Y Z"]:
        """Advance physical fields by one step: standardize, apply the network, restore units."""
        shape = (1, -1, 1, 1, 1)
        normalized = (window - self.field_mean.view(*shape, 1)) / self.field_std.view(*shape, 1)
        output = self.net(normalized) * self.field_std.view(shape)
        return window[:, :, -1] + output if self.hparams.residual else output + self.field_mean.view(shape)

    def rollout(self, initial: Float[Tensor, "B C T X Y Z"], steps: int) -> Float[Tensor, "B C S X Y Z"]:
        """Roll the surrogate out ``steps`` steps from the window ``initial`` (T = T_in)."""
        window, predictions = initial, []
        for _ in range(steps):
            next_field = self(window)
            predictions.append(next_field)
            window = torch.cat([window[:, :, 1:], next_field.unsqueeze(2)], dim=2)
        return torch.stack(predictions, dim=2)

    # ------------------------------------------------------------------ training
    def _chained_errors(self, batch: dict[str, Tensor]) -> Float[Tensor, " B"]:
        """Relative L2 error of each sample, averaged over its ``T_out`` chained steps."""
        target = batch["target"]
        batch_size, steps = target.shape[0], target.shape[2]
        prediction = self.rollout(batch["input"], steps)
        errors = relative_l2(prediction.transpose(1, 2).flatten(0, 1), target.transpose(1, 2).flatten(0, 1))
        return errors.view(batch_size, steps).mean(dim=1)  # (B * T_out,) -> (B,)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss = self._chained_errors(batch).mean()
        self.log("train/rel_l2", loss, prog_bar=True, batch_size=batch["input"].shape[0])
        return loss

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = min(self.hparams.warmup_steps, total // 2)
        floor = self.hparams.min_lr_ratio

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            progress = min((step - warmup) / max(total - warmup, 1), 1.0)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # ------------------------------------------------------------------ evaluation
    def validation_step(self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluation_step(batch, "val", dataloader_idx)

    def test_step(self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        self._evaluation_step(batch, "test", dataloader_idx)

    def on_validation_epoch_end(self) -> None:
        self._evaluation_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._evaluation_epoch_end("test")

    def _evaluation_step(self, batch: dict[str, Tensor], prefix: str, dataloader_idx: int) -> None:
        if "trajectory" in batch:
            rollout = self._evaluate_rollout(batch["trajectory"])
            rollout["index"] = batch["index"].reshape(-1)[0]
            self._rollouts.append(rollout)
            return
        errors = self._chained_errors(batch)
        # Persistence (u(t+dt) = u(t)) is the baseline a surrogate must beat to be worth anything.
        persistence = relative_l2(batch["input"][:, :, -1], batch["target"][:, :, 0])
        index = batch["index"].to(errors.dtype)
        self._one_step.append(torch.stack([index, errors.detach(), persistence], dim=1))  # (B, 3)

    @torch.no_grad()
    def _evaluate_rollout(self, trajectory: Float[Tensor, "B C T X Y Z"]) -> dict[str, Tensor]:
        """Roll out one trajectory from its first window, step by step, stopping at divergence."""
        # The data module decides the rollout length (its rollout_steps option caps the trajectories).
        steps = trajectory.shape[2] - self.in_steps
        velocity = list(self.hparams.velocity_channels)
        lengths = tuple(self.domain_lengths.tolist())
        periodic = tuple(self.periodic_axes.tolist())
        window = trajectory[:, :, : self.in_steps]
        curves = {name: torch.full((steps,), float("nan")) for name in self._curve_names()}
        predictions = torch.full_like(trajectory[:, :, self.in_steps : self.in_steps + steps], float("nan"))
        diverged_at = -1
        for step in range(steps):
            prediction = self(window)
            truth = trajectory[:, :, self.in_steps + step]
            energy_ratio = kinetic_energy(prediction[:, velocity]) / kinetic_energy(truth[:, velocity])
            if not bool(torch.isfinite(prediction).all()) or bool(
                (energy_ratio > self.hparams.divergence_factor).any()
            ):
                diverged_at = step
                break
            predictions[:, :, step] = prediction
            curves["rel_l2"][step] = relative_l2(prediction, truth).mean()
            if any(periodic):
                curves["spectrum_error"][step] = spectrum_error(
                    prediction[:, velocity], truth[:, velocity], lengths, periodic
                ).mean()
            for name, value in statistic_drift(prediction[:, velocity], truth[:, velocity]).items():
                curves[name][step] = value.mean()
            window = torch.cat([window[:, :, 1:], prediction.unsqueeze(2)], dim=2)
        return {
            "curves": {name: curve.cpu() for name, curve in curves.items()},
            "diverged_at": torch.tensor(diverged_at),
            # Kept only for the figures of the first trajectory.
            "truth": trajectory[0, :, self.in_steps : self.in_steps + steps].float().cpu(),
            "prediction": predictions[0].float().cpu(),
        }

    @staticmethod
    def _curve_names() -> tuple[str, ...]:
        return ("rel_l2", "spectrum_error", "kinetic_energy_drift", "rms_drift")

    def _evaluation_epoch_end(self, prefix: str) -> None:
        rollouts, self._rollouts = self._rollouts, []
        one_step, self._one_step = self._one_step, []
        one_step_error = persistence_error = float("nan")
        if one_step:
            (rows,) = gather_unique(self, torch.cat(one_step))
            rows = rows.cpu()
            one_step_error, persistence_error = rows[:, 1].mean().item(), rows[:, 2].mean().item()
            # Identical on every rank after the gather; sync_dist only keeps Lightning's DDP check quiet.
            self.log(f"{prefix}/rel_l2", one_step_error, prog_bar=True, sync_dist=True)
            self.log(f"{prefix}/persistence_rel_l2", persistence_error, sync_dist=True)
        if self.trainer.sanity_checking or not rollouts:
            return
        names = self._curve_names()
        # One row per rollout: (index, diverged_at, curve_1..., curve_n), each curve (steps,).
        packed = torch.stack(
            [
                torch.cat(
                    [
                        r["index"].reshape(1).float().cpu(),
                        r["diverged_at"].reshape(1).float(),
                        *(r["curves"][name] for name in names),
                    ]
                )
                for r in rollouts
            ]
        ).to(self.device)
        (packed,) = gather_unique(self, packed)
        packed = packed.cpu()
        curve_values = packed[:, 2:].reshape(len(packed), len(names), -1).numpy()  # (R, n_curves, steps)
        curves = {name: curve_values[:, i] for i, name in enumerate(names)}
        self.rollout_curves = curves
        mean_curves = {
            name: np.nanmean(values, axis=0) if np.isfinite(values).any() else values[0]
            for name, values in curves.items()
        }
        tolerance = self.hparams.spectrum_tolerance
        bad_step = first_step_above(torch.as_tensor(mean_curves["spectrum_error"]), tolerance)
        good_steps = len(mean_curves["spectrum_error"]) if bad_step is None else bad_step
        if not bool(self.periodic_axes.any()):
            good_steps = float("nan")
        diverged = [int(step) for step in packed[:, 1].tolist() if step >= 0]
        self.log(f"{prefix}/rollout_steps_within_spectrum_tolerance", float(good_steps), sync_dist=True)
        self.log(f"{prefix}/rollout_rel_l2_final", float(_last_finite(mean_curves["rel_l2"])), sync_dist=True)
        self.log(
            f"{prefix}/rollout_spectrum_error_mean",
            float(np.nanmean(mean_curves["spectrum_error"])),
            sync_dist=True,
        )
        self.log(f"{prefix}/rollout_diverged_trajectories", float(len(diverged)), sync_dist=True)

        plot_dir = self._plot_directory(prefix)
        if self.trainer.is_global_zero:  # rank 0's first rollout is the split's first trajectory
            self._write_plots(rollouts[0], curves, plot_dir)
        self.summary = {
            "stage": prefix,
            "epoch": self.current_epoch,
            "one_step_rel_l2": one_step_error,
            "persistence_rel_l2": persistence_error,
            "rollout_steps_evaluated": len(mean_curves["spectrum_error"]),
            "rollout_steps_within_spectrum_tolerance": good_steps,
            "spectrum_tolerance": tolerance,
            "rollout_rel_l2_final": float(_last_finite(mean_curves["rel_l2"])),
            "kinetic_energy_drift_final": float(_last_finite(mean_curves["kinetic_energy_drift"])),
            "diverged_trajectories": f"{len(diverged)} of {len(packed)}"
            + (f" (first at step {min(diverged) + 1})" if diverged else ""),
            "plots": str(plot_dir),
        }

    def _plot_directory(self, prefix: str) -> Path:
        root = self.trainer.log_dir or self.trainer.default_root_dir
        return Path(root) / "plots" / prefix

    def _write_plots(self, rollout: dict, curves: dict[str, np.ndarray], plot_dir: Path) -> None:
        truth, prediction = rollout["truth"], rollout["prediction"]  # (C, S, X, Y, Z)
        # Steps after a divergence are NaN; figures show only the steps before it.
        valid = int(torch.isfinite(prediction.transpose(0, 1).flatten(1)).all(1).sum())
        shown = sorted({int(s) for s in np.linspace(0, max(valid - 1, 0), self.hparams.plot_steps)})
        velocity = list(self.hparams.velocity_channels)
        lengths = tuple(self.domain_lengths.tolist())
        periodic = tuple(self.periodic_axes.tolist())
        dt = float(self.trainer.datamodule.field_info.get("dt", 1.0)) if self.trainer.datamodule else 1.0
        names = list(getattr(self.trainer.datamodule, "field_info", {}).get("channel_names", ["u"]))
        if any(periodic):
            k, spectra_true = periodic_energy_spectrum(truth[velocity].transpose(0, 1), lengths, periodic)
            _, spectra_pred = periodic_energy_spectrum(
                prediction[velocity].transpose(0, 1), lengths, periodic
            )
            # Shells past N/2 hold only the corners of the box of resolved wavenumbers: not shown.
            sizes = [n for n, is_periodic in zip(truth.shape[-3:], periodic) if is_periodic]
            shells = slice(0, min(sizes) // 2 + 1)
            plots.plot_spectra(
                k[shells].numpy(),
                spectra_true[:, shells].numpy(),
                spectra_pred[:, shells].numpy(),
                shown,
                dt,
                plot_dir / "spectra.png",
                title=_spectrum_title(periodic, getattr(self.trainer.datamodule, "field_info", {})),
            )
        plots.plot_midplane_slices(
            truth.transpose(0, 1).numpy(),
            prediction.transpose(0, 1).numpy(),
            shown,
            names,
            plot_dir / "midplane_slices.png",
        )
        plots.plot_rollout_curves(curves, self.hparams.spectrum_tolerance, plot_dir / "rollout_error.png")

    # ------------------------------------------------------------------ prediction
    @torch.no_grad()
    def predict_step(
        self, batch: dict[str, Tensor], batch_idx: int, dataloader_idx: int = 0
    ) -> dict[str, Tensor]:
        """Roll out whole trajectories from their first window: the true first window, then predictions."""
        trajectory = batch["trajectory"]
        steps = trajectory.shape[2] - self.in_steps
        initial = trajectory[:, :, : self.in_steps]
        rollout = torch.cat([initial, self.rollout(initial, steps)], dim=2)
        return {"rollout": rollout, "time": batch["time"], "index": batch["index"]}


def _periodic_axes(info: dict) -> list[bool]:
    """Which spatial axes are periodic on both sides; with no boundary conditions stated, every one."""
    conditions = info.get("boundary_conditions")
    if not conditions:
        return [True] * len(info["spatial_dims"])
    return [
        all(str(kind).upper() == "PERIODIC" for kind in conditions.get(dim, ("OPEN",)))
        for dim in info["spatial_dims"]
    ]


def _spectrum_title(periodic: tuple[bool, ...], info: dict) -> str | None:
    """Figure title naming the axes a partial (wall-bounded) spectrum is over; None for the 3-D one."""
    if all(periodic):
        return None
    dims = list(info.get("spatial_dims", ["x", "y", "z"]))
    over = ", ".join(d for d, p in zip(dims, periodic) if p)
    across = ", ".join(d for d, p in zip(dims, periodic) if not p)
    return f"Energy spectrum over ({over}), averaged over {across} (solid: true, dashed: surrogate)"


def _last_finite(curve: np.ndarray) -> float:
    finite = curve[np.isfinite(curve)]
    return float(finite[-1]) if len(finite) else float("nan")
