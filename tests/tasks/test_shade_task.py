"""ShadeTask: the rendering wiring against a closed form, fitting a generated dynamic scene (SHaDe and
the HexPlane-style baseline), the two-stage schedule with the latent prior and the temporal loss,
checkpoints that rebuild the field and the prior, held-out metrics, the video metric and renders, and the
evaluation against known answers: a purpose-built capture whose exact model (and its value at the wrong
time, and with a known error) is known in closed form."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from capture_fixtures import look_at
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from sciml.core.errors import ConfigError
from sciml.data.captures import CaptureDataModule, ImageRayDataset, camera_rays, read_capture
from sciml.data.dynamic_scenes import make_dynamic_scene
from sciml.metrics.images import psnr, ssim, temporal_consistency
from sciml.models.shade import HexPlaneField, LatentPrior, ShadeField
from sciml.tasks.shade import VIEW_COLUMNS, ShadeTask

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


def _render(task: ShadeTask, view: dict) -> torch.Tensor:
    """``(H, W, 3)``: the task's render of an evaluation item at the item's own time, as scored."""
    return task.render_image(view["origins"], view["directions"], float(view["time"]))["rgb"].clamp(0, 1)


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
    # The logged means are those of the final field's own renders of the two views, each at its time.
    views = [data.dataset("val")[i] for i in range(2)]
    scores = [
        (float(psnr(image[None], view["rgb"][None])), float(ssim(image[None], view["rgb"][None])))
        for view, image in ((view, _render(task, view)) for view in views)
    ]
    assert task.summary["views"] == 2
    assert task.summary["psnr"] == pytest.approx(sum(s[0] for s in scores) / 2, rel=1e-6)
    assert task.summary["ssim"] == pytest.approx(sum(s[1] for s in scores) / 2, rel=1e-6, abs=1e-7)
    assert float(trainer.callback_metrics["val/psnr"]) == pytest.approx(task.summary["psnr"], rel=1e-6)
    assert float(trainer.callback_metrics["val/ssim"]) == pytest.approx(task.summary["ssim"], rel=1e-6)
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
    # The video metric is that of the final field's renders of the video frames, in order, at their times.
    video = [trainer.datamodule.dataset("video")[i] for i in range(3)]
    frames = torch.stack([_render(task, frame) for frame in video])
    expected = temporal_consistency(frames, torch.stack([frame["rgb"] for frame in video]))
    assert expected > 0 and task.summary["temporal error"] == pytest.approx(expected, rel=1e-6)
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


# ---- evaluation against known answers
#
# A purpose-built D-NeRF capture whose exact model is known: every pixel shows one of two colours of a
# checker over the ray's direction that slides with time. CheckerField is opaque everywhere and coloured by
# that checker, so at a view's own time it reproduces the view bit for bit (an opaque first sample gets
# weight 1, the rest 0), while at any other time the checker has slid. Rendering at the wrong time, scoring
# against the wrong frame or averaging the views wrongly each change the numbers below.

CELLS = 16.0  # checker cells per unit of ray direction: several across a view
SPEED = 5.0  # cells the checker slides per unit time (half a cell between the video frames)
PALETTE_BYTES = torch.tensor([[51, 102, 204], [204, 153, 51]], dtype=torch.uint8)
PALETTE = PALETTE_BYTES.float() / 255  # the reader's float32 of those bytes, exactly
# Held-out times away from 0 and from the times 2 k / SPEED at which the checker looks as at t = 0. The
# D-NeRF layout needs a train split (it is how the format is recognized); validation does not read it.
CHECKER_TIMES = {"train": (0.0, 1.0), "val": (0.3, 0.5, 0.9), "video": (0.1, 0.2, 0.3, 0.4, 0.5)}
CHECKER_SIZE = 16  # pixels: SSIM's 11 x 11 window needs at least 11
# A narrow field of view: every pixel ray passes within 1.4 of the origin, so it crosses the default scene
# box [-1.5, 1.5]^3 over at least 1.2 units and the opaque field hides the background everywhere.
CHECKER_ANGLE = 0.5
BIAS = 0.04  # CheckerField's colour offset per unit (1 + t): PSNR -20 log10(BIAS (1 + t))


def checker(directions: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """``(N,)`` colour index (0 or 1) of rays ``(N, 3)`` at ``times (N,)``; elementwise float32 operations
    only, so the capture's pixels and the field's samples of the same ray agree bit for bit."""
    cells = (directions * CELLS).floor()  # (N, 3)
    slid = (directions[:, 0] * CELLS + times * SPEED).floor()  # (N,): the x cells slide with time
    return (slid + cells[:, 1] + cells[:, 2]).remainder(2).long()


class CheckerField(nn.Module):
    """The exact model of the checker capture, optionally with every ray rendered at ``frozen_time`` (a
    field that ignores time, as a task rendering at the wrong time sees it) or with ``BIAS (1 + t)`` added
    to every colour (a known error per view)."""

    def __init__(self, frozen_time: float | None = None, biased: bool = False):
        super().__init__()
        self.frozen_time, self.biased = frozen_time, biased

    def forward(self, points, directions, times):
        if self.frozen_time is not None:
            times = torch.full_like(times, self.frozen_time)
        rgb = PALETTE[checker(directions, times)]
        if self.biased:
            rgb = rgb + BIAS * (1 + times[:, None])
        return {"density": torch.full_like(times, 1e4), "rgb": rgb}


def _checker_intrinsics() -> np.ndarray:
    focal = 0.5 * CHECKER_SIZE / math.tan(0.5 * CHECKER_ANGLE)  # D-NeRF's focal length, as the reader has it
    return np.array([focal, focal, CHECKER_SIZE / 2, CHECKER_SIZE / 2], dtype=np.float32)


def _checker_images(poses: list[np.ndarray], times: list[float]) -> np.ndarray:
    """``(F, H, W, 3)`` uint8: the checker seen from camera-to-world ``poses`` at ``times``."""
    images = []
    for pose, time in zip(poses, times):
        _, directions = camera_rays(
            _checker_intrinsics(), pose.astype(np.float32), CHECKER_SIZE, CHECKER_SIZE
        )
        flat = directions.reshape(-1, 3)
        index = checker(flat, torch.full((flat.shape[0],), time, dtype=torch.float32))
        images.append(PALETTE_BYTES[index].reshape(CHECKER_SIZE, CHECKER_SIZE, 3).numpy())
    return np.stack(images)


@pytest.fixture(scope="module")
def checker_capture(tmp_path_factory):
    """The checker capture in the D-NeRF layout: ``(root, {split: (poses, times)})``. Views look at the
    origin from distance 4 at 30 degrees of elevation; the video camera stands still."""
    root = tmp_path_factory.mktemp("checker")
    frames = {}
    for split, times in CHECKER_TIMES.items():
        azimuths = [0.7] * len(times) if split == "video" else [0.7 + 2.1 * i for i in range(len(times))]
        up, level = math.sin(math.radians(30)), math.cos(math.radians(30))
        poses = [look_at(4 * np.array([math.cos(a) * level, math.sin(a) * level, up])) for a in azimuths]
        (root / split).mkdir()
        entries = []
        for i, (pose, image) in enumerate(zip(poses, _checker_images(poses, list(times)))):
            Image.fromarray(image).save(root / split / f"r_{i:03d}.png")
            entries.append(
                {"file_path": f"./{split}/r_{i:03d}", "time": times[i], "transform_matrix": pose.tolist()}
            )
        meta = {"camera_angle_x": CHECKER_ANGLE, "frames": entries}
        (root / f"transforms_{split}.json").write_text(json.dumps(meta))
        frames[split] = (poses, list(times))
    return root, frames


def _truth(root, split: str) -> torch.Tensor:
    """``(F, H, W, 3)`` float: the split's PNGs as written, read without sciml."""
    files = sorted((root / split).glob("r_*.png"))
    return torch.from_numpy(np.stack([np.asarray(Image.open(f), dtype=np.float64) / 255 for f in files]))


