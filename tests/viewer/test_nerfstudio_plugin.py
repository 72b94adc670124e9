"""The nerfstudio plugin in its own environment: ``ns-train`` finds and trains ``shade``; a Lightning
checkpoint exported with ``python -m sciml export-viewer`` loads through nerfstudio's ``eval_setup`` and
renders like the Lightning task at the time asked for, and ``ns-render`` renders a camera path with a
``render_time`` per keyframe."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from sciml.data.captures import CaptureDataModule
from sciml.models.shade import LatentPrior, ShadeField
from sciml.tasks.shade import ShadeTask

HERE = Path(__file__).resolve().parent


def _run(command: list, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def _render_check(viewer_bin: Path, config: Path, cwd: Path, *extra) -> dict:
    command = [viewer_bin / "python", HERE / "render_check.py", "--config", config, *extra]
    return json.loads(_run(command, cwd).stdout.strip().splitlines()[-1])


def test_ns_train_finds_and_trains_shade_with_time(viewer_bin, tiny_scene, tmp_path):
    assert "shade" in _run([viewer_bin / "ns-train", "--help"], tmp_path).stdout
    _run(
        [
            viewer_bin / "ns-train",
            "shade",
            "--data",
            tiny_scene,
            "--max-num-iterations",
            "6",
            "--steps-per-save",
            "5",
            "--vis",
            "tensorboard",
            "--machine.device-type",
            "cpu",
            "--output-dir",
            tmp_path / "outputs",
            "--pipeline.datamanager.train-num-rays-per-batch",
            "256",
        ],
        tmp_path,
    )
    (config,) = (tmp_path / "outputs").glob("*/shade/*/config.yml")
    assert sorted(p.name for p in (config.parent / "nerfstudio_models").iterdir()) == ["step-000000005.ckpt"]
    report = _render_check(viewer_bin, config, tmp_path, "--times", "0.0", "1.0")
    assert report["includes_time"]  # nerfstudio shows the time slider
    assert report["shape"] == [16, 16, 3] and report["outputs"][0] == "rgb"
    assert report["untimed_vs_default_time"] == 0.0


@pytest.fixture(scope="module")
def exported(viewer_bin, tiny_scene, tmp_path_factory) -> tuple[Path, Path]:
    """A briefly trained SHaDe (prior included) whose scene moves strongly with time, exported with
    ``python -m sciml export-viewer``: ``(lightning checkpoint, nerfstudio config.yml)``."""
    root = tmp_path_factory.mktemp("exported")
    torch.manual_seed(0)
    field = ShadeField(
        resolution=16, channels=8, deformation_resolution=8, deformation_channels=8, token_dim=8
    )
    prior = LatentPrior(
        channels=8, resolution=8, latent_channels=2, downsample=2, hidden=8, dim=16, depth=1, heads=2
    )
    task = ShadeTask(field, prior=prior, num_samples=16, val_orbit_frames=0, joint_start=2)
    data = CaptureDataModule(str(tiny_scene), rays_per_batch=128, steps_per_epoch=4)
    trainer = pl.Trainer(
        accelerator="cpu", max_steps=4, logger=False, enable_progress_bar=False, default_root_dir=root
    )
    trainer.fit(task, data)
    with torch.no_grad():  # strong motion, so renders at two times must differ
        for plane in task.field.deformation.planes.planes:
            plane.normal_(0, 1.0)
        task.field.deformation.modulation.linear.weight.normal_(0, 1.0)
    checkpoint = root / "shade.ckpt"
    trainer.save_checkpoint(checkpoint)
    out = _run(
        [viewer_bin / "python", "-m", "sciml", "export-viewer", "--ckpt", checkpoint, "--out", root / "ns"],
        root,
    )
    config = Path(out.stdout.strip().splitlines()[0])
    assert config == root / "ns" / "scene" / "shade" / "lightning-step4" / "config.yml"
    return checkpoint, config


def test_export_renders_like_lightning_at_each_time(viewer_bin, exported, tmp_path):
    checkpoint, config = exported
    report = _render_check(viewer_bin, config, tmp_path, "--times", "0.2", "0.8", "--ckpt", checkpoint)
    assert report["step"] == 4 and report["includes_time"]
    assert report["change_between_times"] > 0.01  # static renders would give 0
    assert max(report["vs_lightning"]) < 1e-5
    assert report["untimed_vs_default_time"] == 0.0


@pytest.fixture(scope="session")
def ffmpeg() -> None:
    """ns-render refuses to run without ffmpeg (even for images): Debian's, installed when missing (root)."""
    if shutil.which("ffmpeg"):
        return
    assert os.geteuid() == 0 and shutil.which("apt-get"), "ffmpeg is missing and this user cannot apt-get it"
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "ffmpeg"]):
        result = subprocess.run(command, capture_output=True, text=True, env=environment)
        assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr[-3000:]}"


def test_ns_render_camera_path_renders_each_keyframe_at_its_time(
    viewer_bin, ffmpeg, exported, tiny_scene, tmp_path
):
    from PIL import Image

    from sciml.data.captures import camera_rays

    checkpoint, config = exported
    frame = json.loads((tiny_scene / "transforms_train.json").read_text())
    angle, pose = frame["camera_angle_x"], frame["frames"][0]["transform_matrix"]
    times = [0.1, 0.9]
    path = {
        "render_height": 16,
        "render_width": 16,
        "seconds": 2,
        "camera_path": [
            {"camera_to_world": sum(pose, []), "fov": math.degrees(angle), "aspect": 1.0, "render_time": t}
            for t in times
        ],
    }
    (tmp_path / "path.json").write_text(json.dumps(path))
    _run(
        [
            viewer_bin / "ns-render",
            "camera-path",
            "--load-config",
            config,
            "--camera-path-filename",
            tmp_path / "path.json",
            "--output-path",
            tmp_path / "frames",
            "--output-format",
            "images",
            "--image-format",
            "png",
        ],
        tmp_path,
    )
    frames = sorted((tmp_path / "frames").glob("*.png"))
    assert [f.name for f in frames] == ["00000.png", "00001.png"]
    images = [
        torch.from_numpy(np.asarray(Image.open(f).convert("RGB"), dtype=np.float32) / 255) for f in frames
    ]
    task = ShadeTask.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    focal = 0.5 * 16 / math.tan(0.5 * angle)
    origins, directions = camera_rays(torch.tensor([focal, focal, 8.0, 8.0]), torch.tensor(pose), 16, 16)
    for image, t in zip(images, times):
        expected = task.render_image(origins, directions, t)["rgb"].clamp(0, 1)
        assert (image - expected).abs().max() < 2.5 / 255  # 8-bit PNG
    assert (images[0] - images[1]).abs().max() > 0.01  # each keyframe at its own time
