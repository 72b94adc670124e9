import math

import pytest
import torch

from sciml.physics import statistics as st
from sciml.physics.initial_conditions import random_isotropic, taylor_green
from sciml.physics.spectral import SpectralGrid, irfft3, rfft3


def _random(batch=(2, 3), n=12, seed=0, solenoidal=True):
    grid = SpectralGrid(n)
    if solenoidal:
        return random_isotropic(
            grid, energy=0.7, generator=torch.Generator().manual_seed(seed), batch_shape=batch
        )
    return torch.randn(*batch, 3, n, n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_spectrum_sums_to_kinetic_energy_parseval():
    u = _random(solenoidal=False)
    k, spectrum = st.energy_spectrum(u)
    assert spectrum.shape == (2, 3, len(k))
    physical = 0.5 * u.square().sum(-4).mean(dim=(-3, -2, -1))
    assert torch.allclose(spectrum.sum(-1), physical, rtol=1e-12)
    assert torch.allclose(st.kinetic_energy(u), physical, rtol=1e-14)


def test_single_mode_lands_in_its_shell():
    grid = SpectralGrid(16)
    X, Y, Z = grid.mesh()
    u = torch.stack([torch.sin(3 * Y + 4 * Z), torch.zeros_like(X), torch.zeros_like(X)])  # |k| = 5
    k, spectrum = st.energy_spectrum(u)
    assert k[5].item() == 5.0
    assert spectrum[5].item() == pytest.approx(0.25, rel=1e-13)  # 0.5 <sin^2> = 1/4
    assert spectrum.sum().item() == pytest.approx(0.25, rel=1e-13)


def test_taylor_green_dissipation_energy_and_enstrophy_exact():
    """3D TG, V0 = 1, 2 pi box, t = 0: E = 1/8, every mode has |k|^2 = 3, eps = 2 nu 3 E = 3 nu / 4."""
    nu = 1.0 / 1600
    u = taylor_green(SpectralGrid(16))
    assert st.kinetic_energy(u).item() == pytest.approx(0.125, rel=1e-14)
    assert st.dissipation_rate(u, nu).item() == pytest.approx(0.75 * nu, rel=1e-13)
    assert st.enstrophy(u).item() == pytest.approx(0.375, rel=1e-13)
    vorticity = st.vorticity(u)
    assert nu * vorticity.square().sum(0).mean().item() == pytest.approx(0.75 * nu, rel=1e-13)


def test_dissipation_is_twice_nu_strain_squared_for_any_periodic_field():
    u = _random(batch=(2,), n=10, seed=3, solenoidal=False)
    grid = SpectralGrid(10)
    u_hat = rfft3(u)
    k = (grid.kx, grid.ky, grid.kz)
    grad = torch.stack([irfft3(1j * k[j] * u_hat, grid.shape) for j in range(3)], dim=-4)  # (..., j, i, ...)
    strain = 0.5 * (grad + grad.transpose(-4, -5))
    expected = 2 * 0.01 * strain.square().sum(dim=(-5, -4)).mean(dim=(-3, -2, -1))
    assert torch.allclose(st.dissipation_rate(u, 0.01), expected, rtol=1e-12)
    solenoidal = _random(batch=(2,), n=10, seed=4)
    assert torch.allclose(
        st.dissipation_rate(solenoidal, 0.01), 0.01 * 2 * st.enstrophy(solenoidal), rtol=1e-12
    )


def test_derivative_skewness_known_value():
    """u_i = f(x_i), f = sin s + 0.5 sin 2s: <f'^2> = 1, <f'^3> = 3/4, so S = 0.75 in every direction."""
    grid = SpectralGrid(16)
    X, Y, Z = grid.mesh()

    def f(s):
        return torch.sin(s) + 0.5 * torch.sin(2 * s)

    u = torch.stack([f(X), f(Y), f(Z)])
    assert st.derivative_skewness(u).item() == pytest.approx(0.75, rel=1e-12)
    assert st.derivative_skewness(-u).item() == pytest.approx(-0.75, rel=1e-12)
    assert abs(st.derivative_skewness(taylor_green(grid)).item()) < 1e-13


def test_rms_taylor_reynolds_and_scales_are_consistent():
    u = _random(batch=(3,), n=12, seed=5)
    nu = 0.02
    energy = st.kinetic_energy(u)
    u_rms = st.rms_velocity(u)
    assert torch.allclose(u_rms, torch.sqrt(2 * energy / 3), rtol=1e-14)
    eps = st.dissipation_rate(u, nu)
    lam = st.taylor_microscale(u, nu)
    assert torch.allclose(st.taylor_reynolds(u, nu), u_rms * lam / nu, rtol=1e-12)
    assert torch.allclose(
        st.taylor_reynolds(u, nu), math.sqrt(20 / 3) * energy / torch.sqrt(nu * eps), rtol=1e-12
    )
    summary = st.summary(u, nu)
    assert torch.allclose(summary["dissipation"], eps, rtol=1e-12)
    assert torch.allclose(summary["integral_length"], st.integral_length(u), rtol=1e-12)
    assert torch.allclose(summary["derivative_skewness"], st.derivative_skewness(u), rtol=1e-10)
    assert torch.allclose(summary["eta"], st.kolmogorov_length(nu, eps), rtol=1e-12)


def test_statistics_reject_non_velocity_input():
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, X, Y, Z\)"):
        st.kinetic_energy(torch.zeros(2, 8, 8, 8))
    with pytest.raises(TypeError, match="floating"):
        st.energy_spectrum(torch.zeros(3, 8, 8, 8, dtype=torch.int64))
