"""Point <-> voxel transfer of PVCNN (Z. Liu, H. Tang, Y. Lin & S. Han, "Point-Voxel CNN for Efficient 3D Deep
Learning", NeurIPS 2019), as used by DiT-3D (S. Mo et al., 2023) to turn a noisy point cloud into the voxel
grid its transformer patchifies, and to bring the predicted noise back to the points.

:func:`voxelize` is PVCNN's ``Voxelization(resolution, normalize=True, eps)`` followed by its
``avg_voxelize`` kernel, written with ``index_add`` so it needs no compiled extension:

    centred  = p - mean_n(p)                                   per shape (the mean over its points)
    coords   = clamp((centred / (2 max_n ||centred_n||_2 + eps) + 0.5) * R, 0, R - 1)
    index    = round(coords)                                   torch.round: halves go to the even integer
    grid[b, :, i, j, k] = mean of features[b, n] over the points n with index[b, n] == (i, j, k), 0 if none

so a shape is centred and scaled into the ball of radius R / 2 around the grid centre, independently of its
position and size. Choices, all as in PVCNN unless stated:

* the points are detached: the grid is differentiable w.r.t. the features only (PVCNN's coordinates carry no
  gradient either);
* axis order ``grid[b, c, i, j, k]`` with ``i, j, k`` the voxel indices along x, y, z (PVCNN's flat index
  ``i * R^2 + j * R + k``);
* the returned ``coords`` are the unrounded, clamped voxel coordinates that :func:`devoxelize` expects;
* departure from PVCNN: a shape whose points all coincide (``max ||centred|| = 0`` with ``eps = 0``) divides
  by the smallest positive float instead of by 0, so it lands on the grid centre instead of producing NaN.

:func:`devoxelize` is PVCNN's ``trilinear_devoxelize``: with ``lo = floor(coords)``,
``hi = min(lo + 1, R - 1)`` and ``t = coords - lo`` per axis, a point gets the trilinear blend of the 8
corners ``(lo | hi)^3`` with weights ``prod_axis (t if hi else 1 - t)``. It is gather-based, so autograd
differentiates it w.r.t. the grid (and w.r.t. the coordinates, which PVCNN's kernel does not). Coordinates
outside ``[0, R - 1]`` are clamped onto the grid first (``voxelize`` never produces any).
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor


def _check_points(name: str, points: Tensor) -> None:
    if points.ndim != 3 or points.shape[-1] != 3:
        raise ValueError(f"{name}: expected (B, N, 3), got {tuple(points.shape)}")


def normalized_voxel_coords(
    points: Float[Tensor, "B N 3"], resolution: int, eps: float = 0.0
) -> Float[Tensor, "B N 3"]:
    """PVCNN's normalized, clamped and unrounded voxel coordinates of ``points`` (module docstring)."""
    _check_points("points", points)
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ValueError(f"resolution: expected a positive int, got {resolution!r}")
    if eps < 0:
        raise ValueError(f"eps: expected >= 0, got {eps}")
    points = points.detach()
    centred = points - points.mean(dim=1, keepdim=True)  # (B, N, 3)
    radius = centred.norm(dim=2).amax(dim=1)  # (B,)
    denominator = (2.0 * radius + eps).clamp_min(torch.finfo(points.dtype).tiny)
    coords = centred / denominator[:, None, None] + 0.5  # (B, N, 3) in [0, 1]
    return (coords * resolution).clamp(0, resolution - 1)


def voxelize(
    features: Float[Tensor, "B N C"], points: Float[Tensor, "B N 3"], resolution: int, eps: float = 0.0
) -> tuple[Float[Tensor, "B C R R R"], Float[Tensor, "B N 3"]]:
    """Average ``features`` into a ``resolution^3`` grid at PVCNN's normalized voxel of each point.

    Returns ``(grid, coords)``: the ``(B, C, R, R, R)`` grid (empty voxels 0) and the unrounded voxel
    coordinates ``(B, N, 3)`` to hand to :func:`devoxelize`.
    """
    _check_points("points", points)
    if features.ndim != 3 or features.shape[:2] != points.shape[:2]:
        batch, n_points = points.shape[:2]
        raise ValueError(
            f"features: expected (B, N, C) = ({batch}, {n_points}, C), got {tuple(features.shape)}"
        )
    batch, n_points, channels = features.shape
    r = resolution
    coords = normalized_voxel_coords(points, r, eps)
    index = coords.round().long()  # (B, N, 3)
    sample = torch.arange(batch, device=points.device)[:, None]  # (B, 1)
    flat = ((sample * r + index[..., 0]) * r + index[..., 1]) * r + index[
        ..., 2
    ]  # (B, N): b R^3 + i R^2 + j R + k
    flat = flat.reshape(-1)  # (B N,)
    sums = features.new_zeros(batch * r**3, channels).index_add(0, flat, features.reshape(-1, channels))
    counts = features.new_zeros(batch * r**3).index_add(0, flat, features.new_ones(batch * n_points))
    means = sums / counts.clamp_min(1)[:, None]  # (B R^3, C)
    grid = means.reshape(batch, r, r, r, channels).permute(0, 4, 1, 2, 3)  # (B, C, R, R, R)
    return grid, coords


def devoxelize(grid: Float[Tensor, "B C R R R"], coords: Float[Tensor, "B N 3"]) -> Float[Tensor, "B N C"]:
    """Trilinear interpolation of ``grid`` at unrounded voxel ``coords`` (PVCNN's trilinear_devoxelize)."""
    if grid.ndim != 5 or not grid.shape[2] == grid.shape[3] == grid.shape[4]:
        raise ValueError(f"grid: expected (B, C, R, R, R), got {tuple(grid.shape)}")
    _check_points("coords", coords)
    if coords.shape[0] != grid.shape[0]:
        raise ValueError(f"coords: expected (B, N, 3) with B = {grid.shape[0]}, got {tuple(coords.shape)}")
    batch, channels, r = grid.shape[:3]
    n_points = coords.shape[1]
    coords = coords.clamp(0, r - 1)
    lo = coords.detach().floor()
    t = coords - lo  # (B, N, 3) weight of the upper corner per axis
    lo = lo.long()
    hi = (lo + 1).clamp_max(r - 1)
    flat_grid = grid.reshape(batch, channels, r**3)  # (B, C, R^3)
    out = grid.new_zeros(batch, channels, n_points)
    for corner in range(8):
        upper = [(corner >> (2 - axis)) & 1 for axis in range(3)]  # which of lo/hi along x, y, z
        index = [hi[..., axis] if upper[axis] else lo[..., axis] for axis in range(3)]
        flat = (index[0] * r + index[1]) * r + index[2]  # (B, N)
        weight = torch.ones_like(t[..., 0])
        for axis in range(3):
            weight = weight * (t[..., axis] if upper[axis] else 1 - t[..., axis])
        values = flat_grid.gather(2, flat[:, None, :].expand(batch, channels, n_points))  # (B, C, N)
        out = out + weight[:, None, :].to(grid.dtype) * values
    return out.transpose(1, 2)  # (B, N, C)
