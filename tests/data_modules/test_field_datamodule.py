"""FieldDataModule: splits, training-only statistics, loaders (workers), rollouts and the RolloutWriter."""

import json
import os

import field_fixtures
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from the_well.data import WellDataset

from sciml.data.fields import FieldDataModule, RolloutWriter, open_fields, split_trajectories


@pytest.fixture
def h5(tmp_path):
    path = tmp_path / "data" / "fixture.h5"
    arrays = field_fixtures.make_well_fixture(path, n_trajectories=6, n_steps=7)
    # Later trajectories get much larger values: statistics that leaked val/test data would show it.
    with __import__("h5py").File(path, "a") as f:
        velocity = f["t1_fields/velocity"][()]
        velocity[4:] = 10.0 * velocity[4:] + 50.0
        f["t1_fields/velocity"][...] = velocity
    arrays["velocity"] = velocity
    return path, arrays


def test_split_by_trajectory_is_disjoint_and_complete():
    splits = split_trajectories(10, val=2, test=3)
    assert splits == {"train": [0, 1, 2, 3, 4], "val": [5, 6], "test": [7, 8, 9]}
    splits = split_trajectories(10, train=None, val=[0, 3], test=2)
    assert splits == {"train": [1, 2, 4, 5, 6, 7], "val": [0, 3], "test": [8, 9]}
    splits = split_trajectories(10, train=[0, 1], val=1, test=[5])
    assert splits == {"train": [0, 1], "val": [9], "test": [5]}
    for n, val, test in ((3, 1, 1), (7, 2, 0), (5, [4], 0)):
        s = split_trajectories(n, val=val, test=test)
        assert not (
            set(s["train"]) & set(s["val"])
            or set(s["train"]) & set(s["test"])
            or set(s["val"]) & set(s["test"])
        )
        assert sorted(s["train"] + s["val"] + s["test"]) == list(range(n))


def test_windows_come_from_their_split_only(h5):
    path, arrays = h5
    module = FieldDataModule(
        path=str(path), val_trajectories=1, test_trajectories=1, t_in=2, t_out=1, stride=2
    )
    module.setup("fit")
    assert module.splits == {"train": [0, 1, 2, 3], "val": [4], "test": [5]}
    velocity = arrays["velocity"]
    # every training window must equal some window of a training trajectory, none of the others
    train = module.dataset("train")
    assert len(train) == 4 * (7 - 4)
    for index in range(len(train)):
        sample = train[index]
        b, start = divmod(index, 3)
        assert b in module.splits["train"]
        expected = np.moveaxis(velocity[b, start : start + 5 : 2], -1, 0)  # (3, 3 frames, X, Y, Z)
        np.testing.assert_array_equal(sample["input"][1:].numpy(), expected[:, :2])
        np.testing.assert_array_equal(sample["target"][1:].numpy(), expected[:, 2:])
        np.testing.assert_allclose(sample["time"].numpy(), arrays["time"][start : start + 5 : 2], rtol=1e-6)
    val = module.dataset("val")
    np.testing.assert_array_equal(val[0]["input"][1:].numpy(), np.moveaxis(velocity[4, 0:3:2], -1, 0))


