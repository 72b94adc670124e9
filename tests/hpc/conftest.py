import os
import subprocess
import sys
from pathlib import Path

import pytest
from field_fixtures import make_well_fixture

from sciml.cli import main

HERE = Path(__file__).resolve().parent
# Callbacks used by the resume tests live next to them; the fit processes import them by module name.
sys.path.insert(0, str(HERE))

#: 2 CPU processes, DDP over gloo, 24 steps in seconds (see the file).
TINY_CONFIG = HERE / "tiny_surrogate.yaml"


@pytest.fixture
def tiny_data(tmp_path_factory):
    """Fixture data for TINY_CONFIG: 3 training trajectories of 7 windows (21 samples), 1 val, 1 test."""
    path = tmp_path_factory.mktemp("data") / "fields.h5"
    make_well_fixture(path, n_trajectories=5, n_steps=8)
    return path


def run_sciml(subcommand: str, arguments: list[str], root: Path, devices: int, cwd: Path):
    """``python -m sciml <subcommand>`` in a fresh process on ``devices`` CPU processes (DDP over gloo when
    more than one), its run directory and logger under ``root``; asserts it succeeded."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("SLURM_JOB_ID", None)  # Lightning would take the process layout from SLURM
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sciml",
            subcommand,
            *arguments,
            f"--trainer.devices={devices}",
            "--trainer.strategy=" + ("ddp" if devices > 1 else "auto"),
            f"--trainer.default_root_dir={root}",
            f"--trainer.logger.init_args.save_dir={root}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def fit_two_steps(arguments: list[str], root: Path, name: str) -> Path:
    """Fit ``arguments`` for two steps in this process, logging under ``root``; the last checkpoint."""
    main(
        [
            "fit",
            *arguments,
            f"--trainer.logger.init_args.save_dir={root}",
            "--trainer.max_steps=2",
            "--trainer.val_check_interval=2",
        ]
    )
    return root / name / "version_0" / "checkpoints" / "last.ckpt"
