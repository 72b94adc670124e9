"""Exponential moving average (EMA) of a task's weights, as a callback any task can use.

After every optimizer step ``ema <- decay * ema + (1 - decay) * weights`` over the floating-point parameters
and buffers (DiT, Peebles & Xie 2023, uses decay 0.9999 and samples from the EMA weights). Validation and
testing run with the averaged weights by default; checkpoints keep the trained weights as the model state and
the average as this callback's state, so a resumed run continues the same average. Prediction runs with
the average too (Lightning restores callback states for ``predict --ckpt_path``), which is how generative
tasks sample from the EMA weights. The average is held in float32 on the model's device.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch


class EMA(pl.Callback):
    """Args:
    decay: weight of the old average at each optimizer step, in [0, 1).
    evaluate_with_ema: swap the averaged weights in for validation, test and predict.
    """

    def __init__(self, decay: float = 0.9999, evaluate_with_ema: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.evaluate_with_ema = evaluate_with_ema
        self.average: dict[str, torch.Tensor] | None = None
        self.updates = 0
        self._last_step = -1
        self._swapped: dict[str, torch.Tensor] | None = None

    @staticmethod
    def _tracked(pl_module: pl.LightningModule) -> dict[str, torch.Tensor]:
        return {
            name: value
            for name, value in pl_module.state_dict(keep_vars=True).items()
            if value.is_floating_point()
        }

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        tracked = self._tracked(pl_module)
        if self.average is None:
            self.average = {name: value.detach().float().clone() for name, value in tracked.items()}
        else:  # restored from a checkpoint
            missing = sorted(set(tracked) - set(self.average))
            if missing:
                raise KeyError(
                    f"the EMA state in the checkpoint lacks {missing[:5]}: was it made by another model?"
                )
            self.average = {name: self.average[name].to(tracked[name].device) for name in tracked}
        self._last_step = trainer.global_step

    @torch.no_grad()
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx
    ) -> None:
        # Update once per optimizer step (not per accumulated micro-batch).
        if trainer.global_step == self._last_step or self.average is None:
            return
        self._last_step = trainer.global_step
        for name, value in self._tracked(pl_module).items():
            self.average[name].lerp_(value.detach().float(), 1.0 - self.decay)
        self.updates += 1

    def _swap_in(self, pl_module: pl.LightningModule) -> None:
        if not self.evaluate_with_ema or self.average is None or self._swapped is not None:
            return
        tracked = self._tracked(pl_module)
        self._swapped = {name: value.detach().clone() for name, value in tracked.items()}
        with torch.no_grad():
            for name, value in tracked.items():
                value.copy_(self.average[name])

    def _swap_out(self, pl_module: pl.LightningModule) -> None:
        if self._swapped is None:
            return
        with torch.no_grad():
            for name, value in self._tracked(pl_module).items():
                value.copy_(self._swapped[name])
        self._swapped = None

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._swap_in(pl_module)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._swap_out(pl_module)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._swap_in(pl_module)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._swap_out(pl_module)

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._swap_in(pl_module)

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._swap_out(pl_module)

    def state_dict(self) -> dict[str, Any]:
        average = None if self.average is None else {k: v.cpu() for k, v in self.average.items()}
        return {"decay": self.decay, "updates": self.updates, "average": average}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.updates = int(state_dict["updates"])
        self.average = state_dict["average"]
