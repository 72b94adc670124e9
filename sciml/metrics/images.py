"""Image and video quality measures for rendered views: PSNR, SSIM and a temporal-consistency (flicker) error.

Images are channels-last, ``(..., H, W, C)``, with values in ``[0, max_value]`` (``max_value`` is the data
range: 1.0 for float images, 255.0 for 8-bit values converted to float). Every leading dimension is a batch
dimension and each image gets its own score.

* PSNR = ``10 log10(max_value^2 / MSE)`` with the MSE taken over H, W and C of each image. Identical images
  have MSE = 0 and PSNR = +inf; this is returned as is, not clamped, so an exact reconstruction is never
  mistaken for a finite score (a dataset mean that contains one is +inf: report the number of exact images
  separately or average the MSE instead).
* SSIM is the structural similarity of Z. Wang, A. C. Bovik, H. R. Sheikh and E. P. Simoncelli, "Image
  quality assessment: from error visibility to structural similarity", IEEE TIP 13(4), 2004, eq. (13):

      SSIM(x, y) = (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))

  with ``C1 = (k1 max_value)^2``, ``C2 = (k2 max_value)^2`` (k1 = 0.01, k2 = 0.03) and local means,
  variances and covariance weighted by a ``window x window`` Gaussian of standard deviation ``sigma``
  (11 and 1.5, section III.C), normalized to sum 1. Variances are the weighted population moments
  ``E[x^2] - E[x]^2`` (no sample-size correction). The SSIM map is evaluated only where the window lies
  wholly inside the image ('valid', no padding: an ``(H - window + 1) x (W - window + 1)`` map), averaged
  over the map, computed per channel and averaged over channels. This is
  ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=max_value, channel_axis=-1)``, whose Gaussian filter is
  truncated at 3.5 sigma, i.e. an 11-pixel window for sigma = 1.5, and whose map is cropped by the window
  radius. The computation runs in the input's dtype; float32 agrees with float64 to about 1e-6.
* Temporal consistency of a rendered sequence: the mean absolute error of the per-pixel temporal change,
  ``mean_t mean_{h,w,c} |(pred[t+1] - pred[t]) - (target[t+1] - target[t])|`` over the T - 1 consecutive
  pairs. It is 0 when the rendering changes over time exactly as the truth does, including under a constant
  per-pixel bias, and grows with frame-to-frame flicker that per-frame PSNR/SSIM do not see (a prediction
  alternating between +a and -a around the truth scores 2a). It is meaningful only for frames of one fixed
  camera at increasing times, in order: across cameras the "change" is a change of viewpoint.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor


def _check_image_pair(name: str, pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"{name}: pred and target must have the same shape (..., H, W, C), got {tuple(pred.shape)} "
            f"and {tuple(target.shape)}"
        )
    if pred.ndim < 3:
        raise ValueError(f"{name}: expected images of shape (..., H, W, C), got {tuple(pred.shape)}")
    if not (pred.is_floating_point() and target.is_floating_point()):
        raise TypeError(
            f"{name}: expected floating-point images, got {pred.dtype} and {target.dtype} "
            "(convert to float and pass max_value, e.g. 255.0 for 8-bit values)"
        )


def psnr(
    pred: Float[Tensor, "*batch H W C"], target: Float[Tensor, "*batch H W C"], max_value: float = 1.0
) -> Float[Tensor, "*batch"]:
    """Peak signal-to-noise ratio in dB of each image; +inf for identical images (module docstring)."""
    _check_image_pair("psnr", pred, target)
    if max_value <= 0:
        raise ValueError(f"psnr: max_value must be positive, got {max_value}")
    mse = (pred - target).square().mean(dim=(-3, -2, -1))  # (*batch,)
    return 10 * torch.log10(max_value**2 / mse)


def gaussian_window(window: int, sigma: float, *, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Normalized 1-D Gaussian weights ``exp(-k^2 / (2 sigma^2))``, ``k = -(window-1)/2 .. (window-1)/2``."""
    offsets = torch.arange(window, dtype=dtype, device=device) - (window - 1) / 2
    weights = torch.exp(-(offsets**2) / (2 * sigma**2))
    return weights / weights.sum()


def ssim(
    pred: Float[Tensor, "*batch H W C"],
    target: Float[Tensor, "*batch H W C"],
    max_value: float = 1.0,
    window: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> Float[Tensor, "*batch"]:
    """Mean SSIM of each image: Gaussian window, 'valid' map, averaged over channels (module docstring)."""
    _check_image_pair("ssim", pred, target)
    if window < 1 or window % 2 == 0:
        raise ValueError(f"ssim: window must be a positive odd number of pixels, got {window}")
    if sigma <= 0 or max_value <= 0:
        raise ValueError(
            f"ssim: sigma and max_value must be positive, got sigma={sigma}, max_value={max_value}"
        )
    *batch, height, width, channels = pred.shape
    if height < window or width < window:
        raise ValueError(
            f"ssim: images of H x W = {height} x {width} are smaller than the {window} x {window} window"
        )

    def planes(image: Tensor) -> Tensor:
        return image.reshape(-1, height, width, channels).permute(0, 3, 1, 2)  # (N, C, H, W), N = prod(batch)

    x, y = planes(pred), planes(target)
    moments = torch.stack([x, y, x * x, y * y, x * y], dim=2)  # (N, C, 5, H, W)
    moments = moments.reshape(-1, 5, height, width)  # (N*C, 5, H, W)
    kernel = gaussian_window(window, sigma, dtype=pred.dtype, device=pred.device)
    # Separable Gaussian, each of the 5 moment planes filtered on its own (groups=5): rows, then columns.
    moments = torch.nn.functional.conv2d(
        moments, kernel.view(1, 1, window, 1).expand(5, 1, window, 1), groups=5
    )
    moments = torch.nn.functional.conv2d(
        moments, kernel.view(1, 1, 1, window).expand(5, 1, 1, window), groups=5
    )
    mu_x, mu_y, e_xx, e_yy, e_xy = moments.unbind(dim=1)  # each (N*C, H - window + 1, W - window + 1)
    var_x = e_xx - mu_x * mu_x
    var_y = e_yy - mu_y * mu_y
    cov_xy = e_xy - mu_x * mu_y
    c1, c2 = (k1 * max_value) ** 2, (k2 * max_value) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    )
    per_channel = ssim_map.mean(dim=(-2, -1)).reshape(-1, channels)  # (N, C)
    return per_channel.mean(dim=-1).reshape(batch)


def temporal_consistency(
    pred_frames: Float[Tensor, "T H W C"], target_frames: Float[Tensor, "T H W C"]
) -> float:
    """Mean absolute error of the frame-to-frame change of one camera's frames in time order (see module)."""
    if pred_frames.shape != target_frames.shape or pred_frames.ndim != 4:
        raise ValueError(
            "temporal_consistency: expected pred and target frames of the same shape (T, H, W, C), got "
            f"{tuple(pred_frames.shape)} and {tuple(target_frames.shape)}"
        )
    if pred_frames.shape[0] < 2:
        raise ValueError(
            f"temporal_consistency: needs at least T = 2 consecutive frames, got T = {pred_frames.shape[0]}"
        )
    pred_change = pred_frames[1:] - pred_frames[:-1]  # (T-1, H, W, C)
    target_change = target_frames[1:] - target_frames[:-1]  # (T-1, H, W, C)
    # Every pair has H*W*C pixels, so the mean over pairs of per-pair means is the mean over everything.
    return float((pred_change - target_change).abs().mean())
