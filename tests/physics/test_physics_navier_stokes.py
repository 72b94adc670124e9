import math

import pytest
import torch

from sciml.core.errors import ConfigError
from sciml.physics.initial_conditions import random_isotropic, taylor_green
from sciml.physics.navier_stokes import NavierStokes3D
from sciml.physics.spectral import SpectralGrid, rfft3
from sciml.physics.statistics import kinetic_energy

FORMS = ("rotational", "skew_symmetric")
SCHEMES = ("rk4", "rk3")


def _random_field(n=16, batch=(2,), seed=0, energy=0.5):
    grid = SpectralGrid(n)
    return grid, random_isotropic(
        grid, energy=energy, generator=torch.Generator().manual_seed(seed), batch_shape=batch
    )


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_2d_taylor_green_decays_exactly_with_integrating_factor(form, scheme):
    grid = SpectralGrid(16)
    u0 = taylor_green(grid, two_dimensional=True)
    nu, t_end = 0.1, 1.5
    result = NavierStokes3D(grid, nu, form=form, scheme=scheme, cfl=0.5).run(u0, t_end)
    assert result.steps > 5
    # The nonlinear term of this flow is a pure gradient, removed by the projection to rounding.
    assert (result.u - u0 * math.exp(-2 * nu * t_end)).abs().max() < 1e-13


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("scheme,tolerance", [("rk4", 3e-8), ("rk3", 2e-6)])
def test_2d_taylor_green_decay_with_explicit_viscosity(form, scheme, tolerance):
    grid = SpectralGrid(16)
    u0 = taylor_green(grid, two_dimensional=True)
    nu, t_end = 0.1, 1.5
    result = NavierStokes3D(grid, nu, form=form, scheme=scheme, viscous="explicit", max_dt=0.1).run(u0, t_end)
    exact = u0 * math.exp(-2 * nu * t_end)
    error = (result.u - exact).abs().max().item()
    # Local error of the decay factor: (nu k^2 dt)^5/120 (RK4) or ^4/24 (RK3) per step, 15 steps.
    assert error < tolerance
    assert error > 1e-14, "an explicit viscous term cannot be exact"


@pytest.mark.parametrize("form", FORMS)
def test_galilean_translated_taylor_green_is_solved(form):
    """u = U e_x + TG(x - U t): exact, and the nonlinear term is no longer a pure gradient."""
    grid = SpectralGrid(16)
    speed, nu, t_end = 0.7, 0.05, 1.0
    mesh = grid.mesh()
    shift = speed * t_end

    def translated(x):
        return torch.stack((torch.sin(x) * torch.cos(mesh[1]), -torch.cos(x) * torch.sin(mesh[1]), 0 * x))

    u0 = translated(mesh[0])
    u0[0] += speed
    result = NavierStokes3D(grid, nu, form=form, cfl=0.3).run(u0, t_end)
    exact = translated(mesh[0] - shift) * math.exp(-2 * nu * t_end)
    exact[0] += speed
    assert (result.u - exact).abs().max() < 1e-6


@pytest.mark.parametrize("scheme,order", [("rk4", 4), ("rk3", 3)])
@pytest.mark.parametrize("viscous", ["integrating_factor", "explicit"])
def test_time_convergence_order_on_3d_taylor_green(scheme, order, viscous):
    grid = SpectralGrid(12)
    u0 = taylor_green(grid)

    def solve(steps):
        solver = NavierStokes3D(grid, 0.05, scheme=scheme, viscous=viscous, cfl=100.0, max_dt=0.8 / steps)
        return solver.run(u0, 0.8).u

    reference = solve(128)
    errors = [(solve(n) - reference).abs().max().item() for n in (8, 16)]
    observed = math.log2(errors[0] / errors[1])
    assert abs(observed - order) < 0.3, f"observed order {observed:.2f}"


def test_velocity_stays_divergence_free_and_dealiased():
    grid, u = _random_field()
    solver = NavierStokes3D(grid, 0.02)
    u_hat = solver.to_spectral(u)
    for _ in range(5):
        u_hat = solver.step(u_hat, 0.01)
    assert grid.divergence_hat(u_hat).abs().max() / u_hat.abs().max() < 1e-14
    assert (u_hat * (1 - grid.dealias)).abs().max() == 0
    assert (solver.rhs(u_hat) * (1 - grid.dealias)).abs().max() == 0


@pytest.mark.parametrize("form", FORMS)
def test_nonlinear_term_conserves_energy(form):
    grid, u = _random_field()
    solver = NavierStokes3D(grid, 0.0, form=form, cfl=0.25)
    u_hat = solver.to_spectral(u)
    # Semi-discrete: sum_k Re(u_hat^* . N_hat) = 0 to rounding.
    power = (grid.weights * (u_hat.conj() * solver.rhs(u_hat)).real.sum(-4)).sum(dim=(-3, -2, -1))
    scale = (grid.weights * solver.rhs(u_hat).abs().sum(-4) * u_hat.abs().sum(-4)).sum(dim=(-3, -2, -1))
    assert (power.abs() / scale).max() < 1e-14
    # Fully discrete, inviscid, short time: RK4 loses only O(dt^4) energy.
    result = solver.run(u, 0.5)
    drift = (kinetic_energy(result.u) / kinetic_energy(u) - 1).abs().max().item()
    assert drift < 1e-6
    assert result.steps > 10


