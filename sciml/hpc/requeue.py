"""Auto-requeue under SLURM: on SIGUSR1, checkpoint at the next step boundary and requeue the job.

The batch scripts ask SLURM for ``--signal=SIGUSR1@90`` (the signal 90 s before the time limit) and
``--requeue``. Lightning's own handler saves the checkpoint inside the signal handler, wherever the main
thread happens to be: in a multi-process run one rank may be in the middle of a gradient all-reduce while
another enters the checkpoint barrier, and the collectives no longer pair up. Here the handler only sets a
flag; after each training step (and after validation) the ranks agree on it with one all-reduce, so every
rank saves the same step. Then:

1. every rank takes part in ``trainer.save_checkpoint`` of ``hpc_ckpt_<n>.ckpt`` in the run directory
   (``trainer.default_root_dir``, Lightning's naming; written atomically by rank 0),
2. rank 0 runs ``scontrol requeue <job>`` (``<array job>_<task>`` in job arrays),
3. training stops; SLURM puts the job back in the queue and, when it starts again, the batch script runs
   ``fit --ckpt_path auto``, which resumes from that checkpoint (optimizer, scheduler, loop and loader
   position, EMA and random states).

The callback does nothing outside a SLURM batch job (no ``SLURM_JOB_ID``).
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn

from sciml.hpc.checkpoints import next_requeue_checkpoint


def slurm_job_id() -> str | None:
    """The id ``scontrol requeue`` takes: ``<array job>_<task>`` for array tasks, else the job id."""
    array_job, array_task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and array_task:
        return f"{array_job}_{array_task}"
    return os.environ.get("SLURM_JOB_ID")


class SlurmAutoRequeue(pl.Callback):
    """Args:
    signum: the signal SLURM sends before the time limit (the scripts use SIGUSR1).
    """

    def __init__(self, signum: int = signal.SIGUSR1):
        self.signum = signal.Signals(signum)
        self.requested = False
        self.saved: str | None = None
        self._previous_handler: Any = None
        self._active = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit" or slurm_job_id() is None:
            return
        # Installed before Lightning registers its handlers, which then leaves this signal to us.
        self._previous_handler = signal.signal(self.signum, self._on_signal)
        self._active = True

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._active:
            signal.signal(self.signum, self._previous_handler)
            self._active = False

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.requested = True

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx
    ) -> None:
        self._requeue_if_requested(trainer)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "fit":
            self._requeue_if_requested(trainer)

    def _requeue_if_requested(self, trainer: pl.Trainer) -> None:
        if not self._active or trainer.sanity_checking or self.saved is not None:
            return
        # One collective per step: every rank must save the same step, or none.
        if not trainer.strategy.reduce_boolean_decision(torch.tensor(self.requested), all=False):
            return
        path = next_requeue_checkpoint(trainer.default_root_dir)
        # The path must agree across ranks; rank 0's choice is the one written.
        path = trainer.strategy.broadcast(str(path))
        trainer.save_checkpoint(path)
        self.saved = path
        trainer.should_stop = True
        if trainer.is_global_zero:
            job = slurm_job_id()
            result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True)
            if result.returncode == 0:
                rank_zero_info(
                    f"sciml: {self.signum.name} received at step {trainer.global_step}: saved {path}, "
                    f"requeued job {job}"
                )
            else:
                rank_zero_warn(
                    f"saved {path} but `scontrol requeue {job}` failed ({result.stderr.strip()}); "
                    f"resubmit the job to resume from it"
                )
