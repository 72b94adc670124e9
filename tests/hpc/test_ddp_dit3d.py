"""DiT-3D's evaluation does not depend on the number of processes: one checkpoint validated by 1 process and
by 2 gloo processes (DDP on CPU) generates the same shapes from the same per-sample noise (DDPM's per-step
noise included) and scores them with the same metrics, the pairwise distances split between the 2 processes.
The 5 evaluation shapes shard as 3 + 2 over 2 processes, so the second shard is padded with a repeat."""

import csv

import numpy as np
import pytest
from conftest import fit_two_steps, run_sciml
from pointcloud_fixtures import TRAIN_POINTS, make_pc15k_fixture

SHAPES = 5  # odd: 2 processes get 3 shapes each, one of them a repeat

#: dit3d.yaml at its smallest, sampling with a 20-step DDPM so that its per-step noise is exercised.
TINY = [
    "--config",
    "dit3d.yaml",
    "--trainer.accelerator=cpu",
    f"--data.init_args.train_points={TRAIN_POINTS}",
    "--data.init_args.n_points=64",
    "--data.init_args.batch_size=2",
    f"--data.init_args.eval_samples={SHAPES}",
    "--model.init_args.num_timesteps=20",
    "--model.init_args.sampler=ddpm",
    "--model.init_args.emd_exact_max_points=64",
    "--model.init_args.pair_batch_size=4",
    "--model.init_args.save_samples=true",
    "--model.init_args.net.init_args.depth=1",
    "--model.init_args.net.init_args.hidden_size=24",
    "--model.init_args.net.init_args.voxel_size=8",
]
METRICS = [f"val/{name}_{metric}" for name in ("mmd", "cov", "1nna") for metric in ("cd", "emd")]


def validate(root, data, checkpoint, devices):
    """``python -m sciml validate`` in ``root``: ``(the validation row of metrics.csv, the saved shapes)``."""
    run_sciml(
        "validate",
        [*TINY, f"--data.init_args.path={data}", f"--ckpt_path={checkpoint}"],
        root,
        devices,
        cwd=root,
    )
    run = root / "dit3d" / "version_0"
    (row,) = [row for row in csv.DictReader((run / "metrics.csv").open()) if row.get("val/1nna_cd")]
    (saved,) = (run / "samples").glob("val_epoch*.npz")
    return row, dict(np.load(saved))


def test_one_and_two_gloo_processes_generate_and_score_the_same_shapes(tmp_path, monkeypatch):
    data = tmp_path / "shapes"
    make_pc15k_fixture(data, counts={"train": 3, "val": 3, "test": 1})
    monkeypatch.chdir(tmp_path)
    checkpoint = fit_two_steps([*TINY, f"--data.init_args.path={data}"], tmp_path / "fit", "dit3d")
    (single := tmp_path / "single").mkdir()
    (double := tmp_path / "ddp").mkdir()
    single_row, single_shapes = validate(single, data, checkpoint, devices=1)
    double_row, double_shapes = validate(double, data, checkpoint, devices=2)

    # The same shapes, each once and in index order, from the same noise: the padding repeat is dropped.
    for saved in (single_shapes, double_shapes):
        assert saved["index"].tolist() == list(range(SHAPES))
        assert saved["generated"].shape == saved["references"].shape == (SHAPES, 64, 3)
    np.testing.assert_array_equal(single_shapes["references"], double_shapes["references"])
    np.testing.assert_array_equal(single_shapes["labels"], double_shapes["labels"])
    np.testing.assert_allclose(single_shapes["generated"], double_shapes["generated"], rtol=1e-5, atol=1e-6)
    assert not np.allclose(single_shapes["generated"][0], single_shapes["generated"][1], atol=1e-2)
    # The same metrics, although each process computed only its half of the distance pairs.
    for key in METRICS:
        assert float(double_row[key]) == pytest.approx(float(single_row[key]), rel=1e-5), key
    assert 0 < float(single_row["val/mmd_cd"])
