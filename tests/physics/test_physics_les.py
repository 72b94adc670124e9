import math

import numpy as np
import pytest
import torch

from sciml.core.errors import ConfigError
from sciml.physics.initial_conditions import random_isotropic
from sciml.physics.les import (
    WALE,
    DynamicSmagorinsky,
    NoModel,
    Smagorinsky,
    SpectralCutoff,
    closure_config,
    closure_from_config,
    default_width,
    germano_coefficient,
    sgs_stress,
    van_driest_damping,
)
from sciml.physics.navier_stokes import NavierStokes3D
from sciml.physics.spectral import SpectralGrid, irfft3, rfft3
from sciml.physics.statistics import kinetic_energy

WIDTH = 0.3
SHAPE = (4, 5, 6)


def _uniform(gradient) -> tuple[torch.Tensor, torch.Tensor]:
    """The linear field u = G x on a small grid: (u (3, X, Y, Z), grad (3, 3, X, Y, Z))."""
    g = torch.as_tensor(gradient, dtype=torch.float64)
    axes = [torch.linspace(-1.0, 1.0, n, dtype=torch.float64) for n in SHAPE]
    x = torch.stack(torch.meshgrid(*axes, indexing="ij"))  # (3, X, Y, Z)
    u = torch.einsum("ij,jxyz->ixyz", g, x)
    return u, g.view(3, 3, 1, 1, 1).expand(3, 3, *SHAPE).clone()


