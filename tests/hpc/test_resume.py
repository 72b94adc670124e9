"""Requeue and exact resume on CPU: a run interrupted by SLURM's signal and resumed with `--ckpt_path auto`
ends with the same weights, optimizer, EMA and step count as an uninterrupted run."""

import os
import stat

import pytest
import torch
from conftest import TINY_CONFIG

from sciml.cli import main
from sciml.hpc.checkpoints import AtomicCheckpointIO, find_resume_checkpoint
from sciml.tasks.ema import EMA


def fit(root, data, *extra):
    return main(
        [
            "fit",
            "--config",
            str(TINY_CONFIG),
            "--trainer.devices=1",
            "--trainer.strategy=auto",
            f"--trainer.default_root_dir={root}",
            f"--trainer.logger.init_args.save_dir={root}",
            f"--data.init_args.path={data}",
            *extra,
        ]
    )


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """A SLURM job id and an `scontrol` that records what it was asked."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "scontrol.log"
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {record}\n')
    scontrol.chmod(scontrol.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    return record


def training_state(cli):
    ema = next(c for c in cli.trainer.callbacks if isinstance(c, EMA))
    optimizer = cli.trainer.optimizers[0].state_dict()
    return {
        "weights": {k: v.clone() for k, v in cli.model.state_dict().items()},
        "ema": {k: v.clone() for k, v in ema.average.items()},
        "exp_avg": [s["exp_avg"].clone() for s in optimizer["state"].values()],
        "lr": cli.trainer.optimizers[0].param_groups[0]["lr"],
        "step": cli.trainer.global_step,
    }


def assert_identical(a, b):
    assert a["step"] == b["step"] and a["lr"] == b["lr"]
    for key in ("weights", "ema"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), f"{key} {name} differs"
    for x, y in zip(a["exp_avg"], b["exp_avg"], strict=True):
        assert torch.equal(x, y)


def test_interrupted_and_resumed_run_matches_the_uninterrupted_one(tmp_path, tiny_data, fake_slurm):
    reference = training_state(fit(tmp_path / "reference", tiny_data))
    assert reference["step"] == 24

    run = tmp_path / "requeued"
    # Step 13 is in the middle of the second epoch (10 batches per epoch).
    interrupted = fit(
        run, tiny_data, "--trainer.callbacks+=interrupt.SignalAtStep", "--trainer.callbacks.step=13"
    )
    assert interrupted.trainer.global_step == 13
    assert (run / "hpc_ckpt_1.ckpt").is_file()
    assert fake_slurm.read_text().split() == ["requeue", "4242"]

    resumed = fit(run, tiny_data, "--ckpt_path=auto")
    assert_identical(training_state(resumed), reference)


def test_auto_resume_skips_a_truncated_newest_checkpoint(tmp_path, tiny_data, fake_slurm):
    run = tmp_path / "run"
    fit(run, tiny_data, "--trainer.callbacks+=interrupt.SignalAtStep", "--trainer.callbacks.step=6")
    good = run / "hpc_ckpt_1.ckpt"
    # A newer checkpoint cut short, as a full disk or a killed copy leaves it.
    bad = run / "hpc_ckpt_2.ckpt"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.warns(UserWarning, match=r"hpc_ckpt_2.ckpt cannot be resumed from .*skipping it"):
        assert find_resume_checkpoint(run) == good
    with pytest.warns(UserWarning, match="hpc_ckpt_2.ckpt cannot be resumed from"):
        resumed = fit(run, tiny_data, "--ckpt_path=auto", "--trainer.max_steps=8")
    assert resumed.trainer.global_step == 8


def test_auto_resume_in_an_empty_run_directory_starts_fresh(tmp_path, tiny_data):
    cli = fit(tmp_path / "fresh", tiny_data, "--ckpt_path=auto", "--trainer.max_steps=2")
    assert cli.trainer.global_step == 2
    assert find_resume_checkpoint(tmp_path / "does-not-exist") is None


def test_atomic_checkpoint_io_leaves_the_old_file_when_a_save_fails(tmp_path):
    target = tmp_path / "model.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 1}, target)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("killed half-way")

    with pytest.raises(RuntimeError, match="killed half-way"):
        io.save_checkpoint({"step": 2, "bad": Unpicklable()}, target)
    assert torch.load(target, weights_only=False) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["model.ckpt"]  # no temporary left behind


def test_auto_resume_stops_when_checkpoints_exist_but_none_loads(tmp_path, tiny_data, capsys):
    run = tmp_path / "run"
    fit(run, tiny_data, "--trainer.max_steps=2")
    last = run / "tiny" / "version_0" / "checkpoints" / "last.ckpt"
    saved = last.read_bytes()
    last.write_bytes(saved[: len(saved) // 2])  # cut short, as a full disk leaves it
    (run / "hpc_ckpt_1.ckpt").write_bytes(b"not a checkpoint")
    others = sorted(p for p in run.rglob("*.ckpt") if p not in (last, run / "hpc_ckpt_1.ckpt"))
    for other in others:
        other.unlink()
    before = last.read_bytes()

    with pytest.raises(SystemExit) as stop:
        fit(run, tiny_data, "--ckpt_path=auto", "--trainer.max_steps=4")
    assert stop.value.code == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    message = " ".join(err.split())  # rich wraps the one logical line at the terminal width
    assert lines[0].startswith("error: option '--ckpt_path': auto found 2 checkpoint(s) under")
    assert f"{run / 'hpc_ckpt_1.ckpt'} (RuntimeError: mmap can only be used" in message
    assert f"{last} (RuntimeError:" in message
    assert "pass --start_over true to start from step 0" in message
    assert "Traceback" not in err
    assert last.read_bytes() == before, "the run must stop before it writes anything"

    # The explicit choice to start over does.
    with pytest.warns(UserWarning, match="starting over from step 0"):
        restarted = fit(run, tiny_data, "--ckpt_path=auto", "--start_over=true", "--trainer.max_steps=4")
    assert restarted.trainer.global_step == 4
