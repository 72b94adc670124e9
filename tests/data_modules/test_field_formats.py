"""Field formats: round trips, The Well's own reader on our files, foreign Well files, determinism."""

import hashlib
import os
import pickle

import field_fixtures
import h5py
import numpy as np
import pytest
import torch
from the_well.data import WellDataset

from sciml.data.fields import FieldDataModule, FieldDataset, open_fields
from sciml.data.formats.well import WellReader, write_well
from sciml.data.formats.zarr_store import ZarrReader, write_zarr

EXPECTED_CHANNELS = ["pressure", "velocity_x", "velocity_y", "velocity_z"]


def _tree_digest(root) -> dict[str, str]:
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            full = os.path.join(folder, name)
            out[os.path.relpath(full, root)] = hashlib.sha256(open(full, "rb").read()).hexdigest()
    return out


@pytest.mark.parametrize("which", ["well", "zarr"])
def test_round_trip_serves_the_written_values(which, well_file, zarr_store):
    path, arrays = well_file if which == "well" else zarr_store
    reader = open_fields(path)
    assert isinstance(reader, WellReader if which == "well" else ZarrReader)
    info = reader.info
    assert [c.name for c in info.channels] == EXPECTED_CHANNELS
    assert info.grid_shape == field_fixtures.SHAPE
    assert info.n_trajectories == 4 and info.n_steps == 6
    np.testing.assert_allclose(info.lengths, field_fixtures.LENGTHS, rtol=1e-12)
    np.testing.assert_array_equal(info.coords["y"], arrays["y"])
    np.testing.assert_array_equal(info.time[2], arrays["time"])
    assert info.parameters == {"nu": 0.01, "forcing_kind": "linear", "forcing_coefficient": 0.1, "seed": 0}
    assert info.scalars == {"nu": 0.01}
    assert info.boundary_conditions == {d: ("PERIODIC", "PERIODIC") for d in "xyz"}

    window = reader.read(2, slice(1, 6, 2), info.channels)  # (C, T, X, Y, Z)
    assert window.shape == (4, 3, *field_fixtures.SHAPE) and window.dtype == np.float32
    np.testing.assert_array_equal(window[0], arrays["pressure"][2, 1:6:2])
    np.testing.assert_array_equal(window[1:], np.moveaxis(arrays["velocity"][2, 1:6:2], -1, 0))


def test_hdf5_and_zarr_give_identical_samples(well_file, zarr_store):
    a = FieldDataset(well_file[0], t_in=2, t_out=2, stride=1)
    b = FieldDataset(zarr_store[0], t_in=2, t_out=2, stride=1)
    assert len(a) == len(b) == 4 * 3
    for index in (0, 5, 11):
        for key in ("input", "target", "time"):
            torch.testing.assert_close(a[index][key], b[index][key], rtol=0, atol=0)


def test_the_well_reads_our_file_and_sees_our_values(well_file):
    path, arrays = well_file
    dataset = WellDataset(path=str(path.parent), n_steps_input=1, n_steps_output=1, use_normalization=False)
    assert dataset.metadata.n_trajectories_per_file == [4]
    assert dataset.metadata.field_names[0] == ["pressure"]
    assert dataset.metadata.field_names[1] == ["velocity_x", "velocity_y", "velocity_z"]
    assert dataset.metadata.constant_scalar_names == ["nu"]
    assert dataset.metadata.boundary_condition_types == ["PERIODIC"]
    ours = FieldDataset(path, t_in=1, t_out=1)
    assert len(dataset) == len(ours) == 4 * 5
    for index in (0, 7, 19):
        theirs = dataset[index]
        mine = ours[index]
        # the_well: (T, X, Y, Z, C); ours: (C, T, X, Y, Z)
        torch.testing.assert_close(
            theirs["input_fields"], mine["input"].permute(1, 2, 3, 4, 0), rtol=0, atol=0
        )
        torch.testing.assert_close(
            theirs["output_fields"], mine["target"].permute(1, 2, 3, 4, 0), rtol=0, atol=0
        )
        assert theirs["space_grid"].shape == (*field_fixtures.SHAPE, 3)
        torch.testing.assert_close(theirs["space_grid"][:, 0, 0, 0].float(), mine["coords"][0])
    # periodic on both sides of every axis (the_well's code 2)
    assert torch.equal(dataset[0]["boundary_conditions"], torch.full((3, 2), 2.0))
    torch.testing.assert_close(dataset[0]["constant_scalars"].float(), torch.tensor([0.01]))


