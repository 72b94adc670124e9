"""The channel generator: turbulent seed states, the filter against a direct evaluation, both formats with
wall boundaries and Gauss-Lobatto coordinates, determinism, atomic writes, config errors and ``fit``."""

import itertools
import math

import field_fixtures  # tests/data, on sys.path through tests/conftest.py
import numpy as np
import pytest
import torch

from sciml.core.errors import ConfigError
from sciml.data.channel_dataset import SEED_STATES, rms_peak, state_profiles
from sciml.data.fields import FieldDataModule, open_fields
from sciml.data.generate import generate_for_path, make_channel_dataset
from sciml.physics.channel import ChannelFlow, chebyshev_points

#: Two snapshots a few solver steps apart, straight from the seed states (no spin-up).
TINY = {"n_trajectories": 3, "n_snapshots": 2, "snapshot_dt": 0.01, "spinup_time": 0.0}
COARSE = (16, 33, 8)


@pytest.fixture(autouse=True)
def _two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The tiny dataset, written twice into separate folders."""
    root = tmp_path_factory.mktemp("channel")
    return [make_channel_dataset(root / name, **TINY) for name in ("a", "b")]


def test_the_packaged_seed_states_are_developed_turbulence():
    solver, states = ChannelFlow.load(SEED_STATES, dtype=torch.float32)
    assert states.phi.shape[0] >= 4 and SEED_STATES.stat().st_size < 5e6
    assert solver.driving == "pressure_gradient" and solver.nu == pytest.approx(1 / 180)
    for profiles in state_profiles(solver, states):
        assert abs(profiles.re_tau / 180 - 1) < 0.1
        peak, y_plus = rms_peak(profiles, "u_rms")
        assert peak > 2.0 and 8.0 <= y_plus <= 25.0, (peak, y_plus)
    for a, b in itertools.combinations(range(states.phi.shape[0]), 2):
        difference = (states.phi[a] - states.phi[b]).abs().amax() / states.phi[a].abs().amax()
        assert difference > 0.5, (a, b)  # independent flows, not copies or near-copies


def test_both_formats_hold_velocity_and_pressure_with_walls_in_y(generated):
    first = generated[0]
    readers = [open_fields(first["hdf5"]), open_fields(first["zarr"])]
    for reader in readers:
        info = reader.info
        assert [c.name for c in info.channels] == ["pressure", "velocity_x", "velocity_y", "velocity_z"]
        assert info.grid_shape == COARSE and info.n_trajectories == 3 and info.n_steps == 2
        assert info.boundary_conditions == {
            "x": ("PERIODIC", "PERIODIC"),
            "y": ("WALL", "WALL"),
            "z": ("PERIODIC", "PERIODIC"),
        }
        # y: the Gauss-Lobatto points, ascending, exactly (they are also every second DNS point)
        np.testing.assert_array_equal(info.coords["y"], chebyshev_points(32)[::-1])
        np.testing.assert_array_equal(info.coords["y"], chebyshev_points(64)[::2][::-1])
        np.testing.assert_allclose(info.lengths, [2 * math.pi, 2.0, 2 * math.pi / 3], rtol=1e-14)
        np.testing.assert_allclose(info.time[0], [0.0, 0.01], rtol=1e-15)
        assert info.dataset_name == "channel_re180_filtered"
        assert np.asarray(info.parameters["dns_shape"]).tolist() == [32, 65, 32]
        assert info.scalars["nu"] == pytest.approx(1 / 180)
    hdf5, store = readers
    np.testing.assert_array_equal(
        hdf5.read(1, slice(None), hdf5.info.channels), store.read(1, slice(None), hdf5.info.channels)
    )


def test_the_coarse_velocity_is_the_sharp_cutoff_of_the_dns(generated):
    """Known answer: with no spin-up the first snapshot is the seed state, filtered here independently."""
    solver, states = ChannelFlow.load(SEED_STATES, dtype=torch.float64)
    dns = solver.velocity(states)[:3].numpy()  # (B, 3, X, Y, Z), y descending
    coefficients = np.fft.fft2(dns, axes=(2, 4)) / (solver.nx * solver.nz)
    mx = np.fft.fftfreq(solver.nx, 1 / solver.nx)
    mz = np.fft.fftfreq(solver.nz, 1 / solver.nz)
    keep_x, keep_z = np.abs(mx) <= 7, np.abs(mz) <= 3  # |m| < n_coarse / 2 on the 16 x 8 grid
    # sum over the kept modes of c_m exp(i 2 pi m j / n) at the coarse points j
    phase_x = np.exp(2j * np.pi * np.outer(mx[keep_x], np.arange(16)) / 16)
    phase_z = np.exp(2j * np.pi * np.outer(mz[keep_z], np.arange(8)) / 8)
    kept = coefficients[:, :, keep_x][..., keep_z]  # (B, 3, Mx, Y, Mz)
    expected = np.einsum("bcayd,ai,dk->bciyk", kept, phase_x, phase_z).real[:, :, :, ::2][:, :, :, ::-1]

    reader = open_fields(generated[0]["hdf5"])
    velocity = [c for c in reader.info.channels if c.field == "velocity"]
    for trajectory in range(3):
        stored = reader.read(trajectory, slice(0, 1), velocity)[:, 0]  # (3, X, Y, Z)
        scale = np.abs(expected[trajectory]).max()
        np.testing.assert_allclose(stored, expected[trajectory], atol=2e-6 * scale)
    assert np.abs(expected[:, 1]).max() > 0.5  # a turbulent field: v' of order u_tau


def test_reruns_give_the_same_bytes(generated):
    first, second = generated
    assert first["hdf5"].read_bytes() == second["hdf5"].read_bytes()
    assert field_fixtures.tree_digests(first["zarr"]) == field_fixtures.tree_digests(second["zarr"])


def test_the_root_attributes_describe_the_data(generated):
    info = open_fields(generated[0]["hdf5"]).info
    parameters = info.parameters
    assert parameters["re_tau_nominal"] == pytest.approx(180.0)
    assert "sharp spectral cut-off" in parameters["filter"]
    assert parameters["coarse_dx_plus"] == pytest.approx(2 * math.pi / 16 * 180)
    assert parameters["dns_dy_plus_min"] < 0.3 < 5.0 < parameters["coarse_dy_plus_max"]
    import h5py

    with h5py.File(generated[0]["hdf5"]) as f:
        assert abs(f.attrs["dns_re_tau"] / 180 - 1) < 0.1 and f.attrs["dns_u_rms_peak"] > 2.0


def test_an_interrupted_write_leaves_no_partial_output(tmp_path, monkeypatch):
    import xarray as xr

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_zarr", fail)
    folder = tmp_path / "data"
    args = {**TINY, "n_trajectories": 1, "n_snapshots": 1}
    with pytest.raises(RuntimeError, match="disk full"):
        generate_for_path(folder, "channel", args)
    assert sorted(p.name for p in folder.iterdir()) == ["channel.h5"]  # complete, and nothing half-written
    monkeypatch.undo()
    generate_for_path(folder, "channel", args)  # makes only what is missing
    assert sorted(p.name for p in folder.iterdir()) == ["channel.h5", "channel.zarr"]


@pytest.mark.parametrize(
    ("args", "key"),
    [
        ({"n_snapshot": 3}, "generator_args"),
        ({"n_trajectories": 99}, "n_trajectories"),
        ({"n_snapshots": 0}, "n_snapshots"),
        ({"snapshot_dt": -0.1}, "snapshot_dt"),
        ({"spinup_time": -1.0}, "spinup_time"),
        ({"coarse_shape": [16, 30, 8]}, "coarse_shape"),
        ({"coarse_shape": [64, 33, 8]}, "coarse_shape"),
        ({"seed_states": "missing.pt"}, "seed_states"),
    ],
)
def test_bad_generator_args_name_the_key(args, key, tmp_path):
    with pytest.raises(ConfigError) as error:
        make_channel_dataset(tmp_path, **args)
    assert error.value.key == key
    assert not tmp_path.joinpath("channel.h5").exists()


def test_the_data_module_reads_the_channel_data(generated):
    module = FieldDataModule(path=str(generated[0]["zarr"]), fields=["velocity"], batch_size=1)
    module.setup("fit")
    info = module.field_info
    assert info["channel_names"] == ["velocity_x", "velocity_y", "velocity_z"]
    assert info["boundary_conditions"]["y"] == ["WALL", "WALL"]
    assert info["coords"]["y"] == chebyshev_points(32)[::-1].tolist()
    batch = next(iter(module.train_dataloader()))
    assert batch["input"].shape == (1, 3, 1, *COARSE)


def test_fit_with_the_channel_config_generates_its_data_from_an_empty_directory(tmp_path, monkeypatch):
    from sciml.cli import main

    monkeypatch.chdir(tmp_path)
    cli = main(
        [
            "fit",
            "--config",
            "channel.yaml",
            "--trainer.accelerator=cpu",
            "--trainer.max_epochs=1",
            "--trainer.limit_train_batches=2",
            "--trainer.limit_val_batches=1",
            "--model.init_args.net.init_args.dim=24",
            "--model.init_args.net.init_args.n_layer=1",
            "--data.init_args.batch_size=1",
            '--data.init_args.generator_args={"n_trajectories": 3, "n_snapshots": 3, "snapshot_dt": 0.01, '
            '"spinup_time": 0.0}',
        ]
    )
    assert cli.trainer.state.finished
    assert (tmp_path / "data" / "channel" / "channel.h5").is_file()
    assert cli.model.net.coords_y.tolist() == pytest.approx(chebyshev_points(32)[::-1].tolist())


def test_a_folder_path_gets_the_channel_file_stem(tmp_path):
    folder = tmp_path / "data"
    module = FieldDataModule(path=str(folder), fields=["velocity"], generator="channel", generator_args=TINY)
    module.prepare_data()
    assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(".json")) == [
        "channel.h5",
        "channel.zarr",
    ]
    module.prepare_data()  # complete: nothing is remade or reported as foreign
    assert open_fields(folder / "channel.h5").info.n_trajectories == 3
