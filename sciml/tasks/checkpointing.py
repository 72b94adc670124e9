"""What checkpoints carry beyond Lightning's defaults.

- The injected networks: tasks leave them out of ``save_hyperparameters``; each network's own constructor
  arguments (its ``config`` attribute) and class path are stored next to the weights instead
  (``checkpoint["sciml_net"][attribute]``), so ``Task.load_from_checkpoint(path)`` needs nothing else.
- Random number generator states (``RandomStateCheckpoint``), so a resumed run draws the same numbers as an
  uninterrupted one.
"""

from __future__ import annotations

import importlib
import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_warn
from torch import nn

NET_KEY = "sciml_net"


def describe_net(net: nn.Module) -> dict[str, Any] | None:
    """``{"class_path", "init_args"}`` of a network that exposes its constructor arguments as ``config``."""
    config = getattr(net, "config", None)
    if not isinstance(config, dict):
        return None
    return {"class_path": f"{type(net).__module__}.{type(net).__qualname__}", "init_args": dict(config)}


def build_net(description: dict[str, Any]) -> nn.Module:
    module_name, _, class_name = description["class_path"].rpartition(".")
    net_class = getattr(importlib.import_module(module_name), class_name)
    return net_class(**description["init_args"])


class InjectedNetCheckpoint(pl.LightningModule):
    """Mixin for tasks whose injected networks live in the attributes (and constructor arguments) named by
    ``injected``: the first is required, the others may be ``None`` (e.g. an optional prior)."""

    injected: tuple[str, ...] = ("net",)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        descriptions = {}
        for name in self.injected:
            module = getattr(self, name)
            description = None if module is None else describe_net(module)
            if description is not None:
                descriptions[name] = description
        if descriptions:
            checkpoint[NET_KEY] = descriptions

    @classmethod
    def load_from_checkpoint(
        cls, checkpoint_path, map_location=None, hparams_file=None, strict=None, **kwargs
    ):
        """Lightning's loader; the networks are rebuilt from the checkpoint unless they are passed in."""
        missing = [name for name in cls.injected if name not in kwargs]
        if missing:
            stored = torch.load(checkpoint_path, map_location="cpu", weights_only=False).get(NET_KEY, {})
            for name in missing:
                if name in stored:
                    kwargs[name] = build_net(stored[name])
                elif name == cls.injected[0]:
                    raise KeyError(
                        f"{checkpoint_path}: holds no description of its '{name}' network ('{NET_KEY}'); the "
                        f"network has no `config` attribute, so pass {name}=<the network> to "
                        "load_from_checkpoint"
                    )
        return super().load_from_checkpoint(
            checkpoint_path, map_location=map_location, hparams_file=hparams_file, strict=strict, **kwargs
        )


class RandomStateCheckpoint(pl.Callback):
    """Stores every rank's random number generator states in checkpoints and restores them on resume.

    Lightning saves weights, optimizers, schedulers, loop progress and stateful loaders but not the Python,
    NumPy and torch (CPU and CUDA) generators, so noise drawn after a resume (dropout, diffusion timesteps)
    would differ from an uninterrupted run. States are captured when the checkpoint is made (on every rank:
    ranks may draw different numbers) and put back just before the first training batch after the resume,
    after the sanity check and loader start-up, which draw numbers of their own.
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        state = _capture_random_state()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, state)
            return {"ranks": gathered}
        return {"ranks": [state]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx
    ) -> None:
        if self._pending is None:
            return
        ranks, self._pending = self._pending["ranks"], None
        if len(ranks) != trainer.world_size:
            rank_zero_warn(
                f"the checkpoint holds random states of {len(ranks)} process(es) but this run has "
                f"{trainer.world_size}: random numbers continue from a fresh seed, not from the checkpoint"
            )
            return
        _restore_random_state(ranks[trainer.global_rank])


def _capture_random_state() -> dict[str, Any]:
    # Plain containers and tensors only: Lightning loads checkpoints with torch.load(weights_only=True).
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    numpy_state = [name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gaussian]
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore_random_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
