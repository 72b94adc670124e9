"""Single-time statistics of periodic velocity fields (..., 3, X, Y, Z), batched over leading dims.

Definitions (Pope 2000, *Turbulent Flows*, ch. 5-6; angle brackets are volume averages):

* kinetic energy ``k = 0.5 <u_i u_i>``; rms velocity ``u' = sqrt(2 k / 3)``.
* energy spectrum ``E(K) = sum_{K - 1/2 <= |k| / k0 < K + 1/2} 0.5 |u_hat(k)|^2`` on integer shells
  ``K = 0, 1, ...`` of width ``k0 = 2 pi / max(L)``, over *all* modes of the grid (shell 0 holds the mean
  flow), so ``sum_K E(K) = k`` exactly (Parseval).
* dissipation ``eps = 2 nu <S_ij S_ij>`` evaluated spectrally as
  ``nu sum_k (|k|^2 |u_hat|^2 + |k . u_hat|^2)``, the identity ``2 <S_ij S_ij> = <du_i/dx_j du_i/dx_j> +
  <(div u)^2>`` holding exactly for periodic fields; for solenoidal fields it equals ``nu <omega_i omega_i>``.
* Taylor microscale ``lambda = sqrt(15 nu u'^2 / eps)``, ``Re_lambda = u' lambda / nu``.
* longitudinal velocity-derivative skewness
  ``S = (1/3 sum_i <(du_i/dx_i)^3>) / (1/3 sum_i <(du_i/dx_i)^2>)^{3/2}``: the moments of the three
  longitudinal derivatives are pooled before the ratio (the isotropic average of one quantity rather than
  the mean of three noisier ratios).
* integral scale ``L = pi / (2 u'^2) sum_{K>0} E(K) / K`` and Kolmogorov scale ``eta = (nu^3 / eps)^{1/4}``.

Derivatives are spectral (Nyquist modes have zero first derivative, see :mod:`sciml.physics.spectral`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from sciml.physics.spectral import TWO_PI, check_field, grid_for, irfft3, rfft3


def _spectral(u: Tensor, lengths):
    check_field(u, "u")
    grid = grid_for(u, lengths)
    return grid, rfft3(u)


def kinetic_energy(u: Float[Tensor, "*batch 3 X Y Z"]) -> Float[Tensor, "*batch"]:
    """``0.5 <u_i u_i>`` over the grid."""
    check_field(u, "u")
    return 0.5 * u.square().sum(-4).mean(dim=(-3, -2, -1))


def rms_velocity(u: Float[Tensor, "*batch 3 X Y Z"]) -> Float[Tensor, "*batch"]:
    """``u' = sqrt(2 k / 3)``."""
    return torch.sqrt(2.0 * kinetic_energy(u) / 3.0)


def energy_spectrum(
    u: Float[Tensor, "*batch 3 X Y Z"], lengths: float | Sequence[float] = TWO_PI
) -> tuple[Float[Tensor, "K"], Float[Tensor, "*batch K"]]:  # noqa: F821
    """Shell-summed spectrum ``(k, E)`` with ``E.sum(-1) == kinetic_energy(u)``."""
    grid, u_hat = _spectral(u, lengths)
    k0 = TWO_PI / max(grid.lengths)
    shell = torch.round(grid.kmag / k0).long().expand(grid.spectral_shape).reshape(-1)  # (X*Y*Zr,)
    n_shells = int(shell.max()) + 1
    density = grid.mode_energy(u_hat).flatten(-3)  # (..., X*Y*Zr)
    spectrum = density.new_zeros(*density.shape[:-1], n_shells).index_add_(-1, shell, density)
    k = torch.arange(n_shells, device=u.device, dtype=u.dtype) * k0
    return k, spectrum


def _gradient_sums(u: Tensor, lengths) -> tuple[Tensor, Tensor]:
    """Volume averages ``<du_i/dx_j du_i/dx_j>`` and ``<(div u)^2>`` from Parseval, each (...)."""
    grid, u_hat = _spectral(u, lengths)
    scale = grid.weights / float(grid.n_points) ** 2
    power = (u_hat.real.square() + u_hat.imag.square()).sum(-4)  # (..., X, Y, Zr)
    grad_sq = (grid.k2 * power * scale).sum(dim=(-3, -2, -1))
    div = grid.divergence_hat(u_hat)
    div_sq = ((div.real.square() + div.imag.square()) * scale).sum(dim=(-3, -2, -1))
    return grad_sq, div_sq


def dissipation_rate(
    u: Float[Tensor, "*batch 3 X Y Z"], nu: float, lengths: float | Sequence[float] = TWO_PI
) -> Float[Tensor, "*batch"]:
    """``eps = 2 nu <S_ij S_ij>``."""
    grad_sq, div_sq = _gradient_sums(u, lengths)
    return nu * (grad_sq + div_sq)


