"""SurrogateTask: loss, overfitting one batch, rollout diagnostics (including divergence), checkpoints,
known answers of the evaluation path (persistence and exact models on a field with a closed-form
evolution), and data that does not fit the network."""

import math
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from field_fixtures import make_well_fixture, periodic_coords
from torch import nn
from torch.utils.data import DataLoader

from sciml.cli import main
from sciml.core.errors import ConfigError
from sciml.data.fields import FieldDataModule
from sciml.data.formats.well import write_well
from sciml.metrics.turbulence import periodic_energy_spectrum, relative_l2, spectrum_error
from sciml.models.ifactformer import IFactFormer
from sciml.physics.hit import simulate_forced_hit
from sciml.physics.statistics import energy_spectrum, kinetic_energy
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
    # Step 1 predicts 3 u(0) (default statistics: mean 0, std 1) against the truth u(1).
    first = (3 * flow[:, 0] - flow[:, 1]).norm() / flow[:, 1].norm()
    torch.testing.assert_close(result["curves"]["rel_l2"][0], first)
    assert torch.isnan(result["curves"]["rel_l2"][1:]).all()


class TinyFlowData(pl.LightningDataModule):
    """Serves the fixture flow in the data-module protocol the task relies on."""

    def __init__(self, flow):
        super().__init__()
        self.flow = flow
        self.normalization = {"mean": flow.mean(dim=(1, 2, 3, 4)), "std": flow.std(dim=(1, 2, 3, 4))}
        self.field_info = {
            "channel_names": ["u", "v", "w"],
            "spatial_dims": ["x", "y", "z"],
            "grid_shape": list(flow.shape[-3:]),
            "lengths": TWO_PI,
            "coords": {
                d: (np.arange(n) * (2 * math.pi / n)).tolist() for d, n in zip("xyz", flow.shape[-3:])
            },
            "dt": 0.05,
            "t_in": 1,
            "path": "memory",
        }

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
    # The summary's one-step numbers are the relative L2 errors of the final weights on the 4 windows.
    batch = one_step_batch(flow, 4)
    with torch.no_grad():
        prediction = task(batch["input"])
    truth, last_input = batch["target"][:, :, 0], batch["input"][:, :, -1]
    one_step, persistence = relative_l2(prediction, truth).mean(), relative_l2(last_input, truth).mean()
    assert summary["one_step_rel_l2"] == pytest.approx(one_step.item(), rel=1e-5)
    assert summary["persistence_rel_l2"] == pytest.approx(persistence.item(), rel=1e-6)

    checkpoint = tmp_path / "task.ckpt"
    trainer.save_checkpoint(checkpoint)
    restored = SurrogateTask.load_from_checkpoint(checkpoint)
    torch.testing.assert_close(restored.field_std, task.field_std)
    window = flow[:, :1].unsqueeze(0)
    with torch.no_grad():
        torch.testing.assert_close(restored(window), task(window))


# -------------------------------------------------------------------------------------- known answers
# A field that grows linearly in time, u_b(t_n) = (n + 1) a_b with a random field a_b per trajectory b,
# makes every error of the persistence model a closed form independent of a_b: predicting u(t_m) for
# u(t_n) is off by |n - m| / (n + 1) in relative L2, by the factor ((m + 1) / (n + 1))^2 in every energy
# spectrum shell and in kinetic energy. Linear extrapolation from two frames, 2 u(t_n) - u(t_{n-1}),
# predicts it exactly. The models see standardized fields; both rules commute with a per-channel affine
# map (their weights sum to 1), so they hold in physical units too.
KNOWN_STEPS = 7
KNOWN_GRID = (6, 6, 6)
KNOWN_T_IN = 2
# Rollouts start from frames 0 and 1 and predict frames 2 .. 6.
ROLLOUT_STEPS = KNOWN_STEPS - KNOWN_T_IN


class Persistence(nn.Module):
    """Predicts no change: the next field is the last input field (``residual=False``)."""

    in_channels, out_channels, in_steps = 3, 3, KNOWN_T_IN

    def forward(self, x):
        return x[:, :, -1]


