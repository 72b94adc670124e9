"""The rendered batch script on a real SLURM controller (slurmctld + slurmd + munge on localhost):
a 2-task DDP fit completes; a job signalled with SIGUSR1 checkpoints, requeues, resumes and completes."""

import re
import sys
import time

import pytest
import torch
from conftest import TINY_CONFIG
from slurm_cluster import CannotInstall, SlurmCluster, ensure_installed


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        ensure_installed()
    except CannotInstall as reason:
        pytest.skip(f"no SLURM on this machine: {reason}")
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def submit(cluster, workdir, data, *fit_arguments):
    result = cluster.run(
        [
            sys.executable,
            "-m",
            "sciml",
            "slurm",
            "--config",
            str(TINY_CONFIG),
            "--cpus-per-task",
            "1",
            "--time",
            "00:10:00",
            "--submit",
            f"--data.init_args.path={data}",
            *fit_arguments,
        ],
        cwd=workdir,
    )
    return result.stdout.strip().splitlines()[-1]


def test_two_task_ddp_fit_completes(cluster, tmp_path, tiny_data):
    job = submit(cluster, tmp_path, tiny_data, "--trainer.max_steps=10")
    info = cluster.wait_for_state(job, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, timeout=240)
    log = (tmp_path / f"runs/tiny/slurm-{job}.out").read_text()
    assert info["JobState"] == "COMPLETED", log[-3000:]
    assert info["NumTasks"] == "2"
    run_dir = tmp_path / f"runs/tiny/slurm-{job}"
    assert "Starting with 2 processes" in log and "GLOBAL_RANK: 1" in log
    assert f"no checkpoint under {run_dir.relative_to(tmp_path)}" in log  # a new run
    checkpoint = torch.load(run_dir / "checkpoints/last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 10
    assert (run_dir / "metrics.csv").is_file()


def test_sigusr1_requeues_and_the_job_resumes_from_its_checkpoint(cluster, tmp_path, tiny_data):
    steps = 1500  # long enough (~20 s) to be signalled mid-run; a multiple of the 5 steps of an epoch
    job = submit(
        cluster, tmp_path, tiny_data, f"--trainer.max_steps={steps}", "--trainer.check_val_every_n_epoch=100"
    )
    log_file = tmp_path / f"runs/tiny/slurm-{job}.out"
    run_dir = tmp_path / f"runs/tiny/slurm-{job}"

    deadline = time.monotonic() + 120
    while not (run_dir / "checkpoints").is_dir():  # the first epoch has ended: training is under way
        assert time.monotonic() < deadline, log_file.read_text()[-3000:] if log_file.exists() else "no log"
        assert cluster.job(job)["JobState"] in {"PENDING", "RUNNING"}, log_file.read_text()[-3000:]
        time.sleep(0.2)
    cluster.run(["scancel", "--signal=USR1", job])

    requeued = cluster.wait_for_state(job, {"PENDING", "COMPLETED", "FAILED"}, timeout=120)
    log = log_file.read_text()
    assert requeued["JobState"] == "PENDING", log[-3000:]
    assert requeued["Restarts"] == "1" and requeued["Reason"] in {"BeginTime", "None", "Priority"}
    saved = re.search(r"USR1 received at step (\d+): saved (\S+hpc_ckpt_1\.ckpt), requeued job", log)
    assert saved, log[-3000:]
    stopped_at = int(saved.group(1))
    assert 0 < stopped_at < steps

    info = cluster.wait_for_state(job, {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"}, timeout=240)
    log = log_file.read_text()
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", log[-3000:]
    assert "restart 0 on" in log and "restart 1 on" in log  # one log, appended to
    assert re.search(rf"resuming from \S*slurm-{job}/hpc_ckpt_1\.ckpt", log), log[-3000:]
    final = torch.load(run_dir / "checkpoints/last.ckpt", weights_only=False)
    assert final["global_step"] == steps
    resumed_from = torch.load(run_dir / "hpc_ckpt_1.ckpt", weights_only=False)
    assert resumed_from["global_step"] == stopped_at
