"""PSNR, SSIM (Wang et al. 2004, scikit-image's Gaussian 'valid' variant) and temporal consistency of frames.

scikit-image is not a dependency, so SSIM is checked against a float64 loop-over-pixels reference written
here from the paper's definition, and against closed-form cases.
"""

import math
import typing

import numpy as np
import pytest
import torch
from jaxtyping import jaxtyped

from sciml.metrics.images import psnr, ssim, temporal_consistency


def _images(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Smooth-ish random images in [0, 1]: a blurred-looking mix of a gradient and noise."""
    g = torch.Generator().manual_seed(seed)
    *_, height, width, _ = shape
    ramp = torch.linspace(0, 1, height)[:, None, None] * torch.linspace(0, 1, width)[None, :, None]
    return (0.6 * ramp + 0.4 * torch.rand(*shape, generator=g)).to(dtype)


# ---- PSNR


def test_psnr_of_a_constant_error_is_the_closed_form():
    target = _images(3, 8, 9, 3)
    errors = torch.tensor([0.1, 0.01, 0.25], dtype=torch.float64)
    pred = target + errors[:, None, None, None]
    torch.testing.assert_close(psnr(pred, target), 10 * torch.log10(1 / errors**2))
    torch.testing.assert_close(
        psnr(pred, target), torch.tensor([20.0, 40.0, 12.0411998], dtype=torch.float64)
    )
    # The data range enters as max^2: the same relative error on 8-bit values gives the same PSNR.
    torch.testing.assert_close(psnr(255 * pred, 255 * target, max_value=255.0), psnr(pred, target))


def test_psnr_is_per_image_over_every_leading_dimension_and_inf_for_identical_images():
    target = _images(2, 3, 6, 7, 3)
    pred = target.clone()
    pred[0, 1, 2, 3, 1] += 0.5  # one pixel of one image: MSE = 0.25 / (6 * 7 * 3)
    values = psnr(pred, target)
    assert values.shape == (2, 3)
    torch.testing.assert_close(
        values[0, 1], torch.tensor(10 * math.log10(6 * 7 * 3 / 0.25), dtype=torch.float64)
    )
    others = torch.ones(2, 3, dtype=torch.bool)
    others[0, 1] = False
    assert torch.isposinf(values[others]).all()  # identical images: +inf, not clamped
    assert psnr(pred[0, 1], target[0, 1]).shape == ()  # a single image gives a scalar


def test_psnr_shape_and_dtype_errors():
    with pytest.raises(ValueError, match=r"same shape"):
        psnr(torch.zeros(2, 4, 4, 3), torch.zeros(2, 4, 5, 3))
    with pytest.raises(ValueError, match=r"\(\.\.\., H, W, C\), got \(4, 3\)"):
        psnr(torch.zeros(4, 3), torch.zeros(4, 3))
    with pytest.raises(TypeError, match="floating-point"):
        psnr(torch.zeros(1, 4, 4, 3, dtype=torch.uint8), torch.zeros(1, 4, 4, 3, dtype=torch.uint8))


# ---- SSIM


def _reference_ssim(x: np.ndarray, y: np.ndarray, max_value=1.0, window=11, sigma=1.5, k1=0.01, k2=0.03):
    """Float64 SSIM of one (H, W, C) pair, pixel by pixel: weighted moments over each in-image window."""
    offsets = np.arange(window) - (window - 1) / 2
    g = np.exp(-(offsets**2) / (2 * sigma**2))
    weights = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (k1 * max_value) ** 2, (k2 * max_value) ** 2
    height, width, channels = x.shape
    per_channel = []
    for c in range(channels):
        values = []
        for i in range(height - window + 1):
            for j in range(width - window + 1):
                a, b = x[i : i + window, j : j + window, c], y[i : i + window, j : j + window, c]
                mu_a, mu_b = (weights * a).sum(), (weights * b).sum()
                var_a = (weights * (a - mu_a) ** 2).sum()
                var_b = (weights * (b - mu_b) ** 2).sum()
                cov = (weights * (a - mu_a) * (b - mu_b)).sum()
                values.append(
                    (2 * mu_a * mu_b + c1)
                    * (2 * cov + c2)
                    / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
                )
        per_channel.append(np.mean(values))
    return float(np.mean(per_channel))


def test_ssim_matches_the_pixel_by_pixel_reference():
    target = _images(2, 15, 17, 3, seed=1)
    pred = (
        target
        + 0.15 * torch.randn(2, 15, 17, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ).clamp(0, 1)
    values = ssim(pred, target)
    assert values.shape == (2,) and values.dtype == torch.float64
    expected = [_reference_ssim(pred[b].numpy(), target[b].numpy()) for b in range(2)]
    torch.testing.assert_close(values, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=1e-12)
    assert 0.2 < min(expected) < max(expected) < 0.95  # a non-trivial comparison
    # Other window, sigma, constants and data range go through the same way.
    options = dict(max_value=2.0, window=5, sigma=0.8, k1=0.05, k2=0.1)
    expected = _reference_ssim(2 * pred[0].numpy(), 2 * target[0].numpy(), **options)
    torch.testing.assert_close(
        ssim(2 * pred[:1], 2 * target[:1], **options), torch.tensor([expected], dtype=torch.float64)
    )
    # float32 agrees with float64.
    torch.testing.assert_close(ssim(pred.float(), target.float()), values.float(), rtol=0, atol=1e-5)


def test_ssim_of_identical_images_is_one_and_it_is_symmetric():
    x = _images(4, 12, 11, 3, seed=3)
    torch.testing.assert_close(ssim(x, x), torch.ones(4, dtype=torch.float64))
    y = _images(4, 12, 11, 3, seed=4)
    torch.testing.assert_close(ssim(x, y), ssim(y, x), rtol=0, atol=1e-14)
    assert ssim(x[:2, None], y[:2, None]).shape == (2, 1)  # leading dimensions are kept


def test_ssim_falls_as_noise_grows():
    target = _images(1, 32, 32, 3, seed=5)
    noise = torch.randn(1, 32, 32, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    scores = [float(ssim(target + level * noise, target)) for level in (0.0, 0.02, 0.05, 0.1, 0.2, 0.4)]
    assert scores[0] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(scores, scores[1:])), scores
    assert scores[-1] < 0.3


def _center_weight(window=11, sigma=1.5) -> float:
    """Share of the 2-D Gaussian window's weight on its central row: g(0) / sum_k g(k)."""
    half = (window - 1) // 2
    return 1 / sum(math.exp(-(k**2) / (2 * sigma**2)) for k in range(-half, half + 1))


def test_ssim_closed_forms_on_a_single_window():
    # 11 x 11 images give a single window position. The pattern s is +1 above the central row, -1 below and
    # 0 on it: its Gaussian-weighted mean is 0 and its weighted mean square is 1 - w0 (w0: central row share).
    s = torch.zeros(11, 11, dtype=torch.float64)
    s[:5], s[6:] = 1.0, -1.0
    c, d = 0.5, 0.2
    x = (c + d * s)[None, :, :, None].expand(1, 11, 11, 3)
    variance = d**2 * (1 - _center_weight())
    c1, c2 = 0.01**2, 0.03**2
    # Negative around the mean: equal means, equal variances, covariance -variance.
    negative = (c - d * s)[None, :, :, None].expand(1, 11, 11, 3)
    expected = (c2 - 2 * variance) / (c2 + 2 * variance)
    torch.testing.assert_close(ssim(x, negative), torch.tensor([expected], dtype=torch.float64))
    assert expected < -0.9
    # Constant shift b: only the luminance term changes.
    b = 0.1
    expected = (2 * c * (c + b) + c1) / (c**2 + (c + b) ** 2 + c1)
    torch.testing.assert_close(ssim(x + b, x), torch.tensor([expected], dtype=torch.float64))


def test_ssim_of_constant_images():
    # No variance: the structure term is C2 / C2 = 1 and only (2ab + C1) / (a^2 + b^2 + C1) is left.
    a = torch.tensor([0.2, 0.5, 0.0], dtype=torch.float64)
    b = torch.tensor([0.3, 0.5, 1.0], dtype=torch.float64)
    x = a[:, None, None, None].expand(3, 13, 14, 2)
    y = b[:, None, None, None].expand(3, 13, 14, 2)
    c1 = 0.01**2
    torch.testing.assert_close(ssim(x, y), (2 * a * b + c1) / (a**2 + b**2 + c1))
    # Window 1: every statistic is the pixel itself, so the map is that expression pixel by pixel.
    x, y = _images(2, 4, 5, 3, seed=7), _images(2, 4, 5, 3, seed=8)
    expected = ((2 * x * y + c1) / (x**2 + y**2 + c1)).mean(dim=(1, 2, 3))
    torch.testing.assert_close(ssim(x, y, window=1), expected)


def test_ssim_errors_name_the_sizes():
    with pytest.raises(ValueError, match=r"H x W = 8 x 20 are smaller than the 11 x 11 window"):
        ssim(torch.zeros(1, 8, 20, 3), torch.zeros(1, 8, 20, 3))
    with pytest.raises(ValueError, match=r"same shape.*\(1, 12, 12, 3\) and \(1, 12, 12, 1\)"):
        ssim(torch.zeros(1, 12, 12, 3), torch.zeros(1, 12, 12, 1))
    with pytest.raises(ValueError, match="odd"):
        ssim(torch.zeros(1, 12, 12, 3), torch.zeros(1, 12, 12, 3), window=10)


def test_image_metrics_match_their_jaxtyping_annotations():
    hints = typing.get_type_hints(ssim)

    @jaxtyped(typechecker=None)
    def check(pred, target, result):
        return (
            isinstance(pred, hints["pred"])
            and isinstance(target, hints["target"])
            and isinstance(result, hints["return"])
        )

    x, y = _images(2, 3, 12, 12, 3, seed=9), _images(2, 3, 12, 12, 3, seed=10)
    assert check(x, y, ssim(x, y)) and check(x, y, psnr(x, y))
    assert not check(x, y, ssim(x, y)[:1])
    assert not check(x, y[..., :2], ssim(x, y))


# ---- temporal consistency


def _frames(seed: int = 0) -> torch.Tensor:
    """Six frames of a pattern drifting to the right, one camera, increasing times: (T, H, W, C)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(8, 16, 3, generator=g, dtype=torch.float64)
    return torch.stack([torch.roll(base, shifts=t, dims=1) for t in range(6)])


def test_temporal_consistency_ignores_a_consistent_bias():
    target = _frames()
    bias = 0.3 * torch.rand(1, 8, 16, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert temporal_consistency(target, target) == 0.0
    assert temporal_consistency(target + bias, target) == pytest.approx(0.0, abs=1e-15)
    assert float(psnr(target + bias, target).max()) < 25  # per-frame metrics do see the bias


def test_temporal_consistency_measures_flicker():
    target = _frames()
    amplitude = 0.05
    sign = torch.tensor([(-1.0) ** t for t in range(6)], dtype=torch.float64)[:, None, None, None]
    flicker = target + amplitude * sign  # +a, -a, +a, ...: every change is off by 2a
    assert temporal_consistency(flicker, target) == pytest.approx(2 * amplitude, rel=1e-12)
    # A blip on frame 2 only, on half of the rows: two of the five changes are off by a, on half the pixels.
    blip = target.clone()
    blip[2, :4] += amplitude
    assert temporal_consistency(blip, target) == pytest.approx(2 * amplitude * 0.5 / 5, rel=1e-12)
    # A static prediction of a moving scene is penalized by the true motion.
    static = target[:1].expand(6, -1, -1, -1)
    changes = (target[1:] - target[:-1]).abs().mean()
    assert temporal_consistency(static, target) == pytest.approx(float(changes), rel=1e-12)
    assert isinstance(temporal_consistency(flicker, target), float)


def test_temporal_consistency_errors():
    with pytest.raises(ValueError, match="at least T = 2.*got T = 1"):
        temporal_consistency(torch.zeros(1, 4, 4, 3), torch.zeros(1, 4, 4, 3))
    with pytest.raises(ValueError, match=r"\(T, H, W, C\), got \(2, 4, 4, 3\) and \(2, 4, 5, 3\)"):
        temporal_consistency(torch.zeros(2, 4, 4, 3), torch.zeros(2, 4, 5, 3))
    with pytest.raises(ValueError, match=r"\(T, H, W, C\)"):
        temporal_consistency(torch.zeros(3, 4, 4), torch.zeros(3, 4, 4))
