"""Emission-absorption volume rendering of samples along rays (NeRF, Mildenhall et al. 2020, eq. 3).

For samples ``i = 0..S-1`` of a ray at distances ``t_i`` with density ``sigma_i >= 0``, colour ``c_i`` and
spacing ``delta_i``:

    alpha_i = 1 - exp(-sigma_i delta_i)                      opacity of the interval of sample i
    T_i     = prod_{j<i} (1 - alpha_j) = exp(-sum_{j<i} sigma_j delta_j)    transmittance up to sample i
    w_i     = T_i alpha_i                                    rendering weight (sum_i w_i = 1 - T_S <= 1)
    rgb     = sum_i w_i c_i + (1 - sum_i w_i) background
    depth   = sum_i w_i t_i

Numerics: ``T`` is the exponential of an *exclusive* cumulative sum of the optical depths ``sigma delta``
(no product of many ``1 - alpha`` factors, no division, and no ``cumsum - self`` subtraction, which cancels
catastrophically when the last spacing is huge); ``alpha = -expm1(-sigma delta)`` keeps thin, faint
intervals accurate.

Spacings (pass exactly one of ``deltas`` and ``far``):

* ``deltas`` ``(R, S)``: used as given, e.g. the bin widths ``bins.diff(dim=-1)`` of samples taken one per
  bin (:func:`~sciml.rendering.samplers.uniform_bins`; nerfstudio's convention). A constant-density
  medium covering the bins then has accumulation ``1 - exp(-sigma (far - near))`` exactly.
* ``far`` (a number or ``(R,)``): NeRF's convention, ``delta_i = t_{i+1} - t_i`` and the last sample's
  interval runs to ``far``, ``delta_{S-1} = max(far - t_{S-1}, 0)``. ``far = inf`` is NeRF's choice of
  ``delta_{S-1} = 1e10`` (the last sample absorbs everything behind it: any positive density there makes
  the ray opaque); a finite ``far`` keeps the scene's back bound, so empty space behind the last sample
  shows the background.

Outputs: ``depth`` is the *expected* depth, not normalized by the accumulation (it tends to 0 where the ray
sees nothing, like a rendered depth composited onto a zero background); ``depth_normalized`` is
``depth / accumulation`` (the mean depth of what the ray does see; 0 where the accumulation is 0). Depths
are distances along the ray when the directions have unit length (:mod:`sciml.rendering.cameras`).
Densities must already be non-negative (apply the field's activation, e.g. softplus or truncated exp, first).
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

#: NeRF's stand-in for an infinite last spacing; finite so that ``0 * delta`` stays 0 instead of NaN.
INFINITE_DELTA = 1e10


def _check_like(name: str, tensor: Tensor, shape: tuple[int, ...], pattern: str) -> None:
    if tuple(tensor.shape) != shape:
        raise ValueError(f"{name}: expected {pattern} = {shape}, got {tuple(tensor.shape)}")


def volume_render(
    densities: Float[Tensor, "R S"],
    colors: Float[Tensor, "R S C"],
    t: Float[Tensor, "R S"],
    deltas: Float[Tensor, "R S"] | None = None,
    *,
    far: float | Float[Tensor, " R"] | None = None,
    background: Float[Tensor, " C"] | Float[Tensor, "R C"] | None = None,
) -> dict[str, Tensor]:
    """Composite ``S`` samples per ray into a colour, depth and opacity (module docstring).

    ``colors`` may have any number ``C`` of channels (3 for RGB); ``background`` is one colour ``(C,)``
    for all rays, one per ray ``(R, C)``, or None for no background term (black). Exactly one of
    ``deltas`` and ``far`` gives the sample spacings. Returns a dict of

    * ``rgb`` ``(R, C)``, ``depth`` ``(R,)`` (expected depth ``sum w t``), ``depth_normalized`` ``(R,)``,
      ``accumulation`` ``(R,)`` (``sum w``, the opacity);
    * ``weights`` ``(R, S)`` and ``transmittance`` ``(R, S)`` (``T_i``, the light reaching sample ``i``),
      for losses and for :func:`~sciml.rendering.samplers.sample_pdf`.
    """
    if densities.ndim != 2:
        raise ValueError(f"densities: expected (R, S), got {tuple(densities.shape)}")
    rays, samples = densities.shape
    if colors.ndim != 3 or colors.shape[:2] != (rays, samples):
        raise ValueError(f"colors: expected (R, S, C) = ({rays}, {samples}, C), got {tuple(colors.shape)}")
    _check_like("t", t, (rays, samples), "(R, S)")
    if (deltas is None) == (far is None):
        raise ValueError("volume_render: pass exactly one of deltas (R, S) and far (number or (R,))")
    if deltas is not None:
        _check_like("deltas", deltas, (rays, samples), "(R, S)")
    else:
        far_ = torch.as_tensor(far, dtype=t.dtype, device=t.device)
        if far_.ndim == 0:
            far_ = far_.expand(rays)
        _check_like("far", far_, (rays,), "a number or (R,)")
        last = torch.where(
            torch.isinf(far_), torch.full_like(far_, INFINITE_DELTA), (far_ - t[:, -1]).clamp_min(0.0)
        )  # (R,)
        deltas = torch.cat([t[:, 1:] - t[:, :-1], last[:, None]], dim=1)  # (R, S)

    optical_depth = densities * deltas  # (R, S)
    # exclusive cumulative sum: sum_{j<i}
    before = torch.cat([torch.zeros_like(optical_depth[:, :1]), optical_depth[:, :-1]], dim=1).cumsum(dim=1)
    transmittance = torch.exp(-before)  # (R, S)
    alpha = -torch.expm1(-optical_depth)
    weights = transmittance * alpha  # (R, S)
    accumulation = weights.sum(dim=1)  # (R,)
    rgb = (weights[..., None] * colors).sum(dim=1)  # (R, C)
    if background is not None:
        channels = colors.shape[2]
        if background.shape not in ((channels,), (rays, channels)):
            raise ValueError(
                f"background: expected (C,) = ({channels},) or (R, C) = ({rays}, {channels}), "
                f"got {tuple(background.shape)}"
            )
        rgb = rgb + (1.0 - accumulation)[:, None] * background.to(rgb)
    depth = (weights * t).sum(dim=1)  # (R,)
    seen = accumulation > 0
    depth_normalized = torch.where(seen, depth / torch.where(seen, accumulation, 1.0), 0.0)
    return {
        "rgb": rgb,
        "depth": depth,
        "depth_normalized": depth_normalized,
        "accumulation": accumulation,
        "weights": weights,
        "transmittance": transmittance,
    }
