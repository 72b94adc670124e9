"""Procedural synthetic shapes written in the ShapeNetCore.v2.PC15k layout of PointFlow.

``python -m sciml.data.shapes --out data/shapes`` writes ``<out>/<synset id>/{train,val,test}/<model>.npy``,
each a float32 ``(points, 3)`` array (15000 by default, like PC15k) of points drawn uniformly, area-weighted,
on the surface of a parts-based shape. It is the embedded default dataset of the DiT-3D configs and the
stand-in for ShapeNet in tests: the same layout, the same real synset ids, so a config switches between
the two by changing ``path`` only (see datasets/shapes/README.md).

Shapes. Each category is a small grammar of primitives with random proportions and part counts:

* chair (03001627): seat box, back box (tilted), four round or square legs or a swivel base (pole, five
  spokes, castor spheres), optional armrests on posts;
* table (04379243): rectangular (box) or round (disk) top; four legs, optionally with a shelf, or a
  pedestal column on a disk foot;
* lamp (03636649): disk or box base, pole; either an open conical shade on top (optional bulb, optional
  rim torus) or a desk lamp with a joint sphere, tilted arm and a cone shade pointing down and forward;
* airplane (02691156): cylinder fuselage with cone nose and tapered tail cone, swept wings with
  dihedral, horizontal stabilizers, vertical fin, optional 2 or 4 engine nacelles;
* car (02958343): body box, cabin box, four wheels (cylinders, or torus tyres with hub disks), optional
  spoiler and headlight spheres.

Primitives are boxes, frusta of revolution (cylinders, cones, disks, open shades; caps optional), tori
and spheres, each placed by a rotation and a translation. Sampling is exactly uniform on each primitive
(inverse-CDF along the slant of a frustum, rejection on the tube angle of a torus) and the per-part
counts are a multinomial draw with probabilities proportional to the part areas, so the cloud is uniform
over the union of the surfaces. Overlapping parts keep their hidden surface (a leg inside a seat), as
mesh-sampled ShapeNet clouds keep internal faces. The point order is a random permutation, so the first
10000 points (PointFlow's training part) and the last 5000 (its evaluation part) both cover the shape.

Category names and synset ids: :data:`sciml.data.pointclouds.CATEGORY_SYNSETS` (the reader owns the
table; it is re-exported here).

Orientation as in ShapeNetCore v2: +y is up, the front faces -z, and the y-z plane is the plane of
bilateral symmetry (x is left-right). Each shape is centred on the bounding box of its points and scaled
to a unit bounding-box diagonal (the data module's global normalization removes the scale anyway).

Determinism: shape ``i`` of split ``s`` of category ``c`` is drawn from
``numpy.random.SeedSequence([seed, int(synset), split code, i])`` alone, so it does not depend on the
counts asked for or on which other categories are made in the same call, and the same arguments give
the same bytes (same numpy version and platform: PCG64 is portable, libm transcendental functions may
differ in the last bit between platforms). Each category folder is written atomically: it is built in a
temporary sibling and renamed into place, so an interrupted run leaves no partial category behind, and
the next write of that category (the data module regenerates missing ones) removes the temporary a
killed run left (:func:`sciml.core.atomic.remove_stale_temporaries`).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sciml.core.atomic import atomic_directory
from sciml.core.errors import ConfigError
from sciml.core.progress import progress_bar
from sciml.data.pointclouds import CATEGORY_SYNSETS, SYNSET_CATEGORIES

SPLITS = ("train", "val", "test")
DEFAULT_COUNTS: dict[str, int] = {"train": 64, "val": 8, "test": 16}
DEFAULT_POINTS = 15000


# ---------------------------------------------------------------------------------------------- primitives
# Every primitive lives in its own frame (axis of revolution = local y) and knows its area, how to sample
# its surface uniformly, the unsigned distance of points to that surface, and its copy scaled by s.


@dataclass(frozen=True)
class Box:
    """Surface of an axis-aligned box with half-extents ``half`` centred at the origin."""

    half: tuple[float, float, float]

    def area(self) -> float:
        hx, hy, hz = self.half
        return 8.0 * (hx * hy + hy * hz + hx * hz)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        hx, hy, hz = self.half
        face_area = np.array([hy * hz, hy * hz, hx * hz, hx * hz, hx * hy, hx * hy])
        face = rng.choice(6, size=n, p=face_area / face_area.sum())
        points = rng.uniform(-1.0, 1.0, size=(n, 3)) * np.asarray(self.half)  # (n, 3)
        axis = face // 2
        points[np.arange(n), axis] = np.where(face % 2 == 0, -1.0, 1.0) * np.asarray(self.half)[axis]
        return points

    def distance(self, points: np.ndarray) -> np.ndarray:
        q = np.abs(points) - np.asarray(self.half)  # (n, 3); > 0 outside along that axis
        outside = np.linalg.norm(np.maximum(q, 0.0), axis=1)
        inside = np.minimum(q.max(axis=1), 0.0)
        return np.abs(outside + inside)

    def scaled(self, s: float) -> Box:
        return Box(tuple(h * s for h in self.half))


@dataclass(frozen=True)
class Frustum:
    """Surface of revolution about local y: radius ``r0`` at ``y = -h/2`` to ``r1`` at ``y = +h/2``.

    Cylinders (r0 = r1), cones (one radius 0), disks (short cylinders) and open lamp shades (no caps).
    ``bottom``/``top`` close the ends with flat caps.
    """

    r0: float
    r1: float
    height: float
    bottom: bool = True
    top: bool = True

    def segments(self) -> list[tuple[float, float, float, float]]:
        """Profile segments ``(rho_a, y_a, rho_b, y_b)`` in the (radius, y) half-plane."""
        h = self.height / 2
        out = [(self.r0, -h, self.r1, h)]
        if self.bottom and self.r0 > 0:
            out.append((0.0, -h, self.r0, -h))
        if self.top and self.r1 > 0:
            out.append((0.0, h, self.r1, h))
        return out

    @staticmethod
    def _segment_area(rho_a: float, y_a: float, rho_b: float, y_b: float) -> float:
        return math.pi * (rho_a + rho_b) * math.hypot(rho_b - rho_a, y_b - y_a)

    def area(self) -> float:
        return sum(self._segment_area(*s) for s in self.segments())

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        segments = self.segments()
        areas = np.array([self._segment_area(*s) for s in segments])
        which = rng.choice(len(segments), size=n, p=areas / areas.sum())
        seg = np.asarray(segments)[which]  # (n, 4)
        a, b = seg[:, 0], seg[:, 2]
        # Along the segment the area density is proportional to the radius a + (b - a) s; inverse CDF of
        # that linear density, rationalized so it is stable when a == b: s = u (a + b) / (a + sqrt(a^2 +
        # u (b^2 - a^2))).
        u = rng.random(n)
        denominator = a + np.sqrt(a * a + u * (b * b - a * a))
        s = np.divide(u * (a + b), denominator, out=np.zeros(n), where=denominator > 0)
        rho = a + (b - a) * s
        y = seg[:, 1] + (seg[:, 3] - seg[:, 1]) * s
        theta = rng.uniform(0.0, 2 * math.pi, n)
        return np.stack([rho * np.cos(theta), y, rho * np.sin(theta)], axis=1)

    def distance(self, points: np.ndarray) -> np.ndarray:
        rho = np.hypot(points[:, 0], points[:, 2])
        return np.min([_segment_distance(rho, points[:, 1], *s) for s in self.segments()], axis=0)

    def scaled(self, s: float) -> Frustum:
        return Frustum(self.r0 * s, self.r1 * s, self.height * s, self.bottom, self.top)


@dataclass(frozen=True)
class Torus:
    """Torus about local y: tube of radius ``minor`` around the circle of radius ``major`` in y = 0."""

    major: float
    minor: float

    def area(self) -> float:
        return 4 * math.pi**2 * self.major * self.minor

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        # The area element is minor (major + minor cos(phi)) dphi dtheta: uniform theta, and phi by
        # rejection against the envelope major + minor.
        phi = np.empty(0)
        while len(phi) < n:
            candidates = rng.uniform(0.0, 2 * math.pi, 2 * (n - len(phi)) + 16)
            keep = rng.random(len(candidates)) * (self.major + self.minor) < (
                self.major + self.minor * np.cos(candidates)
            )
            phi = np.concatenate([phi, candidates[keep]])
        phi = phi[:n]
        theta = rng.uniform(0.0, 2 * math.pi, n)
        rho = self.major + self.minor * np.cos(phi)
        return np.stack([rho * np.cos(theta), self.minor * np.sin(phi), rho * np.sin(theta)], axis=1)

    def distance(self, points: np.ndarray) -> np.ndarray:
        rho = np.hypot(points[:, 0], points[:, 2])
        return np.abs(np.hypot(rho - self.major, points[:, 1]) - self.minor)

    def scaled(self, s: float) -> Torus:
        return Torus(self.major * s, self.minor * s)


@dataclass(frozen=True)
class Sphere:
    radius: float

    def area(self) -> float:
        return 4 * math.pi * self.radius**2

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        direction = rng.standard_normal((n, 3))
        return self.radius * direction / np.linalg.norm(direction, axis=1, keepdims=True)

    def distance(self, points: np.ndarray) -> np.ndarray:
        return np.abs(np.linalg.norm(points, axis=1) - self.radius)

    def scaled(self, s: float) -> Sphere:
        return Sphere(self.radius * s)


Primitive = Box | Frustum | Torus | Sphere


def _segment_distance(rho, y, rho_a, y_a, rho_b, y_b) -> np.ndarray:
    """Distance in the (radius, y) half-plane from points to the segment a-b."""
    d_rho, d_y = rho_b - rho_a, y_b - y_a
    length2 = d_rho * d_rho + d_y * d_y
    t = np.clip(((rho - rho_a) * d_rho + (y - y_a) * d_y) / length2, 0.0, 1.0) if length2 > 0 else 0.0
    return np.hypot(rho - (rho_a + t * d_rho), y - (y_a + t * d_y))


@dataclass(eq=False)
class Part:
    """A primitive placed in the shape: ``world = rotation @ local + center``."""

    primitive: Primitive
    center: np.ndarray
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))

    def __post_init__(self):
        self.center = np.asarray(self.center, dtype=np.float64)
        self.rotation = np.asarray(self.rotation, dtype=np.float64)

    def area(self) -> float:
        return self.primitive.area()

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.primitive.sample(n, rng) @ self.rotation.T + self.center

    def distance(self, points: np.ndarray) -> np.ndarray:
        return self.primitive.distance((np.asarray(points, dtype=np.float64) - self.center) @ self.rotation)

    def normalized(self, offset: np.ndarray, scale: float) -> Part:
        """This part after the similarity ``x -> (x - offset) * scale``."""
        return Part(self.primitive.scaled(scale), (self.center - offset) * scale, self.rotation)


def rot_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# Rotations taking the local axis of revolution (y) onto a world axis.
Y_TO_X = rot_z(-math.pi / 2)
Y_TO_BACK = rot_x(math.pi / 2)  # local +y -> +z (towards the back)
Y_TO_FRONT = rot_x(-math.pi / 2)  # local +y -> -z (towards the front)


def sample_surface(parts: Sequence[Part], n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, 3)`` points uniform (area-weighted) on the union of the parts' surfaces, in random order."""
    areas = np.array([p.area() for p in parts])
    counts = rng.multinomial(n, areas / areas.sum())
    points = np.concatenate([p.sample(int(k), rng) for p, k in zip(parts, counts)])
    return points[rng.permutation(n)]


