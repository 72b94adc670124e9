"""PointCloudDataset/DataModule: PointFlow normalization, train/eval point parts, seeded draws, sharding,
resume, generation in prepare_data, and one clear error for each kind of bad input."""

import re
import shutil
from types import SimpleNamespace

import numpy as np
import pointcloud_fixtures  # importable through tests/conftest.py, which puts tests/data on sys.path
import pytest
import pytorch_lightning as pl
import torch

from sciml.core.errors import ConfigError, DataFormatError, DatasetNotFoundError
from sciml.data import PointCloudDataModule
from sciml.data.pointclouds import PointCloudDataset

CHAIR, AIRPLANE, CAR = "03001627", "02691156", "02958343"


def _raises(error_type, *fragments):
    """pytest.raises whose message must contain every fragment (in order)."""
    return pytest.raises(error_type, match=".*".join(re.escape(f) for f in fragments))


@pytest.fixture(scope="module")
def pc15k(tmp_path_factory):
    root = tmp_path_factory.mktemp("pointclouds") / "pc15k"
    pointcloud_fixtures.make_pc15k_fixture(root)
    return root


@pytest.fixture
def copy(pc15k, tmp_path):
    """A private copy of the fixture tree that a test may damage."""
    return shutil.copytree(pc15k, tmp_path / "pc15k")


def _module(root, categories=("chair", "airplane"), **overrides):
    options = {"n_points": 128, "batch_size": 2, "train_points": pointcloud_fixtures.TRAIN_POINTS}
    return PointCloudDataModule(str(root), list(categories), **{**options, **overrides})


def _load(root, synsets, split):
    return np.stack([np.load(f) for s in synsets for f in sorted((root / s / split).glob("*.npy"))])


