import pytest
import torch

from sciml.core.errors import ConfigError
from sciml.physics.forcing import BandForcing, LinearForcing
from sciml.physics.initial_conditions import random_isotropic
from sciml.physics.navier_stokes import NavierStokes3D
from sciml.physics.spectral import SpectralGrid
from sciml.physics.statistics import dissipation_rate, kinetic_energy


def _state(n=16, batch=(2,), energy=0.5, seed=0):
    grid = SpectralGrid(n)
    u = random_isotropic(
        grid, energy=energy, generator=torch.Generator().manual_seed(seed), batch_shape=batch
    )
    return grid, u


def _power(grid, force, u_hat):
    """<f . u> from Parseval."""
    density = grid.weights * (force.conj() * u_hat).real.sum(-4)
    return density.sum(dim=(-3, -2, -1)) / float(grid.n_points) ** 2


def test_band_forcing_injects_exactly_its_power_into_low_modes():
    grid, u = _state()
    u_hat = NavierStokes3D(grid, 0.01).to_spectral(u)
    forcing = BandForcing(injection_rate=0.3, k_forcing=2.5)
    force = forcing(u_hat, grid, 0.01)
    assert torch.allclose(_power(grid, force, u_hat), torch.full((2,), 0.3, dtype=torch.float64), rtol=1e-12)
    assert force[..., grid.kmag.expand(grid.spectral_shape) > 2.5].abs().max() == 0
    assert grid.divergence_hat(force).abs().max() < 1e-10


def test_linear_forcing_with_fixed_coefficient_is_a_times_u():
    grid, u = _state()
    u_hat = NavierStokes3D(grid, 0.01).to_spectral(u)
    force = LinearForcing(coefficient=0.2)(u_hat, grid, 0.01)
    assert torch.allclose(force, 0.2 * u_hat, atol=1e-12)
    assert torch.allclose(_power(grid, force, u_hat), 2 * 0.2 * kinetic_energy(u), rtol=1e-12)


def test_linear_forcing_holds_the_target_energy():
    """Constant-energy linear forcing relaxes k to the target and keeps it there (dk/dt = (k0 - k)/tau)."""
    grid, u = _state(energy=0.5, seed=1)
    nu = 0.02
    forcing = LinearForcing(target_energy=0.3, relaxation_time=0.1, k_forcing=3.0)
    solver = NavierStokes3D(grid, nu, forcing=forcing, cfl=0.5)
    result = solver.run(u, 2.0)
    assert torch.allclose(kinetic_energy(result.u), torch.full((2,), 0.3, dtype=torch.float64), rtol=1e-3)
    # The injected power balances the dissipation at the target energy.
    u_hat = solver.to_spectral(result.u)
    injected = _power(grid, forcing(u_hat, grid, nu), u_hat)
    assert torch.allclose(injected, dissipation_rate(result.u, nu), rtol=1e-2)


def test_band_forced_turbulence_is_stationary_with_dissipation_equal_to_injection():
    grid, u = _state(n=16, batch=(1,), energy=0.6, seed=2)
    nu, power = 0.06, 0.1
    solver = NavierStokes3D(grid, nu, forcing=BandForcing(power, 2.0), cfl=0.8)
    u_hat, _ = solver.advance(solver.to_spectral(u), 10.0)
    energies, dissipations = [], []
    for _ in range(40):
        u_hat, _ = solver.advance(u_hat, 0.5)
        field = solver.to_physical(u_hat)
        energies.append(kinetic_energy(field).item())
        dissipations.append(dissipation_rate(field, nu).item())
    mean_dissipation = sum(dissipations) / len(dissipations)
    assert mean_dissipation == pytest.approx(power, rel=0.1)
    first, second = sum(energies[:20]) / 20, sum(energies[20:]) / 20
    assert first == pytest.approx(second, rel=0.15)


def test_forcing_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="forcing"):
        LinearForcing()
    with pytest.raises(ConfigError, match="forcing"):
        LinearForcing(coefficient=0.1, target_energy=1.0)
    with pytest.raises(ConfigError, match="injection_rate"):
        BandForcing(-0.1)
    with pytest.raises(ConfigError, match="k_forcing"):
        BandForcing(0.1, k_forcing=0.0)