class LinearExtrapolation(Persistence):
    """The exact rule of the growing field: the next field (or, ``residual``, its increment)."""

    def __init__(self, residual: bool):
        super().__init__()
        self.residual = residual

    def forward(self, x):
        increment = x[:, :, -1] - x[:, :, -2]
        return increment if self.residual else x[:, :, -1] + increment


@pytest.fixture(scope="module")
def growing_flow(tmp_path_factory) -> Path:
    """4 trajectories of the growing field; the data module below makes 0 train, 1-2 val, 3 test."""
    rng = np.random.default_rng(7)
    amplitude = rng.standard_normal((4, 1, *KNOWN_GRID, 3)) + np.array([1.0, -2.0, 0.5])
    growth = np.arange(1, KNOWN_STEPS + 1).reshape(1, -1, 1, 1, 1, 1)
    path = tmp_path_factory.mktemp("growing") / "growing.h5"
    write_well(
        path,
        time=0.1 * np.arange(KNOWN_STEPS),
        coords=periodic_coords(KNOWN_GRID, TWO_PI),
        t1_fields={"velocity": amplitude * growth},
        dataset_name="linear_growth",
    )
    return path


def evaluate(task: SurrogateTask, path: Path, root: Path, stage: str = "validate", t_out: int = 1) -> dict:
    """Run ``Trainer.validate`` or ``Trainer.test`` on ``path``; returns the logged metrics."""
    data = FieldDataModule(
        str(path), t_in=KNOWN_T_IN, t_out=t_out, val_trajectories=2, test_trajectories=1, batch_size=2
    )
    trainer = pl.Trainer(
        default_root_dir=root,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    getattr(trainer, stage)(task, datamodule=data, verbose=False)
    return {name: float(value) for name, value in trainer.callback_metrics.items()}


def one_step_persistence_error(t_out: int) -> tuple[float, float]:
    """(one-step error of the persistence model, persistence error) over the windows of one trajectory.

    The window starting at frame s has inputs s, s+1 and targets s+2 .. s+1+t_out; persistence predicts
    frame s+1 for all of them.
    """
    starts = range(KNOWN_STEPS - (KNOWN_T_IN + t_out) + 1)
    chained = [np.mean([(j + 1) / (s + 3 + j) for j in range(t_out)]) for s in starts]
    first_target = [1 / (s + 3) for s in starts]
    return float(np.mean(chained)), float(np.mean(first_target))


@pytest.mark.parametrize("t_out", [1, 2])
def test_persistence_model_reports_the_closed_form_errors(growing_flow, tmp_path, t_out):
    task = SurrogateTask(Persistence(), residual=False, spectrum_tolerance=0.6)
    metrics = evaluate(task, growing_flow, tmp_path, t_out=t_out)
    one_step, persistence = one_step_persistence_error(t_out)
    # With t_out = 2 the one-step error averages two chained steps; the baseline uses the first target only.
    assert metrics["val/rel_l2"] == pytest.approx(one_step, rel=1e-5)
    assert metrics["val/persistence_rel_l2"] == pytest.approx(persistence, rel=1e-5)

    # The rollout keeps predicting frame 1 (= 2 a); step k's truth is frame k + 2 (= (k + 3) a).
    k = np.arange(ROLLOUT_STEPS)
    energy_ratio = (2 / (k + 3)) ** 2
    expected = {
        "rel_l2": (k + 1) / (k + 3),
        "spectrum_error": 1 - energy_ratio,
        "kinetic_energy_drift": energy_ratio - 1,
        "rms_drift": 2 / (k + 3) - 1,
    }
    for name, curve in expected.items():
        # One row per validation trajectory (1 and 2), each with the same closed form.
        np.testing.assert_allclose(
            task.rollout_curves[name], np.stack([curve, curve]), rtol=1e-5, err_msg=name
        )
    assert metrics["val/rollout_rel_l2_final"] == pytest.approx(expected["rel_l2"][-1], rel=1e-5)
    # Spectrum errors 5/9, 3/4, ...: only the first step is within the tolerance 0.6.
    assert metrics["val/rollout_steps_within_spectrum_tolerance"] == 1
    assert task.summary["diverged_trajectories"] == "0 of 2"


@pytest.mark.parametrize(
    "stage, residual, t_out",
    [("validate", False, 1), ("validate", True, 2), ("test", True, 1), ("test", False, 2)],
)
def test_exact_model_has_zero_error_at_every_rollout_step(growing_flow, tmp_path, stage, residual, t_out):
    task = SurrogateTask(LinearExtrapolation(residual), residual=residual)
    metrics = evaluate(task, growing_flow, tmp_path, stage, t_out)
    prefix, trajectories = ("val", 2) if stage == "validate" else ("test", 1)
    # With t_out = 2 both chained steps must meet their own target frame.
    assert metrics[f"{prefix}/rel_l2"] < 1e-6
    # The data does move: the baseline is the closed form, far from 0.
    baseline = one_step_persistence_error(t_out)[1]
    assert metrics[f"{prefix}/persistence_rel_l2"] == pytest.approx(baseline, rel=1e-5)
    for name in ("rel_l2", "spectrum_error", "kinetic_energy_drift", "rms_drift"):
        curve = task.rollout_curves[name]
        assert curve.shape == (trajectories, ROLLOUT_STEPS), name
        assert np.abs(curve).max() < 1e-5, (name, curve)
    assert metrics[f"{prefix}/rollout_steps_within_spectrum_tolerance"] == ROLLOUT_STEPS
    assert metrics[f"{prefix}/rollout_diverged_trajectories"] == 0


# -------------------------------------------------------------------------------------- data vs network
NET_KEY = "config key 'model.init_args.net.init_args"


def write_2d_well(path: Path) -> None:
    """A 2-D Well file with three channels (pressure, velocity_x, velocity_y) on an 8 x 6 grid."""
    rng = np.random.default_rng(0)
    write_well(
        path,
        time=np.arange(4.0),
        coords={"x": np.arange(8) / 8, "y": np.arange(6) / 6},
        t0_fields={"pressure": rng.standard_normal((3, 4, 8, 6))},
        t1_fields={"velocity": rng.standard_normal((3, 4, 8, 6, 2))},
        dataset_name="flat",
    )


@pytest.mark.parametrize(
    "case, net_args, data_args, expected",
    [
        (
            "dims",
            {"grid_shape": (8, 6, 4)},
            {},
            "grid_shape': the surrogate works on 3-D fields, but {path} holds 2-D fields over (x, y) on a "
            "[8, 6] grid",
        ),
        (
            "grid",
            {"grid_shape": (8, 8, 8)},
            {},
            "grid_shape': is [8, 8, 8], but {path} has a [8, 6, 4] grid over (x, y, z)",
        ),
        (
            "channels",
            {"grid_shape": (8, 6, 4)},
            {"fields": ["velocity", "pressure"]},
            "in_channels': is 3, but {path} serves 4 channels "
            "['velocity_x', 'velocity_y', 'velocity_z', 'pressure']",
        ),
        (
            "out_channels",
            {"grid_shape": (8, 6, 4), "out_channels": 1},
            {"fields": ["velocity"]},
            "out_channels': is 1, but {path} serves 3 channels ['velocity_x', 'velocity_y', 'velocity_z']",
        ),
        (
            "window",
            {"grid_shape": (8, 6, 4), "in_steps": 2},
            {"fields": ["velocity"]},
            "in_steps': is 2, but the data module serves windows of 1 input frames of {path} "
            "(data.init_args.t_in)",
        ),
    ],
)
def test_data_that_does_not_fit_the_network_names_the_key_and_the_file(
    tmp_path, case, net_args, data_args, expected
):
    path = tmp_path / "fields.h5"
    if case == "dims":
        write_2d_well(path)
    else:
        make_well_fixture(path, shape=(8, 6, 4))  # pressure and velocity: 4 channels
    task = SurrogateTask(tiny_net(**net_args))
    trainer = pl.Trainer(max_steps=1, logger=False, enable_progress_bar=False, accelerator="cpu")
    with pytest.raises(ConfigError) as error:
        trainer.fit(task, datamodule=FieldDataModule(str(path), batch_size=1, **data_args))
    assert str(error.value) == f"{NET_KEY}.{expected.format(path=path)}"


def test_the_cli_reports_a_grid_mismatch_in_one_line(tmp_path, monkeypatch, capsys):
    shipped = Path(__file__).resolve().parents[2] / "configs" / "turbulence.yaml"  # a 16^3 network
    monkeypatch.chdir(tmp_path)
    make_well_fixture(tmp_path / "flow.h5", shape=(8, 8, 8), pressure=False)
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", str(shipped), "--data.init_args.path=flow.h5", "--trainer.accelerator=cpu"])
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (
        "error: config key 'model.init_args.net.init_args.grid_shape': is [16, 16, 16], but flow.h5 has a "
        "[8, 8, 8] grid over (x, y, z)"
    )


def test_a_network_without_a_grid_still_needs_3d_data(tmp_path):
    path = tmp_path / "flat.h5"
    write_2d_well(path)
    trainer = pl.Trainer(max_steps=1, logger=False, enable_progress_bar=False, accelerator="cpu")
    with pytest.raises(ConfigError) as error:
        trainer.fit(SurrogateTask(Persistence()), datamodule=FieldDataModule(str(path), t_in=KNOWN_T_IN))
    # The task's spectra and energies are 3-D: with no grid key in the network, the data path is at fault.
    assert str(error.value) == (
        f"config key 'data.init_args.path': the surrogate works on 3-D fields, but {path} holds 2-D fields "
        "over (x, y) on a [8, 6] grid"
    )


# -------------------------------------------------------------------------------------- walls
# A channel-like box: periodic x and z, walls at y = -1 and +1 with Chebyshev Gauss-Lobatto nodes.
CHANNEL_LENGTHS = (4 * math.pi, 2.0, 4 * math.pi / 3)
PERIODIC_XZ = (True, False, True)


def chebyshev_nodes(n: int) -> np.ndarray:
    """``y_j = cos(pi j / (n - 1))`` in ascending order, the order the field readers accept."""
    return np.cos(np.pi * np.arange(n) / (n - 1))[::-1].copy()


def channel_mesh(shape=(16, 9, 12)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    axes = [
        torch.arange(shape[0], dtype=torch.float64) * (CHANNEL_LENGTHS[0] / shape[0]),
        torch.from_numpy(chebyshev_nodes(shape[1])),
        torch.arange(shape[2], dtype=torch.float64) * (CHANNEL_LENGTHS[2] / shape[2]),
    ]
    return torch.meshgrid(*axes, indexing="ij")


def test_a_field_varying_only_across_the_walls_has_no_spectral_content():
    x, y, z = channel_mesh()
    u = torch.stack([1 - y**2, 0 * y, y**3])  # (3, 16, 9, 12): no x or z dependence
    k, spectrum = periodic_energy_spectrum(u, CHANNEL_LENGTHS, PERIODIC_XZ)
    # Everything is in the mean shell; the 3-D spectrum would have spread the wall-normal profile over
    # shells as if y were periodic.
    assert spectrum[0] == pytest.approx(kinetic_energy(u).item(), rel=1e-12)
    assert spectrum[1:].abs().max() <= 1e-12 * spectrum[0]
    _, wrapped = energy_spectrum(u, CHANNEL_LENGTHS)
    assert wrapped[1:].sum() > 0.01 * wrapped.sum()
    assert spectrum_error(u, u, CHANNEL_LENGTHS, PERIODIC_XZ) == 0
    # The same holds batched and in float32, where the empty shells are exact zeros in both spectra.
    batch = torch.stack([u, 2 * u]).float()
    torch.testing.assert_close(spectrum_error(batch, batch, CHANNEL_LENGTHS, PERIODIC_XZ), torch.zeros(2))


@pytest.mark.parametrize("mode_x, mode_z, shell", [(3, 0, 3), (0, 2, 6), (4, 1, 5)])
def test_a_single_fourier_mode_lands_in_its_periodic_shell(mode_x, mode_z, shell):
    # k0 = 2 pi / L_x; a z mode m has |k_z| = 2 pi m / (L_x / 3), i.e. shell 3 m; |(4, 3)| = 5.
    x, y, z = channel_mesh()
    wave = torch.cos(2 * math.pi * (mode_x * x / CHANNEL_LENGTHS[0] + mode_z * z / CHANNEL_LENGTHS[2]))
    u = torch.stack([(1 - y**2) * wave, 0 * x, 0 * x])
    k, spectrum = periodic_energy_spectrum(u, CHANNEL_LENGTHS, PERIODIC_XZ)
    torch.testing.assert_close(k[1] - k[0], torch.tensor(0.5, dtype=torch.float64))
    assert spectrum[shell] == pytest.approx(kinetic_energy(u).item(), rel=1e-12)
    others = torch.cat([spectrum[:shell], spectrum[shell + 1 :]])
    assert others.abs().max() <= 1e-12 * spectrum[shell]


def test_spectrum_error_with_walls_compares_the_resolved_periodic_shells():
    # One x mode in each of shells 1..5; the prediction doubles the amplitude of the shell-2 mode, so
    # E_pred / E_true = 4 there and 1 elsewhere. The cutoff comes from the periodic sizes, min(16, 12) // 3
    # = 4 (the 9 wall-normal nodes would give 3), so the error is |4 - 1| / 4.
    x, y, _ = channel_mesh()
    modes = [(1 - y**2) * torch.cos(2 * math.pi * m * x / CHANNEL_LENGTHS[0]) for m in range(1, 6)]
    true = torch.stack([sum(modes), 0 * x, 0 * x])
    pred = true + torch.stack([modes[1], 0 * x, 0 * x])
    error = spectrum_error(pred, true, CHANNEL_LENGTHS, PERIODIC_XZ)
    assert error.item() == pytest.approx(3 / 4, rel=1e-10)


def test_all_periodic_spectra_are_unchanged():
    u = torch.randn(2, 3, 8, 6, 4, generator=torch.Generator().manual_seed(0))
    lengths = (2 * math.pi, math.pi, 1.0)
    k, spectrum = periodic_energy_spectrum(u, lengths)
    k_3d, spectrum_3d = energy_spectrum(u, lengths)
    assert torch.equal(k, k_3d) and torch.equal(spectrum, spectrum_3d)
    pred = u + 0.1 * torch.randn(u.shape, generator=torch.Generator().manual_seed(1))
    _, spectrum_pred = energy_spectrum(pred, lengths)
    # The definition written out: mean over shells 1 .. min(N) // 3 (= 1 here) of |E_pred / E_true - 1|.
    expected = (spectrum_pred[..., 1:2] / spectrum_3d[..., 1:2] - 1).abs().mean(-1)
    assert torch.equal(spectrum_error(pred, u, lengths), expected)
    assert torch.equal(spectrum_error(pred, u, lengths, (True, True, True)), expected)


CHANNEL_GRID = (8, 5, 4)


def write_channel_well(path: Path) -> dict[str, np.ndarray]:
    """Three short trajectories of random velocity on the channel grid; returns the node coordinates."""
    nx, ny, nz = CHANNEL_GRID
    coords = {
        "x": np.arange(nx) * (CHANNEL_LENGTHS[0] / nx),
        "y": chebyshev_nodes(ny),
        "z": np.arange(nz) * (CHANNEL_LENGTHS[2] / nz),
    }
    rng = np.random.default_rng(4)
    write_well(
        path,
        time=0.1 * np.arange(5),
        coords=coords,
        t1_fields={"velocity": rng.standard_normal((3, 5, *CHANNEL_GRID, 3))},
        dataset_name="tiny_channel",
        boundary_conditions={"x": "periodic", "y": "wall", "z": "periodic"},
    )
    return coords


def test_setup_gives_the_net_the_data_coordinates_and_the_checkpoint_keeps_them(tmp_path):
    coords = write_channel_well(tmp_path / "channel.h5")
    # The configured lengths are the periodic placeholder's only; the data decides the node positions.
    task = SurrogateTask(tiny_net(grid_shape=CHANNEL_GRID), warmup_steps=1)
    placeholder_y = task.net.coords_y.clone()
    trainer = pl.Trainer(
        max_epochs=1,
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(task, datamodule=FieldDataModule(str(tmp_path / "channel.h5"), batch_size=2))
    for axis, buffer in zip("xyz", task.net.coords):
        torch.testing.assert_close(buffer, torch.from_numpy(coords[axis]).float(), rtol=0, atol=0)
    assert not torch.allclose(task.net.coords_y, placeholder_y)
    assert task.periodic_axes.tolist() == [True, False, True]
    torch.testing.assert_close(task.domain_lengths, torch.tensor(CHANNEL_LENGTHS, dtype=torch.float32))
    # The rollout's spectrum error is taken over (x, z) and is finite (one value per step).
    assert np.isfinite(task.rollout_curves["spectrum_error"]).all()
    assert (tmp_path / "plots" / "val" / "spectra.png").stat().st_size > 1000

    checkpoint = tmp_path / "task.ckpt"
    trainer.save_checkpoint(checkpoint)
    restored = SurrogateTask.load_from_checkpoint(checkpoint)  # no data module: from the file alone
    torch.testing.assert_close(restored.net.coords_y, task.net.coords_y, rtol=0, atol=0)
    assert restored.periodic_axes.tolist() == [True, False, True]
    window = torch.randn(1, 3, 1, *CHANNEL_GRID)
    with torch.no_grad():
        torch.testing.assert_close(restored(window), task(window), rtol=0, atol=0)

    # Checkpoints from before the task knew about walls load as all-periodic.
    stored = torch.load(checkpoint, weights_only=False)
    del stored["state_dict"]["periodic_axes"]
    torch.save(stored, tmp_path / "old.ckpt")
    assert SurrogateTask.load_from_checkpoint(tmp_path / "old.ckpt").periodic_axes.all()


def test_data_without_a_periodic_axis_reports_no_spectrum(tmp_path):
    path = tmp_path / "box.h5"
    write_well(  # the channel grid, every side open
        path,
        time=0.1 * np.arange(5),
        coords={d: np.arange(n) / n for d, n in zip("xyz", CHANNEL_GRID)},
        t1_fields={"velocity": np.random.default_rng(4).standard_normal((3, 5, *CHANNEL_GRID, 3))},
        dataset_name="open_box",
        boundary_conditions="open",
    )
    task = SurrogateTask(tiny_net(grid_shape=CHANNEL_GRID), warmup_steps=1)
    trainer = pl.Trainer(
        max_epochs=1,
        default_root_dir=tmp_path,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(task, datamodule=FieldDataModule(str(path), batch_size=2))
    assert not task.periodic_axes.any()
    assert np.isnan(task.rollout_curves["spectrum_error"]).all()
    assert np.isfinite(task.rollout_curves["rel_l2"]).all()
    assert math.isnan(task.summary["rollout_steps_within_spectrum_tolerance"])
    assert not (tmp_path / "plots" / "val" / "spectra.png").exists()
    assert (tmp_path / "plots" / "val" / "rollout_error.png").exists()


def test_a_data_coordinates_net_needs_coordinates_from_the_data(flow, tmp_path):
    data = TinyFlowData(flow)
    del data.field_info["coords"]
    trainer = pl.Trainer(max_steps=1, logger=False, enable_progress_bar=False, accelerator="cpu")
    with pytest.raises(ConfigError, match=r"'model.init_args.net.init_args.coordinates': is 'data', but"):
        trainer.fit(SurrogateTask(tiny_net()), datamodule=data)
    # A net with fixed coordinates does not ask for them and keeps its own.
    fixed = SurrogateTask(tiny_net(coordinates="periodic"))
    expected = [c.clone() for c in fixed.net.coords]
    trainer = pl.Trainer(
        max_steps=1,
        limit_val_batches=0,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        accelerator="cpu",
        default_root_dir=tmp_path,
    )
    trainer.fit(fixed, datamodule=data)
    for kept, original in zip(fixed.net.coords, expected):
        torch.testing.assert_close(kept, original, rtol=0, atol=0)
