import math

import numpy as np
import pytest
import torch

from sciml.core.errors import ConfigError
from sciml.physics.filters import coarse_grain, spectral_filter, transfer_function
from sciml.physics.spectral import SpectralGrid, rfft3


def _mesh(n, length=2 * math.pi):
    x = torch.arange(n, dtype=torch.float64) * (length / n)
    return torch.meshgrid(x, x, x, indexing="ij")


def test_sharp_filter_removes_modes_at_and_above_the_cutoff_only():
    grid = SpectralGrid(24)
    u = torch.randn(3, 24, 24, 24, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    filtered_hat = rfft3(spectral_filter(u, "sharp", width=2 * math.pi / 12))  # cutoff k_c = 6
    modes = [m.abs() for m in grid.modes]
    above = (modes[0] >= 6) | (modes[1] >= 6) | (modes[2] >= 6)
    assert filtered_hat[:, above].abs().max() < 1e-10
    assert torch.allclose(filtered_hat[:, ~above], rfft3(u)[:, ~above], atol=1e-10)


def test_gaussian_transfer_function_value():
    X, Y, Z = _mesh(32)
    field = torch.sin(3 * X) * torch.cos(2 * Z)  # |k|^2 = 13
    width = 0.4
    filtered = spectral_filter(field, "gaussian", width=width)
    assert torch.allclose(filtered, field * math.exp(-13 * width**2 / 24), atol=1e-13)
    g = transfer_function("gaussian", width, (32, 32, 32))
    assert g[3, 0, 2].item() == pytest.approx(math.exp(-13 * width**2 / 24), rel=1e-14)


def test_box_filter_equals_real_space_moving_average():
    """Continuous top-hat average over [x - D/2, x + D/2]^3, by Gauss-Legendre quadrature."""
    n, width = 16, 0.9

    def field(x, y, z):
        return torch.sin(x + 2 * y) * torch.cos(3 * z - 0.4) + 0.5 * torch.cos(2 * x - y + z) + 0.2

    X, Y, Z = _mesh(n)
    filtered = spectral_filter(field(X, Y, Z), "box", width=width)
    nodes, weights = np.polynomial.legendre.leggauss(10)
    s = torch.tensor(nodes * width / 2)  # (Q,)
    w = torch.tensor(weights / 2)  # sums to 1
    shape = (n, n, n, 1, 1, 1)
    values = field(
        X.reshape(shape) + s.view(-1, 1, 1),
        Y.reshape(shape) + s.view(1, -1, 1),
        Z.reshape(shape) + s.view(1, 1, -1),
    )  # (n, n, n, Q, Q, Q)
    average = torch.einsum("xyzabc,a,b,c->xyz", values, w, w, w)
    assert torch.allclose(filtered, average, atol=1e-12)


def test_box_filter_transfer_function_is_sinc():
    g = transfer_function("box", 0.5, (16, 16, 16))
    assert g[2, 0, 0].item() == pytest.approx(math.sin(0.5) / 0.5, rel=1e-14)
    assert g[1, 1, 1].item() == pytest.approx((math.sin(0.25) / 0.25) ** 3, rel=1e-14)


def test_coarse_grain_reproduces_band_limited_field_exactly():
    generator = torch.Generator().manual_seed(1)
    X, Y, Z = _mesh(48)
    Xc, Yc, Zc = _mesh(16)
    fine = torch.zeros(2, 48, 48, 48, dtype=torch.float64)
    coarse = torch.zeros(2, 16, 16, 16, dtype=torch.float64)
    for b in range(2):
        for _ in range(12):
            m = torch.randint(-7, 8, (3,), generator=generator).double()  # |m| <= 7 < 16 / 2
            a, phase = torch.rand(2, generator=generator, dtype=torch.float64)
            fine[b] += a * torch.cos(m[0] * X + m[1] * Y + m[2] * Z + 6 * phase)
            coarse[b] += a * torch.cos(m[0] * Xc + m[1] * Yc + m[2] * Zc + 6 * phase)
    assert torch.allclose(coarse_grain(fine, 16), coarse, atol=1e-12)
    assert torch.allclose(coarse_grain(fine, 16, kind=None), coarse, atol=1e-12)


def test_coarse_grain_applies_the_filter_then_samples():
    X, Y, Z = _mesh(32)
    Xc, Yc, Zc = _mesh(16)
    fine = torch.stack([torch.sin(2 * X + Y), torch.cos(5 * Z), torch.sin(12 * Y)])  # (3, 32, 32, 32)
    out = coarse_grain(fine, 16, kind="gaussian")  # width = coarse spacing 2 pi / 16
    width = 2 * math.pi / 16
    assert out.shape == (3, 16, 16, 16)
    assert torch.allclose(out[0], torch.sin(2 * Xc + Yc) * math.exp(-5 * width**2 / 24), atol=1e-12)
    assert torch.allclose(out[1], torch.cos(5 * Zc) * math.exp(-25 * width**2 / 24), atol=1e-12)
    assert out[2].abs().max() < 1e-12  # m = 12 does not fit on 16 points and is dropped


def test_filter_errors_name_the_parameter():
    u = torch.zeros(3, 8, 8, 8, dtype=torch.float64)
    with pytest.raises(ConfigError, match="filter"):
        spectral_filter(u, "median", width=1.0)
    with pytest.raises(ConfigError, match="width"):
        spectral_filter(u, "box", width=-1.0)
    with pytest.raises(ConfigError, match="shape"):
        coarse_grain(u, 16)
