"""LES closures in the channel solver (sciml.physics.channel.ChannelFlow, argument ``les``)."""

import importlib
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.polynomial import chebyshev

from sciml.core.errors import ConfigError
from sciml.physics.channel import ChannelFlow, chebyshev_points
from sciml.physics.les import WALE, DynamicSmagorinsky, NoModel, Smagorinsky, van_driest_damping

NU = 1 / 200
LENGTHS = (2 * math.pi, math.pi)


def _solver(les=None, shape=(12, 25, 12), **kwargs):
    return ChannelFlow(shape, nu=NU, lengths=LENGTHS, les=les, **kwargs)


def _perturbed(solver, amplitude=0.3, seed=0, batch=1):
    return solver.perturbed_state(batch, amplitude, generator=torch.Generator().manual_seed(seed))


def _models():
    return {
        "smagorinsky": Smagorinsky(c_s=0.1),
        "van_driest": Smagorinsky(c_s=0.1, wall_damped=True),
        "wale": WALE(),
        "dynamic": DynamicSmagorinsky(average_dims=(-3, -1)),
    }


def test_no_closure_and_no_model_run_the_same_bits():
    plain, inert = _solver(), _solver(NoModel())
    state = _perturbed(plain, batch=2)
    a, _ = plain.advance(state, 0.3, dt=0.05)
    b, _ = inert.advance(state, 0.3, dt=0.05)
    assert torch.equal(a.phi, b.phi) and torch.equal(a.omega, b.omega) and torch.equal(a.mean_u, b.mean_u)


@pytest.mark.parametrize("name", ["wale", "dynamic"])
def test_laminar_poiseuille_stays_steady_when_nu_t_vanishes_in_pure_shear(name):
    solver = _solver(_models()[name])
    laminar = solver.laminar_state()
    assert solver.eddy_viscosity(laminar).abs().max() < 1e-14
    state, _ = solver.advance(laminar, 1.0, dt=0.05)
    assert torch.allclose(state.mean_u, laminar.mean_u, rtol=0, atol=1e-12)


