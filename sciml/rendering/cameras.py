"""Pinhole cameras and the rays through their pixels, in the OpenGL / NeRF / nerfstudio convention.

Conventions (the same as NeRF's Blender scenes, D-NeRF and nerfstudio):

* a camera pose is a **camera-to-world** 4x4 rigid transform ``c2w = [[R, o], [0 0 0 1]]``: the columns of
  ``R`` are the camera's x, y, z axes in world coordinates and ``o`` is its centre;
* the camera looks along its **-z** axis, with **+y up** and **+x right** in the image;
* a pixel ``(u, v)`` has ``u`` along the width (the column) and ``v`` along the height (the row, counted
  downwards from the top); pixel ``(u, v)`` covers ``[u, u + 1) x [v, v + 1)`` in image coordinates, so its
  centre is ``(u + 0.5, v + 0.5)``;
* intrinsics are the 4-vector ``(fx, fy, cx, cy)`` in pixels (no skew, no distortion); a centred principal
  point of a ``W x H`` image is ``(cx, cy) = (W / 2, H / 2)``.

The ray through image point ``(u + 0.5, v + 0.5)`` starts at the camera centre ``o`` and has the direction

    d_cam   = ((u + 0.5 - cx) / fx,  -(v + 0.5 - cy) / fy,  -1)     (minus on y: rows go down, +y is up)
    d_world = R d_cam / || R d_cam ||

so every direction returned here has **unit length** and a ray parameter ``t`` (near/far bounds, sample
positions, rendered depth) is the **Euclidean distance** from the camera centre, not the z-depth. The z-depth
of a point at distance ``t`` is ``t / || d_cam ||``. ``u`` and ``v`` may be fractional (sub-pixel jitter).

Poses are not validated on the hot path (:func:`pixel_rays`, :func:`rays_for_pixels`); readers call
:func:`check_camera_to_world` once when they load a capture. :func:`look_at` and :func:`orbit_cameras` build
poses for render paths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor


def intrinsics_from_fov(camera_angle_x: float, width: int, height: int) -> tuple[float, float, float, float]:
    """``(fx, fy, cx, cy)`` of a ``width x height`` image with horizontal field of view ``camera_angle_x``.

    The D-NeRF / NeRF Blender convention (``camera_angle_x`` in radians, as stored in ``transforms_*.json``):
    ``fx = fy = 0.5 W / tan(0.5 camera_angle_x)`` (square pixels) and a centred principal point
    ``cx = W / 2``, ``cy = H / 2``.
    """
    if not 0.0 < camera_angle_x < math.pi:
        raise ValueError(f"camera_angle_x: expected a field of view in (0, pi) radians, got {camera_angle_x}")
    for name, size in (("width", width), ("height", height)):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"{name}: expected a positive int, got {size!r}")
    focal = 0.5 * width / math.tan(0.5 * camera_angle_x)
    return focal, focal, 0.5 * width, 0.5 * height


def _camera_directions(
    intrinsics: Float[Tensor, "*batch 4"], u: Float[Tensor, "*batch"], v: Float[Tensor, "*batch"]
) -> Float[Tensor, "*batch 3"]:
    """Un-normalized camera-space directions ``((u+.5-cx)/fx, -(v+.5-cy)/fy, -1)``; all inputs broadcast."""
    fx, fy, cx, cy = intrinsics.unbind(-1)
    x = (u + 0.5 - cx) / fx
    y = -(v + 0.5 - cy) / fy
    return torch.stack([x, y, -torch.ones_like(x)], dim=-1)


def _check_intrinsics(intrinsics: Tensor, frames: int, name: str = "intrinsics") -> Tensor:
    """Return ``intrinsics`` as ``(frames, 4)``, accepting one shared ``(4,)`` vector."""
    if intrinsics.shape == (4,):
        return intrinsics.expand(frames, 4)
    if intrinsics.shape != (frames, 4):
        raise ValueError(
            f"{name}: expected (4,) or (F, 4) = ({frames}, 4) as (fx, fy, cx, cy), "
            f"got {tuple(intrinsics.shape)}"
        )
    return intrinsics


def pixel_rays(
    intrinsics: Float[Tensor, "4"] | Float[Tensor, "F 4"],
    camera_to_world: Float[Tensor, "F 4 4"],
    height: int,
    width: int,
) -> tuple[Float[Tensor, "F H W 3"], Float[Tensor, "F H W 3"]]:
    """Rays through the centres of all ``height x width`` pixels of ``F`` cameras.

    ``intrinsics`` is one ``(fx, fy, cx, cy)`` shared by all frames, or one row per frame. Returns
    ``(origins, directions)``, both ``(F, H, W, 3)`` in the dtype and device of ``camera_to_world``;
    ``[f, v, u]`` is the ray of pixel column ``u``, row ``v`` of frame ``f``, and the directions have unit
    length (module docstring).
    """
    if camera_to_world.ndim != 3 or camera_to_world.shape[1:] != (4, 4):
        raise ValueError(f"camera_to_world: expected (F, 4, 4), got {tuple(camera_to_world.shape)}")
    for name, size in (("height", height), ("width", width)):
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"{name}: expected a positive int, got {size!r}")
    frames = camera_to_world.shape[0]
    dtype, device = camera_to_world.dtype, camera_to_world.device
    intrinsics = _check_intrinsics(intrinsics.to(device=device, dtype=dtype), frames)
    rows = torch.arange(height, device=device, dtype=dtype)
    columns = torch.arange(width, device=device, dtype=dtype)
    v, u = torch.meshgrid(rows, columns, indexing="ij")  # (H, W) each
    camera = _camera_directions(intrinsics[:, None, None, :], u, v)  # (F, H, W, 3)
    directions = torch.einsum("fij,fhwj->fhwi", camera_to_world[:, :3, :3], camera)  # (F, H, W, 3)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    origins = camera_to_world[:, None, None, :3, 3].expand(frames, height, width, 3).contiguous()
    return origins, directions


def rays_for_pixels(
    intrinsics: Float[Tensor, "R 4"],
    camera_to_world: Float[Tensor, "R 4 4"],
    u: Float[Tensor, " R"] | Int[Tensor, " R"],
    v: Float[Tensor, " R"] | Int[Tensor, " R"],
) -> tuple[Float[Tensor, "R 3"], Float[Tensor, "R 3"]]:
    """Rays of a batch of ``R`` pixels, each with its own camera (random ray batches for training).

    ``u`` (column) and ``v`` (row) are pixel indices, integer or fractional; the ray passes through image
    point ``(u + 0.5, v + 0.5)``. Returns ``(origins, directions)``, both ``(R, 3)`` in the dtype of
    ``camera_to_world``, with unit directions; they equal the matching entries of :func:`pixel_rays`.
    """
    if camera_to_world.ndim != 3 or camera_to_world.shape[1:] != (4, 4):
        raise ValueError(f"camera_to_world: expected (R, 4, 4), got {tuple(camera_to_world.shape)}")
    rays = camera_to_world.shape[0]
    if intrinsics.shape != (rays, 4):
        raise ValueError(f"intrinsics: expected (R, 4) = ({rays}, 4), got {tuple(intrinsics.shape)}")
    for name, pixel in (("u", u), ("v", v)):
        if pixel.shape != (rays,):
            raise ValueError(f"{name}: expected (R,) = ({rays},), got {tuple(pixel.shape)}")
    dtype, device = camera_to_world.dtype, camera_to_world.device
    intrinsics, u, v = (x.to(device=device, dtype=dtype) for x in (intrinsics, u, v))
    camera = _camera_directions(intrinsics, u, v)  # (R, 3)
    directions = torch.einsum("rij,rj->ri", camera_to_world[:, :3, :3], camera)  # (R, 3)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    return camera_to_world[:, :3, 3], directions


def check_camera_to_world(
    matrix: Float[Tensor, "*batch 4 4"], name: str = "camera_to_world", atol: float = 1e-4
) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``matrix`` (``(4, 4)`` or ``(..., 4, 4)``) is rigid.

    Checked within ``atol``, in float64: all entries finite; last row ``(0, 0, 0, 1)``; rotation block
    orthonormal (``max |R^T R - I| <= atol``) with ``det R = +1`` (a reflection, ``det = -1``, would flip
    the image). Scaled or sheared poses fail: rescale the scene instead of the cameras.
    """
    if not isinstance(matrix, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(matrix).__name__}")
    if matrix.ndim < 2 or matrix.shape[-2:] != (4, 4):
        raise ValueError(
            f"{name}: expected (4, 4) or (..., 4, 4) camera-to-world matrices, got {tuple(matrix.shape)}"
        )
    if not matrix.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {matrix.dtype}")
    flat = matrix.detach().reshape(-1, 4, 4).to(torch.float64)  # (N, 4, 4)

    def located(bad: Tensor) -> str:
        if matrix.ndim == 2:
            return name
        first = torch.unravel_index(bad.nonzero()[0, 0], matrix.shape[:-2])
        return f"{name}[{', '.join(str(int(i)) for i in first)}]"

    finite = torch.isfinite(flat).all(dim=(1, 2))
    if not finite.all():
        raise ValueError(f"{located(~finite)}: expected finite entries, got NaN or inf")
    last_row = flat.new_tensor([0.0, 0.0, 0.0, 1.0])
    row_error = (flat[:, 3] - last_row).abs().amax(dim=1)  # (N,)
    if (row_error > atol).any():
        bad = row_error > atol
        raise ValueError(f"{located(bad)}: expected last row (0, 0, 0, 1), got {flat[bad][0, 3].tolist()}")
    rotation = flat[:, :3, :3]
    gram = rotation.transpose(1, 2) @ rotation  # (N, 3, 3)
    gram_error = (gram - torch.eye(3, dtype=torch.float64, device=flat.device)).abs().amax(dim=(1, 2))
    if (gram_error > atol).any():
        bad = gram_error > atol
        raise ValueError(
            f"{located(bad)}: rotation block is not orthonormal (max |R^T R - I| = "
            f"{float(gram_error[bad][0]):.3g} > {atol:g}); expected a rigid camera-to-world transform"
        )
    det = torch.linalg.det(rotation)
    if ((det - 1.0).abs() > atol).any():
        bad = (det - 1.0).abs() > atol
        raise ValueError(
            f"{located(bad)}: rotation block has det {float(det[bad][0]):.6g}, "
            "expected +1 (a proper rotation, not a reflection)"
        )


