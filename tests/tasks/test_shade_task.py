"""ShadeTask: the rendering wiring against a closed form, fitting a generated dynamic scene (SHaDe and
the HexPlane-style baseline), the two-stage schedule with the latent prior and the temporal loss,
checkpoints that rebuild the field and the prior, held-out metrics, the video metric and renders."""

from __future__ import annotations

import math

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from sciml.core.errors import ConfigError
from sciml.data.captures import CaptureDataModule
from sciml.data.dynamic_scenes import make_dynamic_scene
from sciml.models.shade import HexPlaneField, LatentPrior, ShadeField
from sciml.tasks.shade import ShadeTask

BOX = ((-1.5, 1.5),) * 3


class ConstantField(nn.Module):
    """Density ``sigma`` and colour ``c`` everywhere."""

    def __init__(self, sigma: float, colour: tuple[float, float, float]):
        super().__init__()
        self.sigma, self.colour = sigma, torch.tensor(colour)

    def forward(self, points, directions, times):
        n = points.shape[0]
        return {"density": torch.full((n,), self.sigma), "rgb": self.colour.expand(n, 3)}

    def regularizers(self, sample_points=None):
        return {"tv": torch.zeros(())}


def test_render_rays_matches_the_closed_form_of_a_uniform_medium():
    """Inside box [-1.5, 1.5]^3 and [near 2, far 6]: a ray from (0, 0, 4) along -z crosses 3 units."""
    task = ShadeTask(ConstantField(0.4, (0.2, 0.6, 0.9)), num_samples=32)
    origins = torch.tensor([[0.0, 0.0, 4.0], [0.0, 0.0, 3.0]])
    directions = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, -1.0]])
    out = task.render_rays(origins, directions, torch.zeros(2))
    # ray 1 enters the box at t = 2.5 and leaves at 5.5 (3 units); ray 2 starts at near 2 -> t in [2, 4.5]
    lengths = torch.tensor([3.0, 2.5])
    accumulation = 1 - torch.exp(-0.4 * lengths)
    torch.testing.assert_close(out["accumulation"], accumulation)
    expected = torch.tensor([0.2, 0.6, 0.9]) * accumulation[:, None] + (1 - accumulation[:, None])
    torch.testing.assert_close(out["rgb"], expected)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("scene") / "dynamic_scene"
    make_dynamic_scene(root, height=16, width=16, train=8, val=2, test=2, video=3, progress=False)
    return root


def _field(kind: str) -> nn.Module:
    torch.manual_seed(0)
    if kind == "shade":
        return ShadeField(
            BOX, resolution=32, channels=8, deformation_resolution=16, deformation_channels=8, token_dim=8
        )
    return HexPlaneField(BOX, resolution=32, time_resolution=8, channels=8, hidden=32)


@pytest.mark.parametrize("kind", ["shade", "hexplane"])
def test_fits_one_batch_of_a_generated_scene(scene, kind):
    """The photometric error on a fixed batch of 512 rays falls by 6 dB in 120 steps."""
    data = CaptureDataModule(str(scene), rays_per_batch=512, steps_per_epoch=1)
    data.setup("fit")
    batch = data.dataset("train")[(0, 0)]
    task = ShadeTask(_field(kind), num_samples=24)
    optimizer = torch.optim.Adam(task.parameters(), lr=2e-2)

    def error() -> torch.Tensor:
        out = task.render_rays(batch["origins"], batch["directions"], batch["time"])
        return torch.nn.functional.mse_loss(out["rgb"], batch["rgb"])

    first = float(error().detach())
    for _ in range(120):
        optimizer.zero_grad()
        error().backward()
        optimizer.step()
    gain = 10 * math.log10(first / float(error().detach()))
    assert gain > 6.0, f"{kind}: only {gain:.1f} dB"


