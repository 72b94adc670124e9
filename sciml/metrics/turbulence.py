"""Error measures for turbulence surrogates: one-step error, spectrum error and statistic drift.

Definitions used throughout sciml (and in every reported number):

* relative L2 error of a field: ``||u_pred - u_true||_2 / ||u_true||_2`` over channels and space, per sample;
* spectrum error at one time: the mean over the resolved shells ``1 <= k <= k_cut`` of
  ``|E_pred(k) / E_true(k) - 1|``, where ``k_cut`` is the 2/3-rule cutoff of the grid (``N // 3``) so the
  dealiased shells that a spectral solver leaves empty do not enter. A value of 0.1 means the predicted
  spectrum is, on average over the resolved shells, 10 % away from the true one. Shell-wise ratios weigh the
  small scales as much as the energetic ones, which is where autoregressive surrogates drift first;
* kinetic-energy and rms drift: ``stat_pred / stat_true - 1``.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor

from sciml.physics.statistics import energy_spectrum, kinetic_energy, rms_velocity


def relative_l2(pred: Float[Tensor, "B ..."], true: Float[Tensor, "B ..."]) -> Float[Tensor, " B"]:
    """Per-sample relative L2 error over every non-batch dimension."""
    diff = (pred - true).flatten(1).norm(dim=1)
    return diff / true.flatten(1).norm(dim=1).clamp_min(torch.finfo(true.dtype).tiny)


def resolved_shell_cutoff(grid_shape: tuple[int, ...]) -> int:
    """Largest shell that the 2/3 rule keeps on every axis of ``grid_shape``."""
    return min(grid_shape) // 3


def spectrum_error(
    pred: Float[Tensor, "... 3 X Y Z"],
    true: Float[Tensor, "... 3 X Y Z"],
    lengths: float | tuple[float, float, float] = 2 * math.pi,
) -> Float[Tensor, "..."]:
    """Mean shell-wise relative error of the energy spectrum over the resolved shells (module docstring)."""
    _, spectrum_pred = energy_spectrum(pred, lengths)
    _, spectrum_true = energy_spectrum(true, lengths)
    k_cut = resolved_shell_cutoff(tuple(true.shape[-3:]))
    shells = slice(1, k_cut + 1)
    ratio = spectrum_pred[..., shells] / spectrum_true[..., shells].clamp_min(torch.finfo(true.dtype).tiny)
    return (ratio - 1).abs().mean(dim=-1)


def statistic_drift(
    pred: Float[Tensor, "... 3 X Y Z"], true: Float[Tensor, "... 3 X Y Z"]
) -> dict[str, Float[Tensor, "..."]]:
    """Relative drift of kinetic energy and rms velocity of ``pred`` against ``true``."""
    return {
        "kinetic_energy_drift": kinetic_energy(pred) / kinetic_energy(true) - 1,
        "rms_drift": rms_velocity(pred) / rms_velocity(true) - 1,
    }


def first_step_above(curve: Tensor, threshold: float) -> int | None:
    """Index of the first entry of a 1-D curve above ``threshold`` (NaN counts as above), or None."""
    above = ~(curve <= threshold)
    hits = torch.nonzero(above)
    return int(hits[0]) if len(hits) else None
