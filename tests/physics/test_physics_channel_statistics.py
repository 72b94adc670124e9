import importlib.util
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from sciml.core.errors import ConfigError
from sciml.physics.channel import ChannelFlow, chebyshev_points
from sciml.physics.channel_statistics import ChannelProfiles, ChannelStatisticsAccumulator, channel_statistics

SHAPE = (12, 17, 8)
LENGTHS = (2 * math.pi, math.pi)
NU = 1 / 50
ROOT = Path(__file__).resolve().parents[2]


def _grid(shape=SHAPE, lengths=LENGTHS):
    nx, ny, nz = shape
    x = torch.arange(nx, dtype=torch.float64) * lengths[0] / nx
    y = torch.from_numpy(chebyshev_points(ny - 1))
    z = torch.arange(nz, dtype=torch.float64) * lengths[1] / nz
    return torch.meshgrid(x, y, z, indexing="ij")  # each (X, Y, Z)


def _field(u, v, w):
    return torch.stack((u, v, w))[None]  # (1, 3, X, Y, Z)


def _laminar(centreline=1.5):
    x, y, z = _grid()
    return centreline * (1 - y**2), x, y, z


def test_laminar_poiseuille_is_exact_in_wall_units():
    solver = ChannelFlow(SHAPE, nu=NU, lengths=LENGTHS)
    state = solver.laminar_state(2, centreline_velocity=1.5)
    accumulator = ChannelStatisticsAccumulator.for_solver(solver)
    accumulator.update(solver.velocity(state))
    profiles = accumulator.profiles()
    re_tau = math.sqrt(2 * NU * 1.5) / NU
    assert profiles.re_tau == pytest.approx(re_tau, rel=1e-12)
    assert profiles.re_tau == pytest.approx(float(solver.re_tau(state)[0]), rel=1e-12)
    y_plus = profiles.y_plus
    np.testing.assert_allclose(profiles.u_mean, y_plus - y_plus**2 / (2 * re_tau), atol=1e-11)
    for name in ("u_rms", "v_rms", "w_rms", "reynolds_shear", "stress_residual", "v_mean", "w_mean"):
        np.testing.assert_allclose(getattr(profiles, name), 0.0, atol=1e-10, err_msg=name)
    assert profiles.samples == 2
    assert profiles.eta[0] == 0.0 and profiles.eta[-1] == pytest.approx(1.0)
    # Chebyshev interpolation reproduces the quadratic between the grid points.
    targets = np.array([1.0, 3.3, 7.0, 0.9 * re_tau, 1.5 * re_tau])
    np.testing.assert_allclose(
        profiles.interpolate("u_mean", targets), targets - targets**2 / (2 * re_tau), atol=1e-10
    )


