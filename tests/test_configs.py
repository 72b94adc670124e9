"""Every YAML in configs/ is a test, no skip list: `fit` with fast_dev_run on CPU on fixture data.

Each config keeps its own network, task and data settings; the test only swaps in fixture data, CPU, one
process and a small batch. Where a config's cost would not fit CI it changes the cost alone, never the kind
of model: the turbulence configs run on a smaller grid (the grid sets no network parameter), the DiT-3D
paper configs sample validation shapes with a 2-step DPM-Solver++ instead of 1000 DDPM steps and the
XL model runs 2 of its 28 blocks, the reconstruction configs render 16 x 16 images at full resolution.
"""

from pathlib import Path

import pytest
import yaml
from field_fixtures import make_well_fixture
from pointcloud_fixtures import TRAIN_POINTS, make_pc15k_fixture

from sciml.cli import main
from sciml.data.dynamic_scenes import make_dynamic_scene

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))

#: Fixture grid for field configs: the configs' own architectures, on a grid small enough for CI.
FIXTURE_GRID = (12, 12, 12)

COMMON = ["--trainer.fast_dev_run=true", "--trainer.accelerator=cpu", "--trainer.devices=1"]


def test_there_are_configs():
    names = {path.name for path in CONFIGS}
    assert {
        "turbulence.yaml",
        "turbulence_paper.yaml",
        "dit3d.yaml",
        "dit3d_s4_chair.yaml",
        "shade.yaml",
    } <= names


def _field_arguments(tmp_path: Path, config: dict) -> list[str]:
    data_path = tmp_path / "fixture.h5"
    make_well_fixture(data_path, n_trajectories=5, n_steps=4, shape=FIXTURE_GRID, pressure=False)
    return [
        f"--data.init_args.path={data_path}",
        "--data.init_args.num_workers=0",
        "--data.init_args.batch_size=1",
        f"--model.init_args.net.init_args.grid_shape={list(FIXTURE_GRID)}",
    ]


def _pointcloud_arguments(tmp_path: Path, config: dict) -> list[str]:
    data_path = tmp_path / "shapes"
    make_pc15k_fixture(data_path, categories=config["data"]["init_args"]["categories"])
    arguments = [
        f"--data.init_args.path={data_path}",
        f"--data.init_args.train_points={TRAIN_POINTS}",
        "--data.init_args.n_points=256",
        "--data.init_args.num_workers=0",
        "--data.init_args.batch_size=2",
        "--trainer.strategy=auto",
    ]
    model = config["model"]["init_args"]
    if model.get("sampler") == "ddpm":
        arguments += ["--model.init_args.sampler=dpmpp_2m", "--model.init_args.sampling_steps=2"]
    if model["net"]["init_args"]["size"] in ("L", "XL"):
        arguments.append("--model.init_args.net.init_args.depth=2")
    return arguments


def _capture_arguments(tmp_path: Path, config: dict) -> list[str]:
    data_path = tmp_path / "scene"
    make_dynamic_scene(data_path, height=16, width=16, train=6, val=2, test=2, progress=False)
    return [
        f"--data.init_args.path={data_path}",
        "--data.init_args.rays_per_batch=64",
        "--data.init_args.num_workers=0",
        "--data.init_args.downscale=1",
        "--trainer.strategy=auto",
    ]


FAMILIES = {
    "sciml.data.fields.FieldDataModule": _field_arguments,
    "sciml.data.pointclouds.PointCloudDataModule": _pointcloud_arguments,
    "sciml.data.captures.CaptureDataModule": _capture_arguments,
}


@pytest.mark.parametrize("config", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_config_fits_with_fast_dev_run(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    parsed = yaml.safe_load(config.read_text())
    family = FAMILIES[parsed["data"]["class_path"]]  # a KeyError here: a config family without a test
    cli = main(
        [
            "fit",
            "--config",
            str(config),
            *COMMON,
            f"--trainer.default_root_dir={tmp_path / 'run'}",
            *family(tmp_path, parsed),
        ]
    )
    assert cli.trainer.state.finished
    if hasattr(cli.model, "statistics_ready"):
        assert cli.model.statistics_ready
    elif hasattr(cli.model, "points_std"):  # PointFlow statistics reached the task: never exactly 0 and 1
        assert float(cli.model.points_std) != 1.0 and cli.model.points_mean.abs().sum() > 0
    else:  # a reconstruction logged its image metrics on the held-out views
        assert {"val/psnr", "val/ssim"} <= set(cli.trainer.callback_metrics)
    assert not (tmp_path / "data").exists(), "fixture data was given: nothing may be generated"