def test_normalization_uses_the_training_split_only_and_is_cached(h5):
    path, arrays = h5
    module = FieldDataModule(path=str(path), val_trajectories=1, test_trajectories=1)
    module.setup("fit")
    norm = module.normalization
    train = np.concatenate([arrays["pressure"][:4, ..., None], arrays["velocity"][:4]], axis=-1)
    train = train.reshape(-1, 4).astype(np.float64)
    torch.testing.assert_close(norm["mean"], torch.tensor(train.mean(0), dtype=torch.float32))
    torch.testing.assert_close(norm["std"], torch.tensor(train.std(0), dtype=torch.float32))
    everything = np.concatenate([arrays["pressure"][..., None], arrays["velocity"]], axis=-1).reshape(-1, 4)
    assert abs(everything[:, 1].mean() - norm["mean"][1].item()) > 5.0  # val/test would have shifted it
    assert norm["mean"].dtype == torch.float32 and norm["mean"].shape == (4,)

    stats_file = path.with_name("fixture.stats.json")
    assert module.stats_file == stats_file and module.field_info["stats_path"] == str(stats_file)
    umask = os.umask(0)
    os.umask(umask)
    assert stats_file.stat().st_mode & 0o777 == 0o666 & ~umask
    stored = json.loads(stats_file.read_text())
    (entry,) = stored["entries"].values()
    assert entry["train_trajectories"] == [0, 1, 2, 3] and entry["channels"][0] == "pressure"
    # a second module reads the stored entry instead of recomputing (we mark the stored values to see it)
    key = next(iter(stored["entries"]))
    stored["entries"][key]["mean"][0] = 123.0
    stats_file.write_text(json.dumps(stored))
    again = FieldDataModule(path=str(path), val_trajectories=1, test_trajectories=1)
    again.setup("fit")
    assert again.normalization["mean"][0].item() == 123.0
    # another split is another key: recomputed from its own training trajectories, stored beside the first
    other = FieldDataModule(path=str(path), val_trajectories=[0], test_trajectories=[1])
    other.setup("fit")
    assert other.splits["train"] == [2, 3, 4, 5]
    expected = arrays["velocity"][2:].reshape(-1, 3).astype(np.float64).mean(0)
    np.testing.assert_allclose(other.normalization["mean"][1:].numpy(), expected, rtol=1e-5)
    assert len(json.loads(stats_file.read_text())["entries"]) == 2
    # rewriting the data file changes its fingerprint: the stale entries are not used
    field_fixtures.make_well_fixture(path, n_trajectories=6, n_steps=7, seed=5)
    fresh = FieldDataModule(path=str(path), val_trajectories=1, test_trajectories=1)
    fresh.setup("fit")
    assert fresh.normalization["mean"][0].item() != 123.0
    assert len(json.loads(stats_file.read_text())["entries"]) == 3


def test_field_info(h5):
    path, _ = h5
    module = FieldDataModule(path=str(path), fields=["velocity"], stride=2, t_in=1)
    module.setup("fit")
    info = module.field_info
    assert info["channel_names"] == ["velocity_x", "velocity_y", "velocity_z"]
    assert info["fields"] == ["velocity"]
    assert info["grid_shape"] == list(field_fixtures.SHAPE)
    np.testing.assert_allclose(info["lengths"], field_fixtures.LENGTHS)
    assert info["dt"] == pytest.approx(0.5) and info["snapshot_dt"] == pytest.approx(0.25)
    assert info["format"] == "hdf5" and info["path"] == str(path) and info["dataset_name"] == "fixture_hit"
    assert info["simulation_parameters"]["nu"] == 0.01 and info["scalars"] == {"nu": 0.01}
    assert info["splits"] == {"train": [0, 1, 2, 3], "val": [4], "test": [5]}
    assert module.normalization["mean"].shape == (3,)


def test_evaluation_loaders_are_one_step_then_rollout(h5):
    path, arrays = h5
    module = FieldDataModule(path=str(path), t_in=2, t_out=1, batch_size=3, rollout_steps=3)
    module.setup("fit")
    one_step, rollout = module.val_dataloader()
    batch = next(iter(one_step))
    assert batch["input"].shape == (3, 4, 2, *field_fixtures.SHAPE)
    assert batch["target"].shape == (3, 4, 1, *field_fixtures.SHAPE)
    assert [c.shape for c in batch["coords"]] == [(3, 8), (3, 6), (3, 4)] and batch["time"].shape == (3, 3)
    (sample,) = list(rollout)
    assert sample["trajectory"].shape == (1, 4, 2 + 3, *field_fixtures.SHAPE)  # t_in + rollout_steps frames
    assert sample["index"].tolist() == [4] and sample["time"].shape == (1, 5)
    np.testing.assert_array_equal(
        sample["trajectory"][0, 1:, 4].numpy(), np.moveaxis(arrays["velocity"][4, 4], -1, 0)
    )
    test_one_step, test_rollout = module.test_dataloader()
    assert next(iter(test_rollout))["index"].tolist() == [5]
    full = FieldDataModule(path=str(path), t_in=2)
    full.setup("predict")
    (sample,) = list(full.predict_dataloader())
    assert sample["trajectory"].shape[2] == 7 and sample["index"].tolist() == [5]