def test_prescribed_fluctuations_give_exact_rms_and_shear_stress():
    mean, x, y, z = _laminar()
    a, b, c = -0.3, 0.2, 0.1
    f = 1 - y**2  # symmetric
    g = -y * (1 - y**2)  # antisymmetric, > 0 near the lower wall
    h = (1 - y**2) ** 2
    u = mean + a * torch.cos(2 * x) * f
    v = b * torch.cos(2 * x) * g
    w = c * torch.sin(2 * 2 * z) * h
    accumulator = ChannelStatisticsAccumulator(SHAPE, NU, LENGTHS)
    accumulator.update(_field(u, v, w))
    profiles = accumulator.profiles()
    u_tau = math.sqrt(NU * 3.0)  # dU/dy = 3 at the walls
    assert profiles.u_tau == pytest.approx(u_tau, rel=1e-12)
    y_lower = profiles.eta - 1.0  # the lower-wall frame
    f_, g_, h_ = 1 - y_lower**2, -y_lower * (1 - y_lower**2), (1 - y_lower**2) ** 2
    np.testing.assert_allclose(profiles.u_rms, abs(a) * f_ / math.sqrt(2) / u_tau, atol=1e-12)
    np.testing.assert_allclose(profiles.v_rms, abs(b) * np.abs(g_) / math.sqrt(2) / u_tau, atol=1e-12)
    np.testing.assert_allclose(profiles.w_rms, abs(c) * h_ / math.sqrt(2) / u_tau, atol=1e-12)
    expected_shear = -a * b * f_ * g_ / 2 / u_tau**2
    assert expected_shear[1:-1].min() > 0  # -<u'v'> > 0 with these signs
    np.testing.assert_allclose(profiles.reynolds_shear, expected_shear, atol=1e-12)
    np.testing.assert_allclose(profiles.uw, 0.0, atol=1e-12)
    # The antisymmetric mirror continues the (polynomial) profile through the centreline.
    eta = np.array([0.05, 0.5, 1.0, 1.4, 1.9])
    y_ = eta - 1
    exact = -a * b * (1 - y_**2) * (-y_ * (1 - y_**2)) / 2 / u_tau**2
    np.testing.assert_allclose(
        profiles.interpolate("reynolds_shear", eta * profiles.re_tau), exact, atol=1e-10
    )
    np.testing.assert_allclose(
        profiles.interpolate("u_rms", eta * profiles.re_tau),
        abs(a) * (1 - y_**2) / math.sqrt(2) / u_tau,
        atol=1e-9,
    )
    residual = profiles.viscous_shear + expected_shear - (1 - profiles.y_plus / profiles.re_tau)
    np.testing.assert_allclose(profiles.stress_residual, residual, atol=1e-12)


def test_folding_flips_the_sign_of_uv_only_for_the_upper_half():
    mean, x, y, _ = _laminar()
    u_sym = mean + 0.2 * torch.cos(x) * (1 - y**2)
    antisymmetric = ChannelStatisticsAccumulator(SHAPE, NU, LENGTHS)
    antisymmetric.update(_field(u_sym, 0.1 * torch.cos(x) * y * (1 - y**2), torch.zeros_like(x)))
    symmetric = ChannelStatisticsAccumulator(SHAPE, NU, LENGTHS)
    symmetric.update(_field(u_sym, 0.1 * torch.cos(x) * (1 - y**2), torch.zeros_like(x)))
    # Antisymmetric v with symmetric u: both halves agree in the wall frame (u'v' = 0.01 y (1-y^2)^2 < 0
    # in the lower half), so -<u'v'> keeps its lower-half value everywhere, nothing cancels.
    eta = antisymmetric.profiles().eta
    expected = -0.2 * 0.1 * (eta - 1) * (1 - (eta - 1) ** 2) ** 2 / 2 / antisymmetric.profiles().u_tau ** 2
    np.testing.assert_allclose(antisymmetric.profiles().reynolds_shear, expected, atol=1e-12)
    assert antisymmetric.profiles().reynolds_shear[1:-1].min() > 0
    # Symmetric v is not a reflection-symmetric flow: its two halves cancel.
    np.testing.assert_allclose(symmetric.profiles().reynolds_shear, 0.0, atol=1e-12)


