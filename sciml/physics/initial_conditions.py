"""Initial velocity fields (..., 3, X, Y, Z) for periodic-box runs.

* :func:`taylor_green`: the Taylor-Green vortex (Taylor & Green 1937; Brachet et al. 1983, JFM 130, 411)
  ``u = V0 sin(x) cos(y) cos(z)``, ``v = -V0 cos(x) sin(y) cos(z)``, ``w = 0`` with ``x`` measured in units
  of ``L_i / (2 pi)``. ``two_dimensional=True`` drops the ``z`` dependence: ``u = V0 sin x cos y``,
  ``v = -V0 cos x sin y``, an exact Navier-Stokes solution decaying as ``exp(-2 nu t)`` in a ``2 pi`` box.
* :func:`random_isotropic`: a random solenoidal field with a prescribed shell spectrum. White Gaussian
  noise (drawn from a ``torch.Generator``, so a seed fixes the field) is projected onto divergence-free
  fields and each integer shell is rescaled so that the shell-summed spectrum equals ``E(k)`` exactly
  (random phases and directions, deterministic amplitudes per shell, as in Rogallo 1981, NASA TM-81315).
  Spectra: ``"peaked"`` ``E ~ k^4 exp(-2 (k / k_peak)^2)``, or any callable, e.g. :func:`pope_spectrum`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from sciml.core.errors import ConfigError
from sciml.physics.spectral import TWO_PI, SpectralGrid, deterministic_sum, irfft3, rfft3


def taylor_green(
    grid: SpectralGrid, velocity: float = 1.0, two_dimensional: bool = False
) -> Float[Tensor, "3 X Y Z"]:
    """Taylor-Green vortex on ``grid`` (its device and dtype)."""
    x, y, z = torch.meshgrid(
        *[c * (TWO_PI / length) for c, length in zip(grid.coordinates(), grid.lengths)], indexing="ij"
    )
    if two_dimensional:
        u = velocity * torch.sin(x) * torch.cos(y)
        v = -velocity * torch.cos(x) * torch.sin(y)
    else:
        u = velocity * torch.sin(x) * torch.cos(y) * torch.cos(z)
        v = -velocity * torch.cos(x) * torch.sin(y) * torch.cos(z)
    return torch.stack((u, v, torch.zeros_like(u)))


def peaked_spectrum(k: Tensor, k_peak: float = 4.0) -> Tensor:
    """``E(k) = k^4 exp(-2 (k / k_peak)^2)`` (unnormalised)."""
    return k.pow(4) * torch.exp(-2.0 * (k / k_peak) ** 2)


def pope_spectrum(
    k: Tensor,
    dissipation: float,
    integral_length: float,
    eta: float,
    c: float = 1.5,
    c_l: float = 6.78,
    c_eta: float = 0.40,
    beta: float = 5.2,
    p0: float = 2.0,
) -> Tensor:
    """Model spectrum of Pope (2000), eq. (6.246): ``C eps^{2/3} k^{-5/3} f_L(kL) f_eta(k eta)``."""
    k = k.clamp_min(1e-12)
    kl = k * integral_length
    f_l = (kl / torch.sqrt(kl**2 + c_l)) ** (5.0 / 3.0 + p0)
    f_eta = torch.exp(-beta * (((k * eta) ** 4 + c_eta**4) ** 0.25 - c_eta))
    return c * dissipation ** (2.0 / 3.0) * k ** (-5.0 / 3.0) * f_l * f_eta


def random_isotropic(
    grid: SpectralGrid,
    *,
    energy: float | None = 0.5,
    spectrum: str | Callable[[Tensor], Tensor] = "peaked",
    k_peak: float = 4.0,
    generator: torch.Generator | None = None,
    batch_shape: Sequence[int] = (),
    dealias: bool = True,
) -> Float[Tensor, "*batch 3 X Y Z"]:
    """Random divergence-free field whose integer-shell spectrum follows ``spectrum``.

    ``energy`` rescales the field to that kinetic energy ``0.5 <u_i u_i>`` (``None``: keep the absolute
    spectrum, for callables). Noise is drawn on the generator's device and moved to the grid's, so a CPU
    generator gives the same field on any device. ``dealias`` removes modes beyond the 2/3-rule cutoff.
    """
    if isinstance(spectrum, str):
        if spectrum != "peaked":
            raise ConfigError("spectrum", f"expected 'peaked' or a callable E(k), got {spectrum!r}")
        if energy is None:
            raise ConfigError("energy", "the 'peaked' spectrum is unnormalised; give a kinetic energy")
        if not k_peak > 0:
            raise ConfigError("k_peak", f"must be positive, got {k_peak!r}")

        def spectrum_fn(k):
            return peaked_spectrum(k, k_peak)
    elif callable(spectrum):
        spectrum_fn = spectrum
    else:
        raise ConfigError("spectrum", f"expected 'peaked' or a callable E(k), got {spectrum!r}")
    if energy is not None and not energy > 0:
        raise ConfigError("energy", f"must be positive, got {energy!r}")

    batch_shape = tuple(int(b) for b in batch_shape)
    noise_device = generator.device if generator is not None else grid.device
    noise = torch.randn(
        (*batch_shape, 3, *grid.shape), generator=generator, dtype=grid.dtype, device=noise_device
    ).to(grid.device)
    u_hat = grid.project(rfft3(noise))
    if dealias:
        u_hat = u_hat * grid.dealias

    k0 = TWO_PI / max(grid.lengths)
    shell = torch.round(grid.kmag / k0).long().expand(grid.spectral_shape)  # (X, Y, Zr)
    n_shells = int(shell.max()) + 1
    flat_shell = shell.reshape(-1)
    density = grid.mode_energy(u_hat).flatten(-3)  # (..., X*Y*Zr)
    current = density.new_zeros(*density.shape[:-1], n_shells).index_add_(-1, flat_shell, density)
    k_shells = torch.arange(n_shells, device=grid.device, dtype=grid.dtype) * k0
    target = spectrum_fn(k_shells).to(grid.dtype)
    target[0] = 0.0  # no mean flow
    gain = torch.where(current > 0, torch.sqrt(target / current.clamp_min(1e-300)), 0.0)  # (..., K)
    u_hat = u_hat * gain[..., flat_shell].reshape(*gain.shape[:-1], 1, *grid.spectral_shape)
    if energy is not None:
        now = deterministic_sum(grid.mode_energy(u_hat), (-3, -2, -1))
        u_hat = u_hat * torch.sqrt(energy / now)[..., None, None, None, None]
    return irfft3(u_hat, grid.shape)


def model_spectrum_for(dissipation: float, nu: float, integral_length: float) -> Callable[[Tensor], Tensor]:
    """:func:`pope_spectrum` with ``eta = (nu^3 / eps)^{1/4}``, as a callable for :func:`random_isotropic`."""
    eta = (nu**3 / dissipation) ** 0.25

    def spectrum(k: Tensor) -> Tensor:
        return pope_spectrum(k, dissipation, integral_length, eta)

    spectrum.eta = eta  # type: ignore[attr-defined]
    return spectrum
