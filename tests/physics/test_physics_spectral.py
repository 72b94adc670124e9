import math

import pytest
import torch

from sciml.core.errors import ConfigError
from sciml.physics.spectral import SpectralGrid, deterministic_sum, resample, resample_hat, rfft3


def test_wavenumbers_and_dealias_mask_follow_the_2_3_rule():
    grid = SpectralGrid((12, 8, 6), lengths=(2 * math.pi, math.pi, 4 * math.pi))
    assert grid.spectral_shape == (12, 8, 4)
    # FFT order, physical wavenumbers 2 pi m / L, Nyquist zeroed for derivatives.
    assert grid.kx.flatten().tolist() == [0, 1, 2, 3, 4, 5, 0, -5, -4, -3, -2, -1]
    assert grid.ky.flatten().tolist() == [0, 2, 4, 6, 0, -6, -4, -2]
    assert grid.kz.flatten().tolist() == [0, 0.5, 1.0, 0.0]
    assert grid.k2_full[6, 0, 0] == 36.0 and grid.k2[6, 0, 0] == 0.0
    # Kept modes satisfy 3|m| < n: |m| <= 3 of 12, <= 2 of 8, <= 1 of 6 (rfft half: m_z in {0, 1}).
    kept = grid.dealias.sum().item()
    assert kept == 7 * 5 * 2
    assert grid.k_max_dealiased == pytest.approx(min(3.0, 2 * 2.0, 0.5))


def test_mode_energy_is_parseval_with_rfft_weights():
    grid = SpectralGrid((8, 6, 10))
    u = torch.randn(2, 3, 8, 6, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    energy = grid.mode_energy(rfft3(u)).sum(dim=(-3, -2, -1))
    assert torch.allclose(energy, 0.5 * u.square().sum(1).mean(dim=(-3, -2, -1)), rtol=1e-13)


def test_projection_removes_divergence_and_keeps_solenoidal_part():
    grid = SpectralGrid(10)
    u = torch.randn(3, 10, 10, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    projected = grid.project(rfft3(u))
    assert grid.divergence_hat(projected).abs().max() < 1e-11
    assert torch.allclose(grid.project(projected), projected, atol=1e-12)
    # A pure gradient is removed entirely.
    phi_hat = rfft3(torch.randn(10, 10, 10, generator=torch.Generator().manual_seed(2), dtype=torch.float64))
    gradient = torch.stack((grid.kx * phi_hat, grid.ky * phi_hat, grid.kz * phi_hat)) * 1j
    assert grid.project(gradient).abs().max() < 1e-10


def test_resample_is_exact_for_band_limited_fields_both_ways():
    x = torch.arange(16, dtype=torch.float64) * (2 * math.pi / 16)
    X, Y, Z = torch.meshgrid(x, x, x, indexing="ij")
    field = torch.sin(3 * X + 1.0) * torch.cos(2 * Y) + 0.3 * torch.cos(X - 4 * Z) + 0.1
    coarse = resample(field, 10)  # keeps |m| <= 4
    xc = torch.arange(10, dtype=torch.float64) * (2 * math.pi / 10)
    Xc, Yc, Zc = torch.meshgrid(xc, xc, xc, indexing="ij")
    expected = torch.sin(3 * Xc + 1.0) * torch.cos(2 * Yc) + 0.3 * torch.cos(Xc - 4 * Zc) + 0.1
    assert torch.allclose(coarse, expected, atol=1e-12)
    assert torch.allclose(resample(coarse, 16), field, atol=1e-12)


def test_resample_drops_modes_the_target_grid_cannot_hold():
    grid = SpectralGrid(16)
    x = grid.coordinates()[0]
    field = torch.cos(8 * x).view(16, 1, 1).expand(16, 16, 16)  # the Nyquist mode of 16 points
    assert resample(field.contiguous(), 12).abs().max() < 1e-13
    u_hat = rfft3(torch.cos(5 * x).view(16, 1, 1).expand(16, 16, 16).contiguous())
    assert resample_hat(u_hat, (16, 16, 16), (10, 10, 10)).abs().max() < 1e-12  # |m| = 5 > 4


def test_deterministic_sum_does_not_depend_on_thread_count():
    x = torch.randn(3, 40, 40, 21, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = deterministic_sum(x, (-3, -2, -1))
        torch.set_num_threads(3)
        three = deterministic_sum(x, (-3, -2, -1))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, three)
    assert torch.allclose(one, x.sum(dim=(-3, -2, -1)), rtol=1e-12)


def test_grid_rejects_bad_configuration():
    with pytest.raises(ConfigError, match="shape"):
        SpectralGrid((8, 8))
    with pytest.raises(ConfigError, match="lengths"):
        SpectralGrid(8, lengths=-1.0)
    with pytest.raises(ConfigError, match="dtype"):
        SpectralGrid(8, dtype=torch.int64)
