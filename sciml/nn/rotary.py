"""Rotary position embedding on physical coordinates (Su et al. 2021, RoFormer, eq. 34), in the form that
OFormer/FactFormer use for PDE grids: the angle of frequency ``m`` at coordinate ``x`` is

    theta_m(x) = x * (scale / min_freq) * base^(-2m / dim),   m = 0 .. dim/2 - 1,

and a vector ``q = [q1, q2]`` (two halves) is rotated to ``[q1 cos - q2 sin, q2 cos + q1 sin]``. Rotations
compose, so ``rot(q, x_i) . rot(k, x_j)`` depends on the positions only through ``x_i - x_j``.
``min_freq = 1/64`` is the FactFormer/IFactFormer value: coordinates are in physical units (e.g. a channel
of length 4 pi), and the lowest frequency then resolves the whole domain.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn


class RotaryEmbedding(nn.Module):
    """Angles and rotation for a ``dim``-wide feature (``dim`` even) at 1-D physical coordinates."""

    inv_freq: Tensor

    def __init__(self, dim: int, min_freq: float = 1.0 / 64.0, scale: float = 1.0, base: float = 10000.0):
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"RotaryEmbedding: dim must be even and >= 2, got {dim}")
        inv_freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (dim/2,)
        # A derived constant, rebuilt from the arguments: not part of the state dict.
        self.register_buffer("inv_freq", inv_freq.to(torch.get_default_dtype()), persistent=False)
        self.dim = dim
        self.min_freq = min_freq
        self.scale = scale

    def angles(self, coords: Float[Tensor, " n"]) -> Float[Tensor, "n half"]:
        """Angles ``theta_m(x)`` of shape (n, dim/2)."""
        # Angles reach hundreds of radians: keep them out of autocast's half precision.
        with torch.autocast(coords.device.type, enabled=False):
            return torch.outer(coords.to(self.inv_freq.dtype) * (self.scale / self.min_freq), self.inv_freq)

    def cos_sin(self, coords: Float[Tensor, " n"]) -> tuple[Float[Tensor, "n half"], Float[Tensor, "n half"]]:
        theta = self.angles(coords)
        return torch.cos(theta), torch.sin(theta)

    def forward(
        self, x: Float[Tensor, "*batch n dim"], coords: Float[Tensor, " n"]
    ) -> Float[Tensor, "*batch n dim"]:
        """Rotate ``x`` whose second-to-last axis runs over the points at ``coords``."""
        cos, sin = self.cos_sin(coords)
        return apply_rotary(x, cos, sin)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, min_freq={self.min_freq}, scale={self.scale}"


def apply_rotary(x: Float[Tensor, "*batch dim"], cos: Tensor, sin: Tensor) -> Float[Tensor, "*batch dim"]:
    """Rotate the two halves of the last axis of ``x`` by angles with ``cos``/``sin`` of shape (..., dim/2).

    ``cos``/``sin`` broadcast against ``x[..., :dim/2]``; this is ``x cos + rotate_half(x) sin`` with the
    duplicated ``[theta, theta]`` angle layout, written on the halves so no doubled table is built.
    """
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)