def test_single_mode_spectra_hit_the_right_bin_and_sum_to_the_variance():
    mean, x, y, z = _laminar()
    amplitude = 0.4 * (1 - y**2)
    u = mean + amplitude * torch.cos(3 * x + 0.3)  # kx = 3 (index 3 in a 2 pi box)
    w = amplitude * torch.cos(2 * z)  # kz = 2 -> index 1 in a pi box
    accumulator = ChannelStatisticsAccumulator(SHAPE, NU, LENGTHS)
    accumulator.update(_field(u, torch.zeros_like(x), w))
    profiles = accumulator.profiles()
    spectra = accumulator.spectra([5.0, 1e6])
    assert spectra.y_plus[-1] == pytest.approx(profiles.y_plus[-1])  # clipped to the centre point
    np.testing.assert_allclose(spectra.kx[3], 3.0)
    np.testing.assert_allclose(spectra.kz[1], 2.0)
    np.testing.assert_allclose(spectra.kx_plus, spectra.kx * NU / profiles.u_tau)
    for p, y_plus in enumerate(spectra.y_plus):
        j = int(np.argmin(np.abs(profiles.y_plus - y_plus)))
        energy_u, energy_w = profiles.u_rms[j] ** 2, profiles.w_rms[j] ** 2
        assert energy_u > 0
        expected_x = np.zeros((3, SHAPE[0] // 2 + 1))
        expected_x[0, 3] = energy_u
        expected_x[2, 0] = energy_w  # w varies in z only
        np.testing.assert_allclose(spectra.streamwise[p], expected_x, atol=1e-12)
        expected_z = np.zeros((3, SHAPE[2] // 2 + 1))
        expected_z[0, 0] = energy_u
        expected_z[2, 1] = energy_w
        np.testing.assert_allclose(spectra.spanwise[p], expected_z, atol=1e-12)


def test_parseval_on_random_fields_including_nyquist():
    generator = torch.Generator().manual_seed(0)
    mean, *_ = _laminar()
    field = torch.randn(2, 3, *SHAPE, generator=generator, dtype=torch.float64) * 0.1
    field[:, 0] += mean
    accumulator = ChannelStatisticsAccumulator(SHAPE, NU, LENGTHS)
    accumulator.update(field)
    profiles = accumulator.profiles()
    spectra = accumulator.spectra(profiles.y_plus)
    variance = np.stack((profiles.u_rms, profiles.v_rms, profiles.w_rms), 1) ** 2  # (P, 3)
    # The plane means differ between the two samples, which the spectra leave out.
    means = field.mean(dim=(2, 4))  # (B, 3, Y)
    spread = means.var(dim=0, unbiased=False).numpy()  # (3, Y)
    n = SHAPE[1] - 1
    folded_spread = (
        0.5 * (spread[:, n - np.arange(n // 2 + 1)] + spread[:, : n // 2 + 1]).T / profiles.u_tau**2
    )
    np.testing.assert_allclose(spectra.streamwise.sum(-1), variance - folded_spread, atol=1e-12)
    np.testing.assert_allclose(spectra.spanwise.sum(-1), variance - folded_spread, atol=1e-12)


def _random_snapshots(count, batch=1, seed=1):
    generator = torch.Generator().manual_seed(seed)
    mean, *_ = _laminar()
    snapshots = []
    for _ in range(count):
        field = torch.randn(batch, 3, *SHAPE, generator=generator, dtype=torch.float64) * 0.2
        field = field * (1 - _grid()[1] ** 2)  # vanishes on the walls
        field[:, 0] += mean
        snapshots.append(field)
    return snapshots


def _assert_same(first, second, atol=1e-13):
    a, b = first.profiles(), second.profiles()
    assert a.samples == b.samples
    for name in ("u_mean", "u_rms", "v_rms", "w_rms", "reynolds_shear", "stress_residual", "y_plus"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=atol, rtol=0, err_msg=name)
    sa, sb = first.spectra([2.0, 10.0]), second.spectra([2.0, 10.0])
    np.testing.assert_allclose(sa.streamwise, sb.streamwise, atol=atol)
    np.testing.assert_allclose(sa.spanwise, sb.spanwise, atol=atol)


def test_streaming_equals_batch_and_resumes_after_save(tmp_path):
    snapshots = _random_snapshots(4)
    streamed = channel_statistics(snapshots, NU, LENGTHS)
    batch = ChannelStatisticsAccumulator(SHAPE, NU, LENGTHS)
    batch.update(torch.cat(snapshots))
    _assert_same(streamed, batch)
    # Fluctuations are about the ensemble mean, not each snapshot's own mean.
    assert streamed.profiles().u_rms.max() > 0

    first = channel_statistics(snapshots[:2], NU, LENGTHS)
    first.save(tmp_path / "stats.pt")
    resumed = ChannelStatisticsAccumulator.load(tmp_path / "stats.pt")
    for snapshot in snapshots[2:]:
        resumed.update(snapshot)
    _assert_same(resumed, streamed, atol=0.0)


def test_shape_and_empty_errors(tmp_path):
    accumulator = ChannelStatisticsAccumulator(SHAPE, NU, LENGTHS)
    with pytest.raises(ConfigError, match="no snapshot"):
        accumulator.profiles()
    with pytest.raises(ConfigError, match="expected"):
        accumulator.update(torch.zeros(1, 3, 12, 16, 8))
    with pytest.raises(ConfigError):
        channel_statistics([], NU, LENGTHS)
    other = ChannelStatisticsAccumulator((12, 9, 8), NU, LENGTHS)
    with pytest.raises(ConfigError, match="saved statistics"):
        other.load_state_dict(accumulator.state_dict())


def _load_tool():
    spec = importlib.util.spec_from_file_location("validate_channel", ROOT / "tools" / "validate_channel.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("driving", ["flow_rate", "pressure_gradient"])
def test_validate_channel_runs_end_to_end_and_resumes(tmp_path, capsys, driving):
    tool = _load_tool()
    assert tool.REFERENCE.is_file(), "the Re180 reference profile is missing"
    reference = tool.read_reference(tool.REFERENCE)
    assert reference["y_plus"][-1] == pytest.approx(186.34, abs=0.01)  # the centreline y+ of Re180.prof
    out = tmp_path / "out"
    common = ["--nx", "8", "--ny", "17", "--nz", "8", "--threads", "1", "--out", str(out)]
    common += [
        "--sample-interval",
        "0.01",
        "--checkpoint-every",
        "0.01",
        "--no-progress",
        "--driving",
        driving,
    ]
    tool.main([*common, "--spin-up", "0.01", "--averaging", "0.02"])
    table = (out / "results.md").read_text()
    assert "U+ relative error" in table and "dx+" in table
    assert (out / "profiles.png").stat().st_size > 1000 and (out / "spectra.png").stat().st_size > 1000
    summary = tool.json.loads((out / "summary.json").read_text())
    assert summary["samples"] == 3 and math.isfinite(summary["u_plus_max_relative_error"])
    assert summary["settings"]["driving"] == driving
    assert summary["u_rms_peak_reference"] == pytest.approx(reference["u_rms"].max(), rel=0.01)
    assert (out / "checkpoint" / "state.pt").is_file()
    # A later run resumes from the checkpoint and keeps averaging.
    tool.main([*common, "--restart", str(out / "checkpoint"), "--averaging", "0.04"])
    resumed = tool.json.loads((out / "summary.json").read_text())
    assert resumed["samples"] > summary["samples"]
    assert resumed["averaging_time"] == pytest.approx(0.04)
    assert "Re_tau" in capsys.readouterr().out


def test_wall_shear_matches_the_solver_on_a_perturbed_batch():
    solver = ChannelFlow(SHAPE, nu=NU, lengths=LENGTHS)
    state = solver.perturbed_state(3, 0.3, generator=torch.Generator().manual_seed(2))
    state, _ = solver.advance(state, 0.05, dt=0.01)
    accumulator = ChannelStatisticsAccumulator.for_solver(solver)
    accumulator.update(solver.velocity(state))
    profiles = accumulator.profiles()
    assert profiles.u_tau**2 == pytest.approx(float(solver.wall_shear(state).mean()), rel=1e-10)
    assert profiles.u_rms.max() > 0 and profiles.u_rms[0] == pytest.approx(0.0, abs=1e-12)  # no slip


def test_validate_channel_restarts_from_a_saved_state_in_float32(tmp_path):
    tool = _load_tool()
    solver = ChannelFlow(
        (8, 17, 8),
        nu=1 / 180,
        lengths=(4 * math.pi, 4 * math.pi / 3),
        driving="flow_rate",
        bulk_velocity=40 / 3,
    )
    state = solver.perturbed_state(
        1, 2.0, centreline_velocity=20.0, generator=torch.Generator().manual_seed(0)
    )
    solver.save(state, tmp_path / "state.pt")
    out = tmp_path / "out"
    summary = tool.main(
        [
            "--restart",
            str(tmp_path / "state.pt"),
            "--dtype",
            "float32",
            "--spin-up",
            "0",
            "--averaging",
            "0.02",
        ]
        + ["--sample-interval", "0.01", "--threads", "1", "--out", str(out), "--no-progress"]
    )
    assert summary["samples"] == 3 and summary["settings"]["dtype"] == "float32"
    assert summary["settings"]["nu"] == pytest.approx(1 / 180)
    assert (out / "results.md").is_file() and (out / "profiles.png").is_file()
    assert summary["settings"]["grid (nx, ny, nz)"] == (8, 17, 8)  # the saved grid when none is given
    # The same state carried over to a finer grid in a box half as long.
    carried = tool.main(
        ["--restart", str(tmp_path / "state.pt"), "--nx", "12", "--lx", str(2 * math.pi)]
        + ["--spin-up", "0", "--averaging", "0", "--threads", "1", "--out", str(tmp_path / "half")]
        + ["--no-progress"]
    )
    assert carried["settings"]["grid (nx, ny, nz)"] == (12, 17, 8)
    assert carried["settings"]["box (Lx, Ly, Lz) / h"][0] == pytest.approx(2 * math.pi, abs=1e-4)
    assert carried["samples"] == 1
    assert carried["settings"]["driving"] == "flow_rate"  # the saved driving when none is given
    switched = tool.main(
        ["--restart", str(tmp_path / "state.pt"), "--driving", "pressure_gradient", "--spin-up", "0"]
        + ["--averaging", "0", "--threads", "1", "--out", str(tmp_path / "switched"), "--no-progress"]
    )
    assert switched["settings"]["driving"] == "pressure_gradient"


def _profiles_from_reference(reference, n=128, **changes):
    """The reference profiles sampled at the folded Gauss-Lobatto points of an ``n``-interval grid."""
    from scipy.interpolate import PchipInterpolator

    re_tau = float(reference["y_plus"][-1])
    eta = (1.0 - chebyshev_points(n))[: n // 2 + 1]  # wall .. centre
    y_plus = eta * re_tau
    at = {
        name: PchipInterpolator(reference["y_plus"], reference[name])(y_plus)
        for name in ("u_mean", "u_rms", "v_rms", "w_rms", "reynolds_shear")
    }
    at.update(changes)
    zero = np.zeros_like(eta)
    return ChannelProfiles(
        nu=1 / re_tau,
        u_tau=1.0,
        re_tau=re_tau,
        samples=1,
        eta=eta,
        y_plus=y_plus,
        v_mean=zero,
        w_mean=zero,
        uw=zero,
        vw=zero,
        viscous_shear=zero,
        stress_residual=zero,
        **at,
    )


def test_validate_channel_scores_the_reference_itself_zero_and_a_wrong_profile_by_its_error():
    tool = _load_tool()
    reference = tool.read_reference(tool.REFERENCE)
    exact = tool.compare(_profiles_from_reference(reference), reference)
    assert exact["u_plus_max_relative_error"] < 2e-3
    for name, _ in tool.PEAKS:
        assert abs(exact[f"{name}_peak_relative_error"]) < 2e-3
        assert exact[f"{name}_peak_y_plus"] == pytest.approx(exact[f"{name}_peak_y_plus_reference"], abs=1.0)
    low = _profiles_from_reference(reference)
    scaled = tool.compare(_profiles_from_reference(reference, u_mean=0.97 * low.u_mean), reference)
    assert scaled["u_plus_max_relative_error"] == pytest.approx(0.03, abs=2e-3)
    swapped = tool.compare(_profiles_from_reference(reference, u_rms=low.w_rms, w_rms=low.u_rms), reference)
    assert swapped["u_rms_peak_relative_error"] < -0.5 and swapped["w_rms_peak_relative_error"] > 1.0
    # Right values at the wrong wall distances (wall units of a Re_tau 10 % too high): off by more than 3 %.
    claimed = 1.1 * low.re_tau
    stretched = tool.compare(replace(low, re_tau=claimed, y_plus=low.eta * claimed), reference)
    assert stretched["u_plus_max_relative_error"] > 0.03
