"""Multi-head self-attention over token sequences, global or in 3-D windows, through
``torch.nn.functional.scaled_dot_product_attention`` (which picks a fused kernel where one exists).

Window attention (as in ViTDet/SAM and DiT-3D's window variant) partitions the ``(X, Y, Z)`` token grid
of EACH sample into non-overlapping ``w^3`` windows and attends within a window only. Windows are taken
per sample, so no token ever attends to another sample's tokens (the official DiT-3D window code reshapes
across the batch). A grid that is not a multiple of ``w`` is padded at its far end; padded tokens are
masked out as keys, so a window at the border attends exactly over its real tokens.

Weights follow the timm ``Attention`` layout (``qkv``: one ``Linear(dim, 3 dim)`` whose output splits as
``(3, heads, head_dim)``, then ``proj``), so checkpoints of DiT-family models load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn


def window_partition(
    x: Float[Tensor, "B X Y Z C"], window: int
) -> tuple[Float[Tensor, "BW L C"], Tensor | None]:
    """Split each sample's grid into ``window^3`` blocks -> ``(B * n_windows, window^3, C)``.

    Returns the windows and a boolean ``(n_windows, window^3)`` mask of real (unpadded) tokens, or ``None``
    when the grid is a multiple of the window.
    """
    batch, *grid, channels = x.shape
    pads = [(-n) % window for n in grid]
    mask = None
    if any(pads):
        x = F.pad(x, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
        real = torch.zeros([n + p for n, p in zip(grid, pads)], dtype=torch.bool, device=x.device)
        real[: grid[0], : grid[1], : grid[2]] = True
        mask = _blocks(real[None, ..., None], window).squeeze(-1)  # (n_windows, window^3)
    return _blocks(x, window), mask


def _blocks(x: Tensor, window: int) -> Tensor:
    batch, nx, ny, nz, channels = x.shape
    # (B, X/w, w, Y/w, w, Z/w, w, C) -> (B, X/w, Y/w, Z/w, w, w, w, C) -> (B * n_windows, w^3, C)
    x = x.view(batch, nx // window, window, ny // window, window, nz // window, window, channels)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, window**3, channels)


def window_unpartition(
    windows: Float[Tensor, "BW L C"], window: int, grid: tuple[int, int, int], batch: int
) -> Float[Tensor, "B X Y Z C"]:
    """Inverse of :func:`window_partition` (padding removed)."""
    padded = [n + (-n) % window for n in grid]
    channels = windows.shape[-1]
    counts = [n // window for n in padded]
    # (B * n_windows, w^3, C) -> (B, X/w, Y/w, Z/w, w, w, w, C) -> (B, X/w, w, Y/w, w, Z/w, w, C)
    x = windows.view(batch, *counts, window, window, window, channels)
    x = x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(batch, *padded, channels)
    return x[:, : grid[0], : grid[1], : grid[2]]


class SelfAttention(nn.Module):
    """Multi-head self-attention; global, or within ``window^3`` windows of a 3-D token grid.

    Args:
        dim: token width.
        num_heads: heads (``dim`` must be divisible by it).
        qkv_bias: biases on the query/key/value projection.
        window_size: 0 for global attention, else the window edge in tokens (needs ``grid`` in forward).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, window_size: int = 0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} is not divisible by {num_heads} heads")
        if window_size < 0:
            raise ValueError(f"window_size must be >= 0, got {window_size}")
        self.num_heads = num_heads
        self.window_size = window_size
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, x: Float[Tensor, "B L C"], grid: tuple[int, int, int] | None = None
    ) -> Float[Tensor, "B L C"]:
        batch, length, channels = x.shape
        if not self.window_size:
            return self.proj(self._attend(x, None))
        if grid is None or grid[0] * grid[1] * grid[2] != length:
            raise ValueError(f"window attention needs the token grid of the {length} tokens, got {grid}")
        windows, real = window_partition(x.view(batch, *grid, channels), self.window_size)
        mask = None
        if real is not None:  # (n_windows, L) -> (B * n_windows, 1, 1, L): padded keys are never attended
            mask = real.repeat(batch, 1)[:, None, None, :]
        out = window_unpartition(self._attend(windows, mask), self.window_size, grid, batch)
        return self.proj(out.reshape(batch, length, channels))

    def _attend(self, x: Tensor, mask: Tensor | None) -> Tensor:
        batch, length, channels = x.shape
        # (B, L, 3C) -> (3, B, heads, L, head_dim)
        qkv = self.qkv(x).view(batch, length, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=mask)
        return out.transpose(1, 2).reshape(batch, length, channels)  # (B, heads, L, hd) -> (B, L, C)
