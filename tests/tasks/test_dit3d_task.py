"""DiT3DTask: overfitting one batch, evaluation report and protocol, known-answer evaluations through the
task's own validation path, evaluation independent of the batch size, RNG isolation of sampling, guidance
wiring, and `fit` then `predict` through the CLI writing .npy, .ply and a PNG grid."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pointcloud_fixtures import TRAIN_POINTS, make_pc15k_fixture
from torch import nn
from torch.utils.data import DataLoader

from sciml.cli import main
from sciml.data.pointclouds import PointCloudDataModule
from sciml.diffusion import GaussianDiffusion
from sciml.geometry.ply import read_ply
from sciml.metrics.pointclouds import pair_count
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
    assert summary["ranks"] == 1 and summary["n_pairs"] == pair_count(4, 4)
    for metric in ("cd", "emd"):
        # 1-NNA over 4 + 4 shapes: a count of correct shapes out of 8, the mean of the two per-set accuracies
        nna, refs, samples = (summary[f"1nna_{metric}{part}"] for part in ("", "_refs", "_samples"))
        assert nna * 8 == round(nna * 8) and nna == pytest.approx((refs + samples) / 2)
        assert summary[f"cov_{metric}"] in (0.25, 0.5, 0.75, 1.0)
        assert summary[f"mmd_{metric}"] > 0  # an untrained net does not reproduce the references
    png = tmp_path / "plots" / "val" / "samples_epoch0000.png"
    assert summary["plots"] == str(png) and png.stat().st_size > 10_000
    # the data's normalization is in the task, so samples come out in the data's units
    torch.testing.assert_close(task.points_mean, module.normalization["mean"])
    # (the DataLoader itself draws its base seed from the global RNG; the sampling must not)
    batch = next(iter(module.val_dataloader()))
    state = torch.get_rng_state()
    task.validation_step(batch, 0)
    assert torch.equal(torch.get_rng_state(), state), "sampling drew from the global RNG"


# ---------------------------------------------------------------------------------------- known answers
# A fake denoiser makes the samplers return chosen shapes exactly: for target x0 it predicts
# eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t), so every x0 prediction is x0, which is what DPM-Solver++
# returns at its last step and what DDPM's last (noise-free, c2 = 0) step returns. It goes through all of the
# task's own wiring: labels from the batch, per-sample seeds and noise, the sampler, the denormalization, the
# gather (ordering, deduplication), the metrics and the report. Patching ``generate`` or
# ``diffusion.sample`` instead would skip part of that.

POINTS_MEAN, POINTS_STD = torch.tensor([5.0, -2.0, 1.0]), 3.0


class ShapeByLabel(nn.Module):
    """``net(x, t, labels)`` whose sampled shape for label ``k`` is ``targets[k]`` (normalized units)."""

    def __init__(self, targets: torch.Tensor, diffusion: GaussianDiffusion):
        super().__init__()
        self.num_classes = self.null_label = len(targets)
        self.register_buffer("targets", targets)  # (K, N, 3)
        self.register_buffer("signal", diffusion.sqrt_alphas_cumprod)  # (T,) float64
        self.register_buffer("noise", diffusion.sqrt_one_minus_alphas_cumprod)

    def forward(self, x, t, labels):
        x0 = self.targets[labels].double()
        eps = (x.double() - self.signal[t, None, None] * x0) / self.noise[t, None, None]
        return eps.to(x.dtype)


def reference_shapes(count: int = 5, n_points: int = 32) -> torch.Tensor:
    """Distinct shapes in data units: anisotropic Gaussian blobs, each with its own scales and centre."""
    g = torch.Generator().manual_seed(0)
    scales = 0.5 + 2 * torch.rand(count, 1, 3, generator=g)
    return torch.randn(count, n_points, 3, generator=g) * scales + torch.randn(count, 1, 3, generator=g)


def known_answer_validation(tmp_path, targets_of, sampler="dpmpp_2m"):
    """Validate a task whose net samples ``targets_of(normalized references)`` for the references of
    :func:`reference_shapes` (label k = shape k); the loader serves them out of order with one shape twice,
    as a padded distributed shard does. Returns the task, the references (data units) and the saved npz."""
    references = reference_shapes()
    normalized = (references - POINTS_MEAN) / POINTS_STD
    items = [{"points": normalized[i], "label": i, "index": i} for i in range(len(references))]
    loader = DataLoader(items, batch_size=2, sampler=[4, 2, 0, 3, 1, 0])
    diffusion = GaussianDiffusion.from_schedule("linear", 50)
    task = DiT3DTask(
        ShapeByLabel(targets_of(normalized), diffusion),
        num_timesteps=50,
        sampler=sampler,
        sampling_steps=4,
        save_samples=True,
    )
    task.points_mean.copy_(POINTS_MEAN)
    task.points_std.fill_(POINTS_STD)
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.validate(task, dataloaders=loader, verbose=False)
    saved = np.load(tmp_path / "samples" / "val_epoch0000.npz")
    return task, references, saved


@pytest.mark.parametrize("sampler", ["dpmpp_2m", "ddpm"])
def test_samples_that_copy_the_references_score_1nna_0_mmd_0_and_cov_1(tmp_path, sampler):
    task, references, saved = known_answer_validation(tmp_path, lambda normalized: normalized, sampler)
    summary = task.summary
    assert (summary["n_samples"], summary["n_refs"], summary["ranks"]) == (5, 5, 1)
    assert summary["emd_method"] == "exact"  # the default on a CPU, at any point count
    for metric in ("cd", "emd"):
        # Each copy is its twin's nearest neighbour (other shapes are O(1) away): every shape misclassified.
        assert summary[f"1nna_{metric}"] == 0.0, metric
        assert summary[f"1nna_{metric}_refs"] == summary[f"1nna_{metric}_samples"] == 0.0, metric
        assert summary[f"cov_{metric}"] == 1.0, metric
    # the copies differ from the references by float rounding in the sampler only (data units, std 3)
    assert summary["mmd_cd"] < 1e-9 and summary["mmd_emd"] < 1e-5
    # saved in sample-index order: each generated shape beside its own reference, in data units
    assert saved["index"].tolist() == saved["labels"].tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(saved["references"], references.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(saved["generated"], references.numpy(), rtol=0, atol=1e-5)
    assert summary["samples"] == str(tmp_path / "samples" / "val_epoch0000.npz")


def test_samples_far_from_the_references_score_1nna_1(tmp_path):
    task, references, saved = known_answer_validation(tmp_path, lambda normalized: normalized + 100.0)
    summary = task.summary
    for metric in ("cd", "emd"):
        # Every shape's nearest neighbour is in its own set: all correctly classified.
        assert summary[f"1nna_{metric}"] == 1.0, metric
        assert summary[f"1nna_{metric}_refs"] == summary[f"1nna_{metric}_samples"] == 1.0, metric
    # 100 normalized units on each axis are 300 data units: EMD at least ~|shift| - shape sizes
    assert summary["mmd_emd"] > 300 * 3**0.5 - 20
    np.testing.assert_allclose(saved["generated"], references.numpy() + 300.0, rtol=0, atol=1e-4)


def test_evaluation_does_not_depend_on_the_batch_size(shapes, tmp_path):
    """Batches of 1 and of 4 generate the same shapes from the same per-sample noise (1000-step DDPM's
    per-step noise included) and score the same metrics."""
    runs = []
    for batch_size in (1, 4):
        task = tiny_task(sampler="ddpm", num_timesteps=40, save_samples=True)
        root = tmp_path / f"batch{batch_size}"
        trainer = pl.Trainer(
            accelerator="cpu",
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=root,
        )
        trainer.validate(task, datamodule=data_module(shapes, batch_size=batch_size), verbose=False)
        runs.append((task.summary, np.load(root / "samples" / "val_epoch0000.npz")))
    (one, saved_one), (four, saved_four) = runs
    assert saved_one["index"].tolist() == saved_four["index"].tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(saved_one["generated"], saved_four["generated"], rtol=1e-5, atol=1e-6)
    assert not np.allclose(saved_one["generated"][0], saved_one["generated"][1], atol=1e-2)
    for key, value in one.items():
        if isinstance(value, float):
            assert four[key] == pytest.approx(value, rel=1e-5), key


def test_prediction_seeds_each_request_on_its_own():
    task = tiny_task()
    batch = {"label": torch.tensor([0, 1, 1]), "index": torch.arange(3), "seed": torch.tensor([7, 8, 9])}
    batch["n_points"] = torch.full((3,), 32)
    together = task.predict_step(batch, 0)["points"]
    for i in range(3):
        alone = task.predict_step({key: value[i : i + 1] for key, value in batch.items()}, 0)["points"]
        torch.testing.assert_close(alone[0], together[i], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(together[1], together[2], atol=1e-2)  # same label, different seeds


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
