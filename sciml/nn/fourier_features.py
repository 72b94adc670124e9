"""Gaussian random Fourier features of coordinates (Tancik et al. 2020, "Fourier Features Let Networks
Learn High Frequency Functions in Low Dimensional Domains", eq. 5 with ``B ~ N(0, sigma^2)``).

``gamma(x) = [sin(2 pi x B), cos(2 pi x B)]`` with a fixed ``(in_features, num_frequencies)`` matrix ``B``.
``B`` is drawn once from a seeded generator and stored as a persistent buffer: the features are
reproducible from the constructor arguments alone and every checkpoint carries the exact matrix.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor, nn


class GaussianFourierFeatures(nn.Module):
    """Map ``(..., in_features)`` coordinates to ``(..., 2 * num_frequencies)`` sin/cos features.

    Args:
        in_features: coordinate dimension (3 for physical ``(x, y, z)``).
        num_frequencies: columns of ``B``; the output has twice as many channels (sin block, then cos).
        scale: standard deviation ``sigma`` of the entries of ``B``.
        seed: seed of the generator that draws ``B`` (independent of the global RNG state).
    """

    frequencies: Tensor

    def __init__(self, in_features: int, num_frequencies: int, scale: float, seed: int = 0):
        super().__init__()
        if in_features < 1 or num_frequencies < 1:
            raise ValueError(
                f"GaussianFourierFeatures: in_features and num_frequencies must be >= 1, "
                f"got {in_features} and {num_frequencies}"
            )
        generator = torch.Generator(device="cpu").manual_seed(seed)
        matrix = torch.randn(in_features, num_frequencies, generator=generator, dtype=torch.float64) * scale
        self.register_buffer("frequencies", matrix.to(torch.get_default_dtype()), persistent=True)
        self.in_features = in_features
        self.num_frequencies = num_frequencies
        self.scale = scale
        self.seed = seed

    @property
    def out_features(self) -> int:
        return 2 * self.num_frequencies

    def forward(self, coords: Float[Tensor, "*points in_features"]) -> Float[Tensor, "*points out_features"]:
        if coords.shape[-1] != self.in_features:
            raise ValueError(
                f"GaussianFourierFeatures: expected (..., {self.in_features}) coordinates, "
                f"got {tuple(coords.shape)}"
            )
        # Phases reach hundreds of radians: never let autocast compute them in half precision.
        with torch.autocast(coords.device.type, enabled=False):
            phase = (2.0 * math.pi) * (coords.to(self.frequencies.dtype) @ self.frequencies)  # (..., m)
            return torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, num_frequencies={self.num_frequencies}, "
            f"scale={self.scale}, seed={self.seed}"
        )
