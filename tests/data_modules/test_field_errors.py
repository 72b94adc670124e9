"""Bad input gives one clear error naming the file and the variable (never a silently wrong sample)."""

import re
import shutil

import field_fixtures
import h5py
import numpy as np
import pytest

from sciml.core.errors import ConfigError, DataFormatError, DatasetNotFoundError
from sciml.data.fields import FieldDataModule, FieldDataset, open_fields


@pytest.fixture
def h5(tmp_path):
    path = tmp_path / "bad.h5"
    field_fixtures.make_well_fixture(path)
    return path


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "bad.zarr"
    field_fixtures.make_zarr_fixture(path)
    return path


def _raises(error_type, *fragments):
    """pytest.raises whose message must contain every fragment (in order)."""
    return pytest.raises(error_type, match=".*".join(re.escape(f) for f in fragments))


def test_missing_path_names_the_command_that_makes_it(tmp_path):
    with _raises(DatasetNotFoundError, str(tmp_path / "turbulence"), "python -m sciml.data.generate --out"):
        open_fields(tmp_path / "turbulence")
    missing = tmp_path / "data" / "mine.h5"
    with _raises(
        DatasetNotFoundError, str(missing), "--out", str(missing.parent), "--name mine", "--formats hdf5"
    ):
        FieldDataModule(path=str(missing)).setup("fit")
    # with no generator named, prepare_data does not invent data either
    with _raises(DatasetNotFoundError, str(missing)):
        FieldDataModule(path=str(missing)).prepare_data()


def test_missing_group(h5):
    with h5py.File(h5, "a") as f:
        del f["dimensions"]
    with _raises(DataFormatError, f"{h5}: dimensions: missing group"):
        open_fields(h5)


def test_missing_variable_and_attribute(h5, tmp_path):
    other = tmp_path / "other.h5"
    shutil.copy(h5, other)
    with h5py.File(h5, "a") as f:
        del f["t1_fields/velocity"]
    with _raises(
        DataFormatError, f"{h5}: t1_fields/velocity: missing dataset listed in t1_fields@field_names"
    ):
        open_fields(h5)
    with h5py.File(other, "a") as f:
        del f["t0_fields/pressure"].attrs["time_varying"]
    with _raises(DataFormatError, f"{other}: t0_fields/pressure: missing attribute @time_varying"):
        open_fields(other)


def test_missing_zarr_coordinate(store):
    shutil.rmtree(store / "y")
    with _raises(DataFormatError, f"{store}: y: missing coordinate"):
        open_fields(store)


def test_wrong_rank_and_wrong_shape(h5, tmp_path):
    other = tmp_path / "other.h5"
    shutil.copy(h5, other)
    with h5py.File(h5, "a") as f:
        attrs = dict(f["t1_fields/velocity"].attrs)
        del f["t1_fields/velocity"]
        d = f["t1_fields"].create_dataset("velocity", data=np.zeros((4, 6, 8, 6, 4), np.float32))
        d.attrs.update(attrs)
    with _raises(
        DataFormatError,
        f"{h5}: t1_fields/velocity: expected rank 6 shape (4, 6, 8, 6, 4, 3)",
        "got rank 5 shape (4, 6, 8, 6, 4)",
    ):
        open_fields(h5)
    with h5py.File(other, "a") as f:
        attrs = dict(f["t0_fields/pressure"].attrs)
        del f["t0_fields/pressure"]
        d = f["t0_fields"].create_dataset("pressure", data=np.zeros((4, 5, 8, 6, 4), np.float32))
        d.attrs.update(attrs)
    with _raises(
        DataFormatError,
        f"{other}: t0_fields/pressure: expected rank 5 shape (4, 6, 8, 6, 4)",
        "(trajectory, time, x, y, z)",
        "got rank 5 shape (4, 5, 8, 6, 4)",
    ):
        open_fields(other)


def test_zarr_field_with_wrong_dims(tmp_path):
    import xarray as xr

    x = np.arange(4.0)
    bad = xr.Dataset(
        {
            "velocity": (("trajectory", "time", "x", "y", "z", "component"), np.zeros((1, 2, 4, 4, 4, 2))),
            "pressure": (("time", "trajectory", "x", "y", "z"), np.zeros((2, 1, 4, 4, 4))),
        },
        coords={"time": [0.0, 1.0], "x": x, "y": x, "z": x},
    )
    store = tmp_path / "dims.zarr"
    bad[["velocity"]].to_zarr(store, zarr_format=3, consolidated=False)
    with _raises(DataFormatError, f"{store}: velocity: dim component has size 2, expected 3"):
        open_fields(store)
    store = tmp_path / "order.zarr"
    bad[["pressure"]].to_zarr(store, zarr_format=3, consolidated=False)
    with _raises(
        DataFormatError, f"{store}: pressure: dims ('time', 'trajectory', 'x', 'y', 'z') are not in"
    ):
        open_fields(store)