def test_workers_with_persistent_workers_serve_the_same_samples(h5):
    path, _ = h5
    serial = FieldDataModule(path=str(path), batch_size=4, num_workers=0)
    serial.setup("fit")
    parallel = FieldDataModule(path=str(path), batch_size=4, num_workers=2, persistent_workers=True)
    parallel.setup("fit")
    loader = parallel.val_dataloader()[0]
    assert loader.persistent_workers and loader.num_workers == 2
    expected = [b["input"] for b in serial.val_dataloader()[0]]
    for _ in range(2):  # the second epoch reuses the same (persistent) worker processes
        got = [b["input"] for b in loader]
        assert len(got) == len(expected)
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    train = parallel.train_dataloader()
    seen = sum(len(b["input"]) for b in train)
    assert seen == len(parallel.dataset("train"))
    # the main process never opened the file: workers opened their own handles
    assert parallel.reader._handles == {}


class _Persistence(pl.LightningModule):
    """Predicts u(t + 1) = u(t) + 1: a rollout whose values are known exactly."""

    def predict_step(self, batch, batch_idx, dataloader_idx=0):
        trajectory = batch["trajectory"]
        rollout = trajectory[:, :, :1] + torch.arange(trajectory.shape[2]).view(1, 1, -1, 1, 1, 1)
        return {"rollout": rollout, "time": batch["time"], "index": batch["index"]}


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_rollout_writer_writes_the_input_schema(tmp_path, suffix):
    path = tmp_path / f"fixture{suffix}"
    (field_fixtures.make_well_fixture if suffix == ".h5" else field_fixtures.make_zarr_fixture)(path)
    module = FieldDataModule(path=str(path), val_trajectories=1, test_trajectories=2, rollout_steps=3)
    writer = RolloutWriter(str(tmp_path / "predictions"))
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[writer],
    )
    trainer.predict(_Persistence(), datamodule=module, return_predictions=False)
    assert writer.written == tmp_path / "predictions" / f"rollouts{suffix}"
    reader = open_fields(writer.written)
    info = reader.info
    assert info.format == ("hdf5" if suffix == ".h5" else "zarr")
    assert [c.name for c in info.channels] == ["pressure", "velocity_x", "velocity_y", "velocity_z"]
    assert info.n_trajectories == 2 and info.n_steps == 4 and info.grid_shape == field_fixtures.SHAPE
    assert info.parameters == module.reader.info.parameters
    source = module.reader
    for b, trajectory in enumerate([2, 3]):
        written = reader.read(b, slice(None), info.channels)
        first = source.read(trajectory, slice(0, 1), module.channels)
        np.testing.assert_allclose(written, first + np.arange(4).reshape(1, 4, 1, 1, 1), rtol=1e-6)
        np.testing.assert_allclose(info.time[b], source.info.time[trajectory, :4])
    if suffix == ".h5":
        import h5py

        with h5py.File(writer.written) as f:
            assert list(f.attrs["source_trajectories"]) == [2, 3] and "velocity" in f["t1_fields"]
        the_well = WellDataset(path=str(writer.written.parent), n_steps_input=1, n_steps_output=1)
        assert the_well.metadata.n_trajectories_per_file == [2]