def _vector3(value: Tensor | Sequence[float], name: str) -> Tensor:
    vector = torch.as_tensor(value, dtype=torch.float64).detach().cpu()
    if vector.shape != (3,):
        raise ValueError(f"{name}: expected (3,), got {tuple(vector.shape)}")
    if not torch.isfinite(vector).all():
        raise ValueError(f"{name}: expected finite values, got {vector.tolist()}")
    return vector


def look_at(
    eye: Float[Tensor, "3"] | Sequence[float],
    target: Float[Tensor, "3"] | Sequence[float],
    up: Float[Tensor, "3"] | Sequence[float] = (0.0, 1.0, 0.0),
    *,
    dtype: torch.dtype = torch.float32,
) -> Float[Tensor, "4 4"]:
    """Camera-to-world matrix of a camera at ``eye`` looking at ``target``, with ``up`` up in the image.

    OpenGL convention: ``z = (eye - target) / ||.||`` (the camera looks along -z), ``x = normalize(up x z)``
    (right), ``y = z x x`` (the component of ``up`` orthogonal to the view direction). Computed in float64,
    returned in ``dtype`` on the CPU. ``up`` parallel to the view direction is a ``ValueError``.
    """
    eye_, target_, up_ = _vector3(eye, "eye"), _vector3(target, "target"), _vector3(up, "up")
    backward = eye_ - target_
    if backward.norm() == 0:
        raise ValueError(f"look_at: eye and target coincide at {eye_.tolist()}")
    z = backward / backward.norm()
    right = torch.linalg.cross(up_, z)
    if right.norm() <= 1e-9 * max(float(up_.norm()), 1e-300):
        raise ValueError(f"look_at: up {up_.tolist()} is parallel to the view direction {(-z).tolist()}")
    x = right / right.norm()
    y = torch.linalg.cross(z, x)
    matrix = torch.eye(4, dtype=torch.float64)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2], matrix[:3, 3] = x, y, z, eye_
    return matrix.to(dtype)


