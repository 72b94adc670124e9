"""Every YAML in configs/ is a test, no skip list: `fit` with fast_dev_run on CPU on fixture data."""

from pathlib import Path

import pytest
from field_fixtures import make_well_fixture

from sciml.cli import main

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_there_are_configs():
    names = {path.name for path in CONFIGS}
    assert {"turbulence.yaml", "turbulence_paper.yaml"} <= names


#: Fixture grid: the configs' own architectures, on a grid small enough for CI (the grid size sets no
#: parameter of the networks, only the cost of a step).
FIXTURE_GRID = (12, 12, 12)


@pytest.mark.parametrize("config", CONFIGS, ids=[path.stem for path in CONFIGS])
def test_config_fits_with_fast_dev_run(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data_path = tmp_path / "fixture.h5"
    make_well_fixture(data_path, n_trajectories=5, n_steps=4, shape=FIXTURE_GRID, pressure=False)
    cli = main(
        [
            "fit",
            "--config",
            str(config),
            "--trainer.fast_dev_run=true",
            "--trainer.accelerator=cpu",
            "--trainer.devices=1",
            f"--trainer.default_root_dir={tmp_path / 'run'}",
            f"--data.init_args.path={data_path}",
            "--data.init_args.num_workers=0",
            "--data.init_args.batch_size=1",
            f"--model.init_args.net.init_args.grid_shape={list(FIXTURE_GRID)}",
        ]
    )
    assert cli.trainer.state.finished
    assert cli.model.statistics_ready
    assert not (tmp_path / "data").exists(), "fixture data was given: nothing may be generated"
