"""PLY point clouds (the Stanford polygon format, binary little-endian, vertices only), readable by
MeshLab, Open3D, Blender and CloudCompare. Written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sciml.core.atomic import atomic_path
from sciml.core.errors import DataFormatError


def write_ply(path: str | Path, points: np.ndarray) -> Path:
    """Write ``(N, 3)`` points as float32 ``x y z`` vertices."""
    points = np.asarray(points, dtype="<f4")
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"expected points (N, 3), got {points.shape}")
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {len(points)}\n"
        "property float x\nproperty float y\nproperty float z\nend_header\n"
    )
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(header.encode("ascii"))
        handle.write(np.ascontiguousarray(points).tobytes())
    return path


def read_ply(path: str | Path) -> np.ndarray:
    """Read the ``(N, 3)`` vertices of a binary little-endian PLY written by :func:`write_ply`."""
    data = Path(path).read_bytes()
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise DataFormatError(path, None, "not a PLY file (no 'ply' magic or no end_header)")
    header = data[:end].decode("ascii").splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise DataFormatError(path, "format", "only binary_little_endian PLY is supported")
    count = next(int(line.split()[2]) for line in header if line.startswith("element vertex"))
    body = data[end + len(b"end_header\n") :]
    if len(body) != count * 12:
        raise DataFormatError(path, "vertex", f"expected {count} float32 xyz vertices, got {len(body)} bytes")
    return np.frombuffer(body, dtype="<f4").reshape(count, 3).copy()
