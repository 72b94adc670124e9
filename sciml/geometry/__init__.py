"""Point clouds and voxels: PVCNN voxelization and trilinear devoxelization, Chamfer and EMD distances.

Modules: :mod:`~sciml.geometry.voxels` and :mod:`~sciml.geometry.distances`. Points are ``(B, N, 3)`` tensors
(batch, point, xyz) and per-point features ``(B, N, C)``; voxel grids are ``(B, C, R, R, R)``.
"""

from sciml.geometry.distances import chamfer_distance, earth_movers_distance, emd_method
from sciml.geometry.voxels import devoxelize, normalized_voxel_coords, voxelize

__all__ = [
    "chamfer_distance",
    "devoxelize",
    "earth_movers_distance",
    "emd_method",
    "normalized_voxel_coords",
    "voxelize",
]
