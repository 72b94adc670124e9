"""An analytic dynamic scene rendered into the D-NeRF layout: the embedded default dataset of SHaDe.

``python -m sciml.data.dynamic_scenes --out data/dynamic_scene`` ray-casts three textured objects that
move, rotate and deform over time ``t`` in [0, 1] and writes exactly what the D-NeRF release holds for one
scene (``transforms_{train,val,test}.json`` + RGBA PNGs ``{train,val,test}/r_<index>.png``), plus a
``video`` split (one held-out camera through evenly spaced times, for temporal-consistency metrics) and
exact ground truth, neither of which D-NeRF has (``ground_truth/``). A config moves from this scene to a real
D-NeRF scene by changing the data path only (see datasets/dynamic_scenes/README.md).

Scene. World frame as in D-NeRF's Blender scenes: +z up; everything stays inside the scene box
[-1.5, 1.5]^3 (checked in the tests) and floats: no ground, the background is transparent. Every object
has a canonical (rest) shape in its own canonical coordinates ``x_c`` and a pose at time ``t``,
``x = center(t) + rotation(t) @ (scale(t) * x_c)``, so a canonical field plus a deformation explains it:

* ``ball``: sphere of radius 0.32 with an 8 x 4 longitude/latitude checker (red/cream); it travels a
  closed loop, ``center = (0.68 sin 2pi t, 0.55 + 0.13 cos 2pi t, 0.3 + 0.25 sin 4pi t)``, while spinning
  one full turn about a tilted axis (rigid motion, translation + rotation);
* ``crate``: box of half-extents (0.34, 0.24, 0.19) at (0.51, -0.38, -0.3), tilted by 0.35 rad about x,
  turning 1.5 pi about a near-vertical axis (rigid rotation), with a solid 3-D checker of 0.14 cells
  (blue/yellow);
* ``blob``: ellipsoid of rest radii (0.36, 0.26, 0.29) at (-0.51, -0.38, -0.04) whose radii pulsate,
  ``scale_k(t) = 1 + 0.25 sin(2pi t + 2pi k / 3)`` per axis (a non-rigid deformation that changes shape
  and volume), turning a quarter turn about z, with 8 stripes across its canonical x (green/magenta).

The bounding spheres of the three objects never overlap, so no object passes through another, and all
of them stay within 1.32 of the origin: from any camera of the dataset (distance 4, field of view
``camera_angle_x``) every object is entirely in the frame of a square (or taller than wide) image.

Colour. The colour of a surface point is a function of its canonical coordinates alone: the texture
(two colours per object, chosen by the canonical point) times a diffuse shading factor
``AMBIENT + (1 - AMBIENT) max(0, n_c . LIGHT_DIRECTION)`` baked from the canonical (rest-shape) normal
``n_c`` and a light fixed in the canonical frame. Colours are therefore view-independent and carried
with the motion: a canonical radiance field plus a deformation field can reproduce every image exactly,
which makes the dataset a clean test of that model class (Blender scenes add world-lit shading that
changes as objects move; this scene deliberately does not).

Rays. Pinhole cameras in the OpenGL/NeRF convention: ``transform_matrix`` is camera-to-world, the
camera looks along its -z, +y is up and +x right in the image; pixel (u = column, v = row) has its
centre at +0.5 and the camera-space direction ``((u + 0.5 - cx) / fx, -(v + 0.5 - cy) / fy, -1)``, with
``fx = fy = 0.5 W / tan(0.5 camera_angle_x)``, ``cx = W / 2``, ``cy = H / 2`` (what D-NeRF's loader
computes from ``camera_angle_x``; ``camera_angle_x`` is D-NeRF's own value, 0.6911112070083618).
Intersections are exact and analytic: each ray is mapped into the object's unit frame (the affine map
keeps the ray parameter), where an ellipsoid is the unit sphere (quadratic) and a box the cube [-1, 1]^3
(slab test); the nearest hit over all objects wins.

Anti-aliasing. Each pixel averages ``supersample x supersample`` rays on a regular grid inside it
(offsets ``(k + 0.5) / supersample``; default 2 x 2). Alpha is the fraction of those rays that hit an
object (so it is fractional, 0.25/0.5/0.75 at 2 x 2, only on silhouette edges) and RGB is the mean
colour of the rays that hit: straight (not premultiplied) alpha, as Blender writes RGBA PNGs, so
``rgb * alpha + background * (1 - alpha)`` composites it. RGB is 0 where alpha is 0. PNGs are 8-bit
(``round(255 x)``); :func:`render_view` returns the unquantized float values.

Ground truth (not part of D-NeRF; readers of the D-NeRF layout ignore the folder):
``ground_truth/{split}_depth.npy`` float32 ``(F, H, W)``: distance along the unit-length ray through
each pixel centre to the first hit, ``inf`` where that ray misses every object;
``ground_truth/{split}_object.npy`` int8 ``(F, H, W)``: index into :data:`OBJECTS` of the object the
pixel-centre ray hits, -1 where it misses; ``ground_truth/scene.json``: the generator arguments, the
objects and the camera settings. With supersampling the pixel-centre ray is cast in addition to the
grid rays, so depth is exact for the ray a NeRF casts through the pixel centre.

Cameras and splits. Cameras sit on a sphere of radius 4 around the origin and look at it (up vector
+z), at area-uniform random positions of the upper hemisphere between elevations 10 and 80 degrees
(grazing and top-down views are left out; the pole would make the up vector degenerate). Near 2 and
far 6 (D-NeRF's synthetic values) bracket every object from every camera. Training frame ``i`` of ``N``
has time ``i / (N - 1)`` (evenly spaced, D-NeRF style: one view per time step) and its own random camera;
with ``train_cameras = K`` the training frames cycle through only K fixed cameras (frame ``i`` uses
camera ``i mod K``; the K azimuths are evenly spaced with a random offset, the elevations random): the
sparse-view setting. Validation and test hold out both views and times: their cameras are new random
positions at least ``min(2 degrees, half the typical spacing sqrt(band area / all cameras))`` away
from every training camera and from each other, and their times lie between training times, one third
(val) or two thirds (test) of the way from training time ``j`` to ``j + 1``, with the ``j`` spread evenly
over [0, 1].

Sizes. The default 64 x 64 images keep CPU training fast; D-NeRF's scenes are 800 x 800 (400 x 400 at
half resolution). Determinism: only the cameras are random, drawn from
``numpy.random.SeedSequence([seed, stream])`` (one stream per split, one for the sparse cameras); the
scene itself is fixed. The same arguments give the same bytes (same numpy, zlib and platform). The
whole dataset folder is written atomically (built in a temporary sibling, then renamed): a killed run
leaves no folder, so the next start generates it again, and that write first removes the killed run's
temporary sibling (:func:`sciml.core.atomic.remove_stale_temporaries`).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sciml.core.atomic import atomic_directory
from sciml.core.errors import ConfigError
from sciml.core.progress import progress_bar

#: ``video``: one held-out camera through consecutive times, for temporal-consistency metrics and videos.
SPLITS = ("train", "val", "test", "video")
DEFAULT_COUNTS: dict[str, int] = {"train": 100, "val": 10, "test": 20, "video": 24}
DEFAULT_SIZE = 64

#: D-NeRF's horizontal field of view (radians), the value in every one of its transforms files.
CAMERA_ANGLE_X = 0.6911112070083618
CAMERA_RADIUS = 4.0
NEAR, FAR = 2.0, 6.0
SCENE_BOX = (-1.5, 1.5)
ELEVATION_RANGE_DEG = (10.0, 80.0)
#: Shading baked into the colours (see the module docstring): ambient term and canonical light direction.
AMBIENT = 0.35
LIGHT_DIRECTION = np.array([0.3, 0.4, 1.0]) / np.linalg.norm([0.3, 0.4, 1.0])

_STREAMS = {"train": 0, "val": 1, "test": 2, "sparse": 3, "video": 4}
_HELD_OUT_FRACTION = {"val": 1.0 / 3.0, "test": 2.0 / 3.0}


# ---------------------------------------------------------------------------------------------- scene


def axis_rotation(axis: Sequence[float], angle: float) -> np.ndarray:
    """``(3, 3)`` rotation by ``angle`` (radians, right-handed) about ``axis`` (Rodrigues' formula)."""
    k = np.asarray(axis, dtype=np.float64)
    k = k / np.linalg.norm(k)
    cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + math.sin(angle) * cross + (1.0 - math.cos(angle)) * (cross @ cross)


def _ball_motion(t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    angle = 2 * math.pi * t
    center = np.array(
        [0.68 * math.sin(angle), 0.55 + 0.13 * math.cos(angle), 0.3 + 0.25 * math.sin(2 * angle)]
    )
    return center, axis_rotation((0.3, -0.2, 1.0), angle), np.ones(3)


_CRATE_TILT = axis_rotation((1.0, 0.0, 0.0), 0.35)


def _crate_motion(t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rotation = axis_rotation((0.2, 0.1, 1.0), 1.5 * math.pi * t) @ _CRATE_TILT
    return np.array([0.51, -0.38, -0.3]), rotation, np.ones(3)


def _blob_motion(t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    phases = 2 * math.pi * t + 2 * math.pi * np.arange(3) / 3
    scale = 1.0 + 0.25 * np.sin(phases)
    return np.array([-0.51, -0.38, -0.04]), axis_rotation((0.0, 0.0, 1.0), 0.5 * math.pi * t), scale


def _ball_texture(canonical: np.ndarray, extents: np.ndarray) -> np.ndarray:
    q = canonical / extents  # (N, 3) on the unit sphere
    longitude = np.arctan2(q[:, 1], q[:, 0])
    latitude = np.arcsin(np.clip(q[:, 2], -1.0, 1.0))
    return (np.floor(longitude / (math.pi / 4)) + np.floor(latitude / (math.pi / 4))).astype(np.int64) % 2


def _crate_texture(canonical: np.ndarray, extents: np.ndarray) -> np.ndarray:
    return np.floor(canonical / 0.14).astype(np.int64).sum(axis=1) % 2


def _blob_texture(canonical: np.ndarray, extents: np.ndarray) -> np.ndarray:
    return np.floor(4.0 * (canonical[:, 0] / extents[0] + 1.0)).astype(np.int64) % 2


@dataclass(frozen=True)
class SceneObject:
    """One object: canonical shape, two texture colours, and its motion ``t -> (center, rotation, scale)``."""

    name: str
    kind: str  # "ellipsoid" (extents = radii) or "box" (extents = half-extents)
    canonical_extents: tuple[float, float, float]
    colours: tuple[tuple[float, float, float], tuple[float, float, float]]
    texture: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (canonical (N, 3), extents (3,)) -> 0/1 (N,)
    texture_description: str
    motion: Callable[[float], tuple[np.ndarray, np.ndarray, np.ndarray]]
    motion_description: str


OBJECTS: tuple[SceneObject, ...] = (
    SceneObject(
        "ball",
        "ellipsoid",
        (0.32, 0.32, 0.32),
        ((0.85, 0.18, 0.12), (0.95, 0.90, 0.75)),
        _ball_texture,
        "8 x 4 checker in canonical longitude/latitude: (floor(lon / (pi/4)) + floor(lat / (pi/4))) mod 2",
        _ball_motion,
        "center (0.68 sin 2pi t, 0.55 + 0.13 cos 2pi t, 0.3 + 0.25 sin 4pi t); "
        "rotation 2pi t about (0.3, -0.2, 1)",
    ),
    SceneObject(
        "crate",
        "box",
        (0.34, 0.24, 0.19),
        ((0.15, 0.35, 0.85), (0.95, 0.80, 0.20)),
        _crate_texture,
        "solid checker of 0.14 cells in canonical coordinates: sum(floor(x_c / 0.14)) mod 2",
        _crate_motion,
        "center (0.51, -0.38, -0.3); rotation 1.5pi t about (0.2, 0.1, 1) after a 0.35 rad tilt about x",
    ),
    SceneObject(
        "blob",
        "ellipsoid",
        (0.36, 0.26, 0.29),
        ((0.20, 0.70, 0.30), (0.80, 0.30, 0.75)),
        _blob_texture,
        "8 stripes across canonical x: floor(4 (x_c / r_x + 1)) mod 2",
        _blob_motion,
        "center (-0.51, -0.38, -0.04); rotation pi/2 t about z; "
        "radii scaled by 1 + 0.25 sin(2pi t + 2pi k / 3) on axis k",
    ),
)


@dataclass(frozen=True)
class ObjectPose:
    """An object at one time: ``world = center + rotation @ (scale * canonical)``."""

    index: int
    name: str
    kind: str
    center: np.ndarray  # (3,)
    rotation: np.ndarray  # (3, 3) canonical axes -> world
    scale: np.ndarray  # (3,) per canonical axis
    canonical_extents: np.ndarray  # (3,) radii or half-extents of the rest shape

    @property
    def extents(self) -> np.ndarray:
        """Radii (ellipsoid) or half-extents (box) at this time, along the object's own axes."""
        return self.scale * self.canonical_extents

    @property
    def bounding_radius(self) -> float:
        """Radius of a sphere about ``center`` that contains the object."""
        return float(self.extents.max() if self.kind == "ellipsoid" else np.linalg.norm(self.extents))

    def to_canonical(self, points: np.ndarray) -> np.ndarray:
        """World points ``(..., 3)`` -> canonical coordinates."""
        return ((np.asarray(points, dtype=np.float64) - self.center) @ self.rotation) / self.scale

    def to_world(self, canonical: np.ndarray) -> np.ndarray:
        """Canonical coordinates ``(..., 3)`` -> world points."""
        return (np.asarray(canonical, dtype=np.float64) * self.scale) @ self.rotation.T + self.center


def scene_at(time: float) -> list[ObjectPose]:
    """Poses of the objects of :data:`OBJECTS` at ``time`` (motion is defined for ``time`` in [0, 1])."""
    time = float(time)
    if not math.isfinite(time):
        raise ValueError(f"expected a finite time in [0, 1], got {time!r}")
    poses = []
    for index, obj in enumerate(OBJECTS):
        center, rotation, scale = obj.motion(time)
        poses.append(
            ObjectPose(index, obj.name, obj.kind, center, rotation, scale, np.asarray(obj.canonical_extents))
        )
    return poses


def shade(canonical_normals: np.ndarray) -> np.ndarray:
    """The baked diffuse shading factor of unit canonical normals ``(N, 3)`` -> ``(N,)``."""
    return AMBIENT + (1.0 - AMBIENT) * np.maximum(canonical_normals @ LIGHT_DIRECTION, 0.0)


# ---------------------------------------------------------------------------------------------- ray casting


def _intersect_unit(kind: str, origins: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First hit ``t > 0`` of rays with the unit sphere or the cube [-1, 1]^3, and the unit-frame normal.

    ``directions`` need not be unit length; misses have ``t = inf``. Returns ``(t (N,), normal (N, 3))``.
    """
    n = len(origins)
    if kind == "ellipsoid":
        a = np.einsum("ij,ij->i", directions, directions)
        b = np.einsum("ij,ij->i", origins, directions)
        c = np.einsum("ij,ij->i", origins, origins) - 1.0
        discriminant = b * b - a * c
        root = np.sqrt(np.maximum(discriminant, 0.0))
        near, far = (-b - root) / a, (-b + root) / a
        t = np.where(near > 0, near, far)
        t = np.where((discriminant >= 0) & (t > 0), t, np.inf)
        normal = origins + np.where(np.isfinite(t), t, 0.0)[:, None] * directions
        return t, normal
    if kind == "box":
        with np.errstate(divide="ignore", invalid="ignore"):
            t_low = (-1.0 - origins) / directions  # (N, 3); +-inf where the ray is parallel to a slab
            t_high = (1.0 - origins) / directions
        # NaN (0 / 0) only for a ray lying exactly in a face plane: treat that slab as no constraint
        t_entry = np.where(np.isnan(t_low), -np.inf, np.minimum(t_low, t_high))
        t_exit = np.where(np.isnan(t_low), np.inf, np.maximum(t_low, t_high))
        entry_axis, exit_axis = t_entry.argmax(axis=1), t_exit.argmin(axis=1)
        near, far = t_entry.max(axis=1), t_exit.min(axis=1)
        outside = near > 0
        t = np.where(outside, near, far)
        t = np.where((near <= far) & (t > 0), t, np.inf)
        rows = np.arange(n)
        axis = np.where(outside, entry_axis, exit_axis)  # from inside the box the ray leaves through a face
        normal = np.zeros((n, 3))
        normal[rows, axis] = np.where(outside, -1.0, 1.0) * np.sign(directions[rows, axis])
        return t, normal
    raise ValueError(f"unknown object kind {kind!r}")


def cast_rays(
    origins: np.ndarray, directions: np.ndarray, time: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cast rays into the scene at ``time``.

    ``origins`` and ``directions`` are ``(N, 3)`` (directions are normalized here). Returns
    ``(distance (N,) float64: along the unit ray to the first hit, inf on a miss; object (N,) int64: index
    into OBJECTS, -1 on a miss; rgb (N, 3) float32: shaded texture colour, 0 on a miss)``.
    """
    origins = np.asarray(origins, dtype=np.float64)
    directions = np.asarray(directions, dtype=np.float64)
    if origins.ndim != 2 or origins.shape[1] != 3 or directions.shape != origins.shape:
        raise ValueError(
            f"expected origins and directions of shape (N, 3), got {origins.shape}, {directions.shape}"
        )
    directions = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    n = len(origins)
    distance = np.full(n, np.inf)
    hit_object = np.full(n, -1, dtype=np.int64)
    rgb = np.zeros((n, 3), dtype=np.float32)
    poses = scene_at(time)
    hits = []
    for pose in poses:
        # into the object's unit frame, where its shape is the unit sphere or cube; t is unchanged
        unit_origins = ((origins - pose.center) @ pose.rotation) / pose.extents
        unit_directions = (directions @ pose.rotation) / pose.extents
        t, unit_normal = _intersect_unit(pose.kind, unit_origins, unit_directions)
        hits.append((t, unit_origins, unit_directions, unit_normal))
        closer = t < distance
        distance[closer] = t[closer]
        hit_object[closer] = pose.index
    for pose, (t, unit_origins, unit_directions, unit_normal) in zip(poses, hits):
        mine = np.flatnonzero(hit_object == pose.index)
        if len(mine) == 0:
            continue
        unit_points = unit_origins[mine] + t[mine, None] * unit_directions[mine]
        canonical = unit_points * pose.canonical_extents
        # the gradient of the rest shape's implicit function: unit normal / extents (ellipsoid and box)
        canonical_normal = unit_normal[mine] / pose.canonical_extents
        canonical_normal /= np.linalg.norm(canonical_normal, axis=1, keepdims=True)
        obj = OBJECTS[pose.index]
        palette = np.asarray(obj.colours)  # (2, 3)
        albedo = palette[obj.texture(canonical, pose.canonical_extents)]
        rgb[mine] = (albedo * shade(canonical_normal)[:, None]).astype(np.float32)
    return distance, hit_object, rgb


def focal_from_angle(width: int, camera_angle_x: float = CAMERA_ANGLE_X) -> float:
    """D-NeRF's focal length in pixels: ``0.5 W / tan(0.5 camera_angle_x)``."""
    return 0.5 * width / math.tan(0.5 * camera_angle_x)


def pixel_rays(
    camera_to_world: np.ndarray,
    height: int,
    width: int,
    focal: float,
    offset: tuple[float, float] = (0.5, 0.5),
) -> tuple[np.ndarray, np.ndarray]:
    """World-space rays through the point ``(u + offset[0], v + offset[1])`` of every pixel.

    Returns ``(origins (H, W, 3), unit directions (H, W, 3))``; the default offset is the pixel centre.
    """
    pose = np.asarray(camera_to_world, dtype=np.float64)
    if pose.shape != (4, 4):
        raise ValueError(f"expected a (4, 4) camera-to-world matrix, got {pose.shape}")
    x = (np.arange(width) + offset[0] - 0.5 * width) / focal  # (W,)
    y = -(np.arange(height) + offset[1] - 0.5 * height) / focal  # (H,)
    camera = np.stack(np.broadcast_arrays(x[None, :], y[:, None], -np.ones((1, 1))), axis=-1)  # (H, W, 3)
    directions = camera @ pose[:3, :3].T
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    origins = np.broadcast_to(pose[:3, 3], directions.shape).copy()
    return origins, directions


def _render(
    camera_to_world: np.ndarray, time: float, height: int, width: int, focal: float, supersample: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    offsets = [
        ((i + 0.5) / supersample, (j + 0.5) / supersample)
        for j in range(supersample)
        for i in range(supersample)
    ]
    offsets.append((0.5, 0.5))  # the pixel-centre ray for depth and object ids
    origins, directions = zip(*(pixel_rays(camera_to_world, height, width, focal, o) for o in offsets))
    distance, hit_object, rgb = cast_rays(
        np.concatenate([o.reshape(-1, 3) for o in origins]),
        np.concatenate([d.reshape(-1, 3) for d in directions]),
        time,
    )
    samples = supersample * supersample
    pixels = height * width
    hit = (hit_object[: samples * pixels] >= 0).reshape(samples, pixels)
    colour = rgb[: samples * pixels].reshape(samples, pixels, 3).astype(np.float64)
    coverage = hit.sum(axis=0)  # (pixels,)
    mean_colour = np.divide(
        colour.sum(axis=0), coverage[:, None], out=np.zeros((pixels, 3)), where=coverage[:, None] > 0
    )
    rgba = np.concatenate([mean_colour, (coverage / samples)[:, None]], axis=1).reshape(height, width, 4)
    depth = distance[samples * pixels :].reshape(height, width)
    objects = hit_object[samples * pixels :].reshape(height, width)
    return rgba.astype(np.float32), depth.astype(np.float32), objects.astype(np.int8)


def render_view(
    camera_to_world: np.ndarray, time: float, height: int, width: int, focal: float, supersample: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Render the scene at ``time`` from a camera-to-world pose (OpenGL convention, see module docstring).

    Returns ``(rgba (H, W, 4) float32 in [0, 1], straight alpha = fraction of the supersample rays that
    hit; depth (H, W) float32: distance along the unit pixel-centre ray, inf where it misses)``.
    """
    _check_positive_int("supersample", supersample)
    _check_positive_int("height", height)
    _check_positive_int("width", width)
    rgba, depth, _ = _render(camera_to_world, time, height, width, focal, supersample)
    return rgba, depth


# ---------------------------------------------------------------------------------------------- cameras


def look_at(position: Sequence[float], target: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
    """``(4, 4)`` camera-to-world pose at ``position`` looking at ``target`` with world +z up.

    Looking straight down (or up) the z axis, world +y is the image's up direction instead.
    """
    position = np.asarray(position, dtype=np.float64)
    back = position - np.asarray(target, dtype=np.float64)  # the camera's +z points away from the view
    back /= np.linalg.norm(back)
    right = np.cross([0.0, 0.0, 1.0], back)
    if np.linalg.norm(right) < 1e-9:
        right = np.cross([0.0, 1.0, 0.0], back)
    right /= np.linalg.norm(right)
    up = np.cross(back, right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, up, back, position
    return pose


def _random_directions(rng: np.random.Generator, n: int) -> np.ndarray:
    """Area-uniform unit vectors on the band of the upper hemisphere between the elevation limits."""
    low, high = (math.sin(math.radians(e)) for e in ELEVATION_RANGE_DEG)
    z = rng.uniform(low, high, n)
    azimuth = rng.uniform(0.0, 2 * math.pi, n)
    ring = np.sqrt(1.0 - z * z)
    return np.stack([ring * np.cos(azimuth), ring * np.sin(azimuth), z], axis=1)


def _sparse_directions(rng: np.random.Generator, k: int) -> np.ndarray:
    low, high = (math.sin(math.radians(e)) for e in ELEVATION_RANGE_DEG)
    azimuth = rng.uniform(0.0, 2 * math.pi) + 2 * math.pi * np.arange(k) / k
    z = rng.uniform(low, high, k)
    ring = np.sqrt(1.0 - z * z)
    return np.stack([ring * np.cos(azimuth), ring * np.sin(azimuth), z], axis=1)


def _held_out_directions(rng: np.random.Generator, n: int, taken: np.ndarray) -> np.ndarray:
    """``n`` random directions at least a minimum angle away from ``taken`` (M, 3) and from each other."""
    low, high = (math.sin(math.radians(e)) for e in ELEVATION_RANGE_DEG)
    band_area = 2 * math.pi * (high - low)
    min_angle = min(math.radians(2.0), 0.5 * math.sqrt(band_area / max(len(taken) + n, 1)))
    max_cos = math.cos(min_angle)
    chosen: list[np.ndarray] = []
    attempts = 0
    while len(chosen) < n:
        attempts += 1
        if attempts > 1000 * (n + 10):
            raise RuntimeError("could not place held-out cameras away from the training cameras")
        candidate = _random_directions(rng, 1)[0]
        others = np.concatenate([taken, np.asarray(chosen).reshape(-1, 3)])
        if len(others) == 0 or (others @ candidate).max() < max_cos:
            chosen.append(candidate)
    return np.asarray(chosen).reshape(n, 3)


def split_times(split: str, count: int, train: int) -> list[float]:
    """Frame times of a split: training ``i / (train - 1)``; val/test between training times; video
    ``i / (count - 1)``, evenly through [0, 1]."""
    if split == "train":
        return [i / (train - 1) for i in range(count)]
    if split == "video":
        return [i / (count - 1) for i in range(count)]
    intervals = train - 1
    fraction = _HELD_OUT_FRACTION[split]
    return [(math.floor((k + 0.5) * intervals / count) + fraction) / intervals for k in range(count)]


def plan_frames(
    train: int = DEFAULT_COUNTS["train"],
    val: int = DEFAULT_COUNTS["val"],
    test: int = DEFAULT_COUNTS["test"],
    train_cameras: int | None = None,
    seed: int = 0,
    video: int = DEFAULT_COUNTS["video"],
) -> dict[str, list[tuple[float, np.ndarray]]]:
    """``{split: [(time, camera_to_world (4, 4)), ...]}`` for every frame, without rendering."""
    counts = {"train": train, "val": val, "test": test, "video": video}
    _check_arguments(counts, train_cameras, seed)

    def stream(name: str) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([seed, _STREAMS[name]]))

    if train_cameras is None:
        train_directions = _random_directions(stream("train"), train)
        distinct = train_directions
    else:
        distinct = _sparse_directions(stream("sparse"), train_cameras)
        train_directions = distinct[np.arange(train) % train_cameras]
    directions = {"train": train_directions}
    taken = distinct
    for split in ("val", "test"):
        directions[split] = _held_out_directions(stream(split), counts[split], taken)
        taken = np.concatenate([taken, directions[split]])
    # The video camera stands still: one held-out direction for every frame.
    directions["video"] = np.repeat(_held_out_directions(stream("video"), 1, taken), video, axis=0)
    return {
        split: [
            (t, look_at(CAMERA_RADIUS * d))
            for t, d in zip(split_times(split, counts[split], train), directions[split])
        ]
        for split in SPLITS
    }


# ---------------------------------------------------------------------------------------------- writing


def _check_positive_int(key: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(key, f"expected an integer >= {minimum}, got {value!r}")


def _check_arguments(counts: dict[str, int], train_cameras: int | None, seed: int) -> None:
    _check_positive_int("train", counts["train"], 2)  # evenly spaced times over [0, 1] need two frames
    _check_positive_int("val", counts["val"])
    _check_positive_int("test", counts["test"])
    _check_positive_int("video", counts["video"], 2)  # a frame-to-frame change needs two frames
    if train_cameras is not None:
        _check_positive_int("train_cameras", train_cameras)
        if train_cameras > counts["train"]:
            raise ConfigError(
                "train_cameras",
                f"{train_cameras} cameras for {counts['train']} training frames; use at most one per frame",
            )
    _check_positive_int("seed", seed, 0)


def frame_name(index: int) -> str:
    return f"r_{index:03d}"


def make_dynamic_scene(
    root: str | Path,
    height: int = DEFAULT_SIZE,
    width: int = DEFAULT_SIZE,
    train: int = DEFAULT_COUNTS["train"],
    val: int = DEFAULT_COUNTS["val"],
    test: int = DEFAULT_COUNTS["test"],
    train_cameras: int | None = None,
    seed: int = 0,
    supersample: int = 2,
    video: int = DEFAULT_COUNTS["video"],
    progress: bool = True,
    force: bool = False,
) -> Path:
    """Render the scene into ``root`` in the D-NeRF layout (plus ``root/ground_truth``); returns ``root``.

    An existing ``root`` is an error unless ``force``, which replaces it (atomically).
    """
    from PIL import Image

    _check_positive_int("height", height)
    _check_positive_int("width", width)
    _check_positive_int("supersample", supersample)
    root = Path(root)
    if root.exists() and not force:
        raise FileExistsError(f"{root} exists; pass force=True (CLI: --force) to replace it")
    frames = plan_frames(train, val, test, train_cameras, seed, video)
    focal = focal_from_angle(width)
    bar = progress_bar(f"dynamic scene -> {root}", sum(len(f) for f in frames.values())) if progress else None
    try:
        with atomic_directory(root) as tmp:
            (tmp / "ground_truth").mkdir()
            for split, split_frames in frames.items():
                (tmp / split).mkdir()
                depths = np.empty((len(split_frames), height, width), dtype=np.float32)
                objects = np.empty((len(split_frames), height, width), dtype=np.int8)
                records = []
                for i, (t, pose) in enumerate(split_frames):
                    rgba, depths[i], objects[i] = _render(pose, t, height, width, focal, supersample)
                    pixels = np.round(np.clip(rgba, 0.0, 1.0) * 255.0).astype(np.uint8)
                    Image.fromarray(pixels).save(tmp / split / f"{frame_name(i)}.png", format="PNG")
                    records.append(
                        {
                            "file_path": f"./{split}/{frame_name(i)}",
                            "time": t,
                            "transform_matrix": pose.tolist(),
                        }
                    )
                    if bar is not None:
                        bar.advance(bar.task_ids[0])
                transforms = {"camera_angle_x": CAMERA_ANGLE_X, "frames": records}
                (tmp / f"transforms_{split}.json").write_text(json.dumps(transforms, indent=4) + "\n")
                np.save(tmp / "ground_truth" / f"{split}_depth.npy", depths)
                np.save(tmp / "ground_truth" / f"{split}_object.npy", objects)
            description = _scene_description(
                height, width, train, val, test, video, train_cameras, seed, supersample
            )
            (tmp / "ground_truth" / "scene.json").write_text(json.dumps(description, indent=4) + "\n")
    finally:
        if bar is not None:
            bar.stop()
    return root


def _scene_description(height, width, train, val, test, video, train_cameras, seed, supersample) -> dict:
    return {
        "generator": "sciml.data.dynamic_scenes",
        "arguments": {
            "height": height,
            "width": width,
            "train": train,
            "val": val,
            "test": test,
            "video": video,
            "train_cameras": train_cameras,
            "seed": seed,
            "supersample": supersample,
        },
        "world": "+z up; pose: world = center(t) + rotation(t) @ (scale(t) * canonical)",
        "scene_box": [[SCENE_BOX[0]] * 3, [SCENE_BOX[1]] * 3],
        "near": NEAR,
        "far": FAR,
        "camera_radius": CAMERA_RADIUS,
        "elevation_range_deg": list(ELEVATION_RANGE_DEG),
        "focal": focal_from_angle(width),
        "shading": {"ambient": AMBIENT, "light_direction_canonical": LIGHT_DIRECTION.tolist()},
        "ground_truth": {
            "{split}_depth.npy": "float32 (F, H, W): distance along the unit pixel-centre ray, inf on a miss",
            "{split}_object.npy": "int8 (F, H, W): index into objects of the pixel-centre hit, -1 on a miss",
        },
        "objects": [
            {
                "index": i,
                "name": obj.name,
                "kind": obj.kind,
                "canonical_extents": list(obj.canonical_extents),
                "colours": [list(c) for c in obj.colours],
                "texture": obj.texture_description,
                "motion": obj.motion_description,
            }
            for i, obj in enumerate(OBJECTS)
        ],
    }


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        prog="python -m sciml.data.dynamic_scenes",
        description="Render an analytic dynamic scene (moving, rotating, deforming objects) as D-NeRF data.",
    )
    parser.add_argument(
        "--out", required=True, help="dataset root (created): transforms_*.json, train/, val/, test/, video/"
    )
    parser.add_argument(
        "--height", type=int, default=DEFAULT_SIZE, help=f"image height (default {DEFAULT_SIZE})"
    )
    parser.add_argument(
        "--width", type=int, default=DEFAULT_SIZE, help=f"image width (default {DEFAULT_SIZE})"
    )
    for split in SPLITS:
        parser.add_argument(
            f"--{split}",
            type=int,
            default=DEFAULT_COUNTS[split],
            help=f"frames (default {DEFAULT_COUNTS[split]})",
        )
    parser.add_argument(
        "--train-cameras",
        type=int,
        default=None,
        help="sparse views: training frames cycle through this many fixed cameras (default: one per frame)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--supersample", type=int, default=2, help="rays per pixel along each axis (default 2)"
    )
    parser.add_argument("--force", action="store_true", help="replace the dataset folder if it exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists() and not args.force:
        parser.exit(1, f"{out} exists; pass --force to replace it\n")
    start = time.perf_counter()
    try:
        make_dynamic_scene(
            out,
            height=args.height,
            width=args.width,
            train=args.train,
            val=args.val,
            test=args.test,
            video=args.video,
            train_cameras=args.train_cameras,
            seed=args.seed,
            supersample=args.supersample,
            progress=not args.quiet,
            force=args.force,
        )
    except ConfigError as error:
        problem = str(error).split(": ", 1)[1]
        parser.exit(2, f"option '--{error.key.replace('_', '-')}': {problem}\n")
    elapsed = time.perf_counter() - start
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    cameras = args.train if args.train_cameras is None else args.train_cameras
    print(
        f"wrote {args.train + args.val + args.test + args.video} frames of {args.width}x{args.height} RGBA "
        f"({size / 1e6:.1f} MB) to {out} in {elapsed:.1f} s (seed {args.seed})"
    )
    print(
        f"  train {args.train} ({cameras} cameras), val {args.val}, test {args.test}, "
        f"video {args.video} (one camera); times in [0, 1]"
    )
    return out


if __name__ == "__main__":
    main()