def test_nan_or_inf_is_reported_with_file_variable_trajectory_and_steps(h5, store):
    with h5py.File(h5, "a") as f:
        f["t1_fields/velocity"][3, 4, 1, 2, 3, 1] = np.inf
    dataset = FieldDataset(h5, t_in=1, t_out=1)
    dataset[3 * 5 + 0]  # trajectory 3, steps 0..1: clean
    with _raises(
        DataFormatError,
        f"{h5}: t1_fields/velocity: 1 non-finite value(s) (Inf) in trajectory 3, time steps 3..4",
    ):
        dataset[3 * 5 + 3]
    # at setup, a small file is checked in full, so the bad test trajectory fails before training starts
    with _raises(DataFormatError, f"{h5}: t1_fields/velocity", "trajectory 3"):
        FieldDataModule(path=str(h5), val_trajectories=1, test_trajectories=1).setup("fit")
    # a large file (here: limit 0) is checked only where it is read: statistics read the training split
    module = FieldDataModule(path=str(h5), full_check_bytes=0, stats_path=str(h5.with_suffix(".big.json")))
    module.setup("fit")
    with _raises(DataFormatError, "trajectory 3"):
        list(module.test_dataloader()[1])

    import xarray as xr  # zarr: poke a NaN into one chunk through xarray's region writes

    region = xr.open_zarr(store, consolidated=False, chunks=None).isel(trajectory=[1], time=[2]).load()
    region["pressure"][0, 0, 0, 0, 0] = np.nan
    region[["pressure"]].drop_vars(["x", "y", "z"]).to_zarr(
        store, region={"trajectory": slice(1, 2), "time": slice(2, 3)}, consolidated=False
    )
    with _raises(
        DataFormatError, f"{store}: pressure: 1 non-finite value(s) (NaN) in trajectory 1, time steps 1..2"
    ):
        FieldDataset(store)[1 * 5 + 1]


def test_non_monotonic_time(h5, tmp_path):
    with h5py.File(h5, "a") as f:
        time = f["dimensions/time"][()]
        time[3] = time[2]
        f["dimensions/time"][...] = time
    with _raises(
        DataFormatError, f"{h5}: dimensions/time: time is not strictly increasing", "t[2]=1.5, t[3]=1.5"
    ):
        open_fields(h5)
    store = tmp_path / "t.zarr"
    field_fixtures.make_zarr_fixture(store, dt=-0.25)
    with _raises(DataFormatError, f"{store}: time: time is not strictly increasing"):
        open_fields(store)


def test_trajectories_too_short_for_the_window(h5):
    with _raises(
        DataFormatError,
        f"{h5}: dimensions/time: trajectories hold 6 time steps, too few for t_in=4, "
        "t_out=2, stride=2 (one window spans 11 steps)",
    ):
        FieldDataset(h5, t_in=4, t_out=2, stride=2)
    with _raises(DataFormatError, "too few for t_in=3, t_out=4, stride=1"):
        FieldDataModule(path=str(h5), t_in=3, t_out=4).setup("fit")