def test_normalization_is_pointflows_formula_over_the_training_split(pc15k):
    module = _module(pc15k)
    module.setup("fit")
    module.setup("test")
    train = _load(pc15k, [CHAIR, AIRPLANE], "train").astype(np.float64)  # (6, 1500, 3)
    mean, std = train.reshape(-1, 3).mean(axis=0), train.reshape(-1).std()
    norm = module.normalization
    assert norm["mean"].shape == (3,) and norm["std"].shape == () and norm["mean"].dtype == torch.float32
    torch.testing.assert_close(norm["mean"], torch.tensor(mean, dtype=torch.float32), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(norm["std"], torch.tensor(std, dtype=torch.float32), rtol=1e-6, atol=0)
    # not the per-axis std, and not statistics that include validation/test shapes
    assert not np.allclose(train.reshape(-1, 3).std(axis=0), std, rtol=1e-2)
    everything = np.concatenate([train, *(_load(pc15k, [CHAIR, AIRPLANE], s) for s in ("val", "test"))])
    assert abs(everything.reshape(-1).std() - std) > 1e-4
    for split in ("val", "test"):
        dataset = module.dataset(split)
        np.testing.assert_array_equal(dataset.mean, module.dataset("train").mean)
        assert dataset.std == module.dataset("train").std
    # a served evaluation sample is (raw points - mean) / std of the training split
    val = module.dataset("val")
    raw = np.load(sorted((pc15k / CHAIR / "val").glob("*.npy"))[1])
    sample = val[1]
    expected = (raw[val.point_indices(1)] - mean) / std
    np.testing.assert_allclose(sample["points"].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert sample["points"].dtype == torch.float32 and sample["points"].shape == (128, 3)
    assert sample["label"].dtype == torch.int64 and sample["label"].item() == 0 and sample["index"] == 1
    # a val dataset on its own reads the training split for its statistics
    alone = PointCloudDataset(pc15k, "val", ["chair", "airplane"], n_points=64, train_points=1000)
    np.testing.assert_allclose(alone.mean, mean, rtol=1e-12)
    assert alone.std == pytest.approx(std, rel=1e-12)


def test_training_draws_come_from_the_first_part_and_evaluation_draws_from_the_last(tmp_path):
    arrays = pointcloud_fixtures.make_split_fixture(tmp_path, points=60, train_points=40)
    module = _module(tmp_path, ["chair", "car"], n_points=16, train_points=40)
    module.setup(None)
    mean, std = module.dataset("train").mean, module.dataset("train").std
    files = {split: arrays[(CHAIR, split)] + arrays[(CAR, split)] for split in ("train", "val", "test")}
    for split in ("train", "val", "test"):
        dataset = module.dataset(split)
        assert len(dataset) == len(files[split])
        for index in range(len(dataset)):
            for epoch in (0, 1, 2):
                rows = dataset.point_indices(index, epoch)
                assert len(set(rows.tolist())) == 16  # without replacement
                assert (rows < 40).all() if split == "train" else (rows >= 40).all()
                points = dataset[(epoch, index)]["points"].numpy() * std + mean
                # the fixture's training part has x < 0, its evaluation part x > 0
                assert (points[:, 0] < 0).all() if split == "train" else (points[:, 0] > 0).all()
                np.testing.assert_allclose(points, files[split][index][rows], atol=1e-5)
            assert dataset[index]["label"].item() == (0 if index < len(arrays[(CHAIR, split)]) else 1)


def test_evaluation_draws_are_deterministic_per_index(pc15k):
    module = _module(pc15k)
    module.setup("validate")
    val = module.dataset("val")
    first = val[2]["points"]
    val.set_epoch(7)
    torch.testing.assert_close(val[2]["points"], first, rtol=0, atol=0)
    torch.testing.assert_close(val[(3, 2)]["points"], first, rtol=0, atol=0)  # an epoch does not matter
    other = _module(pc15k, shuffle_seed=5)
    other.setup("validate")
    torch.testing.assert_close(other.dataset("val")[2]["points"], first, rtol=0, atol=0)
    assert not np.array_equal(val.point_indices(0), val.point_indices(1))


def test_training_draws_depend_on_seed_epoch_and_index_only(pc15k):
    module = _module(pc15k)
    module.setup("fit")
    train = module.dataset("train")
    epoch0, epoch1 = train[(0, 2)]["points"], train[(1, 2)]["points"]
    assert not torch.equal(epoch0, epoch1)
    again = _module(pc15k)
    again.setup("fit")
    torch.testing.assert_close(again.dataset("train")[(1, 2)]["points"], epoch1, rtol=0, atol=0)
    train.set_epoch(1)
    torch.testing.assert_close(train[2]["points"], epoch1, rtol=0, atol=0)
    assert not np.array_equal(train.point_indices(2, 1), train.point_indices(3, 1))
    seeded = _module(pc15k, shuffle_seed=1)
    seeded.setup("fit")
    assert not torch.equal(seeded.dataset("train")[(1, 2)]["points"], epoch1)


def _epoch(loader, epoch):
    loader.sampler.set_epoch(epoch)
    return list(loader)


def test_a_resumed_training_loader_serves_the_same_points(pc15k):
    module = _module(pc15k)
    module.setup("fit")
    loader = module.train_dataloader()
    assert len(loader) == 3  # 6 training shapes, batch 2
    epoch0, epoch1 = _epoch(loader, 0), _epoch(loader, 1)
    # the same shape gets different points in another epoch
    for b0 in epoch0:
        for b1 in epoch1:
            for i, index in enumerate(b0["index"].tolist()):
                if index in b1["index"].tolist():
                    j = b1["index"].tolist().index(index)
                    assert not torch.equal(b0["points"][i], b1["points"][j])
    iterator = iter(loader)
    next(iterator)
    state = loader.state_dict()
    assert state["epoch"] == 1 and state["consumed"] == 2
    restarted = _module(pc15k)
    restarted.setup("fit")
    resumed = restarted.train_dataloader()
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(rest) == 2
    for got, expected in zip(rest, epoch1[1:]):
        for key in ("points", "label", "index"):
            torch.testing.assert_close(got[key], expected[key], rtol=0, atol=0)


def test_persistent_workers_follow_the_samplers_epoch(pc15k):
    module = _module(pc15k, num_workers=1, persistent_workers=True)
    module.setup("fit")
    loader = module.train_dataloader()
    train = module.dataset("train")  # the main process's copy: its own epoch stays 0
    for epoch in (0, 1, 2):
        for batch in _epoch(loader, epoch):
            expected = torch.stack([train[(epoch, i)]["points"] for i in batch["index"].tolist()])
            torch.testing.assert_close(batch["points"], expected, rtol=0, atol=0)
    assert loader._iterator is not None  # one worker, started once, served every epoch


class _Recorder(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(3))
        self.seen = []

    def training_step(self, batch, batch_idx):
        self.seen.append((self.current_epoch, batch["index"].tolist(), batch["points"].clone()))
        return (batch["points"] * self.weight).sum() ** 2

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


@pytest.mark.filterwarnings("ignore:You passed in a `val_dataloader` but have no `validation_step`")
def test_a_trainer_keeps_the_sampler_and_draws_each_epochs_points(pc15k):
    module = _module(pc15k)
    recorder = _Recorder()
    trainer = pl.Trainer(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(recorder, datamodule=module)
    assert [epoch for epoch, _, _ in recorder.seen] == [0, 0, 0, 1, 1, 1]
    train = module.dataset("train")
    for epoch, indices, points in recorder.seen:
        expected = torch.stack([train[(epoch, i)]["points"] for i in indices])
        torch.testing.assert_close(points, expected, rtol=0, atol=0)
    per_epoch = [sorted(i for e, idx, _ in recorder.seen if e == epoch for i in idx) for epoch in (0, 1)]
    assert per_epoch == [list(range(6))] * 2


def test_labels_follow_the_configured_order(pc15k):
    module = _module(pc15k, [AIRPLANE, "chair"])
    assert module.num_classes == 2 and module.category_names == ["airplane", "chair"]  # before setup
    module.setup("fit")
    train = module.dataset("train")
    assert [f.parent.parent.name for f in train.files] == [AIRPLANE] * 3 + [CHAIR] * 3
    assert [train[i]["label"].item() for i in range(6)] == [0, 0, 0, 1, 1, 1]
    everything = _module(pc15k, ["all"])
    assert everything.synsets == [AIRPLANE, CHAIR] and everything.category_names == ["airplane", "chair"]


def test_eval_samples_caps_validation_and_test_evenly_over_categories(pc15k):
    module = _module(pc15k, eval_samples=2)
    module.setup(None)
    assert len(module.dataset("train")) == 6
    for split in ("val", "test"):
        dataset = module.dataset(split)
        assert len(dataset) == 2 and sorted(dataset.labels.tolist()) == [0, 1]


def test_predict_yields_seeded_generation_requests_per_class(pc15k):
    module = _module(pc15k, predict_samples_per_class=3, batch_size=4)
    batches = list(module.predict_dataloader())
    labels = torch.cat([b["label"] for b in batches]).tolist()
    seeds = torch.cat([b["seed"] for b in batches]).tolist()
    assert labels == [0, 0, 0, 1, 1, 1] and torch.cat([b["index"] for b in batches]).tolist() == list(
        range(6)
    )
    assert len(set(seeds)) == 6
    assert (
        torch.cat(
            [b["seed"] for b in _module(pc15k, predict_samples_per_class=3).predict_dataloader()]
        ).tolist()
        == seeds
    )
    other = _module(pc15k, predict_samples_per_class=3, shuffle_seed=1).predict_dataloader()
    assert torch.cat([b["seed"] for b in other]).tolist() != seeds


def test_two_ranks_get_disjoint_shards(pc15k):
    shards = {"train": [], "val": [], "test": []}
    for rank in (0, 1):
        module = _module(pc15k, batch_size=1, eval_samples=3)
        module.trainer = SimpleNamespace(global_rank=rank, world_size=2)
        module.setup(None)
        shards["train"].append([i for b in _epoch(module.train_dataloader(), 1) for i in b["index"].tolist()])
        shards["val"].append([i for b in module.val_dataloader() for i in b["index"].tolist()])
        shards["test"].append([i for b in module.test_dataloader() for i in b["index"].tolist()])
    assert len(shards["train"][0]) == len(shards["train"][1]) == 3
    assert not set(shards["train"][0]) & set(shards["train"][1])
    assert sorted(shards["train"][0] + shards["train"][1]) == list(range(6))
    for split in ("val", "test"):  # 3 shapes on 2 ranks: every shape once, padded with one repeat
        assert len(shards[split][0]) == len(shards[split][1]) == 2
        assert set(shards[split][0] + shards[split][1]) == {0, 1, 2}


def test_prepare_data_generates_what_is_missing(tmp_path):
    root = tmp_path / "shapes"
    args = {"counts": {"train": 2, "val": 1, "test": 1}, "points": 300}
    options = {"generator": "shapes", "generator_args": args, "train_points": 200, "n_points": 50}
    module = _module(root, ["lamp"], **options)
    module.prepare_data()
    assert sorted(p.name for p in root.iterdir()) == ["03636649"]
    lamp = root / "03636649" / "train" / "lamp-train-00000.npy"
    assert np.load(lamp).shape == (300, 3)
    stamp = lamp.stat().st_mtime_ns
    module.prepare_data()  # nothing missing: nothing rewritten
    both = _module(root, ["lamp", "car"], **options)
    both.prepare_data()  # only the missing category is made
    assert sorted(p.name for p in root.iterdir()) == ["02958343", "03636649"]
    assert lamp.stat().st_mtime_ns == stamp
    both.setup("fit")
    assert len(both.dataset("train")) == 4 and len(both.dataset("val")) == 2
    fresh = _module(tmp_path / "fresh", ["car"], **options)
    fresh.setup("fit")  # outside a Trainer, setup prepares the data itself
    assert len(fresh.dataset("train")) == 2


def test_a_killed_generation_is_cleaned_up_and_made_again(tmp_path):
    from field_fixtures import make_killed_atomic_write

    # Killed while writing its first category folder: the root holds nothing but that temporary.
    root = tmp_path / "shapes"
    killed = make_killed_atomic_write(root / "03636649", directory=True)
    args = {"categories": ["lamp"], "counts": {"train": 2, "val": 1, "test": 1}, "points": 300}
    options = {"generator": "shapes", "generator_args": args, "train_points": 200, "n_points": 50}
    module = _module(root, ["all"], **options)
    module.prepare_data()
    assert sorted(p.name for p in root.iterdir()) == ["03636649"] and not killed.exists()
    module.setup("fit")
    assert module.category_names == ["lamp"] and len(module.dataset("train")) == 2


def test_missing_path_names_the_command_that_makes_it(tmp_path):
    missing = tmp_path / "shapes"
    command = f"python -m sciml.data.shapes --out {missing}"
    with _raises(DatasetNotFoundError, str(missing), command, "--categories chair airplane"):
        _module(missing).prepare_data()
    with _raises(DatasetNotFoundError, str(missing), command):
        _module(missing).setup("fit")
    with _raises(DatasetNotFoundError, str(missing), "ShapeNetCore.v2.PC15k"):
        PointCloudDataset(missing, "train", ["sofa"])
    assert not missing.exists()


def test_wrong_shape_names_the_file(copy):
    bad = sorted((copy / AIRPLANE / "train").glob("*.npy"))[1]
    np.save(bad, np.load(bad)[:, :2])
    with _raises(DataFormatError, str(bad), "expected a (P, 3) array of points, got shape (1500, 2)"):
        _module(copy).setup("fit")


def test_nan_names_the_file_and_the_point(copy):
    bad = sorted((copy / CHAIR / "test").glob("*.npy"))[0]
    cloud = np.load(bad)
    cloud[7, 1] = np.nan
    np.save(bad, cloud)
    with _raises(DataFormatError, str(bad), "1 of 1500 points have NaN or infinite coordinates", "point 7"):
        _module(copy).setup("test")


def test_mixed_point_counts_name_both_files_and_counts(copy):
    files = sorted((copy / CHAIR / "train").glob("*.npy"))
    np.save(files[2], np.load(files[2])[:1200])
    with _raises(DataFormatError, str(files[2]), "has 1200 points but", str(files[0]), "has 1500"):
        _module(copy).setup("fit")


def test_empty_or_missing_split_names_the_folder(copy):
    folder = copy / AIRPLANE / "val"
    for file in folder.glob("*.npy"):
        file.unlink()
    (folder / "notes.txt").write_text("not a point cloud")
    with _raises(DataFormatError, str(folder), "empty val split", "<root>/<synset id>/<split>/<model>.npy"):
        _module(copy).setup("fit")
    shutil.rmtree(folder)
    with _raises(DataFormatError, str(folder), "missing val split"):
        _module(copy).setup("validate")


def test_unknown_or_absent_category_names_the_key_and_what_is_on_disk(copy):
    with _raises(ConfigError, "'categories'", "'chiar' (not a known name)", "chair (03001627)"):
        _module(copy, ["chiar"]).setup("fit")
    with _raises(
        ConfigError, "'categories'", "'sofa' has no folder", str(copy / "04256520"), "airplane (02691156)"
    ):
        _module(copy, ["sofa"]).setup("fit")
    with _raises(ConfigError, "'categories'", "listed twice"):
        _module(copy, ["chair", CHAIR]).setup("fit")


def test_unreadable_or_integer_files_name_the_file(copy):
    files = sorted((copy / CHAIR / "train").glob("*.npy"))
    files[0].write_bytes(b"not an npy file")
    with _raises(DataFormatError, str(files[0]), "not a readable .npy array"):
        _module(copy).setup("fit")
    np.save(files[0], np.zeros((1500, 3), dtype=np.int64))
    with _raises(DataFormatError, str(files[0]), "expected floating-point coordinates, got dtype int64"):
        _module(copy).setup("fit")


def test_point_budget_errors(pc15k):
    with _raises(DataFormatError, "has 1500 points, but train_points=1500 leaves none for evaluation"):
        _module(pc15k, train_points=1500).setup("fit")
    with _raises(ConfigError, "'n_points'", "600 is more than the 500 evaluation points"):
        _module(pc15k, n_points=600).setup("fit")
    with _raises(ConfigError, "'n_points'", "1001 is more than the 1000 training points"):
        _module(pc15k, n_points=1001).setup("fit")
    module = _module(pc15k, batch_size=4)
    module.setup("fit")
    module.trainer = SimpleNamespace(global_rank=0, world_size=2)
    with _raises(ConfigError, "'batch_size'", "4 per process is more than the 3 training shapes"):
        module.train_dataloader()


def test_bad_configuration_fails_at_construction(pc15k):
    with _raises(ConfigError, "'generator'", "unknown generator 'meshes'", "shapes"):
        _module(pc15k, generator="meshes")
    with _raises(ConfigError, "'categories'", "cannot make 'sofa'", "chair (03001627)"):
        _module(pc15k, ["sofa"], generator="shapes")
    with _raises(ConfigError, "'generator_args'", "unknown keys ['colour']"):
        _module(pc15k, generator="shapes", generator_args={"colour": "red"})
    for key, value in (("n_points", 0), ("batch_size", 0), ("eval_samples", 0), ("shuffle_seed", -1)):
        with _raises(ConfigError, f"'{key}'", f"got {value}"):
            _module(pc15k, **{key: value})
    with _raises(ConfigError, "'categories'", "is empty"):
        _module(pc15k, [])
    with _raises(ConfigError, "'categories'", "'all' cannot be combined"):
        _module(pc15k, ["all", "chair"]).setup("fit")