def test_fit_validates_saves_renders_and_the_checkpoint_rebuilds_the_field(scene, tmp_path):
    data = CaptureDataModule(str(scene), rays_per_batch=256, steps_per_epoch=4)
    task = ShadeTask(_field("shade"), num_samples=16)
    trainer = pl.Trainer(
        accelerator="cpu", max_steps=4, logger=False, enable_progress_bar=False, default_root_dir=tmp_path
    )
    trainer.fit(task, data)
    assert {"val/psnr", "val/ssim"} <= set(trainer.callback_metrics)
    assert task.summary["views"] == 2 and math.isfinite(task.summary["psnr"])
    assert sorted(p.name for p in (tmp_path / "plots" / "val").glob("*.png")) == [
        "view000_epoch0000.png",
        "view001_epoch0000.png",
    ]
    path = tmp_path / "task.ckpt"
    trainer.save_checkpoint(path)
    loaded = ShadeTask.load_from_checkpoint(path)
    assert isinstance(loaded.field, ShadeField) and loaded.field.config == task.field.config
    torch.testing.assert_close(loaded.near_far, torch.tensor([2.0, 6.0]))
    origins, directions = torch.tensor([[0.0, 0.0, 4.0]]), torch.tensor([[0.0, 0.0, -1.0]])
    torch.testing.assert_close(
        loaded.render_rays(origins, directions, torch.tensor([0.3]))["rgb"],
        task.render_rays(origins, directions, torch.tensor([0.3]))["rgb"],
    )


def test_fit_then_predict_renders_an_orbit_through_time(scene, tmp_path, monkeypatch):
    from PIL import Image

    from sciml.cli import main

    monkeypatch.chdir(tmp_path)
    common = [
        "--config",
        "shade.yaml",
        f"--data.init_args.path={scene}",
        "--data.init_args.rays_per_batch=128",
        "--data.init_args.orbit_frames=3",
        "--trainer.accelerator=cpu",
        "--model.init_args.num_samples=8",
        "--model.init_args.field.init_args.resolution=16",
        "--model.init_args.field.init_args.deformation_resolution=8",
    ]
    main(["fit", *common, "--trainer.max_steps=3", "--trainer.val_check_interval=3"])
    checkpoint = tmp_path / "runs" / "shade" / "version_0" / "checkpoints" / "last.ckpt"
    main(["predict", *common, f"--ckpt_path={checkpoint}"])
    out = tmp_path / "runs" / "shade" / "predictions"
    frames = sorted(out.glob("frame_*.png"))
    assert [f.name for f in frames] == ["frame_0000.png", "frame_0001.png", "frame_0002.png"]
    assert Image.open(frames[0]).size == (16, 16)
    gif = Image.open(out / "path.gif")
    assert gif.n_frames == 3


def _prior(channels=8) -> LatentPrior:
    torch.manual_seed(1)
    return LatentPrior(
        channels=channels, resolution=8, latent_channels=2, downsample=2, hidden=8, dim=16, depth=1, heads=2
    )


def _prior_gradients(task: ShadeTask, stage: int) -> tuple[dict, dict]:
    task.zero_grad(set_to_none=True)
    torch.manual_seed(7)  # the same scene times, diffusion steps and noise in both stages
    task._prior_losses(stage)["loss"].backward()

    def grads(module):
        return {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}

    return grads(task.field), grads(task.prior)


def test_stage_one_keeps_field_and_prior_apart_and_stage_two_refines_the_field():
    task = ShadeTask(_field("shade"), prior=_prior(), num_samples=8)
    with torch.no_grad():  # a trained prior: adaLN-Zero's initial denoiser ignores its input
        for parameter in task.prior.denoiser.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    field_1, prior_1 = _prior_gradients(task, stage=1)
    field_2, prior_2 = _prior_gradients(task, stage=2)
    assert field_1 == {}  # the prior trains on detached planes
    assert any(name.startswith("canonical") for name in field_2)
    assert any(name.startswith("deformation.planes") for name in field_2)
    assert prior_1.keys() == prior_2.keys()
    for name in prior_1:  # the refinement goes through frozen weights: the prior's own gradient is unchanged
        torch.testing.assert_close(prior_1[name], prior_2[name])


