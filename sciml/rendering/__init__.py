"""Cameras, rays, ray samplers, volume rendering and the spherical-harmonics colour basis.

Conventions (module docstrings give the details): OpenGL / NeRF / nerfstudio cameras, camera-to-world 4x4
poses looking along -z with +y up; pixel ``(u, v)`` = (column, row from the top) with its centre at
``(u + 0.5, v + 0.5)``; intrinsics ``(fx, fy, cx, cy)``. Ray directions have unit length, so every ray
parameter ``t`` (near/far, samples, depth) is a Euclidean distance. Ray batches are flat: ``(R, 3)`` origins
and directions, ``(R, S)`` samples per ray. A typical render of a field:

    origins, directions = rays_for_pixels(intrinsics, camera_to_world, u, v)
    near, far, _ = clip_near_far(origins, directions, near, far, box)
    bins = uniform_bins(near, far, S)
    t = stratified_samples(near, far, S, perturb=training)
    density, rgb = field(sample_points(origins, directions, t), ...)
    out = volume_render(density, rgb, t, bins.diff(dim=-1), background=white)
"""

from sciml.rendering.cameras import (
    check_camera_to_world,
    intrinsics_from_fov,
    look_at,
    orbit_cameras,
    pixel_rays,
    rays_for_pixels,
)
from sciml.rendering.rays import clip_near_far, ray_box_intersection
from sciml.rendering.samplers import sample_pdf, sample_points, stratified_samples, uniform_bins
from sciml.rendering.sh import MAX_DEGREE, num_sh_coefficients, spherical_harmonics
from sciml.rendering.volume import INFINITE_DELTA, volume_render

__all__ = [
    "INFINITE_DELTA",
    "MAX_DEGREE",
    "check_camera_to_world",
    "clip_near_far",
    "intrinsics_from_fov",
    "look_at",
    "num_sh_coefficients",
    "orbit_cameras",
    "pixel_rays",
    "ray_box_intersection",
    "rays_for_pixels",
    "sample_pdf",
    "sample_points",
    "spherical_harmonics",
    "stratified_samples",
    "uniform_bins",
    "volume_render",
]