def surface_distance(parts: Sequence[Part], points: np.ndarray) -> np.ndarray:
    """Distance of each point to the nearest part surface, ``(n,)``."""
    return np.min([p.distance(points) for p in parts], axis=0)


# ---------------------------------------------------------------------------------------------- categories
# Builders work in metres-like units with the floor at y = 0; make_shape normalizes afterwards.


def _leg(style: str, radius: float, length: float, x: float, y0: float, z: float, taper: float) -> Part:
    center = (x, y0 + length / 2, z)
    if style == "square":
        return Part(Box((radius, length / 2, radius)), center)
    return Part(Frustum(radius * taper, radius, length), center)


def _chair(rng: np.random.Generator) -> list[Part]:
    u = rng.uniform
    width, depth, seat_height, seat = u(0.40, 0.60), u(0.38, 0.55), u(0.38, 0.50), u(0.03, 0.07)
    parts = [Part(Box((width / 2, seat / 2, depth / 2)), (0.0, seat_height - seat / 2, 0.0))]
    back_height, back, tilt = u(0.30, 0.60), u(0.025, 0.06), u(0.0, 0.25)
    back_width = width * u(0.8, 1.0)
    parts.append(
        Part(
            Box((back_width / 2, back_height / 2, back / 2)),
            (
                0.0,
                seat_height + math.cos(tilt) * back_height / 2,
                depth / 2 - back / 2 + math.sin(tilt) * back_height / 2,
            ),
            rot_x(tilt),  # the top leans back (+z)
        )
    )
    style = rng.choice(["round", "square", "swivel"], p=[0.45, 0.35, 0.20])
    leg_length = seat_height - seat
    if style == "swivel":
        spoke_height, spoke_length = u(0.05, 0.08), u(0.22, 0.30)
        pole = u(0.02, 0.04)
        parts.append(
            Part(
                Frustum(pole, pole, leg_length - spoke_height),
                (0.0, spoke_height + (leg_length - spoke_height) / 2, 0.0),
            )
        )
        castor = u(0.02, 0.03)
        for k in range(5):
            angle = 2 * math.pi * k / 5 + math.pi / 2
            direction = np.array([math.cos(angle), 0.0, math.sin(angle)])
            parts.append(
                Part(
                    Box((spoke_length / 2, 0.015, 0.02)),
                    direction * spoke_length / 2 + (0.0, spoke_height, 0.0),
                    rot_y(-angle),
                )
            )
            parts.append(Part(Sphere(castor), direction * spoke_length + (0.0, castor, 0.0)))
    else:
        radius, inset, taper = u(0.015, 0.03), u(0.03, 0.06), u(0.6, 1.0)
        for sx in (-1, 1):
            for sz in (-1, 1):
                parts.append(
                    _leg(
                        style,
                        radius,
                        leg_length,
                        sx * (width / 2 - inset),
                        0.0,
                        sz * (depth / 2 - inset),
                        taper,
                    )
                )
    if rng.random() < 0.4:  # armrests on front posts
        arm_height, arm_width = u(0.16, 0.25), u(0.025, 0.045)
        for sx in (-1, 1):
            x = sx * (width / 2 - arm_width)
            parts.append(Part(Box((arm_width, 0.015, depth * 0.42)), (x, seat_height + arm_height, 0.0)))
            parts.append(
                Part(Frustum(0.015, 0.015, arm_height), (x, seat_height + arm_height / 2, -depth * 0.3))
            )
    return parts


