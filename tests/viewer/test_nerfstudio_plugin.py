"""The nerfstudio plugin in its own environment: ``ns-train`` finds and trains ``shade``; a Lightning
checkpoint exported with ``python -m sciml export-viewer`` loads through nerfstudio's ``eval_setup`` and
renders like the Lightning task, at the time asked for."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

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


def test_export_renders_like_lightning_at_each_time(viewer_bin, tiny_scene, tmp_path):
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
        accelerator="cpu", max_steps=4, logger=False, enable_progress_bar=False, default_root_dir=tmp_path
    )
    trainer.fit(task, data)
    with torch.no_grad():  # strong motion, so renders at two times must differ
        for plane in task.field.deformation.planes.planes:
            plane.normal_(0, 1.0)
        task.field.deformation.modulation.linear.weight.normal_(0, 1.0)
    checkpoint = tmp_path / "shade.ckpt"
    trainer.save_checkpoint(checkpoint)

    out = _run(
        [
            viewer_bin / "python",
            "-m",
            "sciml",
            "export-viewer",
            "--ckpt",
            checkpoint,
            "--out",
            tmp_path / "ns",
        ],
        tmp_path,
    )
    config = Path(out.stdout.strip().splitlines()[0])
    assert config == tmp_path / "ns" / "scene" / "shade" / "lightning-step4" / "config.yml"
    report = _render_check(viewer_bin, config, tmp_path, "--times", "0.2", "0.8", "--ckpt", checkpoint)
    assert report["step"] == 4 and report["includes_time"]
    assert report["change_between_times"] > 0.01  # static renders would give 0
    assert max(report["vs_lightning"]) < 1e-5
