"""A callback that plays SLURM: it sends this process the requeue signal after a given step."""

import os
import signal

import pytorch_lightning as pl


class SignalAtStep(pl.Callback):
    def __init__(self, step: int, signum: int = int(signal.SIGUSR1)):
        self.step = step
        self.signum = signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)