def _table(rng: np.random.Generator) -> list[Part]:
    u = rng.uniform
    height, top = u(0.65, 0.80), u(0.025, 0.06)
    round_top = rng.random() < 0.35
    if round_top:
        radius = u(0.35, 0.70)
        parts = [Part(Frustum(radius, radius, top), (0.0, height - top / 2, 0.0))]
        half_x = half_z = radius * math.sqrt(0.5)
    else:
        half_x, half_z = u(0.4, 0.8), u(0.25, 0.5)
        parts = [Part(Box((half_x, top / 2, half_z)), (0.0, height - top / 2, 0.0))]
    leg_length = height - top
    if rng.random() < (0.3 if round_top else 0.75):
        style = "square" if rng.random() < 0.4 else "round"
        radius, inset, taper = u(0.02, 0.045), u(0.04, 0.10), u(0.6, 1.0)
        for sx in (-1, 1):
            for sz in (-1, 1):
                x, z = sx * (half_x - inset), sz * (half_z - inset)
                parts.append(_leg(style, radius, leg_length, x, 0.0, z, taper))
        if rng.random() < 0.25:  # a shelf between the legs
            parts.append(Part(Box((half_x - inset, 0.01, half_z - inset)), (0.0, u(0.12, 0.30), 0.0)))
    else:  # pedestal
        foot_height = u(0.02, 0.05)
        foot = min(half_x, half_z) * u(0.5, 0.9)
        column = u(0.04, 0.08)
        parts.append(Part(Frustum(foot, foot * u(0.5, 0.9), foot_height), (0.0, foot_height / 2, 0.0)))
        column_length = leg_length - foot_height
        parts.append(
            Part(
                Frustum(column * u(0.8, 1.3), column, column_length),
                (0.0, foot_height + column_length / 2, 0.0),
            )
        )
    return parts


