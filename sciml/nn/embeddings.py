"""Embeddings of diffusion timesteps, class labels and grid positions, as in DiT (Peebles & Xie 2023,
"Scalable Diffusion Models with Transformers", section 3.2) and its 3-D variant DiT-3D (Mo et al. 2023).

* Timesteps: the sinusoidal features of GLIDE/ADM, ``[cos(t w_k), sin(t w_k)]`` with
  ``w_k = max_period^(-k / (D/2))`` for ``k < D/2``, followed by ``Linear -> SiLU -> Linear``.
* Labels: an embedding table; with ``null_class=True`` it has one extra row, the "no label" class used for
  classifier-free guidance (row ``num_classes``).
* Positions: the fixed MAE sin-cos embedding, in 3-D by splitting the width in three equal parts, one per
  grid axis, each ``[sin(p w_k), cos(p w_k)]`` with ``w_k = 10000^(-k / (D/6))``.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn


def timestep_features(
    t: Float[Tensor, " B"] | Int[Tensor, " B"], dim: int, max_period: float = 10000.0
) -> Float[Tensor, "B dim"]:
    """Sinusoidal features of (possibly fractional) timesteps, cosines first."""
    half = dim // 2
    frequencies = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    angles = t.float()[:, None] * frequencies[None]  # (B, half)
    features = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
    if dim % 2:
        features = torch.cat([features, torch.zeros_like(features[:, :1])], dim=-1)
    return features


class TimestepEmbedder(nn.Module):
    """Timesteps ``(B,)`` -> ``(B, hidden)``: sinusoidal features, then a two-layer SiLU MLP."""

    def __init__(self, hidden_size: int, frequency_size: int = 256):
        super().__init__()
        self.frequency_size = frequency_size
        self.mlp = nn.Sequential(
            nn.Linear(frequency_size, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size)
        )

    def forward(self, t: Int[Tensor, " B"] | Float[Tensor, " B"]) -> Float[Tensor, "B hidden"]:
        return self.mlp(timestep_features(t, self.frequency_size).to(self.mlp[0].weight.dtype))


class LabelEmbedder(nn.Module):
    """Class labels ``(B,)`` -> ``(B, hidden)``; label ``num_classes`` is the null class when present."""

    def __init__(self, num_classes: int, hidden_size: int, null_class: bool = True):
        super().__init__()
        self.num_classes = num_classes
        self.null_class = null_class
        self.embedding_table = nn.Embedding(num_classes + int(null_class), hidden_size)

    @property
    def null_label(self) -> int:
        if not self.null_class:
            raise ValueError("this label embedder has no null class (null_class=False): no guidance")
        return self.num_classes

    def forward(self, labels: Int[Tensor, " B"]) -> Float[Tensor, "B hidden"]:
        rows = self.embedding_table.num_embeddings
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= rows):
            raise ValueError(
                f"class labels must be in [0, {rows}) ({self.num_classes} classes"
                f"{' + the null class' if self.null_class else ''}), got {labels.unique().tolist()}"
            )
        return self.embedding_table(labels)


def sincos_1d(dim: int, positions: Tensor) -> Tensor:
    """``(M,)`` positions -> ``(M, dim)``: sines then cosines, frequencies ``10000^(-k / (dim/2))``."""
    if dim % 2:
        raise ValueError(f"a 1-D sin-cos embedding needs an even width, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = positions.double().reshape(-1)[:, None] * omega[None]  # (M, dim/2)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def sincos_3d(dim: int, grid: tuple[int, int, int]) -> Float[Tensor, "tokens dim"]:
    """Fixed 3-D sin-cos embedding of a ``grid`` of tokens in row-major (x, y, z) order, float32.

    The width is split in three: the first third encodes x, the second y, the last z.
    """
    if dim % 6:
        raise ValueError(f"a 3-D sin-cos embedding needs a width divisible by 6, got {dim}")
    axes = torch.meshgrid(*(torch.arange(n, dtype=torch.float64) for n in grid), indexing="ij")
    return torch.cat([sincos_1d(dim // 3, axis) for axis in axes], dim=1).float()


class PatchEmbed3d(nn.Module):
    """Voxel grid ``(B, C, V, V, V)`` -> tokens ``(B, (V/p)^3, D)``: a Conv3d with kernel = stride = p,
    tokens in row-major (x, y, z) patch order."""

    def __init__(self, in_channels: int, hidden_size: int, patch_size: int):
        super().__init__()
        self.proj = nn.Conv3d(in_channels, hidden_size, kernel_size=patch_size, stride=patch_size)

    def forward(self, grid: Float[Tensor, "B C X Y Z"]) -> Float[Tensor, "B L D"]:
        return self.proj(grid).flatten(2).transpose(1, 2)  # (B, D, gx, gy, gz) -> (B, gx gy gz, D)