def test_smagorinsky_damps_laminar_poiseuille_flow():
    """Undamped Smagorinsky has nu_t = (C_s Delta)^2 |dU/dy| != 0 in pure shear: the extra stress slows
    the flow under the same pressure gradient."""
    solver = _solver(Smagorinsky(c_s=0.2))
    laminar = solver.laminar_state()
    nu_t = solver.eddy_viscosity(laminar)[0, 0, :, 0]
    y = solver.y
    expected = (0.2 * solver.default_width()[0, :, 0]) ** 2 * (2 * y).abs()
    assert torch.allclose(nu_t, expected, rtol=1e-12, atol=1e-15)
    # The explicit diffusion limit of nu_t near the wall, not the convective one, sets the step here.
    assert solver.stable_dt(laminar) < 0.5 * _solver().stable_dt(laminar)
    state, _ = solver.advance(laminar, 1.0)
    assert float(solver.bulk_velocity(state)) < float(solver.bulk_velocity(laminar)) - 1e-3
    assert float(state.mean_u[0, solver.ny // 2]) < 1.0 - 1e-3
    constant = _solver(Smagorinsky(c_s=0.2), les_width=0.3)
    assert torch.allclose(constant.eddy_viscosity(laminar)[0, 0, :, 0], (0.2 * 0.3) ** 2 * (2 * y).abs())


def _chebyshev_dy(field: np.ndarray, axis: int) -> np.ndarray:
    """d/dy on the Gauss-Lobatto points by numpy's Chebyshev series (independent of the solver's matrix)."""
    n = field.shape[axis] - 1
    y = chebyshev_points(n)
    moved = np.moveaxis(field, axis, 0).reshape(n + 1, -1)
    coefficients = chebyshev.chebfit(y, moved, n)
    derivative = chebyshev.chebval(y, chebyshev.chebder(coefficients)).T  # (n+1, rest)
    return np.moveaxis(derivative.reshape(np.moveaxis(field, axis, 0).shape), 0, axis)


def _fourier_d(field: np.ndarray, length: float, axis: int) -> np.ndarray:
    n = field.shape[axis]
    k = np.fft.fftfreq(n, 1.0 / n) * (2 * math.pi / length)
    if n % 2 == 0:
        k[n // 2] = 0.0
    shape = [1] * field.ndim
    shape[axis] = n
    return np.real(np.fft.ifft(1j * k.reshape(shape) * np.fft.fft(field, axis=axis), axis=axis))


def test_sgs_force_matches_an_independent_smagorinsky_computation():
    """-d tau_ij/dx_j of constant-coefficient Smagorinsky with a constant width, computed by hand in numpy
    (FFT in x, z; numpy's Chebyshev series in y) from the grid velocity, against the solver's force."""
    c_s, width = 0.3, 0.2
    plain, les = _solver(shape=(8, 17, 10)), _solver(Smagorinsky(c_s=c_s), shape=(8, 17, 10), les_width=width)
    state = _perturbed(plain, amplitude=0.5, seed=1)
    u = plain.velocity(state)[0].numpy()  # (3, X, Y, Z)

    def d(field, j):
        return (
            _fourier_d(field, LENGTHS[0], 0)
            if j == 0
            else (_chebyshev_dy(field, 1) if j == 1 else _fourier_d(field, LENGTHS[1], 2))
        )

    grad = np.stack([np.stack([d(u[i], j) for j in range(3)]) for i in range(3)])  # (3, 3, X, Y, Z)
    strain = 0.5 * (grad + grad.transpose(1, 0, 2, 3, 4))
    magnitude = np.sqrt(2 * np.einsum("ijxyz,ijxyz->xyz", strain, strain))
    deviatoric = strain - np.eye(3)[:, :, None, None, None] * np.trace(strain)[None, None] / 3
    tau = -2 * (c_s * width) ** 2 * magnitude * deviatoric
    force = -np.stack([sum(d(tau[i, j], j) for j in range(3)) for i in range(3)])  # (3, X, Y, Z)

    h_plain, mean_plain, _, _, _ = plain._explicit_terms(state)
    h_les, mean_les, _, _, _ = les._explicit_terms(state)
    spectra = np.fft.rfftn(np.transpose(force, (0, 1, 3, 2)), axes=(1, 2), norm="forward")  # (3, X, Zr, Y)
    expected = torch.from_numpy(spectra.reshape(3, -1, 17)[:, plain.mode_index.numpy()])
    assert torch.allclose(h_les[0] - h_plain[0], expected, rtol=0, atol=1e-9 * expected.abs().max())
    interior = slice(1, -1)  # the wall rows of the force never enter the Dirichlet solves
    expected_mean = torch.from_numpy(spectra[:, 0, 0].real)
    assert torch.allclose(
        (mean_les[0] - mean_plain[0])[:, interior], expected_mean[:, interior], rtol=0, atol=1e-9
    )
    assert expected_mean[0].abs().max() > 1e-3  # a real mean stress divergence was compared


@pytest.mark.parametrize("name", ["smagorinsky", "van_driest", "wale", "dynamic"])
def test_perturbed_flow_stays_divergence_free_and_no_slip_with_each_closure(name):
    solver = _solver(_models()[name])
    state, steps = solver.advance(_perturbed(solver, amplitude=0.5), 2.0)
    assert steps >= 12
    velocity = solver.velocity(state)
    assert torch.isfinite(velocity).all()
    assert solver.divergence(velocity).abs().max() < 1e-11
    assert torch.equal(velocity[:, :, :, [0, -1]], torch.zeros_like(velocity[:, :, :, [0, -1]]))
    assert solver.eddy_viscosity(state).abs().max() > 1e-6  # the closure was active


def test_van_driest_damping_uses_the_current_wall_shear_and_vanishes_on_the_walls():
    damped, undamped = _solver(_models()["van_driest"]), _solver(Smagorinsky(c_s=0.1))
    state = _perturbed(damped, amplitude=0.5)
    y_plus = damped.wall_units(state)[0, 0, :, 0]
    u_tau = math.sqrt(float(damped.wall_shear(state)[0]))
    assert torch.allclose(y_plus, (1 - damped.y.abs()) * u_tau / NU, rtol=1e-12)
    nu_t = damped.eddy_viscosity(state)
    assert torch.equal(nu_t[:, :, [0, -1]], torch.zeros_like(nu_t[:, :, [0, -1]]))
    expected = undamped.eddy_viscosity(state) * van_driest_damping(y_plus).view(1, 1, -1, 1)
    assert torch.allclose(nu_t, expected, rtol=1e-12, atol=0)


def test_dynamic_coefficient_is_plane_averaged_finite_and_the_total_viscosity_is_clipped():
    solver = _solver(_models()["dynamic"])
    state, _ = solver.advance(_perturbed(solver, amplitude=0.8, batch=2), 0.5)
    # A lower viscosity on the same flow: the planes with C < 0 then need the clip nu + nu_t >= 0.
    nu = 1e-4
    inviscid = ChannelFlow(
        (12, 25, 12), nu=nu, lengths=LENGTHS, les=DynamicSmagorinsky(average_dims=(-3, -1))
    )
    nu_t = inviscid.eddy_viscosity(state)
    coefficient = inviscid.closure.coefficient
    assert coefficient.shape == (2, 1, solver.ny, 1) and torch.isfinite(coefficient).all()
    assert inviscid.les.coefficient is None  # the given model is not the evaluated copy
    assert (coefficient > 0).any() and (coefficient < 0).any()
    # nu_t = C Delta^2 |S| with one C per x-z plane (Delta^2 |S| is Smagorinsky's nu_t at C_s = 1),
    # clipped at -nu.
    scale = _solver(Smagorinsky(c_s=1.0)).eddy_viscosity(state)
    expected = (coefficient * scale).clamp_min(-nu)
    assert torch.allclose(nu_t, expected, rtol=1e-9, atol=1e-15)
    clipped = nu_t == -nu
    assert clipped.any() and (nu_t + nu).min() >= 0.0
    assert torch.allclose(
        solver.eddy_viscosity(state), (coefficient * scale).clamp_min(-NU), rtol=1e-9, atol=1e-15
    )


def test_dynamic_test_filter_keeps_half_the_retained_modes_in_x_and_z_only():
    solver = _solver(_models()["dynamic"], shape=(16, 9, 16))
    x = torch.arange(16, dtype=torch.float64) * (LENGTHS[0] / 16)
    z = torch.arange(16, dtype=torch.float64) * (LENGTHS[1] / 16)
    y = solver.y
    kept = torch.cos(2 * x)[:, None, None] * torch.sin(2 * 2 * z)[None, None, :] * (1 + y)[None, :, None]
    removed = torch.cos(3 * x)[:, None, None] + torch.cos(5 * 2 * z)[None, None, :] * y[None, :, None] ** 3
    filtered = solver.test_filter(kept + removed)
    assert torch.allclose(filtered, kept, atol=1e-12)


def test_filter_width_follows_the_wall_normal_spacing():
    solver = _solver(_models()["wale"], shape=(12, 9, 18))
    width = solver.default_width()[0, :, 0].numpy()
    y = chebyshev_points(8)
    dy = np.r_[y[0] - y[1], (y[:-2] - y[2:]) / 2, y[-2] - y[-1]]
    expected = np.cbrt(1.5 * LENGTHS[0] / 12 * dy * 1.5 * LENGTHS[1] / 18)
    assert np.allclose(width, expected, rtol=1e-12)


def test_save_and_load_continue_the_same_les(tmp_path):
    solver = _solver(_models()["dynamic"], driving="flow_rate")
    state, _ = solver.advance(_perturbed(solver), 0.2, dt=0.05)
    solver.save(state, tmp_path / "les.pt")
    restored_solver, restored = ChannelFlow.load(tmp_path / "les.pt")
    assert isinstance(restored_solver.les, DynamicSmagorinsky)
    assert restored_solver.parameters() == solver.parameters()
    assert ChannelFlow(**solver.parameters()).parameters() == solver.parameters()
    a, _ = solver.advance(state, 0.15, dt=0.05)
    b, _ = restored_solver.advance(restored, 0.15, dt=0.05)
    assert torch.equal(a.phi, b.phi) and torch.equal(a.mean_u, b.mean_u)


def test_closures_a_checkpoint_cannot_describe_and_bad_arguments_are_named():
    fixed = _solver(Smagorinsky(y_plus=torch.ones(1, 25, 1)))
    with pytest.raises(ConfigError, match="y_plus"):
        fixed.parameters()
    with pytest.raises(ConfigError, match="les"):
        _solver(DynamicSmagorinsky())  # averaging over y as well: not homogeneous
    with pytest.raises(ConfigError, match="les"):
        _solver("smagorinsky")
    with pytest.raises(ConfigError, match="les_width"):
        _solver(WALE(), les_width=0.0)


def _channel_les_tool(monkeypatch):
    tools = Path(__file__).resolve().parents[2] / "tools"
    monkeypatch.syspath_prepend(str(tools))  # the tool imports validate_channel from beside it
    return importlib.import_module("validate_channel_les")


def test_the_filtered_dns_is_what_an_exact_les_holds_on_its_grid(monkeypatch):
    """Known answer: the DNS carried to the LES grid by ``regrid`` (the modes the LES retains) and
    evaluated there is the tool's filtered DNS; a coarser wall-normal grid takes every second point."""
    tool = _channel_les_tool(monkeypatch)
    dns = ChannelFlow((16, 17, 16), nu=NU, lengths=LENGTHS)
    state, _ = dns.advance(_perturbed(dns, amplitude=0.8), 0.5)
    les = ChannelFlow((8, 17, 8), nu=NU, lengths=LENGTHS)
    filtered = tool.filtered_velocity(dns, state, les)
    assert torch.allclose(filtered, les.velocity(les.regrid(state, dns)), atol=1e-12)
    assert (filtered - dns.velocity(state)[:, :, ::2, :, ::2]).abs().max() > 1e-3  # it filters
    half = ChannelFlow((8, 9, 8), nu=NU, lengths=LENGTHS)
    np.testing.assert_allclose(tool.filtered_velocity(dns, state, half), filtered[:, :, :, ::2], atol=1e-14)


def test_validate_channel_les_scores_an_exact_les_zero(monkeypatch, tmp_path):
    """With no LES time and the DNS's own wall-normal grid the no-model LES is the filtered DNS sample
    itself: zero U+ error against it, and equal Re_tau and peaks; a later DNS sample would not be."""
    tool = _channel_les_tool(monkeypatch)
    dns = ChannelFlow(
        (16, 17, 12), nu=1 / 180, lengths=LENGTHS, driving="pressure_gradient", pressure_gradient=1.0
    )
    state, _ = dns.advance(_perturbed(dns, amplitude=0.8), 0.2)
    dns.save(state, tmp_path / "state.pt")
    common = ["--dns-state", str(tmp_path / "state.pt"), "--les-grid", "8", "17", "8", "--models", "none"]
    common += ["--les-spin-up", "0", "--les-time", "0", "--sample-interval", "0.05", "--dns-dtype", "float64"]
    summaries = tool.main([*common, "--dns-time", "0", "--out", str(tmp_path / "exact")])
    exact, target = summaries["none"], summaries["filtered DNS"]
    assert exact["u_plus_error_vs_filtered"] < 1e-12
    for key in ("re_tau", "u_rms_peak", "v_rms_peak", "reynolds_shear_peak"):
        assert exact[key] == pytest.approx(target[key], rel=1e-10)
    assert (tmp_path / "exact" / "results.md").is_file() and (tmp_path / "exact" / "profiles.png").is_file()
    later = tool.main([*common, "--dns-time", "0.1", "--out", str(tmp_path / "later")])
    assert later["none"]["u_plus_error_vs_filtered"] > 1e-6
