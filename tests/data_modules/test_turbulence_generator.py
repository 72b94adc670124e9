"""The turbulence generator end to end on a tiny grid: determinism, schema, and the embedded default path."""

import field_fixtures  # tests/data, on sys.path through tests/conftest.py
import numpy as np
import pytest
from the_well.data import WellDataset

from sciml.data.fields import FieldDataModule, open_fields
from sciml.data.generate import main, make_turbulence_dataset

TINY = {
    "n_dns": 16,
    "n_les": 8,
    "n_trajectories": 3,
    "n_snapshots": 4,
    "snapshot_dt": 0.05,
    "spinup_time": 0.1,
}


def test_reruns_with_the_same_seed_give_the_same_bytes(tmp_path):
    first = make_turbulence_dataset(tmp_path / "a", **TINY)
    second = make_turbulence_dataset(tmp_path / "b", **TINY)
    assert first["hdf5"].read_bytes() == second["hdf5"].read_bytes()
    assert field_fixtures.tree_digests(first["zarr"]) == field_fixtures.tree_digests(second["zarr"])
    other = make_turbulence_dataset(tmp_path / "c", formats=("hdf5",), **{**TINY, "seed": 1})
    assert other["hdf5"].read_bytes() != first["hdf5"].read_bytes()

    hdf5, store = open_fields(first["hdf5"]), open_fields(first["zarr"])
    for reader in (hdf5, store):
        info = reader.info
        assert [c.name for c in info.channels] == ["velocity_x", "velocity_y", "velocity_z"]
        assert info.grid_shape == (8, 8, 8) and info.n_trajectories == 3 and info.n_steps == 4
        np.testing.assert_allclose(info.lengths, [2 * np.pi] * 3, rtol=1e-15)
        np.testing.assert_allclose(info.time[0], [0.0, 0.05, 0.1, 0.15], rtol=1e-15)
        assert info.parameters["n_dns"] == 16 and info.parameters["filter"] == "sharp"
        # the simulation's own count, stored apart from the schema's (which a rollout file changes)
        assert info.parameters["simulation_n_trajectories"] == 3 and "n_trajectories" not in info.parameters
        assert info.scalars["nu"] == pytest.approx(info.parameters["nu"])
    np.testing.assert_array_equal(
        hdf5.read(2, slice(None), hdf5.info.channels), store.read(2, slice(None), store.info.channels)
    )
    velocity = hdf5.read(0, slice(None), hdf5.info.channels)
    assert np.isfinite(velocity).all() and velocity.std() > 0.1  # a real turbulent field, not zeros
    the_well = WellDataset(path=str(tmp_path / "a"), n_steps_input=1, n_steps_output=1)
    assert the_well.metadata.dataset_name == "forced_hit_les" and len(the_well) == 3 * 3


def test_missing_path_with_a_generator_is_generated(tmp_path):
    path = tmp_path / "data" / "hit.h5"
    module = FieldDataModule(
        path=str(path), generator="forced_hit", generator_args=TINY, t_in=2, batch_size=2
    )
    module.prepare_data()  # what Lightning calls on rank 0
    assert path.exists() and not (tmp_path / "data" / "hit.zarr").exists()
    assert sorted(p.name for p in path.parent.iterdir()) == ["hit.h5", "hit.stats.json"]
    module.setup("fit")
    assert module.field_info["simulation_parameters"]["n_les"] == 8
    assert module.splits == {"train": [0], "val": [1], "test": [2]}
    batch = next(iter(module.train_dataloader()))
    assert batch["input"].shape == (2, 3, 2, 8, 8, 8)

    store = tmp_path / "zarr_only" / "hit.zarr"
    direct = FieldDataModule(path=str(store), generator="forced_hit", generator_args=TINY)
    direct.setup("fit")  # outside a Trainer, setup prepares the data itself
    assert direct.field_info["format"] == "zarr" and store.is_dir()


def test_command_line(tmp_path, capsys):
    args = ["--out", str(tmp_path / "turbulence")] + [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    written = main(args)
    assert sorted(p.name for p in (tmp_path / "turbulence").iterdir()) == ["turbulence.h5", "turbulence.zarr"]
    assert open_fields(written["hdf5"]).info.n_steps == 4
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 1 and "pass --force to overwrite" in capsys.readouterr().err


def test_an_interrupted_generation_is_finished_on_the_next_start(tmp_path):
    from field_fixtures import make_killed_atomic_write

    # A run killed while writing the first file leaves only its temporary behind.
    folder = tmp_path / "turbulence"
    killed = make_killed_atomic_write(folder / "turbulence.h5")
    module = FieldDataModule(path=str(folder), generator="forced_hit", generator_args=TINY, t_in=2)
    module.prepare_data()
    assert sorted(p.name for p in folder.iterdir()) == [
        "turbulence.h5",
        "turbulence.stats.json",
        "turbulence.zarr",
    ]
    assert not killed.exists() and module.field_info["n_trajectories"] == 3

    # A run killed between the two outputs: the complete file is kept, the store is made.
    make_turbulence_dataset(tmp_path / "half", formats=("hdf5",), **TINY)
    killed = make_killed_atomic_write(tmp_path / "half" / "turbulence.zarr", directory=True)
    kept = (tmp_path / "half" / "turbulence.h5").stat().st_mtime_ns
    module = FieldDataModule(path=str(tmp_path / "half"), generator="forced_hit", generator_args=TINY)
    module.setup("fit")  # outside a Trainer, setup prepares the data itself
    assert (tmp_path / "half" / "turbulence.h5").stat().st_mtime_ns == kept and not killed.exists()
    assert open_fields(tmp_path / "half" / "turbulence.zarr").info.n_trajectories == 3


def test_a_folder_with_other_content_is_never_generated_into(tmp_path):
    import field_fixtures

    from sciml.core.errors import DataFormatError

    # The user's own Well file in the folder is read, not replaced by generated data.
    field_fixtures.make_well_fixture(tmp_path / "mine" / "run1.h5")
    module = FieldDataModule(path=str(tmp_path / "mine"), generator="forced_hit", generator_args=TINY)
    module.prepare_data()
    assert module.field_info["dataset_name"] == "fixture_hit"
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["run1.h5", "run1.stats.json"]

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "README.md").write_text("my notes")
    module = FieldDataModule(path=str(folder), generator="forced_hit", generator_args=TINY)
    with pytest.raises(DataFormatError) as error:
        module.prepare_data()
    assert str(error.value) == (
        f"{folder}: holds README.md but not turbulence.h5, turbulence.zarr (what generator 'forced_hit' "
        "writes there) nor any other field source (directory holds no *.h5/*.hdf5 file or *.zarr store); "
        "sciml generates only into a folder that holds nothing but the generator's outputs: move those "
        "entries away to have it generated there, or set 'path' to your data"
    )
    assert sorted(p.name for p in folder.iterdir()) == ["README.md"]
