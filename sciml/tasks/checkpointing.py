"""Checkpoints that rebuild their injected network without the YAML that made them.

Tasks take their network by injection and leave it out of ``save_hyperparameters``; the network's own
constructor arguments (its ``config`` attribute) and class path are stored next to the weights instead, so
``Task.load_from_checkpoint(path)`` needs nothing else.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytorch_lightning as pl
import torch
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
    """Mixin for tasks whose network lives in ``self.net``."""

    net: nn.Module

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        description = describe_net(self.net)
        if description is not None:
            checkpoint[NET_KEY] = description

    @classmethod
    def load_from_checkpoint(
        cls, checkpoint_path, map_location=None, hparams_file=None, strict=None, **kwargs
    ):
        """Lightning's loader; the network is rebuilt from the checkpoint unless ``net=`` is given."""
        if "net" not in kwargs:
            stored = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
            if NET_KEY not in stored:
                raise KeyError(
                    f"{checkpoint_path}: holds no network description ('{NET_KEY}'); its network has no "
                    "`config` attribute, so pass net=<the network> to load_from_checkpoint"
                )
            kwargs["net"] = build_net(stored[NET_KEY])
        return super().load_from_checkpoint(
            checkpoint_path, map_location=map_location, hparams_file=hparams_file, strict=strict, **kwargs
        )