def enstrophy(u: Float[Tensor, "*batch 3 X Y Z"], lengths: float | Sequence[float] = TWO_PI) -> Tensor:
    """``0.5 <omega_i omega_i>``."""
    grid, u_hat = _spectral(u, lengths)
    scale = 0.5 * grid.weights / float(grid.n_points) ** 2
    w_hat = grid.curl_hat(u_hat)
    return ((w_hat.real.square() + w_hat.imag.square()).sum(-4) * scale).sum(dim=(-3, -2, -1))


def vorticity(u: Float[Tensor, "*batch 3 X Y Z"], lengths: float | Sequence[float] = TWO_PI) -> Tensor:
    """``omega = curl u`` (..., 3, X, Y, Z)."""
    grid, u_hat = _spectral(u, lengths)
    return irfft3(grid.curl_hat(u_hat), grid.shape)


def taylor_microscale(u: Tensor, nu: float, lengths: float | Sequence[float] = TWO_PI) -> Tensor:
    """``lambda = sqrt(15 nu u'^2 / eps)``."""
    return torch.sqrt(15.0 * nu * rms_velocity(u).square() / dissipation_rate(u, nu, lengths))


def taylor_reynolds(
    u: Float[Tensor, "*batch 3 X Y Z"], nu: float, lengths: float | Sequence[float] = TWO_PI
) -> Float[Tensor, "*batch"]:
    """``Re_lambda = u' lambda / nu = u'^2 sqrt(15 / (nu eps))``."""
    return rms_velocity(u).square() * torch.sqrt(15.0 / (nu * dissipation_rate(u, nu, lengths)))


def kolmogorov_length(nu: float, epsilon: Tensor | float) -> Tensor:
    """``eta = (nu^3 / eps)^{1/4}``."""
    return (nu**3 / torch.as_tensor(epsilon)) ** 0.25


def integral_length(u: Float[Tensor, "*batch 3 X Y Z"], lengths: float | Sequence[float] = TWO_PI) -> Tensor:
    """``L = pi / (2 u'^2) sum_{K>0} E(K) / K``."""
    k, spectrum = energy_spectrum(u, lengths)
    ratio = (spectrum[..., 1:] / k[1:]).sum(-1)
    return math.pi / (2.0 * rms_velocity(u).square()) * ratio


def derivative_skewness(
    u: Float[Tensor, "*batch 3 X Y Z"], lengths: float | Sequence[float] = TWO_PI
) -> Float[Tensor, "*batch"]:
    """Longitudinal derivative skewness, moments pooled over the three directions."""
    grid, u_hat = _spectral(u, lengths)
    ux, uy, uz = u_hat.unbind(-4)
    longitudinal = torch.stack((grid.kx * ux, grid.ky * uy, grid.kz * uz), dim=-4).mul_(1j)
    du = irfft3(longitudinal, grid.shape)  # (..., 3, X, Y, Z): du_i/dx_i
    second = du.square().mean(dim=(-4, -3, -2, -1))
    third = du.pow(3).mean(dim=(-4, -3, -2, -1))
    return third / second.pow(1.5)


def summary(u: Tensor, nu: float, lengths: float | Sequence[float] = TWO_PI) -> dict[str, Tensor]:
    """The usual one-point statistics of HIT in one dict (each entry shaped like the batch dims).

    Same definitions as the single functions above, sharing one forward FFT.
    """
    grid, u_hat = _spectral(u, lengths)
    scale = grid.weights / float(grid.n_points) ** 2
    power = (u_hat.real.square() + u_hat.imag.square()).sum(-4) * scale  # (..., X, Y, Zr)
    energy = 0.5 * power.sum(dim=(-3, -2, -1))
    div = grid.divergence_hat(u_hat)
    div_sq = ((div.real.square() + div.imag.square()) * scale).sum(dim=(-3, -2, -1))
    eps = nu * ((grid.k2 * power).sum(dim=(-3, -2, -1)) + div_sq)
    u_rms = torch.sqrt(2.0 * energy / 3.0)
    k0 = TWO_PI / max(grid.lengths)
    inverse_k = torch.where(grid.kmag > 0.5 * k0, 1.0 / torch.round(grid.kmag / k0).clamp_min(1.0), 0.0) / k0
    integral = math.pi / (2.0 * u_rms.square()) * (0.5 * power * inverse_k).sum(dim=(-3, -2, -1))
    ux, uy, uz = u_hat.unbind(-4)
    du = irfft3(torch.stack((grid.kx * ux, grid.ky * uy, grid.kz * uz), dim=-4).mul_(1j), grid.shape)
    skewness = du.pow(3).mean(dim=(-4, -3, -2, -1)) / du.square().mean(dim=(-4, -3, -2, -1)).pow(1.5)
    eta = (nu**3 / eps) ** 0.25
    return {
        "kinetic_energy": energy,
        "u_rms": u_rms,
        "dissipation": eps,
        "re_lambda": u_rms.square() * torch.sqrt(15.0 / (nu * eps)),
        "eta": eta,
        "kmax_eta": grid.k_max_dealiased * eta,
        "integral_length": integral,
        "eddy_turnover_time": integral / u_rms,
        "derivative_skewness": skewness,
    }