def test_truncated_and_corrupt_hdf5(h5, tmp_path):
    data = h5.read_bytes()
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(data[: len(data) // 2])
    with _raises(DataFormatError, f"{truncated}: cannot be opened as HDF5 (truncated or corrupt file?)"):
        open_fields(truncated)
    header = tmp_path / "header.h5"
    header.write_bytes(b"\0" * 16 + data[16:])
    with _raises(DataFormatError, f"{header}: cannot be opened as HDF5"):
        open_fields(header)
    # a corrupted data chunk: the Fletcher-32 checksum turns it into a read error naming the variable
    corrupt = tmp_path / "chunk.h5"
    with h5py.File(h5, "r") as f:
        offset = f["t1_fields/velocity"].id.get_chunk_info_by_coord((2, 3, 0, 0, 0, 0)).byte_offset
    buffer = bytearray(data)
    buffer[offset + 100 : offset + 108] = b"\x7f" * 8
    corrupt.write_bytes(bytes(buffer))
    dataset = FieldDataset(corrupt)
    dataset[0]
    with _raises(
        DataFormatError, f"{corrupt}: t1_fields/velocity: could not be read (trajectory 2, time steps 3..4)"
    ):
        dataset[2 * 5 + 3]


def test_zarr_missing_chunk_is_detected_not_filled(store, tmp_path):
    (store / "velocity" / "c" / "2" / "4" / "0" / "0" / "0" / "0").unlink()
    with _raises(
        DataFormatError,
        f"{store}: velocity: 1 of 24 chunks missing from the store",
        "first: velocity/c/2/4/0/0/0/0",
        "silently",
    ):
        open_fields(store)
    not_a_store = tmp_path / "empty.zarr"
    not_a_store.mkdir()
    with _raises(DataFormatError, f"{not_a_store}: zarr.json: not a zarr v3 store"):
        open_fields(not_a_store)


def test_config_errors_name_the_key(h5):
    with _raises(ConfigError, "'fields'", "'vorticity' is not a field or channel", "velocity_x"):
        FieldDataset(h5, fields=["vorticity"])
    with _raises(ConfigError, "'val_trajectories'", "trajectories [1] are also in train_trajectories"):
        FieldDataModule(path=str(h5), train_trajectories=[0, 1], val_trajectories=[1]).setup("fit")
    with _raises(ConfigError, "'test_trajectories'", "index 9 is out of range: the data has 4 trajectories"):
        FieldDataModule(path=str(h5), test_trajectories=[9]).setup("fit")
    with _raises(ConfigError, "'test_trajectories'", "asks for 4 trajectories"):
        FieldDataModule(path=str(h5), test_trajectories=4).setup("fit")
    with _raises(ConfigError, "'generator'", "unknown generator 'les'", "forced_hit"):
        FieldDataModule(path=str(h5), generator="les")
    with _raises(ConfigError, "'t_in'", "must be >= 1"):
        FieldDataModule(path=str(h5), t_in=0)


def test_zarr_component_labels_that_name_no_axis(tmp_path):
    path = tmp_path / "labels.zarr"
    field_fixtures.make_foreign_zarr_fixture(path, labels=("a", "b", "c"))
    with pytest.raises(DataFormatError) as error:
        open_fields(path)
    assert str(error.value) == (
        f"{path}: velocity: component labels ['a', 'b', 'c'] do not name the axes x, y, z once each "
        "(a label is the axis name, u/v/w for x/y/z, velocity_<axis> or the axis index)"
    )
    field_fixtures.make_foreign_zarr_fixture(path, labels=("x", "y", "x"))
    with _raises(DataFormatError, f"{path}: velocity: component labels ['x', 'y', 'x'] do not name"):
        open_fields(path)


def test_zarr_chunk_never_written_reads_as_the_fill_value_unless_that_is_nan(tmp_path):
    # Zero fill: zarr skips the all-zero snapshot (trajectory 1, time 2); it reads as the zeros it held.
    zeros = tmp_path / "zeros.zarr"
    arrays = field_fixtures.make_foreign_zarr_fixture(zeros, fill_value=0.0)
    assert not (zeros / "velocity" / "c" / "1" / "2").exists()
    reader = open_fields(zeros)
    window = reader.read(1, slice(None), reader.info.channels)
    np.testing.assert_array_equal(window, np.moveaxis(arrays["velocity"][1], -1, 0))
    assert not window[:, 2].any() and window[:, 1].any()
    # NaN fill (sciml's own): every chunk is written, so an absent one was lost.
    lost = tmp_path / "lost.zarr"
    field_fixtures.make_foreign_zarr_fixture(lost)
    shutil.rmtree(lost / "velocity" / "c" / "1" / "2")
    with pytest.raises(DataFormatError) as error:
        open_fields(lost)
    assert str(error.value) == (
        f"{lost}: velocity: 1 of 8 chunks missing from the store (first: velocity/c/1/2/0/0/0/0); "
        "zarr would silently return the fill value for them"
    )


def test_an_error_in_a_dataloader_worker_is_the_same_data_format_error(h5):
    with h5py.File(h5, "a") as f:
        f["t1_fields/velocity"][3, 4, 1, 2, 3, 1] = np.inf
    module = FieldDataModule(path=str(h5), full_check_bytes=0, num_workers=1, persistent_workers=False)
    module.setup("fit")
    with pytest.raises(DataFormatError) as error:
        list(module.test_dataloader()[1])  # trajectory 3, read in the worker process
    assert str(error.value) == (
        f"{h5}: t1_fields/velocity: 1 non-finite value(s) (Inf) in trajectory 3, time steps 0..5"
    )