def _xz_cutoff(modes_kept: int):
    """A channel-style test filter: sharp cutoff over the periodic x and z axes only (y untouched)."""

    def apply(fields):
        spectrum = torch.fft.rfftn(fields, dim=(-3, -1))
        mx = torch.fft.fftfreq(fields.shape[-3], 1.0 / fields.shape[-3]).abs().view(-1, 1, 1)
        mz = torch.arange(fields.shape[-1] // 2 + 1).view(1, 1, -1)
        mask = ((mx <= modes_kept) & (mz <= modes_kept)).to(fields.dtype)
        return torch.fft.irfftn(spectrum * mask, s=(fields.shape[-3], fields.shape[-1]), dim=(-3, -1))

    return apply


def _rotation(omega=1.3):
    return [[0.0, -omega, 0.0], [omega, 0.0, 0.0], [0.0, 0.0, 0.0]]


def test_solid_body_rotation_smagorinsky_models_vanish_wale_does_not():
    omega = 1.3
    u, grad = _uniform(_rotation(omega))
    assert torch.equal(Smagorinsky().eddy_viscosity(u, grad, WIDTH), torch.zeros(SHAPE, dtype=torch.float64))
    dynamic = DynamicSmagorinsky(test_filter=_xz_cutoff(1), average_dims=(-3, -1))
    nu_t = dynamic.eddy_viscosity(u, grad, WIDTH)
    assert torch.isfinite(dynamic.coefficient).all() and torch.equal(nu_t, torch.zeros_like(nu_t))
    # S = 0 but g^2 = -omega^2 diag(1, 1, 0) has a deviatoric part: S^d S^d = (2/3) omega^4, so WALE gives
    # (C_w Delta)^2 (2/3)^(1/4) |omega| (Nicoud et al. 2011, Table I), not zero.
    expected = (0.325 * WIDTH) ** 2 * (2.0 / 3.0) ** 0.25 * omega
    assert torch.allclose(
        WALE().eddy_viscosity(u, grad, WIDTH), torch.full(SHAPE, expected, dtype=torch.float64)
    )


@pytest.mark.parametrize("gamma", [0.7, -2.0])
def test_pure_shear(gamma):
    u, grad = _uniform([[0.0, gamma, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    assert torch.equal(WALE().eddy_viscosity(u, grad, WIDTH), torch.zeros(SHAPE, dtype=torch.float64))
    smagorinsky = Smagorinsky(c_s=0.17).eddy_viscosity(u, grad, WIDTH)
    assert torch.allclose(
        smagorinsky, torch.full(SHAPE, (0.17 * WIDTH) ** 2 * abs(gamma), dtype=torch.float64)
    )


def test_poiseuille_profile_wale_and_dynamic_model_vanish():
    """u = 1 - y^2: locally a pure shear (WALE = 0). The x-z test filter leaves a field that depends only on
    y unchanged, so hat(u u) = hat(u) hat(u), L = 0, C = 0 and the dynamic nu_t = 0, while M != 0."""
    nx, ny, nz = 8, 17, 8
    y = torch.linspace(-1.0, 1.0, ny, dtype=torch.float64).view(1, ny, 1)
    u = torch.zeros(3, nx, ny, nz, dtype=torch.float64)
    u[0] = (1.0 - y.square()).expand(nx, ny, nz)
    grad = torch.zeros(3, 3, nx, ny, nz, dtype=torch.float64)
    grad[0, 1] = (-2.0 * y).expand(nx, ny, nz)
    width = torch.full((1, ny, 1), 0.2, dtype=torch.float64)  # a wall-normal width profile is allowed
    assert torch.equal(WALE().eddy_viscosity(u, grad, width), torch.zeros(nx, ny, nz, dtype=torch.float64))
    dynamic = DynamicSmagorinsky(test_filter=_xz_cutoff(2), average_dims=(-3, -1))
    leonard, model_tensor, _ = dynamic.leonard_and_model(u, grad, width)
    assert leonard.abs().max() < 1e-14 and model_tensor.abs().max() > 0.1
    nu_t = dynamic.eddy_viscosity(u, grad, width, nu=1e-3)
    assert dynamic.coefficient.shape == (1, ny, 1)
    assert nu_t.abs().max() < 1e-12


def _numpy_models(gradient, width, c_s=0.17, c_w=0.325):
    g = np.asarray(gradient, dtype=float)
    s = 0.5 * (g + g.T)
    smagorinsky = (c_s * width) ** 2 * np.sqrt(2.0 * np.sum(s * s))
    g2 = g @ g
    sd = 0.5 * (g2 + g2.T) - np.trace(g2) / 3.0 * np.eye(3)
    sdsd, ss = np.sum(sd * sd), np.sum(s * s)
    wale = (c_w * width) ** 2 * sdsd**1.5 / (ss**2.5 + sdsd**1.25)
    return smagorinsky, wale


def test_general_linear_field_against_numpy():
    rng = np.random.default_rng(3)
    gradient = rng.normal(size=(3, 3))
    gradient -= np.trace(gradient) / 3.0 * np.eye(3)  # solenoidal
    u, grad = _uniform(gradient)
    smagorinsky, wale = _numpy_models(gradient, WIDTH)
    assert torch.allclose(
        Smagorinsky().eddy_viscosity(u, grad, WIDTH), torch.tensor(smagorinsky, dtype=torch.float64)
    )
    assert torch.allclose(WALE().eddy_viscosity(u, grad, WIDTH), torch.tensor(wale, dtype=torch.float64))
    # Non-default constants and a width varying along y.
    width = torch.linspace(0.1, 0.4, SHAPE[1], dtype=torch.float64).view(1, -1, 1)
    nu_t = WALE(c_w=0.5).eddy_viscosity(u, grad, width)
    expected = torch.tensor([_numpy_models(gradient, float(w), c_w=0.5)[1] for w in width.flatten()])
    assert torch.allclose(nu_t, expected.view(1, -1, 1).expand(SHAPE).to(torch.float64))
    # SGS stress: deviatoric, -2 nu_t S^d.
    tau = sgs_stress(torch.full(SHAPE, 0.2, dtype=torch.float64), grad)
    s = 0.5 * (gradient + gradient.T)
    assert np.allclose(tau[:, 0, 0, 0].numpy(), -0.4 * s[[0, 1, 2, 0, 0, 1], [0, 1, 2, 1, 2, 2]])


def test_van_driest_damping():
    y_plus = torch.tensor([0.0, 5.0, 26.0, 1e3], dtype=torch.float64).view(1, 4, 1)
    damping = van_driest_damping(y_plus)
    expected = (1.0 - np.exp(-np.array([0.0, 5.0, 26.0, 1e3]) / 26.0)) ** 2
    assert np.allclose(damping.flatten().numpy(), expected) and damping[0, 0, 0] == 0
    grad = torch.zeros(3, 3, 2, 4, 3, dtype=torch.float64)
    grad[0, 1] = 2.0
    nu_t = Smagorinsky(c_s=0.1, y_plus=y_plus).eddy_viscosity(None, grad, WIDTH)
    assert torch.allclose(nu_t, ((0.1 * WIDTH) ** 2 * 2.0 * damping).expand(2, 4, 3))


def test_van_driest_wall_distance_from_the_solver_takes_precedence_and_is_required_when_asked_for():
    y_plus = torch.tensor([0.0, 5.0, 26.0, 1e3], dtype=torch.float64).view(1, 4, 1)
    grad = torch.zeros(3, 3, 2, 4, 3, dtype=torch.float64)
    grad[0, 1] = 2.0
    fixed = Smagorinsky(c_s=0.1, y_plus=torch.full((1, 4, 1), 1e6, dtype=torch.float64))
    passed = fixed.eddy_viscosity(None, grad, WIDTH, y_plus=y_plus)
    assert torch.allclose(passed, ((0.1 * WIDTH) ** 2 * 2.0 * van_driest_damping(y_plus)).expand(2, 4, 3))
    with pytest.raises(ConfigError, match="wall_damped"):
        Smagorinsky(wall_damped=True).eddy_viscosity(None, grad, WIDTH)


@pytest.mark.parametrize(
    "model",
    [
        NoModel(),
        Smagorinsky(c_s=0.12, a_plus=25.0, wall_damped=True),
        WALE(c_w=0.5),
        DynamicSmagorinsky(test_ratio=3.0, average_dims=(-3, -1), lengths=(1.0, 2.0, 3.0)),
    ],
)
def test_closure_config_round_trip(model):
    config = closure_config(model)
    rebuilt = closure_from_config(config)
    assert type(rebuilt) is type(model) and closure_config(rebuilt) == config
    assert vars(rebuilt) == vars(model)
    assert closure_config(None) is None and closure_from_config(None) is None


def test_closures_a_config_cannot_describe_are_named():
    with pytest.raises(ConfigError, match="y_plus"):
        closure_config(Smagorinsky(y_plus=torch.ones(1, 4, 1)))
    with pytest.raises(ConfigError, match="test_filter"):
        closure_config(DynamicSmagorinsky(test_filter=_xz_cutoff(1)))
    with pytest.raises(ConfigError, match="les"):
        closure_from_config({"name": "vreman"})


def test_germano_coefficient_recovers_a_known_coefficient_per_plane():
    generator = torch.Generator().manual_seed(0)
    model_tensor = torch.randn(2, 6, 8, 5, 8, generator=generator, dtype=torch.float64)
    coefficient = torch.linspace(-0.02, 0.05, 5, dtype=torch.float64).view(1, 1, 5, 1)
    recovered = germano_coefficient(coefficient.unsqueeze(1) * model_tensor, model_tensor, (-3, -1))
    assert recovered.shape == (2, 1, 5, 1)
    assert torch.allclose(recovered, coefficient.expand(2, 1, 5, 1))
    assert torch.equal(
        germano_coefficient(model_tensor, torch.zeros_like(model_tensor)), torch.zeros(2, 1, 1, 1)
    )


def _numpy_dynamic_coefficient(u, width, ratio=2.0):
    """Germano-Lilly C on a 2 pi periodic field with a sharp test cutoff, written independently in numpy."""
    n = u.shape[-1]
    m = np.fft.fftfreq(n, 1.0 / n)
    kx, ky, kz = np.meshgrid(m, m, m, indexing="ij")
    cutoff = np.pi / (ratio * width)
    mask = (np.abs(kx) < cutoff) & (np.abs(ky) < cutoff) & (np.abs(kz) < cutoff)
    dk = [1j * np.where(np.abs(k) == n // 2, 0.0, k) for k in (kx, ky, kz)]

    def hat(f):
        return np.real(np.fft.ifftn(np.fft.fftn(f) * mask))

    def gradient(v):
        return np.array([[np.real(np.fft.ifftn(d * np.fft.fftn(v[i]))) for d in dk] for i in range(3)])

    def strain(g):
        s = 0.5 * (g + g.transpose(1, 0, 2, 3, 4))
        return s, np.sqrt(2.0 * np.einsum("ijxyz,ijxyz->xyz", s, s))

    s, mag = strain(gradient(u))
    u_t = np.array([hat(c) for c in u])
    s_t, mag_t = strain(gradient(u_t))
    leonard = np.array([[hat(u[i] * u[j]) - u_t[i] * u_t[j] for j in range(3)] for i in range(3)])
    smag = np.array([[hat(mag * s[i, j]) for j in range(3)] for i in range(3)])
    model = 2 * width**2 * smag - 2 * (ratio * width) ** 2 * mag_t * s_t
    return np.mean(np.sum(leonard * model, (0, 1))) / np.mean(np.sum(model * model, (0, 1)))


def test_dynamic_coefficient_matches_an_independent_computation():
    grid = SpectralGrid(16)
    u = random_isotropic(grid, energy=0.5, generator=torch.Generator().manual_seed(1))
    u_hat = rfft3(u)
    ik = (grid.ikx, grid.iky, grid.ikz)
    grad = torch.stack([torch.stack([irfft3(u_hat[i] * k, grid.shape) for k in ik]) for i in range(3)])
    width = default_width(grid.spacing, dealias=True)
    model = DynamicSmagorinsky()
    nu_t = model.eddy_viscosity(u, grad, width, nu=1e-3)
    expected = _numpy_dynamic_coefficient(u.numpy(), width)
    assert abs(float(model.coefficient) - expected) < 1e-12 * max(1.0, abs(expected))
    assert bool((nu_t >= -1e-3).all())  # the total viscosity is clipped at zero
    # The default test filter is the sharp spectral cutoff at twice the width.
    explicit = DynamicSmagorinsky(test_filter=SpectralCutoff(2 * width))
    assert torch.equal(explicit.eddy_viscosity(u, grad, width, nu=1e-3), nu_t)


def _decaying(n=16, seed=0):
    grid = SpectralGrid(n)
    return grid, random_isotropic(grid, energy=0.5, k_peak=3, generator=torch.Generator().manual_seed(seed))


def test_solver_without_closure_is_unchanged_and_no_model_is_inert():
    grid, u0 = _decaying()
    reference = NavierStokes3D(grid, 1e-3).run(u0, 0.3).u
    assert torch.equal(NavierStokes3D(grid, 1e-3, les=None).run(u0, 0.3).u, reference)
    assert torch.equal(NavierStokes3D(grid, 1e-3, les=NoModel()).run(u0, 0.3).u, reference)


def test_solver_sgs_force_is_the_projected_divergence_of_the_stress():
    grid, u0 = _decaying()
    plain = NavierStokes3D(grid, 1e-3)
    closed = NavierStokes3D(grid, 1e-3, les=Smagorinsky())
    u_hat = plain.to_spectral(u0)
    force = closed.rhs(u_hat) - plain.rhs(u_hat)
    u = plain.to_physical(u_hat)
    ik = (grid.ikx, grid.iky, grid.ikz)
    grad = torch.stack([torch.stack([irfft3(u_hat[i] * k, grid.shape) for k in ik]) for i in range(3)])
    tau6 = rfft3(sgs_stress(Smagorinsky().eddy_viscosity(u, grad, closed.les_width), grad))
    index = ((0, 3, 4), (3, 1, 5), (4, 5, 2))  # tau_ij's slot among (xx, yy, zz, xy, xz, yz)
    divergence = torch.stack([-sum(tau6[index[i][j]] * ik[j] for j in range(3)) for i in range(3)])
    expected = grid.project(divergence) * grid.dealias
    assert (force - expected).abs().max() < 1e-10 * expected.abs().max()
    assert closed.les_width == pytest.approx(1.5 * 2 * math.pi / 16)


@pytest.mark.parametrize(
    "model", [Smagorinsky(), WALE(), DynamicSmagorinsky()], ids=lambda m: type(m).__name__
)
def test_closures_dissipate_resolved_energy_of_decaying_turbulence(model):
    grid, u0 = _decaying()
    nu, t_end = 1e-3, 1.0
    times = [0.25, 0.5, 0.75]
    none = NavierStokes3D(grid, nu).run(u0, t_end, snapshot_times=times)
    closed = NavierStokes3D(grid, nu, les=model).run(u0, t_end, snapshot_times=times)
    energy = kinetic_energy(torch.cat((u0[None], closed.snapshots, closed.u[None])))
    assert bool((energy[1:] < energy[:-1]).all())  # the resolved energy decreases monotonically
    assert float(kinetic_energy(closed.u)) < 0.95 * float(kinetic_energy(none.u))


def test_bad_configuration_is_named():
    with pytest.raises(ConfigError, match="c_s"):
        Smagorinsky(c_s=-0.1)
    with pytest.raises(ConfigError, match="test_ratio"):
        DynamicSmagorinsky(test_ratio=1.0)
    with pytest.raises(ConfigError, match="average_dims"):
        germano_coefficient(torch.zeros(6, 2, 2, 2), torch.zeros(6, 2, 2, 2), (0,))
    with pytest.raises(ConfigError, match="les"):
        NavierStokes3D(SpectralGrid(8), 0.01, les="smagorinsky")
    with pytest.raises(ConfigError, match="test_filter"):
        _, grad = _uniform(_rotation())
        DynamicSmagorinsky().eddy_viscosity(grad[0], grad, torch.full((1, 5, 1), 0.1, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3, X, Y, Z\)"):
        WALE().eddy_viscosity(None, torch.zeros(3, 4, 4, 4), 0.1)
