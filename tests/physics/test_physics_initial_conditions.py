import math

import pytest
import torch

from sciml.core.errors import ConfigError
from sciml.physics.initial_conditions import peaked_spectrum, pope_spectrum, random_isotropic, taylor_green
from sciml.physics.spectral import SpectralGrid, rfft3
from sciml.physics.statistics import energy_spectrum, kinetic_energy


def test_taylor_green_fields():
    grid = SpectralGrid(8)
    u = taylor_green(grid, velocity=2.0)
    X, Y, Z = grid.mesh()
    assert torch.allclose(u[0], 2 * torch.sin(X) * torch.cos(Y) * torch.cos(Z))
    assert torch.allclose(u[1], -2 * torch.cos(X) * torch.sin(Y) * torch.cos(Z))
    assert u[2].abs().max() == 0
    assert grid.divergence_hat(rfft3(u)).abs().max() < 1e-12
    assert kinetic_energy(taylor_green(grid, two_dimensional=True)).item() == pytest.approx(0.25, rel=1e-14)
    # Box lengths rescale the wavenumber: one period per box.
    stretched = SpectralGrid(8, lengths=(1.0, 2.0, 3.0))
    v = taylor_green(stretched)
    assert v[0, 2, 0, 0].item() == pytest.approx(math.sin(2 * math.pi * 0.25), abs=1e-14)


def test_random_isotropic_matches_prescribed_spectrum_and_energy():
    grid = SpectralGrid(16)
    u = random_isotropic(
        grid, energy=0.3, k_peak=3.0, generator=torch.Generator().manual_seed(0), batch_shape=(2,)
    )
    assert u.shape == (2, 3, 16, 16, 16)
    assert grid.divergence_hat(rfft3(u)).abs().max() / rfft3(u).abs().max() < 1e-14
    assert torch.allclose(kinetic_energy(u), torch.full((2,), 0.3, dtype=torch.float64), rtol=1e-13)
    k, spectrum = energy_spectrum(u)
    target = peaked_spectrum(k, 3.0)
    target[0] = 0
    kept = k <= 5  # shells fully inside the 2/3 cube |m| <= 5
    expected = target[kept] / target[kept].sum() * spectrum[0, kept].sum()
    assert torch.allclose(spectrum[0, kept], expected, rtol=1e-12)
    assert spectrum[0, 0] < 1e-30  # no mean flow


def test_random_isotropic_is_seeded():
    grid = SpectralGrid(8)

    def draw(seed):
        return random_isotropic(grid, energy=0.5, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(draw(1), draw(1))
    assert not torch.allclose(draw(1), draw(2))


def test_random_isotropic_with_absolute_model_spectrum():
    grid = SpectralGrid(32)

    def spectrum(k):
        return pope_spectrum(k, dissipation=0.1, integral_length=2.0, eta=0.05)

    u = random_isotropic(grid, energy=None, spectrum=spectrum, generator=torch.Generator().manual_seed(3))
    k, e = energy_spectrum(u)
    assert e[4].item() == pytest.approx(spectrum(k[4:5]).item(), rel=1e-12)
    assert e[9].item() == pytest.approx(spectrum(k[9:10]).item(), rel=1e-12)


def test_random_isotropic_rejects_bad_arguments():
    grid = SpectralGrid(8)
    with pytest.raises(ConfigError, match="spectrum"):
        random_isotropic(grid, spectrum="kolmogorov")
    with pytest.raises(ConfigError, match="energy"):
        random_isotropic(grid, energy=-1.0)