def _lamp(rng: np.random.Generator) -> list[Part]:
    u = rng.uniform
    base_height = u(0.02, 0.05)
    if rng.random() < 0.25:
        half = u(0.08, 0.15)
        parts = [Part(Box((half, base_height / 2, half * u(0.7, 1.0))), (0.0, base_height / 2, 0.0))]
        base_radius = half
    else:
        base_radius = u(0.10, 0.20)
        parts = [
            Part(Frustum(base_radius, base_radius * u(0.7, 1.0), base_height), (0.0, base_height / 2, 0.0))
        ]
    pole, pole_length = u(0.008, 0.018), u(0.35, 0.90)
    top = base_height + pole_length
    parts.append(Part(Frustum(pole, pole, pole_length), (0.0, base_height + pole_length / 2, 0.0)))
    if rng.random() < 0.65:  # standing lamp: open shade around the top of the pole
        shade_bottom, shade_height = u(0.12, 0.28), u(0.12, 0.30)
        shade_top = shade_bottom * u(0.35, 0.8)
        shade_center = top - shade_height * u(0.2, 0.5) + shade_height / 2
        parts.append(
            Part(
                Frustum(shade_bottom, shade_top, shade_height, bottom=False, top=False), (0, shade_center, 0)
            )
        )
        if rng.random() < 0.6:
            parts.append(Part(Sphere(u(0.03, 0.05)), (0.0, shade_center - shade_height * 0.2, 0.0)))
        if rng.random() < 0.5:  # a rim ring
            parts.append(
                Part(Torus(shade_bottom, u(0.008, 0.015)), (0.0, shade_center - shade_height / 2, 0.0))
            )
    else:  # desk lamp: joint, arm leaning forward, cone shade pointing down and forward
        joint = pole * u(1.5, 2.5)
        parts.append(Part(Sphere(joint), (0.0, top, 0.0)))
        lean, arm_length = u(0.5, 1.2), u(0.25, 0.45)
        arm_direction = np.array([0.0, math.cos(lean), -math.sin(lean)])
        parts.append(
            Part(
                Frustum(pole, pole, arm_length),
                np.array([0.0, top, 0.0]) + arm_direction * arm_length / 2,
                rot_x(-lean),
            )
        )
        end = np.array([0.0, top, 0.0]) + arm_direction * arm_length
        tilt = u(0.2, 0.8)
        mouth = np.array([0.0, -math.cos(tilt), -math.sin(tilt)])
        shade_height, mouth_radius = u(0.10, 0.20), u(0.07, 0.14)
        parts.append(
            Part(
                Frustum(mouth_radius * u(0.15, 0.35), mouth_radius, shade_height, bottom=True, top=False),
                end + mouth * shade_height / 2,
                rot_x(math.pi + tilt),  # local +y -> the mouth direction
            )
        )
        if rng.random() < 0.5:
            parts.append(Part(Torus(base_radius * 0.8, u(0.008, 0.015)), (0.0, base_height, 0.0)))
    return parts