def test_foreign_well_file_channels_constant_fields_and_boundaries(foreign_file):
    path, arrays = foreign_file
    reader = open_fields(path)
    info = reader.info
    names = [c.name for c in info.channels]
    assert names == [
        "density",
        "mask",
        "viscosity",
        "velocity_x",
        "velocity_y",
        "velocity_z",
        "stress_xx",
        "stress_xy",
        "stress_xz",
        "stress_yx",
        "stress_yy",
        "stress_yz",
        "stress_zx",
        "stress_zy",
        "stress_zz",
    ]
    assert info.field_names(time_varying=True) == ["density", "velocity", "stress"]
    assert info.boundary_conditions == {
        "x": ("WALL", "WALL"),
        "y": ("OPEN", "OPEN"),
        "z": ("PERIODIC", "PERIODIC"),
    }
    # wall/open axes span first to last node; the periodic one n * dx
    np.testing.assert_allclose(info.lengths, (1.0, 2.0, 2.0), rtol=1e-6)
    np.testing.assert_allclose(info.time, arrays["time"])  # per-trajectory time axes
    assert info.parameters == {"Re": 180.0, "Pr": pytest.approx(0.71)}
    assert info.scalars == {"Re": 180.0}  # the time-varying scalar is not a constant

    dataset = FieldDataset(path, t_in=1, t_out=2)  # default: the time-varying fields
    assert dataset.channel_names == [n for n in names if n not in ("mask", "viscosity")]
    sample = dataset[len(dataset) - 1]  # last trajectory, last window
    assert sample["input"].shape == (13, 1, 6, 5, 4) and sample["target"].shape == (13, 2, 6, 5, 4)
    b, start = 2, 2
    np.testing.assert_array_equal(sample["input"][0, 0].numpy(), arrays["density"][b, start])
    np.testing.assert_array_equal(
        sample["target"][1:4, 1].numpy(), np.moveaxis(arrays["velocity"][b, start + 2], -1, 0)
    )
    # stress_yz is component (1, 2) of the tensor
    np.testing.assert_array_equal(
        sample["target"][4 + 5, 0].numpy(), arrays["stress"][b, start + 1, ..., 1, 2]
    )
    np.testing.assert_allclose(sample["time"].numpy(), arrays["time"][b, start : start + 3], rtol=1e-6)

    # constant fields selected by name are broadcast: over z (not stored) and over time
    chosen = FieldDataset(path, fields=["mask", "viscosity", "velocity_y"], t_in=2, t_out=1)
    sample = chosen[1 * 3 + 1]  # trajectory 1, window 1
    expected_mask = np.broadcast_to(arrays["mask"][:, :, None], (6, 5, 4))
    for step in range(2):
        np.testing.assert_array_equal(sample["input"][0, step].numpy(), expected_mask)
        np.testing.assert_array_equal(sample["input"][1, step].numpy(), arrays["viscosity"][1])
    np.testing.assert_array_equal(sample["target"][2, 0].numpy(), arrays["velocity"][1, 3, ..., 1])


def test_readers_pickle_without_open_handles(well_file, zarr_store):
    for path in (well_file[0], zarr_store[0]):
        dataset = FieldDataset(path)
        first = dataset[3]["input"]  # opens the file in this process
        clone = pickle.loads(pickle.dumps(dataset))
        assert not getattr(clone.reader, "_handles", None) and getattr(clone.reader, "_dataset", None) is None
        torch.testing.assert_close(clone[3]["input"], first, rtol=0, atol=0)


