"""Gaussian Fourier features: shape, the N(0, scale^2) matrix, determinism, and the sin/cos formula."""

import math

import pytest
import torch

from sciml.nn.fourier_features import GaussianFourierFeatures


def test_shape_and_formula():
    gff = GaussianFourierFeatures(3, 5, scale=8.0, seed=1)
    coords = torch.rand(2, 7, 3)
    out = gff(coords)
    assert out.shape == (2, 7, 10)
    phase = 2 * math.pi * coords @ gff.frequencies
    torch.testing.assert_close(out[..., :5], torch.sin(phase))
    torch.testing.assert_close(out[..., 5:], torch.cos(phase))
    torch.testing.assert_close(out[..., :5] ** 2 + out[..., 5:] ** 2, torch.ones(2, 7, 5))


def test_matrix_has_the_requested_scale():
    gff = GaussianFourierFeatures(3, 20_000, scale=8.0, seed=0)
    entries = gff.frequencies.flatten().double()
    assert gff.frequencies.shape == (3, 20_000)
    # 60k samples: the sample std of N(0, 64) is within 2 % of 8 and the mean within 0.2.
    assert abs(entries.std().item() - 8.0) < 0.16
    assert abs(entries.mean().item()) < 0.2


def test_matrix_is_seeded_stored_and_independent_of_the_global_rng():
    torch.manual_seed(123)
    a = GaussianFourierFeatures(3, 48, scale=8.0, seed=7)
    torch.manual_seed(456)
    b = GaussianFourierFeatures(3, 48, scale=8.0, seed=7)
    c = GaussianFourierFeatures(3, 48, scale=8.0, seed=8)
    assert torch.equal(a.frequencies, b.frequencies)
    assert not torch.equal(a.frequencies, c.frequencies)
    assert "frequencies" in a.state_dict()
    assert not list(a.parameters())  # fixed: never trained
    c.load_state_dict(a.state_dict())
    assert torch.equal(c.frequencies, a.frequencies)


def test_wrong_coordinate_width_is_rejected():
    with pytest.raises(ValueError, match=r"expected \(\.\.\., 3\) coordinates, got \(4, 2\)"):
        GaussianFourierFeatures(3, 4, scale=1.0)(torch.zeros(4, 2))