def _airplane(rng: np.random.Generator) -> list[Part]:
    u = rng.uniform
    length, radius = u(0.9, 1.3), u(0.045, 0.08)
    nose, tail = length * u(0.08, 0.18), length * u(0.15, 0.25)
    body = length - nose - tail
    parts = [
        Part(Frustum(radius, radius, body, bottom=False, top=False), (0.0, 0.0, 0.0), Y_TO_BACK),
        Part(
            Frustum(radius, radius * u(0.0, 0.15), nose, bottom=False),
            (0.0, 0.0, -(body + nose) / 2),
            Y_TO_FRONT,
        ),
        Part(
            Frustum(radius, radius * u(0.2, 0.4), tail, bottom=False),
            (0.0, 0.0, (body + tail) / 2),
            Y_TO_BACK,
        ),
    ]
    span, chord, thickness = length * u(0.8, 1.2), u(0.12, 0.22), u(0.012, 0.02)
    sweep, dihedral = u(0.0, 0.6), u(0.0, 0.12)
    wing_root = np.array([0.0, radius * u(-0.6, 0.6), body * u(-0.15, 0.1)])

    def wing_pair(root, half_span, wing_chord, wing_sweep, wing_dihedral) -> list[Part]:
        pair = []
        for side in (-1, 1):
            # dihedral lifts the tip, sweep moves it back (+z)
            rotation = rot_y(-side * wing_sweep) @ rot_z(side * wing_dihedral)
            pair.append(
                Part(
                    Box((half_span / 2, thickness / 2, wing_chord / 2)),
                    root + rotation @ np.array([side * half_span / 2, 0.0, 0.0]),
                    rotation,
                )
            )
        return pair

    parts += wing_pair(wing_root, span / 2, chord, sweep, dihedral)
    tail_root = np.array([0.0, radius * 0.3, body / 2 + tail * 0.5])
    parts += wing_pair(tail_root, span * u(0.15, 0.22), chord * u(0.5, 0.8), sweep * u(0.8, 1.2), 0.0)
    fin_height, fin_chord, fin_sweep = u(0.12, 0.22), chord * u(0.6, 1.0), u(0.2, 0.7)
    parts.append(
        Part(
            Box((thickness / 2, fin_height / 2, fin_chord / 2)),
            tail_root
            + np.array([0.0, math.cos(fin_sweep) * fin_height / 2, math.sin(fin_sweep) * fin_height / 2]),
            rot_x(fin_sweep),  # the top leans back
        )
    )
    if rng.random() < 0.6:
        engines = 4 if rng.random() < 0.3 else 2
        engine_radius, engine_length = radius * u(0.35, 0.55), chord * u(0.8, 1.3)
        stations = (0.3,) if engines == 2 else (0.22, 0.42)
        for station in stations:
            for side in (-1, 1):
                x = side * station * span
                parts.append(
                    Part(
                        Frustum(engine_radius, engine_radius * 0.85, engine_length),
                        (
                            x,
                            wing_root[1] - engine_radius - 0.01,
                            wing_root[2] + station * span * math.tan(sweep) - chord * 0.4,
                        ),
                        Y_TO_BACK,
                    )
                )
    return parts


