"""Error measures for turbulence surrogates: one-step error, spectrum error and statistic drift.

Definitions used throughout sciml (and in every reported number):

* relative L2 error of a field: ``||u_pred - u_true||_2 / ||u_true||_2`` over channels and space, per sample;
* spectrum error at one time: the mean over the resolved shells ``1 <= k <= k_cut`` of
  ``|E_pred(k) / E_true(k) - 1|``, where ``k_cut`` is the 2/3-rule cutoff of the grid (``N // 3``) so the
  dealiased shells that a spectral solver leaves empty do not enter. A value of 0.1 means the predicted
  spectrum is, on average over the resolved shells, 10 % away from the true one. Shell-wise ratios weigh the
  small scales as much as the energetic ones, which is where autoregressive surrogates drift first. A shell
  that is exactly empty in both spectra counts as agreeing (error 0 there);
* kinetic-energy and rms drift: ``stat_pred / stat_true - 1``.

Spectra need periodic axes. On a domain with walls (a channel: periodic x and z, walls in y) the
spectrum is taken over the periodic axes only (2-D shells ``|(k_x, k_z)|``, shell width
``2 pi / max(L_periodic)``) and averaged over the nodes of the other axes, so its shells still sum to the
kinetic energy (a plain node average, as :func:`sciml.physics.statistics.kinetic_energy`: on a stretched
wall-normal grid the densely spaced near-wall nodes weigh more than their share of the volume); the
2/3-rule cutoff is then taken over the periodic axes. With every axis periodic this is exactly the 3-D
spectrum of :func:`sciml.physics.statistics.energy_spectrum`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from sciml.physics.spectral import check_field
from sciml.physics.statistics import energy_spectrum, kinetic_energy, rms_velocity


def relative_l2(pred: Float[Tensor, "B ..."], true: Float[Tensor, "B ..."]) -> Float[Tensor, " B"]:
    """Per-sample relative L2 error over every non-batch dimension."""
    diff = (pred - true).flatten(1).norm(dim=1)
    return diff / true.flatten(1).norm(dim=1).clamp_min(torch.finfo(true.dtype).tiny)


def resolved_shell_cutoff(grid_shape: tuple[int, ...]) -> int:
    """Largest shell that the 2/3 rule keeps on every axis of ``grid_shape``."""
    return min(grid_shape) // 3


ALL_PERIODIC = (True, True, True)


def periodic_energy_spectrum(
    u: Float[Tensor, "*batch 3 X Y Z"],
    lengths: float | Sequence[float] = 2 * math.pi,
    periodic: Sequence[bool] = ALL_PERIODIC,
) -> tuple[Float[Tensor, " K"], Float[Tensor, "*batch K"]]:
    """Shell-summed spectrum ``(k, E)`` over the ``periodic`` axes of (X, Y, Z), averaged over the others.

    ``E.sum(-1) == kinetic_energy(u)``; with every axis periodic it is ``energy_spectrum(u, lengths)``.
    """
    periodic = tuple(bool(p) for p in periodic)
    if len(periodic) != 3:
        raise ValueError(f"periodic_energy_spectrum: expected one flag per axis (X, Y, Z), got {periodic}")
    if all(periodic):
        return energy_spectrum(u, lengths)
    check_field(u, "u")
    axes = [axis for axis in range(3) if periodic[axis]]
    if not axes:
        raise ValueError("periodic_energy_spectrum: no axis is periodic, so the field has no spectrum")
    lengths = (float(lengths),) * 3 if isinstance(lengths, int | float) else tuple(map(float, lengths))
    shape = u.shape[-3:]
    fft_dims = [axis - 3 for axis in axes]
    n_points = math.prod(shape[axis] for axis in axes)
    u_hat = torch.fft.fftn(u, dim=fft_dims)  # (..., 3, X, Y, Z), complex over the periodic axes
    # Energy of each mode, averaged over the non-periodic axes: (..., 3, X, Y, Z) -> (..., X', Y', Z').
    density = 0.5 * (u_hat.real.square() + u_hat.imag.square()).sum(-4) / n_points**2
    other_dims = [axis - 3 for axis in range(3) if not periodic[axis]]
    density = density.mean(dim=other_dims, keepdim=True)
    k0 = 2 * math.pi / max(lengths[axis] for axis in axes)
    k_squared = torch.zeros((), dtype=u.dtype, device=u.device)
    for axis in axes:
        modes = torch.fft.fftfreq(shape[axis], d=1.0 / shape[axis], device=u.device).to(u.dtype)
        view = [1, 1, 1]
        view[axis] = -1
        k_squared = k_squared + (modes * (2 * math.pi / lengths[axis])).square().view(view)
    shell = torch.round(k_squared.sqrt() / k0).long().expand(density.shape[-3:]).reshape(-1)
    n_shells = int(shell.max()) + 1
    flat = density.flatten(-3)  # (..., periodic modes)
    spectrum = flat.new_zeros(*flat.shape[:-1], n_shells).index_add_(-1, shell, flat)
    k = torch.arange(n_shells, device=u.device, dtype=u.dtype) * k0
    return k, spectrum


def spectrum_error(
    pred: Float[Tensor, "... 3 X Y Z"],
    true: Float[Tensor, "... 3 X Y Z"],
    lengths: float | tuple[float, float, float] = 2 * math.pi,
    periodic: Sequence[bool] = ALL_PERIODIC,
) -> Float[Tensor, "..."]:
    """Mean shell-wise relative error of the energy spectrum over the resolved shells (module docstring).

    ``periodic`` flags the axes (X, Y, Z) the spectrum is taken over (:func:`periodic_energy_spectrum`).
    """
    _, spectrum_pred = periodic_energy_spectrum(pred, lengths, periodic)
    _, spectrum_true = periodic_energy_spectrum(true, lengths, periodic)
    k_cut = resolved_shell_cutoff(tuple(n for n, p in zip(true.shape[-3:], periodic) if p))
    shells = slice(1, k_cut + 1)
    predicted, reference = spectrum_pred[..., shells], spectrum_true[..., shells]
    ratio = predicted / reference.clamp_min(torch.finfo(true.dtype).tiny)
    # A shell empty in both spectra agrees (a field constant along the periodic axes has no content there).
    ratio = torch.where((predicted == 0) & (reference == 0), torch.ones_like(ratio), ratio)
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