def test_writes_are_byte_reproducible_and_fixtures_small(tmp_path):
    for run in ("a", "b"):
        field_fixtures.make_well_fixture(tmp_path / run / "f.h5", seed=3)
        field_fixtures.make_zarr_fixture(tmp_path / run / "f.zarr", seed=3)
        field_fixtures.make_foreign_well_fixture(tmp_path / run / "foreign.hdf5")
    assert (tmp_path / "a" / "f.h5").read_bytes() == (tmp_path / "b" / "f.h5").read_bytes()
    digest_a, digest_b = _tree_digest(tmp_path / "a" / "f.zarr"), _tree_digest(tmp_path / "b" / "f.zarr")
    assert digest_a == digest_b and "velocity/zarr.json" in digest_a and "zarr.json" in digest_a
    # A different seed changes the data (the comparison above is not vacuous).
    field_fixtures.make_well_fixture(tmp_path / "c" / "f.h5", seed=4)
    assert (tmp_path / "c" / "f.h5").read_bytes() != (tmp_path / "a" / "f.h5").read_bytes()
    for path in (tmp_path / "a" / "f.h5", tmp_path / "a" / "foreign.hdf5"):
        assert path.stat().st_size < 1_000_000
    zarr_size = sum(
        os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(tmp_path / "a" / "f.zarr") for f in fs
    )
    assert zarr_size < 1_000_000
    # readable like any file the user makes (the atomic write's temporary starts private)
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a" / "f.h5").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "a" / "f.zarr").stat().st_mode & 0o777 == 0o777 & ~umask
    # no temporaries left behind by the atomic writes
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["f.h5", "f.zarr", "foreign.hdf5"]


def test_written_hdf5_layout_matches_the_well_schema(well_file):
    path, _ = well_file
    with h5py.File(path, "r") as f:
        assert f.attrs["grid_type"] == "cartesian" and f.attrs["n_spatial_dims"] == 3
        assert f.attrs["n_trajectories"] == 4 and f.attrs["dataset_name"] == "fixture_hit"
        assert list(f.attrs["simulation_parameters"]) == ["nu", "forcing_kind", "forcing_coefficient", "seed"]
        assert f.attrs["forcing_kind"] == "linear"
        assert list(f["dimensions"].attrs["spatial_dims"]) == ["x", "y", "z"]
        assert f["dimensions/time"].attrs["sample_varying"] == np.False_
        velocity = f["t1_fields/velocity"]
        assert velocity.shape == (4, 6, *field_fixtures.SHAPE, 3) and velocity.dtype == np.float32
        assert list(velocity.attrs["dim_varying"]) == [True, True, True]
        assert velocity.attrs["sample_varying"] and velocity.attrs["time_varying"]
        assert list(f["t2_fields"].attrs["field_names"]) == []
        bc = f["boundary_conditions/x_periodic"]
        assert bc.attrs["bc_type"] == "PERIODIC" and list(bc.attrs["associated_dims"]) == ["x"]
        assert bc["mask"][()].tolist() == [True] + [False] * 6 + [True]
        assert f["scalars/nu"][()] == 0.01 and not f["scalars/nu"].attrs["time_varying"]


def test_directory_sources_several_well_files_and_format_choice(tmp_path):
    first = field_fixtures.make_well_fixture(tmp_path / "run" / "a.h5", n_trajectories=2, seed=1)
    second = field_fixtures.make_well_fixture(tmp_path / "run" / "b.hdf5", n_trajectories=3, seed=2)
    field_fixtures.make_zarr_fixture(tmp_path / "run" / "c.zarr", n_trajectories=1)
    reader = open_fields(tmp_path / "run")  # auto: the Well files win over the store
    assert reader.info.format == "hdf5" and reader.info.n_trajectories == 5
    assert [p.rsplit("/", 1)[-1] for p in reader.info.files] == ["a.h5", "b.hdf5"]
    window = reader.read(3, slice(0, 2), reader.info.channels)  # trajectory 1 of the second file
    np.testing.assert_array_equal(window[1:], np.moveaxis(second["velocity"][1, 0:2], -1, 0))
    np.testing.assert_array_equal(
        reader.read(1, slice(5, 6), reader.info.channels)[0], first["pressure"][1, 5:6]
    )
    # The Well's reader sees the same five trajectories
    the_well = WellDataset(path=str(tmp_path / "run"), n_steps_input=1, n_steps_output=1)
    assert sum(the_well.metadata.n_trajectories_per_file) == 5
    assert open_fields(tmp_path / "run", "zarr").info.format == "zarr"