def _validate(field: nn.Module, root, out, dataloaders=None) -> tuple[ShadeTask, dict, list[dict]]:
    """Trainer.validate of the field on the capture: the task, the logged metrics and the per-view table."""
    task = ShadeTask(field, num_samples=4, render_count=0, val_orbit_frames=0)
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=out,
    )
    data = None if dataloaders is not None else CaptureDataModule(str(root), steps_per_epoch=1)
    trainer.validate(task, datamodule=data, dataloaders=dataloaders, verbose=False)
    with (out / "plots" / "val" / "views_epoch0000.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert rows and list(rows[0]) == list(VIEW_COLUMNS)
    views = [{key: float(value) for key, value in row.items()} for row in rows]
    return task, {key: float(value) for key, value in trainer.callback_metrics.items()}, views


def test_the_exact_model_scores_perfectly_only_when_each_view_is_rendered_at_its_own_time(
    checker_capture, tmp_path
):
    root, frames = checker_capture
    times = frames["val"][1]
    task, logged, views = _validate(CheckerField(), root, tmp_path / "exact")
    assert [v["view"] for v in views] == [0, 1, 2]
    assert [v["time"] for v in views] == pytest.approx(times)
    assert all(v["psnr"] == math.inf and v["ssim"] == pytest.approx(1.0, abs=1e-6) for v in views)
    assert logged["val/psnr"] == math.inf and logged["val/ssim"] == pytest.approx(1.0, abs=1e-6)
    assert logged["val/temporal_error"] == 0.0 and task.summary["temporal error"] == 0.0
    assert task.summary["video psnr"] == math.inf and task.summary["views"] == 3

    # The same field rendered at t = 0 whatever the view's time: what a task rendering at t = 0 reports.
    task, logged, views = _validate(CheckerField(frozen_time=0.0), root, tmp_path / "frozen")
    truth = _truth(root, "val")
    at_zero = torch.from_numpy(_checker_images(frames["val"][0], [0.0] * 3)).double() / 255
    expected_psnr, expected_ssim = psnr(at_zero, truth), ssim(at_zero, truth)
    assert [v["psnr"] for v in views] == pytest.approx(expected_psnr.tolist(), rel=1e-5)
    assert [v["ssim"] for v in views] == pytest.approx(expected_ssim.tolist(), rel=1e-4, abs=1e-5)
    assert logged["val/psnr"] < 15 and logged["val/ssim"] < 0.5  # against inf and 1 at the right times
    # A video that does not move scores the truth's own mean absolute frame-to-frame change.
    video = _truth(root, "video")
    expected = float((video[1:] - video[:-1]).abs().mean())
    assert expected > 0.1
    assert task.summary["temporal error"] == pytest.approx(expected, rel=1e-6)
    assert logged["val/temporal_error"] == pytest.approx(expected, rel=1e-6)


def test_view_and_video_metrics_are_the_closed_forms_of_a_known_error(checker_capture, tmp_path):
    """Colours off by BIAS (1 + t): PSNR -20 log10(BIAS (1 + t)) per view, the temporal error
    BIAS x the mean time step of the video; the logged values are the plain means over the views."""
    root, frames = checker_capture
    times = torch.tensor(frames["val"][1], dtype=torch.float64)
    task, logged, views = _validate(CheckerField(biased=True), root, tmp_path)
    truth = _truth(root, "val")
    expected_psnr = -20 * torch.log10(BIAS * (1 + times))
    expected_ssim = ssim(truth + BIAS * (1 + times[:, None, None, None]), truth)
    assert [v["view"] for v in views] == [0, 1, 2]
    assert [v["psnr"] for v in views] == pytest.approx(expected_psnr.tolist(), rel=1e-5)
    assert [v["ssim"] for v in views] == pytest.approx(expected_ssim.tolist(), rel=1e-5)
    assert logged["val/psnr"] == pytest.approx(float(expected_psnr.mean()), rel=1e-5)
    assert logged["val/ssim"] == pytest.approx(float(expected_ssim.mean()), rel=1e-5)
    video_times = torch.tensor(frames["video"][1], dtype=torch.float64)
    assert task.summary["temporal error"] == pytest.approx(BIAS * float(video_times.diff().mean()), rel=1e-4)
    expected_video_psnr = float((-20 * torch.log10(BIAS * (1 + video_times))).mean())
    assert task.summary["video psnr"] == pytest.approx(expected_video_psnr, rel=1e-5)


def test_a_view_evaluated_twice_counts_once(checker_capture, tmp_path):
    """Views 0 and 2 evaluated twice, as the padding of uneven DDP shards repeats views."""
    root, frames = checker_capture
    loader = DataLoader(ImageRayDataset(read_capture(root, "val")), batch_size=1, sampler=[0, 1, 2, 2, 0])
    task, logged, views = _validate(CheckerField(biased=True), root, tmp_path, dataloaders=loader)
    times = torch.tensor(frames["val"][1], dtype=torch.float64)
    assert [v["view"] for v in views] == [0, 1, 2] and task.summary["views"] == 3
    expected = float((-20 * torch.log10(BIAS * (1 + times))).mean())
    assert logged["val/psnr"] == pytest.approx(expected, rel=1e-5)


def test_evaluation_renders_draw_no_random_numbers():
    """Every process renders its views without touching the global generator (samples at bin midpoints),
    so the numbers depend neither on the seed nor on how many views each process renders first."""
    task = ShadeTask(_field("shade"), num_samples=8, eval_chunk=50)
    origins, directions = camera_rays(
        _checker_intrinsics(), look_at([0.0, -4.0, 1.0]).astype(np.float32), 12, 12
    )
    state = torch.get_rng_state()
    first = task.render_image(origins, directions, 0.4)["rgb"]
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(123)
    torch.testing.assert_close(task.render_image(origins, directions, 0.4)["rgb"], first, rtol=0, atol=0)