def test_temporal_loss_is_zero_for_a_static_scene_and_positive_for_a_moving_one():
    origins = torch.tensor([[0.0, 0.0, 4.0]]).repeat(64, 1) + 0.02 * torch.randn(64, 3)
    directions = torch.nn.functional.normalize(torch.tensor([[0.0, 0.0, -1.0]]) + 0.2 * torch.randn(64, 3))
    times = torch.rand(64)
    static = ShadeTask(ConstantField(0.4, (0.2, 0.6, 0.9)), num_samples=16, temporal_rays=32)
    rendered = static.render_rays(origins, directions, times, perturb=True)
    assert float(static._temporal_loss(origins, directions, times, rendered)) == 0.0
    moving = ShadeTask(_field("hexplane"), num_samples=16, temporal_rays=32, temporal_delta=0.5)
    with torch.no_grad():
        for plane in moving.field.planes.planes[3:]:  # space-time planes vary along t
            plane.add_(torch.randn_like(plane))
    rendered = moving.render_rays(origins, directions, times, perturb=True)
    assert float(moving._temporal_loss(origins, directions, times, rendered)) > 1e-4


def test_prior_needs_a_field_with_planes_of_its_channel_count():
    with pytest.raises(ConfigError, match="model.init_args.prior"):
        ShadeTask(_field("hexplane"), prior=_prior())
    with pytest.raises(ConfigError, match="model.init_args.prior.init_args.channels.*plane channels \\(8\\)"):
        ShadeTask(_field("shade"), prior=_prior(channels=16))


def test_two_stage_fit_scores_the_video_and_a_stage_two_run_starts_from_stage_one(scene, tmp_path):
    from PIL import Image

    def fit(task, steps, root):
        data = CaptureDataModule(str(scene), rays_per_batch=128, steps_per_epoch=steps, orbit_frames=2)
        trainer = pl.Trainer(
            accelerator="cpu", max_steps=steps, logger=False, enable_progress_bar=False, default_root_dir=root
        )
        trainer.fit(task, data)
        return trainer

    task = ShadeTask(_field("shade"), prior=_prior(), num_samples=8, joint_start=2, val_orbit_frames=3)
    trainer = fit(task, 4, tmp_path / "both")
    assert task.stage == 2 and {"train/refinement", "train/temporal"} <= set(trainer.callback_metrics)
    assert math.isfinite(task.summary["temporal error"]) and task.summary["temporal error"] > 0
    plots = tmp_path / "both" / "plots" / "val"
    assert Image.open(plots / "video_epoch0000.gif").n_frames == 3
    assert Image.open(plots / "video_epoch0000.gif").size == (32, 16)  # model | truth
    assert Image.open(plots / "orbit_epoch0000.gif").n_frames == 3
    checkpoint = tmp_path / "stage1.ckpt"
    trainer.save_checkpoint(checkpoint)
    loaded = ShadeTask.load_from_checkpoint(checkpoint)  # rebuilds field and prior
    assert isinstance(loaded.prior, LatentPrior) and loaded.prior.config == task.prior.config
    torch.testing.assert_close(loaded.prior.latent_scale, task.prior.latent_scale)

    stage_two = ShadeTask(
        _field("shade"), prior=_prior(), num_samples=8, joint_start=0, init_from=str(checkpoint)
    )
    stage_two.trainer = pl.Trainer(accelerator="cpu", logger=False)
    stage_two.setup("fit")
    for name, value in stage_two.state_dict().items():
        torch.testing.assert_close(value, task.state_dict()[name])
    other = ShadeTask(_field("hexplane"), num_samples=8, init_from=str(checkpoint))
    other.trainer = stage_two.trainer
    with pytest.raises(ConfigError, match="model.init_args.init_from.*does not match"):
        other.setup("fit")
