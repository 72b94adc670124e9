"""Checkpoints that are never half-written, and the choice of which one a restarted run resumes from.

Lightning's own ``TorchCheckpointIO`` serialises into memory and lets fsspec move a temporary file from the
system temp directory onto the target; on a cluster that is often another filesystem, so the final "move"
is a copy that a kill can cut short. ``AtomicCheckpointIO`` writes the temporary next to the target, flushes
it to disk and renames it: a reader sees the old checkpoint or the new one, never a fragment.

Resuming (``--ckpt_path auto``) takes, among the checkpoints under the run directory that load, the one
furthest into training (highest global step; at equal steps a requeue checkpoint, which is taken exactly at
a step boundary, then the most recent file). Files that do not load (truncated by a full disk, or copied
half-way) are reported with a warning and skipped. When checkpoints exist but none loads, the run stops with
one line naming each file and why it failed: starting from step 0 would overwrite ``last.ckpt`` and turn a
requeued week-long job into a silent restart. ``start_over=True`` (``fit --start_over true``) is the user's
explicit choice to start from step 0 anyway.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from pytorch_lightning.utilities import rank_zero_warn

from sciml.core.atomic import atomic_path
from sciml.core.errors import ConfigError

#: Lightning's name for the checkpoint saved when SLURM asks a job to requeue (it resumes from the highest).
REQUEUE_CHECKPOINT = re.compile(r"hpc_ckpt_(\d+)\.ckpt")


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` to a temporary sibling, fsync, rename."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


def read_training_step(path: str | Path) -> int | str:
    """The global step a checkpoint resumes at, or why it cannot be resumed from."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as error:  # torch reports truncation as RuntimeError, pickling problems as others
        return f"{type(error).__name__}: {str(error).splitlines()[0]}"
    missing = [
        key for key in ("state_dict", "loops", "optimizer_states", "global_step") if key not in checkpoint
    ]
    if missing:
        return f"not a full training checkpoint (no {', '.join(missing)})"
    return int(checkpoint["global_step"])


def next_requeue_checkpoint(run_dir: str | Path) -> Path:
    """``<run_dir>/hpc_ckpt_<n+1>.ckpt`` after the highest existing ``n`` (Lightning's naming)."""
    numbers = [
        int(m.group(1))
        for p in Path(run_dir).glob("hpc_ckpt_*.ckpt")
        if (m := REQUEUE_CHECKPOINT.fullmatch(p.name))
    ]
    return Path(run_dir) / f"hpc_ckpt_{max(numbers, default=0) + 1}.ckpt"


def find_resume_checkpoint(run_dir: str | Path, start_over: bool = False) -> Path | None:
    """The loadable checkpoint under ``run_dir`` furthest into training (``None`` when there is none).

    Every unloadable file is named in a warning. Raises ConfigError naming every checkpoint and why it cannot
    be resumed from when there are checkpoints but none loads, unless ``start_over``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return None
    ranked = []
    for path in sorted(run_dir.rglob("*.ckpt")):
        step = read_training_step(path)
        is_requeue = REQUEUE_CHECKPOINT.fullmatch(path.name) is not None
        ranked.append(
            (step if isinstance(step, int) else -1, is_requeue, path.stat().st_mtime_ns, path, step)
        )
    ranked.sort(reverse=True, key=lambda entry: entry[:3])
    chosen = next((entry for entry in ranked if isinstance(entry[4], int)), None)
    failures = sorted((entry[3], entry[4]) for entry in ranked if not isinstance(entry[4], int))
    if chosen is None and failures and not start_over:
        reasons = "; ".join(f"{path} ({why})" for path, why in failures)
        raise ConfigError(
            "--ckpt_path",
            f"auto found {len(failures)} checkpoint(s) under {run_dir} and none can be resumed from: "
            f"{reasons}. "
            "Repair or move them, or pass --start_over true to start from step 0 (overwriting last.ckpt)",
        )
    for path, why in failures:
        rank_zero_warn(f"checkpoint {path} cannot be resumed from ({why}); skipping it")
    if chosen is None:
        if failures:
            rank_zero_warn(
                f"no loadable checkpoint under {run_dir}: starting over from step 0 (--start_over)"
            )
        return None
    return chosen[3]