def _car(rng: np.random.Generator) -> list[Part]:
    u = rng.uniform
    length, width = u(0.9, 1.2), u(0.40, 0.50)
    wheel, wheel_width = u(0.07, 0.11), u(0.05, 0.08)
    clearance, body_height = wheel * u(0.7, 1.0), u(0.14, 0.24)
    parts = [Part(Box((width / 2, body_height / 2, length / 2)), (0.0, clearance + body_height / 2, 0.0))]
    kind = rng.choice(["sedan", "van", "pickup"], p=[0.55, 0.25, 0.20])
    cabin_length = length * {"sedan": u(0.40, 0.55), "van": u(0.65, 0.85), "pickup": u(0.30, 0.40)}[kind]
    cabin_height = {"sedan": u(0.11, 0.17), "van": u(0.18, 0.26), "pickup": u(0.13, 0.18)}[kind]
    cabin_z = {"sedan": u(-0.02, 0.10), "van": u(0.0, 0.06), "pickup": u(-0.20, -0.10)}[kind] * length
    parts.append(
        Part(
            Box((width / 2 * u(0.82, 0.95), cabin_height / 2, cabin_length / 2)),
            (0.0, clearance + body_height + cabin_height / 2, cabin_z),
        )
    )
    axle = length / 2 - wheel * u(1.2, 1.8)
    tyres = rng.random() < 0.4
    for sx in (-1, 1):
        for sz in (-1, 1):
            center = (sx * (width / 2 - wheel_width * 0.3), wheel, sz * axle)
            if tyres:
                tube = wheel_width / 2
                parts.append(Part(Torus(wheel - tube, tube), center, Y_TO_X))
                parts.append(Part(Frustum(wheel - tube, wheel - tube, 0.01), center, Y_TO_X))
            else:
                parts.append(Part(Frustum(wheel, wheel, wheel_width), center, Y_TO_X))
    top = clearance + body_height
    if kind != "van" and rng.random() < 0.25:  # spoiler on two posts
        post = u(0.04, 0.08)
        parts.append(Part(Box((width * 0.42, 0.008, 0.04)), (0.0, top + post, length / 2 - 0.05)))
        for sx in (-1, 1):
            parts.append(
                Part(Box((0.01, post / 2, 0.015)), (sx * width * 0.3, top + post / 2, length / 2 - 0.05))
            )
    if rng.random() < 0.5:  # headlights
        light = u(0.02, 0.035)
        for sx in (-1, 1):
            parts.append(Part(Sphere(light), (sx * width * 0.35, top - body_height * 0.3, -length / 2)))
    return parts