@pytest.mark.parametrize(
    "labels", [("z", "y", "x"), ("w", "u", "v"), ("velocity_y", "velocity_z", "velocity_x")]
)
def test_zarr_components_are_read_by_label_not_position(tmp_path, labels):
    ordered = field_fixtures.make_foreign_zarr_fixture(tmp_path / "ordered.zarr")
    field_fixtures.make_foreign_zarr_fixture(tmp_path / "relabelled.zarr", labels=labels)
    a = FieldDataset(tmp_path / "ordered.zarr", fields=["velocity_x", "velocity_y", "velocity_z"])
    b = FieldDataset(tmp_path / "relabelled.zarr", fields=["velocity_x", "velocity_y", "velocity_z"])
    for index in range(len(a)):
        torch.testing.assert_close(a[index]["input"], b[index]["input"], rtol=0, atol=0)
    np.testing.assert_array_equal(b[0]["input"][0, 0].numpy(), ordered["velocity"][0, 0, ..., 0])


def test_datetime_and_timedelta_time_axes_are_read_as_seconds(tmp_path):
    start = np.datetime64("2024-01-01T00:00")
    dates = tmp_path / "dates.zarr"
    field_fixtures.make_foreign_zarr_fixture(dates, time=start + np.arange(4) * np.timedelta64(250, "ms"))
    with pytest.warns(UserWarning) as warned:
        info = open_fields(dates).info
    assert [str(w.message) for w in warned] == [
        f"{dates}: time: datetime64[ns] values are read as seconds since the first time "
        "(2024-01-01T00:00:00.000000000)"
    ]
    np.testing.assert_array_equal(info.time[1], [0.0, 0.25, 0.5, 0.75])

    durations = tmp_path / "durations.zarr"
    field_fixtures.make_foreign_zarr_fixture(
        durations, time=np.timedelta64(1, "s") + np.arange(4) * np.timedelta64(250, "ms")
    )
    with pytest.warns(UserWarning) as warned:
        info = open_fields(durations).info
    assert [str(w.message) for w in warned] == [
        f"{durations}: time: timedelta64[ms] values are read as seconds"
    ]
    np.testing.assert_array_equal(info.time[0], [1.0, 1.25, 1.5, 1.75])


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_rollout_files_keep_the_schema_whatever_the_parameters(tmp_path, well_file, suffix):
    """A generator's ``n_trajectories`` parameter must not become the rollout file's trajectory count."""
    import dataclasses

    from sciml.data.fields import write_rollouts
    from sciml.data.generate import DEFAULTS

    source = open_fields(well_file[0])
    parameters = {**DEFAULTS, "n_trajectories": 3, "lengths": list(field_fixtures.LENGTHS)}
    info = dataclasses.replace(
        source.info, parameters=parameters, format=suffix.strip(".").replace("h5", "hdf5")
    )
    truth = source.read(1, slice(None), source.info.channels)  # (C, T, X, Y, Z)
    outputs = [
        {
            "rollout": torch.from_numpy(truth)[None],
            "time": torch.from_numpy(source.info.time[1])[None],
            "index": torch.tensor([1]),
        }
    ]
    written = write_rollouts(tmp_path, info, source.info.channels, outputs)
    reader = open_fields(written)
    assert reader.info.n_trajectories == 1 and reader.info.n_steps == 6
    assert reader.info.parameters == {
        **{k: ("None" if v is None else v) for k, v in DEFAULTS.items() if k != "n_trajectories"},
        "simulation_n_trajectories": 3,
        "lengths": list(field_fixtures.LENGTHS),
    }
    np.testing.assert_array_equal(reader.read(0, slice(None), reader.info.channels), truth)
    if suffix == ".zarr":
        return
    with h5py.File(written) as f:
        assert f.attrs["n_trajectories"] == 1 and f.attrs["simulation_n_trajectories"] == 3
    # The Well's own reader: every window of the one trajectory, with our values.
    dataset = WellDataset(path=str(tmp_path), n_steps_input=1, n_steps_output=1, use_normalization=False)
    assert dataset.metadata.n_trajectories_per_file == [1] and len(dataset) == 5
    for step in range(5):
        sample = dataset[step]
        expected = np.moveaxis(truth[:, step : step + 2], 0, -1)  # (T, X, Y, Z, C)
        np.testing.assert_array_equal(sample["input_fields"].numpy(), expected[:1])
        np.testing.assert_array_equal(sample["output_fields"].numpy(), expected[1:])


