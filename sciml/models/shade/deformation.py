"""SHaDe's deformation tri-plane: motion as a time-modulated factorized field, with no MLP.

Three planes (XY, YZ, XZ; the paper's size is 256 x 256 with 32 channels) hold deformation features
``F_p(x)``; a learned time modulation scales and shifts them per plane and channel,

    g(x, t) = sum_p  F_p(x) * (1 + gamma_p(t)) + beta_p(t),        dx = g(x, t) W,      x_c = x + dx,

and a ``32 x 3`` map ``W`` (learned, or a fixed seeded random projection: ``learn_projection``) turns the
summed features into the offset to the canonical point ``x_c``.

Choice where the paper is silent (configurable): ``gamma`` and ``beta`` are linear in Fourier features of
``t`` (``[1, sin(2^k pi t), cos(2^k pi t)]``, ``k < time_frequencies``), zero-initialised so the field starts
as the identity map (``dx = 0``, planes at zero). The motion is thereby a sum of separable terms
``f(x) a(t)``, smooth in ``t`` at the chosen bandwidth, which the time-smoothness regularizer
(:meth:`TriPlaneDeformation.time_smoothness`) further penalizes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor, nn

from sciml.nn.planes import TRIPLANE_AXES, FeaturePlanes


def time_features(t: Float[Tensor, " N"], frequencies: int) -> Float[Tensor, "N F"]:
    """``[1, sin(2^k pi t), cos(2^k pi t) for k < frequencies]`` of times in [0, 1]."""
    scales = math.pi * 2.0 ** torch.arange(frequencies, device=t.device, dtype=t.dtype)
    angles = t[:, None] * scales  # (N, K)
    return torch.cat([torch.ones_like(t)[:, None], torch.sin(angles), torch.cos(angles)], dim=1)


class TimeModulation(nn.Module):
    """``gamma(t), beta(t)``, each ``(P, N, C)``, linear in Fourier features of ``t``; zero at start."""

    def __init__(self, planes: int, channels: int, frequencies: int = 4):
        super().__init__()
        self.planes, self.channels, self.frequencies = planes, channels, frequencies
        self.linear = nn.Linear(1 + 2 * frequencies, 2 * planes * channels, bias=False)
        nn.init.zeros_(self.linear.weight)

    def forward(self, t: Float[Tensor, " N"]) -> tuple[Tensor, Tensor]:
        out = self.linear(time_features(t, self.frequencies))  # (N, 2 P C)
        gamma, beta = out.view(-1, 2, self.planes, self.channels).permute(1, 2, 0, 3)  # 2 x (P, N, C)
        return gamma, beta


class TriPlaneDeformation(nn.Module):
    """Offset ``dx(x, t)`` to the canonical frame (module docstring).

    Args:
        bounds: ``(lo, hi)`` of x, y and z (the scene box).
        resolution: plane nodes per axis (256 in the paper).
        channels: plane channels (32 in the paper).
        learn_projection: learn the ``channels x 3`` map ``W``; otherwise a fixed random projection.
        time_frequencies: Fourier frequencies of the time modulation.
        seed: seed of the fixed projection.
    """

    projection: Tensor

    def __init__(
        self,
        bounds: Sequence[tuple[float, float]],
        resolution: int = 256,
        channels: int = 32,
        learn_projection: bool = True,
        time_frequencies: int = 4,
        seed: int = 0,
    ):
        super().__init__()
        # Zero planes: the deformation starts as the identity and its gradient reaches the planes via W.
        self.planes = FeaturePlanes(TRIPLANE_AXES, resolution, channels, bounds, init="zeros")
        self.modulation = TimeModulation(len(TRIPLANE_AXES), channels, time_frequencies)
        generator = torch.Generator().manual_seed(seed)
        initial = torch.randn(channels, 3, generator=generator) / math.sqrt(channels)
        if learn_projection:
            self.projection = nn.Parameter(initial)
        else:
            self.register_buffer("projection", initial)

    def features(self, x: Float[Tensor, "N 3"], t: Float[Tensor, " N"]) -> Float[Tensor, "N C"]:
        """Summed, time-modulated plane features ``g(x, t)``."""
        planes = self.planes(x)  # (P, N, C)
        gamma, beta = self.modulation(t)
        return (planes * (1 + gamma) + beta).sum(dim=0)

    def modulated_planes(self, t: Float[Tensor, " B"]) -> Float[Tensor, "B P C R R"]:
        """The planes at times ``t``, ``F_p * (1 + gamma_p(t)) + beta_p(t)``: reading them bilinearly and
        summing gives :meth:`features` (the modulation is constant over a plane)."""
        planes = torch.stack(list(self.planes.planes))  # (P, C, R, R)
        gamma, beta = self.modulation(t)  # 2 x (P, B, C)
        gamma, beta = gamma.transpose(0, 1)[..., None, None], beta.transpose(0, 1)[..., None, None]
        return planes * (1 + gamma) + beta

    def forward(self, x: Float[Tensor, "N 3"], t: Float[Tensor, " N"]) -> Float[Tensor, "N 3"]:
        if x.ndim != 2 or x.shape[1] != 3 or t.shape != (x.shape[0],):
            shapes = f"{tuple(x.shape)} and {tuple(t.shape)}"
            raise ValueError(f"expected points (N, 3) and times (N,), got {shapes}")
        return self.features(x, t) @ self.projection

    def time_smoothness(self, x: Float[Tensor, "N 3"], times: int = 8) -> Tensor:
        """Mean squared second difference in time of ``dx`` at points ``x`` over ``times`` even steps."""
        t = torch.linspace(0, 1, times, device=x.device, dtype=x.dtype)
        offsets = torch.stack([self(x, ti.expand(x.shape[0])) for ti in t])  # (T, N, 3)
        return (offsets[2:] - 2 * offsets[1:-1] + offsets[:-2]).square().mean()