#: The categories this generator makes, by name.
BUILDERS: dict[str, Callable[[np.random.Generator], list[Part]]] = {
    "airplane": _airplane,
    "car": _car,
    "chair": _chair,
    "lamp": _lamp,
    "table": _table,
}
GENERATED_CATEGORIES: tuple[str, ...] = ("chair", "table", "lamp", "airplane", "car")


def generated_category(name: str, key: str = "categories") -> str:
    """The generator's name for a category given by name or synset id; ConfigError if it makes none."""
    resolved = SYNSET_CATEGORIES.get(name, name)
    if resolved not in BUILDERS:
        known = ", ".join(f"{c} ({CATEGORY_SYNSETS[c]})" for c in GENERATED_CATEGORIES)
        raise ConfigError(key, f"the shapes generator cannot make {name!r}; it makes {known}")
    return resolved


def shape_seed(seed: int, category: str, split: str, index: int) -> np.random.SeedSequence:
    """The seed of one shape: depends on nothing else (not on counts or other categories)."""
    return np.random.SeedSequence([seed, int(CATEGORY_SYNSETS[category]), SPLITS.index(split), index])


def make_shape(
    category: str, *, seed: int = 0, split: str = "train", index: int = 0, points: int = DEFAULT_POINTS
) -> tuple[np.ndarray, list[Part]]:
    """One shape exactly as :func:`make_shapes` writes it: ``(points (P, 3) float32, parts)``.

    The parts are returned in the normalized frame of the points (bounding box centred at the origin,
    unit diagonal), so ``surface_distance(parts, points)`` is ~0.
    """
    category = generated_category(category)
    rng = np.random.default_rng(shape_seed(seed, category, split, index))
    parts = BUILDERS[category](rng)
    cloud = sample_surface(parts, points, rng)
    low, high = cloud.min(axis=0), cloud.max(axis=0)
    offset, scale = (low + high) / 2, 1.0 / float(np.linalg.norm(high - low))
    return ((cloud - offset) * scale).astype(np.float32), [p.normalized(offset, scale) for p in parts]


def model_name(category: str, split: str, index: int) -> str:
    return f"{category}-{split}-{index:05d}"