def test_writers_refuse_attributes_that_would_overwrite_the_schema(tmp_path):
    from sciml.data.formats.well import write_well
    from sciml.data.formats.zarr_store import write_zarr

    common = {
        "time": np.arange(2.0),
        "coords": field_fixtures.periodic_coords(),
        "dataset_name": "clash",
    }
    velocity = np.zeros((1, 2, *field_fixtures.SHAPE, 3), dtype=np.float32)
    path = tmp_path / "clash.h5"
    with pytest.raises(ValueError) as error:
        write_well(path, t1_fields={"velocity": velocity}, attrs={"n_trajectories": 5}, **common)
    assert str(error.value) == (
        f"{path}: attributes ['n_trajectories'] would overwrite schema attributes or parameters"
    )
    store = tmp_path / "clash.zarr"
    with pytest.raises(ValueError) as error:
        write_zarr(
            store,
            fields={"velocity": velocity},
            parameters={"n_trajectories": 5, "simulation_n_trajectories": 5},
            **common,
        )
    assert str(error.value) == (
        f"{store}: parameter 'n_trajectories' is a schema attribute and 'simulation_n_trajectories', "
        "its other name, is taken"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("which", ["well", "zarr"])
def test_a_wall_bounded_chebyshev_axis_keeps_its_nodes_and_spans_the_walls(tmp_path, which):
    # A channel: periodic x and z, Gauss-Lobatto nodes y_j = -cos(pi j / 8) between walls at -1 and +1.
    shape, lx, lz = (6, 9, 4), 4 * np.pi, 4 * np.pi / 3
    coords = {
        "x": np.arange(6) * (lx / 6),
        "y": -np.cos(np.pi * np.arange(9) / 8),
        "z": np.arange(4) * (lz / 4),
    }
    velocity = np.random.default_rng(0).standard_normal((3, 3, *shape, 3))
    common = dict(
        time=np.arange(3.0),
        coords=coords,
        dataset_name="tiny_channel",
        boundary_conditions={"x": "periodic", "y": "wall", "z": "periodic"},
    )
    if which == "well":
        path = write_well(tmp_path / "channel.h5", t1_fields={"velocity": velocity}, **common)
    else:
        path = write_zarr(tmp_path / "channel.zarr", fields={"velocity": velocity}, **common)
    module = FieldDataModule(str(path), batch_size=1)
    module.setup("fit")
    info = module.field_info
    assert info["boundary_conditions"]["y"] == ["WALL", "WALL"]
    # the wall axis spans |y[-1] - y[0]| = 2 (not n dy of a uniform grid); periodic ones n dx
    np.testing.assert_allclose(info["lengths"], (lx, 2.0, lz), rtol=1e-12)
    assert list(info["coords"]) == ["x", "y", "z"]
    for dim in "xyz":
        assert info["coords"][dim] == coords[dim].tolist()  # float64 nodes, exactly as stored
