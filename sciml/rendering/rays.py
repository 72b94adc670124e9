"""Ray / axis-aligned box intersection and per-ray near/far bounds.

A ray is the half-line ``o + t d`` for ``t >= 0`` (``d`` need not have unit length, but the t values are in
units of ``|d|``; the rays of :mod:`sciml.rendering.cameras` are unit-length, so t is a distance).

:func:`ray_box_intersection` uses the slab method (Kay & Kajiya 1986; Williams et al., "An Efficient and
Robust Ray-Box Intersection Algorithm", 2005): along each axis ``i`` the ray is inside the slab
``[box_min_i, box_max_i]`` for t between ``(box_min_i - o_i) / d_i`` and ``(box_max_i - o_i) / d_i``; the
box interval is the intersection of the three slab intervals and of ``t >= 0``. A zero direction component
(``+0`` or ``-0``) is handled explicitly instead of through ``1 / 0 = inf`` (which gives ``0 * inf = NaN``
for an origin on the slab's plane): the slab then imposes no constraint when ``o_i`` lies in
``[box_min_i, box_max_i]`` (closed) and empties the interval otherwise.

Choices: the ray hits when ``far > near`` strictly (grazing a face, edge or corner is a miss, as is a box
entirely behind the origin); a ray starting inside the box gets ``near = 0``; a miss returns
``near = far = 0`` so no non-finite value leaves the function.

:func:`clip_near_far` intersects global (or per-ray) ``[near, far]`` bounds with a scene box, the way a
capture's near/far and its scene box combine into the interval the samplers fill.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Bool, Float
from torch import Tensor


def _check_rays(origins: Tensor, directions: Tensor) -> int:
    if origins.ndim != 2 or origins.shape[1] != 3:
        raise ValueError(f"origins: expected (R, 3), got {tuple(origins.shape)}")
    if directions.shape != origins.shape:
        raise ValueError(
            f"directions: expected (R, 3) = {tuple(origins.shape)}, got {tuple(directions.shape)}"
        )
    return origins.shape[0]


def _corner(value: Tensor | Sequence[float], name: str, like: Tensor) -> Tensor:
    corner = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if corner.shape != (3,):
        raise ValueError(f"{name}: expected (3,), got {tuple(corner.shape)}")
    return corner


def ray_box_intersection(
    origins: Float[Tensor, "R 3"],
    directions: Float[Tensor, "R 3"],
    box_min: Float[Tensor, "3"] | Sequence[float],
    box_max: Float[Tensor, "3"] | Sequence[float],
) -> tuple[Float[Tensor, " R"], Float[Tensor, " R"], Bool[Tensor, " R"]]:
    """Entry and exit distances of rays through the box ``[box_min, box_max]`` (module docstring).

    Returns ``(near, far, hit)``, each ``(R,)``: for a hit, ``0 <= near < far`` bound the part of the ray
    inside the box; for a miss ``near = far = 0`` and ``hit`` is False.
    """
    _check_rays(origins, directions)
    lower, upper = _corner(box_min, "box_min", origins), _corner(box_max, "box_max", origins)
    if (lower > upper).any():
        raise ValueError(f"box: expected box_min <= box_max, got {lower.tolist()} and {upper.tolist()}")
    parallel = directions == 0  # (R, 3); true for -0.0 as well
    safe = torch.where(parallel, torch.ones_like(directions), directions)
    t_lower = (lower - origins) / safe  # (R, 3)
    t_upper = (upper - origins) / safe
    enter, leave = torch.minimum(t_lower, t_upper), torch.maximum(t_lower, t_upper)
    inside_slab = (origins >= lower) & (origins <= upper)
    infinity = torch.full_like(enter, torch.inf)
    enter = torch.where(parallel, torch.where(inside_slab, -infinity, infinity), enter)
    leave = torch.where(parallel, torch.where(inside_slab, infinity, -infinity), leave)
    near = enter.amax(dim=1).clamp_min(0.0)  # (R,) the ray starts at t = 0
    far = leave.amin(dim=1)
    hit = far > near
    zero = torch.zeros_like(near)
    return torch.where(hit, near, zero), torch.where(hit, far, zero), hit


def clip_near_far(
    origins: Float[Tensor, "R 3"],
    directions: Float[Tensor, "R 3"],
    near: float | Float[Tensor, " R"],
    far: float | Float[Tensor, " R"],
    box: Float[Tensor, "2 3"] | None = None,
) -> tuple[Float[Tensor, " R"], Float[Tensor, " R"], Bool[Tensor, " R"]]:
    """Per-ray ``[near, far]``: the global bounds intersected with the scene ``box``.

    ``near`` and ``far`` are numbers shared by all rays or ``(R,)`` tensors; ``box`` is ``(2, 3)``
    ``[[x_min, y_min, z_min], [x_max, y_max, z_max]]`` (nerfstudio's ``SceneBox.aabb`` layout) or None for
    no box. Returns ``(near, far, valid)`` ``(R,)``: ``near = max(near, box entry)``,
    ``far = min(far, box exit)``. Where the interval is empty (the ray misses the box, or the box lies
    outside ``[near, far]``) ``valid`` is False and ``far = near``: samples collapse onto one point with zero
    spacing, so they carry no density and the ray renders the background.
    """
    rays = _check_rays(origins, directions)
    bounds = []
    for name, value in (("near", near), ("far", far)):
        bound = torch.as_tensor(value, dtype=origins.dtype, device=origins.device)
        if bound.ndim == 0:
            bound = bound.expand(rays).contiguous()
        if bound.shape != (rays,):
            raise ValueError(f"{name}: expected a number or (R,) = ({rays},), got {tuple(bound.shape)}")
        bounds.append(bound)
    near_, far_ = bounds
    if box is not None:
        box = torch.as_tensor(box, dtype=origins.dtype, device=origins.device)
        if box.shape != (2, 3):
            raise ValueError(f"box: expected (2, 3) as [min, max] corners, got {tuple(box.shape)}")
        box_near, box_far, hit = ray_box_intersection(origins, directions, box[0], box[1])
        near_ = torch.where(hit, torch.maximum(near_, box_near), near_)
        far_ = torch.where(hit, torch.minimum(far_, box_far), near_)
    valid = far_ > near_
    return near_, torch.where(valid, far_, near_), valid
