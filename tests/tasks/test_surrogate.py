"""SurrogateTask: loss, overfitting one batch, rollout diagnostics (including divergence), checkpoints."""

import math

import pytest
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader

from sciml.models.ifactformer import IFactFormer
from sciml.physics.hit import simulate_forced_hit
from sciml.tasks.surrogate import SurrogateTask

GRID = (8, 8, 8)
TWO_PI = (2 * math.pi,) * 3


def tiny_net(**overrides) -> IFactFormer:
    args = dict(
        dim=24, heads=2, dim_head=8, kernel_multiplier=2, n_layer=2, grid_shape=GRID, domain_lengths=TWO_PI
    )
    return IFactFormer(**{**args, **overrides})


@pytest.fixture(scope="module")
def flow():
    """A short filtered forced-HIT trajectory on an 8^3 grid: (C=3, T, 8, 8, 8)."""
    simulation = simulate_forced_hit(
        n_dns=16,
        n_les=8,
        n_trajectories=1,
        n_snapshots=12,
        snapshot_dt=0.05,
        spinup_time=0.5,
        fine_spinup_time=0.0,
        seed=3,
    )
    velocity = torch.from_numpy(simulation.velocity[0]).permute(4, 0, 1, 2, 3).contiguous()
    return velocity


def one_step_batch(flow: torch.Tensor, samples: int = 4) -> dict[str, torch.Tensor]:
    inputs = torch.stack([flow[:, i : i + 1] for i in range(samples)])
    targets = torch.stack([flow[:, i + 1 : i + 2] for i in range(samples)])
    return {"input": inputs, "target": targets}


def set_statistics(task: SurrogateTask, flow: torch.Tensor) -> None:
    task.field_mean.copy_(flow.mean(dim=(1, 2, 3, 4)))
    task.field_std.copy_(flow.std(dim=(1, 2, 3, 4)))


def test_loss_is_relative_l2_in_physical_units(flow):
    task = SurrogateTask(tiny_net())
    batch = one_step_batch(flow, 2)
    with torch.no_grad():
        prediction = task(batch["input"])
    expected = torch.stack(
        [
            (prediction[i] - batch["target"][i, :, 0]).norm() / batch["target"][i, :, 0].norm()
            for i in range(2)
        ]
    ).mean()
    torch.testing.assert_close(task._chained_errors(batch).mean().detach(), expected)


@pytest.mark.parametrize("residual", [False, True])
def test_normalization_is_undone_so_outputs_are_in_physical_units(flow, residual):
    task = SurrogateTask(tiny_net(), residual=residual)
    batch = one_step_batch(flow, 1)
    task.field_mean.fill_(5.0)
    task.field_std.fill_(2.0)
    with torch.no_grad():
        raw = task.net((batch["input"] - 5.0) / 2.0)
        # Residual: the output is an increment (in std units) on the last input; else the next field itself.
        expected = batch["input"][:, :, -1] + raw * 2.0 if residual else raw * 2.0 + 5.0
        torch.testing.assert_close(task(batch["input"]), expected)


def test_overfits_one_batch(flow):
    torch.manual_seed(0)
    task = SurrogateTask(tiny_net())
    set_statistics(task, flow)
    batch = one_step_batch(flow, 4)
    optimizer = torch.optim.Adam(task.parameters(), lr=3e-3)
    initial = task._chained_errors(batch).mean().item()
    for _ in range(100):
        optimizer.zero_grad()
        loss = task._chained_errors(batch).mean()
        loss.backward()
        optimizer.step()
    # The loss must fall by at least a factor 5 in 100 steps.
    assert loss.item() < initial / 5, (initial, loss.item())


def test_chained_targets_roll_the_network_out(flow):
    task = SurrogateTask(tiny_net())
    window = flow[:, :1].unsqueeze(0)
    with torch.no_grad():
        rolled = task.rollout(window, 3)
        step = window
        for k in range(3):
            step = task(step).unsqueeze(2)
            torch.testing.assert_close(rolled[:, :, k], step[:, :, 0])


class Exploding(nn.Module):
    """Multiplies the field by 3 each step: its energy ratio passes 10 at step 3."""

    in_channels, in_steps = 3, 1

    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(3.0))

    def forward(self, x):
        return x[:, :, -1] * self.gain


def test_rollout_reports_divergence_instead_of_crashing(flow):
    task = SurrogateTask(Exploding(), divergence_factor=10.0, residual=False)
    result = task._evaluate_rollout(flow.unsqueeze(0))
    # Energies grow like 9^n against a roughly stationary truth: 9 < 10 at step 1, 81 > 10 at step 2.
    assert int(result["diverged_at"]) == 1
    assert torch.isfinite(result["curves"]["rel_l2"][:1]).all()
    assert torch.isnan(result["curves"]["rel_l2"][1:]).all()


def test_identity_rollout_has_zero_error_against_itself():
    class Persistence(Exploding):
        def forward(self, x):
            return x[:, :, -1]

    constant = torch.randn(3, 1, *GRID).expand(3, 5, *GRID).clone()
    result = SurrogateTask(Persistence(), residual=False)._evaluate_rollout(constant.unsqueeze(0))
    assert int(result["diverged_at"]) == -1
    assert result["curves"]["rel_l2"].abs().max() < 1e-6
    assert result["curves"]["spectrum_error"].abs().max() < 1e-5


class TinyFlowData(pl.LightningDataModule):
    """Serves the fixture flow in the data-module protocol the task relies on."""

    def __init__(self, flow):
        super().__init__()
        self.flow = flow
        self.normalization = {"mean": flow.mean(dim=(1, 2, 3, 4)), "std": flow.std(dim=(1, 2, 3, 4))}
        self.field_info = {"channel_names": ["u", "v", "w"], "lengths": TWO_PI, "dt": 0.05}

    def train_dataloader(self):
        batch = one_step_batch(self.flow, 4)
        samples = [{**{k: v[i] for k, v in batch.items()}, "index": i} for i in range(4)]
        return DataLoader(samples, batch_size=2)

    def val_dataloader(self):
        one_step = self.train_dataloader()
        rollout = DataLoader(
            [{"trajectory": self.flow, "time": torch.arange(12) * 0.05, "index": 0}], batch_size=1
        )
        return [one_step, rollout]


def test_fit_writes_plots_summary_and_a_checkpoint_that_loads_without_config(flow, tmp_path):
    task = SurrogateTask(tiny_net(), warmup_steps=1)
    trainer = pl.Trainer(
        max_epochs=2,
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    data = TinyFlowData(flow)
    trainer.fit(task, datamodule=data)
    torch.testing.assert_close(task.field_mean, data.normalization["mean"])
    for name in ("spectra.png", "midplane_slices.png", "rollout_error.png"):
        assert (tmp_path / "plots" / "val" / name).stat().st_size > 1000
    summary = task.summary
    assert summary["rollout_steps_evaluated"] == 11
    assert 0 <= summary["rollout_steps_within_spectrum_tolerance"] <= 11
    assert math.isfinite(summary["one_step_rel_l2"])

    checkpoint = tmp_path / "task.ckpt"
    trainer.save_checkpoint(checkpoint)
    restored = SurrogateTask.load_from_checkpoint(checkpoint)
    torch.testing.assert_close(restored.field_std, task.field_std)
    window = flow[:, :1].unsqueeze(0)
    with torch.no_grad():
        torch.testing.assert_close(restored(window), task(window))