def orbit_cameras(
    n: int,
    radius: float,
    elevation_deg: float,
    target: Float[Tensor, "3"] | Sequence[float] = (0.0, 0.0, 0.0),
    up: Float[Tensor, "3"] | Sequence[float] = (0.0, 1.0, 0.0),
    *,
    dtype: torch.dtype = torch.float32,
) -> Float[Tensor, "n 4 4"]:
    """``n`` look-at cameras evenly spaced on a circle around ``target`` (a turntable render path).

    Camera ``k`` sits at azimuth ``phi_k = 2 pi k / n`` (the endpoint is left out so the path loops without a
    repeated frame) and elevation ``e = elevation_deg`` above the plane through ``target`` orthogonal to
    ``up``:

        eye_k = target + radius (cos e (cos phi_k a + sin phi_k b) + sin e u)

    with ``u = up / |up|``, ``a`` the coordinate axis least aligned with ``u`` projected onto the plane and
    normalized (the first such axis on ties: +x for the default y-up world), and ``b = u x a``, so the
    azimuth turns counter-clockwise about ``up`` (right-handed). Each camera looks at ``target`` with ``up``
    up (:func:`look_at`). D-NeRF / Blender scenes are z-up: pass ``up=(0, 0, 1)``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive int, got {n!r}")
    if not radius > 0:
        raise ValueError(f"radius: expected > 0, got {radius}")
    if not -90.0 < elevation_deg < 90.0:
        raise ValueError(
            f"elevation_deg: expected in (-90, 90) (the poles leave 'up' undefined), got {elevation_deg}"
        )
    target_, up_ = _vector3(target, "target"), _vector3(up, "up")
    if up_.norm() == 0:
        raise ValueError("up: expected a non-zero vector")
    u = up_ / up_.norm()
    axis = torch.eye(3, dtype=torch.float64)[int(u.abs().argmin())]
    a = axis - (axis @ u) * u
    a = a / a.norm()
    b = torch.linalg.cross(u, a)
    elevation = math.radians(elevation_deg)
    azimuth = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)  # (n,)
    offsets = radius * (
        math.cos(elevation) * (torch.cos(azimuth)[:, None] * a + torch.sin(azimuth)[:, None] * b)
        + math.sin(elevation) * u
    )  # (n, 3)
    poses = [look_at(target_ + offset, target_, u, dtype=torch.float64) for offset in offsets]
    return torch.stack(poses).to(dtype)
