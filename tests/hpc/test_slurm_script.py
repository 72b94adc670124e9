"""`python -m sciml slurm`: the rendered batch script, and refusals before anything is queued."""

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TINY_CONFIG

from sciml.cli import main


def sbatch_lines(script):
    return [line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH")]


def test_four_nodes_of_eight_gpus(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    script = main(
        [
            "slurm",
            "--config",
            "turbulence_paper.yaml",
            "--nodes",
            "4",
            "--gpus-per-node",
            "8",
            "--cpus-per-task",
            "12",
            "--time",
            "2-00:00:00",
            "--partition",
            "gpu",
            "--account",
            "phys",
        ]
    )
    assert capsys.readouterr().out == script
    assert sbatch_lines(script) == [
        "--job-name=turbulence_paper",
        "--nodes=4",
        "--ntasks-per-node=8",
        "--cpus-per-task=12",
        "--gres=gpu:8",
        "--time=2-00:00:00",
        "--partition=gpu",
        "--account=phys",
        "--signal=SIGUSR1@90",
        "--requeue",
        "--open-mode=append",
        "--output=runs/turbulence_paper/slurm-%j.out",
        f"--chdir={tmp_path}",
    ]
    srun = next(line for line in script.splitlines() if line.startswith("srun"))
    assert " -m sciml fit --config " in srun and "turbulence_paper.yaml" in srun
    assert "--trainer.num_nodes=4 --trainer.devices=8" in srun
    assert 'RUN_DIR="runs/turbulence_paper/slurm-${JOB_TAG}"' in script
    assert '--trainer.default_root_dir="$RUN_DIR"' in script and "--ckpt_path=auto" in script
    assert '--trainer.logger.init_args.version="slurm-${JOB_TAG}"' in script
    assert (
        "TORCH_NCCL_ASYNC_ERROR_HANDLING=1" in script and 'OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK' in script
    )
    (tmp_path / "job.sh").write_text(script)
    subprocess.run(["bash", "-n", str(tmp_path / "job.sh")], check=True)  # valid bash


def test_cpu_config_takes_its_tasks_from_trainer_devices(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    script = main(["slurm", "--config", str(TINY_CONFIG), "--cpus-per-task", "1", "--trainer.max_steps=5"])
    lines = sbatch_lines(script)
    assert "--nodes=1" in lines and "--ntasks-per-node=2" in lines
    assert not any(line.startswith("--gres") for line in lines)
    assert "--trainer.max_steps=5" in script  # unknown flags are passed on to fit


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--config", "turbulence.yaml", "--gpus-per-node", "8"],
            "config key 'trainer.devices': is 1 in .*turbulence.yaml but --gpus-per-node is 8",
        ),
        (
            [
                "--config",
                "turbulence_paper.yaml",
                "--trainer.num_nodes=2",
                "--nodes",
                "4",
                "--gpus-per-node",
                "8",
            ],
            "config key 'trainer.num_nodes': is 2 .* but --nodes is 4",
        ),
        (["--config", "turbulence_paper.yaml"], "'trainer.devices': is 'auto'.*pass --gpus-per-node"),
        (["--config", str(TINY_CONFIG), "--gpus-per-node", "4"], "'trainer.accelerator': is 'cpu'"),
        (["--config", "turbulence.yaml", "--time", "tomorrow"], "--time"),
        (["--config", "turbulence.yaml", "--sweep", "model.init_args.lr"], "option '--sweep': expected key="),
        (
            ["--config", "turbulence.yaml", "--sweep", "model.init_args.lr=1,2", "--array", "0-3"],
            "option '--array'",
        ),
    ],
)
def test_mismatches_are_refused_naming_the_key(arguments, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["slurm", *arguments])
    assert exit_info.value.code in (1, 2)
    captured = capsys.readouterr()
    assert captured.out == ""  # no script printed
    import re

    assert re.search(message, " ".join(captured.err.split())), captured.err


def test_bad_override_is_refused_before_rendering(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["slurm", "--config", "turbulence.yaml", "--trainer.bogus_key=3"])
    assert exit_info.value.code == 2 and "trainer.bogus_key" in capsys.readouterr().err


def test_sweep_is_a_job_array_with_one_combination_per_task(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    script = main(
        [
            "slurm",
            "--config",
            "turbulence.yaml",
            "--sweep",
            "model.init_args.lr=1e-3,3e-3",
            "--sweep",
            "data.init_args.batch_size=2,4",
            "--array",
            "%2",
        ]
    )
    assert "--array=0-3%2" in sbatch_lines(script)
    assert "--output=runs/turbulence/slurm-%A_%a.out" in sbatch_lines(script)
    job = tmp_path / "job.sh"
    job.write_text(script)
    # Run the script's sweep selection for task 2 with srun replaced by echo.
    shell = script.replace("srun --kill-on-bad-exit=1", "echo")
    job.write_text(shell)
    out = subprocess.run(
        ["bash", str(job)],
        env={
            "SLURM_JOB_ID": "7",
            "SLURM_ARRAY_JOB_ID": "7",
            "SLURM_ARRAY_TASK_ID": "2",
            "PATH": "/usr/bin:/bin",
        },
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert "--model.init_args.lr=3e-3 --data.init_args.batch_size=2" in out
    assert "--trainer.default_root_dir=runs/turbulence/slurm-7_2" in out
    assert (tmp_path / "runs/turbulence/slurm-7_2").is_dir()


def test_submit_without_sbatch_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SystemExit):
        main(["slurm", "--config", "turbulence.yaml", "--submit"])
    assert "sbatch is not on PATH" in capsys.readouterr().err


TEMPLATES = Path(__file__).resolve().parents[2] / "tools" / "slurm"


@pytest.mark.parametrize("template", ["single_node.sh", "multi_node.sh", "sweep_array.sh"])
def test_shipped_templates_are_what_the_renderer_makes_today(template, tmp_path, monkeypatch):
    """The templates are rendered scripts with their paths replaced by placeholders; they must not rot."""
    text = (TEMPLATES / template).read_text()
    command = " ".join(
        line.removeprefix("#").strip().rstrip("\\").strip()
        for line in text.splitlines()
        if line.startswith("#  ") or line.startswith("#       ")
    )
    arguments = shlex.split(command.split("python -m sciml slurm", 1)[1])
    monkeypatch.chdir(tmp_path)
    script = main(["slurm", *arguments])
    repo = Path(__file__).resolve().parents[2]
    script = (
        script.replace(sys.executable, "$HOME/sciml/.venv/bin/python")
        .replace(str(repo / "configs"), "$HOME/sciml/configs")
        .replace(f"--chdir={tmp_path}", "--chdir=/scratch/YOUR_USER/sciml-runs")
    )
    lines = text.splitlines()
    first_sbatch = next(i for i, line in enumerate(lines) if line.startswith("#SBATCH"))
    assert lines[:2] + lines[first_sbatch:] == script.splitlines()  # minus the template's own notes