def make_shapes(
    root: str | Path,
    categories: Iterable[str] = GENERATED_CATEGORIES,
    counts: Mapping[str, int] | None = None,
    points: int = DEFAULT_POINTS,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Path]:
    """Write ``<root>/<synset>/<split>/<category>-<split>-<i>.npy`` for every category and split.

    ``counts`` maps ``train``/``val``/``test`` to the number of shapes per category (default
    :data:`DEFAULT_COUNTS`; a split left out, or with count 0, gets no folder). Category folders that
    exist are replaced (atomically); other folders under ``root`` are left alone. Returns the written
    category folders by category name.
    """
    if isinstance(categories, str):
        categories = [categories]
    names = list(dict.fromkeys(generated_category(c) for c in categories))
    if not names:
        raise ConfigError("categories", "is empty; name at least one of " + ", ".join(GENERATED_CATEGORIES))
    counts = dict(DEFAULT_COUNTS if counts is None else counts)
    for split, count in counts.items():
        if split not in SPLITS:
            raise ConfigError("counts", f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
        if not isinstance(count, int | np.integer) or count < 0:
            raise ConfigError("counts", f"{split}: expected a count >= 0, got {count!r}")
    if sum(counts.values()) == 0:
        raise ConfigError("counts", "asks for no shapes at all")
    if not isinstance(points, int | np.integer) or points < 1:
        raise ConfigError("points", f"expected a number of points >= 1, got {points!r}")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ConfigError("seed", f"expected an integer >= 0, got {seed!r}")

    root = Path(root)
    jobs = [(name, split, i) for name in names for split in SPLITS for i in range(counts.get(split, 0))]
    bar = progress_bar(f"shapes -> {root}", len(jobs)) if progress else None
    written: dict[str, Path] = {}
    try:
        for name in names:
            target = root / CATEGORY_SYNSETS[name]
            with atomic_directory(target) as tmp:
                for split in SPLITS:
                    if counts.get(split, 0) == 0:
                        continue
                    (tmp / split).mkdir()
                    for i in range(counts[split]):
                        cloud, _ = make_shape(name, seed=seed, split=split, index=i, points=points)
                        np.save(tmp / split / f"{model_name(name, split, i)}.npy", cloud)
                        if bar is not None:
                            bar.advance(bar.task_ids[0])
            written[name] = target
    finally:
        if bar is not None:
            bar.stop()
    return written


def main(argv: Sequence[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(
        prog="python -m sciml.data.shapes",
        description="Make procedural parts-based shapes as point clouds in the ShapeNetCore.v2.PC15k layout.",
    )
    parser.add_argument("--out", required=True, help="dataset root (created); one folder per synset id")
    parser.add_argument(
        "--categories",
        nargs="+",
        default=list(GENERATED_CATEGORIES),
        help=f"names or synset ids (default: all: {' '.join(GENERATED_CATEGORIES)})",
    )
    for split in SPLITS:
        parser.add_argument(
            f"--{split}",
            type=int,
            default=DEFAULT_COUNTS[split],
            help=f"shapes per category (default {DEFAULT_COUNTS[split]})",
        )
    parser.add_argument(
        "--points", type=int, default=DEFAULT_POINTS, help=f"points per shape (default {DEFAULT_POINTS})"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="replace category folders that exist")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        names = list(dict.fromkeys(generated_category(c, "--categories") for c in args.categories))
    except ConfigError as error:
        parser.exit(2, f"{error}\n")
    existing = [str(out / CATEGORY_SYNSETS[n]) for n in names if (out / CATEGORY_SYNSETS[n]).exists()]
    if existing and not args.force:
        parser.exit(1, f"{', '.join(existing)} exist(s); pass --force to replace\n")
    counts = {split: getattr(args, split) for split in SPLITS}
    start = time.perf_counter()
    written = make_shapes(out, names, counts, points=args.points, seed=args.seed, progress=not args.quiet)
    elapsed = time.perf_counter() - start
    size = sum(f.stat().st_size for folder in written.values() for f in folder.rglob("*.npy"))
    total = len(names) * sum(counts.values())
    print(
        f"wrote {total} shapes of {args.points} points ({size / 1e6:.1f} MB) to {out} in {elapsed:.1f} s "
        f"(seed {args.seed})"
    )
    for name in names:
        split_counts = ", ".join(f"{split} {counts[split]}" for split in SPLITS if counts[split])
        print(f"  {name:<9} {CATEGORY_SYNSETS[name]}  {split_counts}")
    return written


if __name__ == "__main__":
    main()