def test_forms_agree_with_dealiasing_and_differ_without():
    grid, u = _random_field(seed=4)
    runs = {}
    for dealias in (True, False):
        for form in FORMS:
            solver = NavierStokes3D(grid, 0.01, form=form, dealias=dealias)
            u_hat = solver.to_spectral(u)
            for _ in range(3):
                u_hat = solver.step(u_hat, 0.02)
            runs[form, dealias] = u_hat
    assert (runs["rotational", True] - runs["skew_symmetric", True]).abs().max() < 1e-12
    assert (runs["rotational", False] - runs["skew_symmetric", False]).abs().max() > 1e-8


def test_batch_flows_are_independent_for_a_fixed_step():
    grid, u = _random_field(batch=(3,), seed=5)
    solver = NavierStokes3D(grid, 0.02, chunk_size=2)
    u_hat = solver.to_spectral(u)
    together = solver.step(u_hat, 0.02)
    alone = torch.stack([solver.step(u_hat[i], 0.02) for i in range(3)])
    assert torch.allclose(together, alone, rtol=0, atol=1e-14)
    threaded = NavierStokes3D(grid, 0.02, chunk_size=1, workers=2)
    assert torch.equal(threaded.step(u_hat, 0.02), NavierStokes3D(grid, 0.02, chunk_size=1).step(u_hat, 0.02))


def test_cfl_time_step_and_landing_on_requested_times():
    grid = SpectralGrid(16)
    u = torch.zeros(3, 16, 16, 16, dtype=torch.float64)
    u[0] = 2.0
    u[1] = -0.5
    solver = NavierStokes3D(grid, 0.01, cfl=0.4)
    dx = 2 * math.pi / 16
    assert solver.stable_dt(solver.to_spectral(u)) == pytest.approx(0.4 * dx / 2.5)
    explicit = NavierStokes3D(grid, 1.0, viscous="explicit", scheme="rk3", cfl=0.4)
    k2_max = 3 * 5.0**2  # dealiased corner mode |m_i| = 5
    assert explicit.stable_dt(explicit.to_spectral(u)) == pytest.approx(0.9 * 2.512 / k2_max)
    seen = []
    result = solver.run(u, 0.3, snapshot_times=[0.1, 0.25], callback=lambda s, t, dt, uh: seen.append(t))
    assert result.snapshots.shape == (2, 3, 16, 16, 16)
    assert 0.1 in seen and 0.25 in seen and seen[-1] == 0.3
    assert result.time == 0.3


def test_solver_follows_input_dtype():
    grid = SpectralGrid(8)
    u = taylor_green(grid, two_dimensional=True).to(torch.float32)
    result = NavierStokes3D(grid, 0.1).run(u, 0.2)
    assert result.u.dtype == torch.float32
    assert torch.allclose(result.u, u * math.exp(-2 * 0.1 * 0.2), atol=1e-6)


def test_bad_configuration_is_named():
    grid = SpectralGrid(8)
    with pytest.raises(ConfigError, match="form"):
        NavierStokes3D(grid, 0.1, form="conservative")
    with pytest.raises(ConfigError, match="scheme"):
        NavierStokes3D(grid, 0.1, scheme="euler")
    with pytest.raises(ConfigError, match="nu"):
        NavierStokes3D(grid, -1.0)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, X, Y, Z\)"):
        NavierStokes3D(grid, 0.1).run(torch.zeros(2, 8, 8, 8, dtype=torch.float64), 1.0)
    with pytest.raises(ConfigError, match="cfl"):
        NavierStokes3D(grid, 0.1, cfl=0.0)


def test_spectral_state_round_trip():
    grid, u = _random_field(n=8, seed=7)
    solver = NavierStokes3D(grid, 0.1)
    assert torch.allclose(solver.to_physical(solver.to_spectral(u)), u, atol=1e-13)
    assert torch.allclose(rfft3(u), solver.to_spectral(u), atol=1e-11)


def test_non_cubic_box_with_odd_grid():
    """Different sizes (one odd) and lengths per axis: 2D TG stays exact, forms agree, energy is kept."""
    grid = SpectralGrid((16, 12, 9), lengths=(2 * math.pi, 2 * math.pi, 1.0))
    u0 = taylor_green(grid, two_dimensional=True)
    result = NavierStokes3D(grid, 0.1, form="skew_symmetric").run(u0, 1.0)
    assert (result.u - u0 * math.exp(-0.2)).abs().max() < 1e-13
    box = SpectralGrid((16, 12, 9), lengths=(3.0, 2.0, 1.0))
    u = random_isotropic(box, energy=0.5, generator=torch.Generator().manual_seed(0))
    rotational = NavierStokes3D(box, 0.0, cfl=0.2).run(u, 0.2).u
    skew = NavierStokes3D(box, 0.0, cfl=0.2, form="skew_symmetric").run(u, 0.2).u
    assert (rotational - skew).abs().max() < 1e-12
    assert abs(kinetic_energy(rotational).item() / kinetic_energy(u).item() - 1) < 1e-7
