"""DiT3DTask: overfitting one batch, evaluation report and protocol, RNG isolation of sampling, guidance
wiring, and `fit` then `predict` through the CLI writing .npy, .ply and a PNG grid."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pointcloud_fixtures import TRAIN_POINTS, make_pc15k_fixture

from sciml.cli import main
from sciml.data.pointclouds import PointCloudDataModule
from sciml.geometry.ply import read_ply
from sciml.models.dit3d import DiT3D
from sciml.tasks.dit3d import DiT3DTask

TINY_NET = dict(size="S", patch_size=2, voxel_size=8, num_classes=2, depth=2, hidden_size=48, num_heads=4)


def tiny_task(**overrides) -> DiT3DTask:
    torch.manual_seed(0)
    return DiT3DTask(DiT3D(**TINY_NET), **{"sampling_steps": 4, "emd_exact_max_points": 64, **overrides})


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    make_pc15k_fixture(root)
    return root


def data_module(root, **overrides) -> PointCloudDataModule:
    args = dict(
        path=str(root), categories=["chair", "airplane"], n_points=64, batch_size=2, train_points=TRAIN_POINTS
    )
    return PointCloudDataModule(**{**args, **overrides})


def test_overfits_one_batch(shapes):
    """The denoising loss on one fixed batch at fixed (t, noise) falls by 4x in 150 steps."""
    module = data_module(shapes, batch_size=4)
    module.setup("fit")
    batch = next(iter(module.train_dataloader()))
    task = tiny_task(lr=2e-3, label_dropout=0.0)
    generator = torch.Generator().manual_seed(1)
    t = torch.randint(0, 1000, (4,), generator=generator)
    noise = torch.randn(batch["points"].shape, generator=generator)
    optimizer = torch.optim.AdamW(task.net.parameters(), lr=2e-3)

    def loss():
        points, labels = batch["points"], batch["label"]
        return task.diffusion.training_loss(task.net, points, labels, t=t, noise=noise).mean()

    first = float(loss().detach())
    for _ in range(150):
        optimizer.zero_grad()
        value = loss()
        value.backward()
        optimizer.step()
    final = float(loss().detach())
    assert final < first / 4, (first, final)


def test_validation_reports_the_protocol_and_leaves_the_global_rng_alone(shapes, tmp_path):
    task = tiny_task()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=2,
        val_check_interval=2,
        limit_val_batches=2,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    module = data_module(shapes, eval_samples=4)
    trainer.fit(task, module)
    summary = task.summary
    assert summary["protocol"] == "full" and summary["n_samples"] == summary["n_refs"] == 4
    assert summary["n_points"] == 64 and summary["emd_method"] == "exact"
    for metric in ("mmd_cd", "cov_cd", "1nna_cd", "mmd_emd", "cov_emd", "1nna_emd"):
        assert np.isfinite(summary[metric]), metric
        assert f"val/{metric}" in trainer.callback_metrics
    assert 0.0 <= summary["1nna_cd"] <= 1.0
    assert (tmp_path / "plots" / "val").is_dir() or any(tmp_path.rglob("samples_epoch*.png"))
    # the data's normalization is in the task, so samples come out in the data's units
    torch.testing.assert_close(task.points_mean, module.normalization["mean"])
    # (the DataLoader itself draws its base seed from the global RNG; the sampling must not)
    batch = next(iter(module.val_dataloader()))
    state = torch.get_rng_state()
    task.validation_step(batch, 0)
    assert torch.equal(torch.get_rng_state(), state), "sampling drew from the global RNG"


def test_generation_is_reproducible_and_guidance_uses_the_null_class():
    task = tiny_task(guidance_scale=3.0)
    labels = torch.tensor([0, 1])
    calls = []
    forward = task.net.forward

    def recording(x, t, cond=None, **kw):
        calls.append(cond.clone())
        return forward(x, t, cond, **kw)

    task.net.forward = recording
    first, nfe = task.generate(labels, 32, seed=5)
    second, _ = task.generate(labels, 32, seed=5)
    assert torch.equal(first, second) and nfe == 4
    # one batched call per step: the labels, then the null class for the unconditional half
    assert calls[0].tolist() == [0, 1, task.net.null_label, task.net.null_label]


def test_fit_then_predict_writes_samples_ply_and_a_png_grid(shapes, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    common = [
        "--config",
        "dit3d.yaml",
        f"--data.init_args.path={shapes}",
        f"--data.init_args.train_points={TRAIN_POINTS}",
        "--data.init_args.n_points=64",
        "--data.init_args.batch_size=2",
        "--data.init_args.eval_samples=4",
        "--data.init_args.predict_samples_per_class=3",
        "--trainer.accelerator=cpu",
        "--model.init_args.sampler=dpmpp_2m",
        "--model.init_args.sampling_steps=3",
        "--model.init_args.net.init_args.depth=1",
        "--model.init_args.net.init_args.hidden_size=24",
        "--model.init_args.net.init_args.voxel_size=8",
    ]
    main(["fit", *common, "--trainer.max_steps=4", "--trainer.val_check_interval=4"])
    checkpoint = tmp_path / "runs" / "dit3d" / "version_0" / "checkpoints" / "last.ckpt"
    assert checkpoint.exists()
    assert list((tmp_path / "runs" / "dit3d" / "version_0" / "plots" / "val").glob("*.png"))
    main(["predict", *common, f"--ckpt_path={checkpoint}"])

    out = tmp_path / "runs" / "dit3d" / "predictions"
    samples, labels = np.load(out / "samples.npy"), np.load(out / "labels.npy")
    assert samples.shape == (6, 64, 3) and np.isfinite(samples).all()
    assert labels.tolist() == [0, 0, 0, 1, 1, 1]
    plys = sorted((out / "ply").glob("*.ply"))
    assert [p.name for p in plys][:1] == ["0000_chair.ply"] and len(plys) == 6
    np.testing.assert_array_equal(read_ply(plys[4]), samples[4])
    assert (out / "samples.png").stat().st_size > 10_000
