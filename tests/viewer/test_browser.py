"""A real browser on nerfstudio's viewer: ``ns-viewer`` serves an exported SHaDe run on a loopback port,
headless Chromium opens it, a frame is rendered, the Time slider moves, and the frame changes. The
screenshots are kept in ``test-artifacts/viewer/``."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from sciml.data.captures import CaptureDataModule
from sciml.models.shade import ShadeField
from sciml.tasks.shade import ShadeTask

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "viewer"
BROWSER = [Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")]


@pytest.fixture(scope="session")
def chromium() -> None:
    """Debian's chromium and chromedriver, installed with apt-get when missing (needs root)."""
    if all(path.exists() for path in BROWSER):
        return
    assert os.geteuid() == 0 and shutil.which("apt-get"), (
        "chromium is missing and this user cannot apt-get it"
    )
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"],
    ):
        result = subprocess.run(
            command, capture_output=True, text=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        )
        assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr[-3000:]}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _moving_checkpoint(scene: Path, root: Path) -> Path:
    """A briefly trained SHaDe whose deformation moves the scene strongly with time."""
    torch.manual_seed(0)
    field = ShadeField(
        resolution=16, channels=8, deformation_resolution=8, deformation_channels=8, token_dim=8
    )
    task = ShadeTask(field, num_samples=16, val_orbit_frames=0)
    data = CaptureDataModule(str(scene), rays_per_batch=128, steps_per_epoch=4)
    trainer = pl.Trainer(
        accelerator="cpu", max_steps=4, logger=False, enable_progress_bar=False, default_root_dir=root
    )
    trainer.fit(task, data)
    with torch.no_grad():
        for plane in task.field.deformation.planes.planes:
            plane.normal_(0, 1.0)
        task.field.deformation.modulation.linear.weight.normal_(0, 1.0)
        for plane in task.field.canonical.planes:  # denser, so the motion shows
            plane.normal_(0, 1.0)
    checkpoint = root / "moving.ckpt"
    trainer.save_checkpoint(checkpoint)
    return checkpoint


def test_the_time_slider_changes_the_rendered_frame(viewer_bin, chromium, tiny_scene, tmp_path):
    checkpoint = _moving_checkpoint(tiny_scene, tmp_path)
    export = subprocess.run(
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
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert export.returncode == 0, export.stderr[-3000:]
    config = export.stdout.strip().splitlines()[0]
    port = _free_port()
    viewer = subprocess.Popen(
        [
            viewer_bin / "ns-viewer",
            "--load-config",
            config,
            "--viewer.websocket-port",
            str(port),
            "--viewer.websocket-host",
            "127.0.0.1",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert viewer.poll() is None, f"ns-viewer exited:\n{viewer.stdout.read()[-4000:]}"
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "ns-viewer did not serve its page within 120 s"
                time.sleep(1)
        if ARTIFACTS.exists():
            shutil.rmtree(ARTIFACTS)
        check = subprocess.run(
            [
                viewer_bin / "python",
                HERE / "browser_check.py",
                "--url",
                url,
                "--out",
                ARTIFACTS,
                "--profile",
                tmp_path / "chromium-profile",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert check.returncode == 0, f"{check.stdout[-3000:]}\n{check.stderr[-5000:]}"
        report = json.loads(check.stdout.strip().splitlines()[-1])
    finally:
        viewer.terminate()
        viewer.wait(timeout=30)
    assert report["slider_before"] == 0.0 and report["slider_after"] == 1.0
    assert report["frame_std"] > 1.0  # a rendered image, not a blank canvas
    assert report["mean_change"] > 0.5  # moving the slider re-rendered the scene at another time
    assert sorted(p.name for p in ARTIFACTS.iterdir()) == [
        "page_time_0.png",
        "page_time_1.png",
        "time_0.png",
        "time_1.png",
    ]
