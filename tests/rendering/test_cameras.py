"""OpenGL / NeRF pinhole cameras: rays against the projection model, pose validation, render paths."""

import math
import typing

import pytest
import torch
from jaxtyping import jaxtyped

from sciml.rendering import (
    check_camera_to_world,
    intrinsics_from_fov,
    look_at,
    orbit_cameras,
    pixel_rays,
    rays_for_pixels,
)


def _random_rotation(generator: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _random_pose(generator: torch.Generator) -> torch.Tensor:
    pose = torch.eye(4, dtype=torch.float64)
    pose[:3, :3] = _random_rotation(generator)
    pose[:3, 3] = torch.randn(3, generator=generator, dtype=torch.float64) * 3
    return pose


def _project(point: torch.Tensor, intrinsics: torch.Tensor, pose: torch.Tensor) -> tuple[float, float]:
    """Image coordinates (continuous, pixel corners at integers) of a world point: the pinhole model."""
    fx, fy, cx, cy = intrinsics.tolist()
    camera = pose[:3, :3].T @ (point - pose[:3, 3])  # world -> camera
    depth = -camera[2]  # the camera looks along -z
    assert depth > 0
    return float(fx * camera[0] / depth + cx), float(-fy * camera[1] / depth + cy)


def test_intrinsics_from_fov_matches_the_d_nerf_lego_focal():
    # D-NeRF / NeRF Blender scenes: camera_angle_x = 0.6911112070083618 on 800 x 800 images, focal ~1111.11
    fx, fy, cx, cy = intrinsics_from_fov(0.6911112070083618, 800, 800)
    assert fx == fy == pytest.approx(1111.1110311937682, rel=1e-12)
    assert (cx, cy) == (400.0, 400.0)
    fx, _, cx, cy = intrinsics_from_fov(math.pi / 2, 640, 480)  # 90 degrees: focal = W / 2
    assert fx == pytest.approx(320.0) and (cx, cy) == (320.0, 240.0)
    with pytest.raises(ValueError, match="camera_angle_x"):
        intrinsics_from_fov(math.pi, 10, 10)
    with pytest.raises(ValueError, match="height"):
        intrinsics_from_fov(1.0, 10, 0)


def test_identity_camera_axes_follow_the_opengl_convention():
    intrinsics = torch.tensor([10.0, 20.0, 3.0, 2.0], dtype=torch.float64)  # fx, fy, cx, cy
    origins, directions = pixel_rays(intrinsics, torch.eye(4, dtype=torch.float64)[None], height=4, width=6)
    assert origins.shape == directions.shape == (1, 4, 6, 3)
    torch.testing.assert_close(origins, torch.zeros_like(origins))
    torch.testing.assert_close(directions.norm(dim=-1), torch.ones(1, 4, 6, dtype=torch.float64))
    # pixel (u, v) has its centre at (u + 0.5, v + 0.5): pixel (2, 1) looks along (-0.5/10, 0.5/20, -1)
    expected = torch.tensor([-0.05, 0.025, -1.0], dtype=torch.float64)
    torch.testing.assert_close(directions[0, 1, 2], expected / expected.norm())
    assert (directions[..., 2] < 0).all()  # looking along -z
    assert (directions[0, :, 3:, 0] > 0).all() and (directions[0, :, :3, 0] < 0).all()  # +x is right
    assert (directions[0, :2, :, 1] > 0).all() and (directions[0, 2:, :, 1] < 0).all()  # rows go down, +y up


def test_rays_pass_through_the_world_points_that_project_onto_their_pixels():
    generator = torch.Generator().manual_seed(0)
    intrinsics = torch.tensor([500.0, 450.0, 320.0, 240.0], dtype=torch.float64)
    poses, points, u, v = [], [], [], []
    for _ in range(16):
        pose = _random_pose(generator)
        # a point in front of the camera (camera z < 0), at depth 1..4
        xy = torch.rand(2, generator=generator, dtype=torch.float64) - 0.5
        depth = 1 + 3 * torch.rand(1, generator=generator, dtype=torch.float64)
        camera_point = depth * torch.cat([xy, -torch.ones(1, dtype=torch.float64)])
        point = pose[:3, :3] @ camera_point + pose[:3, 3]
        image_u, image_v = _project(point, intrinsics, pose)
        poses.append(pose)
        points.append(point)
        u.append(image_u - 0.5)  # pixel index whose centre is the projected image point
        v.append(image_v - 0.5)
    poses, points = torch.stack(poses), torch.stack(points)
    origins, directions = rays_for_pixels(
        intrinsics.expand(16, 4),
        poses,
        torch.tensor(u, dtype=torch.float64),
        torch.tensor(v, dtype=torch.float64),
    )
    to_point = points - origins
    distance = to_point.norm(dim=-1)
    torch.testing.assert_close(directions.norm(dim=-1), torch.ones(16, dtype=torch.float64))
    # the unit direction points at the point, and t = distance reaches it (t is Euclidean)
    torch.testing.assert_close(origins + distance[:, None] * directions, points, rtol=0, atol=1e-10)


def test_pixel_rays_and_rays_for_pixels_agree():
    generator = torch.Generator().manual_seed(1)
    poses = torch.stack([_random_pose(generator) for _ in range(3)]).float()
    intrinsics = torch.tensor([[30.0, 31.0, 8.0, 5.5], [20.0, 20.0, 7.0, 6.0], [40.0, 35.0, 9.0, 4.0]])
    height, width = 11, 16
    origins, directions = pixel_rays(intrinsics, poses, height, width)
    assert origins.shape == directions.shape == (3, height, width, 3)
    frame, v, u = torch.meshgrid(
        torch.arange(3), torch.arange(height), torch.arange(width), indexing="ij"
    )  # (3, H, W) each
    flat_origins, flat_directions = rays_for_pixels(
        intrinsics[frame.reshape(-1)], poses[frame.reshape(-1)], u.reshape(-1), v.reshape(-1)
    )
    torch.testing.assert_close(flat_origins, origins.reshape(-1, 3))
    torch.testing.assert_close(flat_directions, directions.reshape(-1, 3))
    # a shared (4,) intrinsics row is the same as repeating it per frame
    shared = pixel_rays(intrinsics[0], poses, height, width)[1]
    torch.testing.assert_close(shared, pixel_rays(intrinsics[0].expand(3, 4), poses, height, width)[1])


def test_ray_shape_errors_name_the_expected_shape():
    pose = torch.eye(4)[None]
    with pytest.raises(ValueError, match=r"camera_to_world: expected \(F, 4, 4\), got \(4, 4\)"):
        pixel_rays(torch.ones(4), torch.eye(4), 2, 2)
    with pytest.raises(ValueError, match=r"intrinsics: expected \(4,\) or \(F, 4\)"):
        pixel_rays(torch.ones(2, 4), pose, 2, 2)
    with pytest.raises(ValueError, match=r"u: expected \(R,\) = \(1,\), got \(2,\)"):
        rays_for_pixels(torch.ones(1, 4), pose, torch.zeros(2), torch.zeros(1))
    with pytest.raises(ValueError, match=r"intrinsics: expected \(R, 4\)"):
        rays_for_pixels(torch.ones(4), pose, torch.zeros(1), torch.zeros(1))


def test_pixel_rays_match_their_jaxtyping_annotations():
    hints = typing.get_type_hints(pixel_rays)
    origins_hint, directions_hint = typing.get_args(hints["return"])

    @jaxtyped(typechecker=None)
    def check(pose, origins, directions):
        return (
            isinstance(pose, hints["camera_to_world"])
            and isinstance(origins, origins_hint)
            and isinstance(directions, directions_hint)
        )

    pose = torch.eye(4)[None].expand(2, 4, 4)
    origins, directions = pixel_rays(torch.tensor([2.0, 2.0, 1.5, 1.0]), pose, 2, 3)
    assert check(pose, origins, directions)
    assert not check(pose, origins[:1], directions)  # a frame-count mismatch is caught
    assert not check(pose, origins, directions.transpose(1, 2))  # and (W, H) instead of (H, W)


def test_look_at_central_ray_points_at_the_target():
    eye, target = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([-0.5, 0.3, 0.2])
    pose = look_at(eye, target, up=(0.0, 1.0, 0.0), dtype=torch.float64)
    check_camera_to_world(pose)
    torch.testing.assert_close(pose[:3, 3], eye.double())
    # odd image size: pixel (W // 2, H // 2) has its centre on the principal point (W / 2, H / 2)
    height, width = 7, 9
    intrinsics = torch.tensor([12.0, 12.0, width / 2, height / 2], dtype=torch.float64)
    origins, directions = pixel_rays(intrinsics, pose[None], height, width)
    expected = (target - eye).double()
    torch.testing.assert_close(directions[0, height // 2, width // 2], expected / expected.norm())
    torch.testing.assert_close(origins[0, 0, 0], eye.double())
    # the camera's +y axis leans towards world up, +x is horizontal
    assert pose[1, 1] > 0 and abs(float(pose[1, 0])) < 1e-12
    with pytest.raises(ValueError, match="parallel"):
        look_at((0.0, 2.0, 0.0), (0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0))
    with pytest.raises(ValueError, match="coincide"):
        look_at((1.0, 1.0, 1.0), (1.0, 1.0, 1.0))


def test_look_at_down_the_negative_z_axis_is_the_identity():
    torch.testing.assert_close(look_at((0.0, 0.0, 5.0), (0.0, 0.0, 0.0))[:3, :3], torch.eye(3))


@pytest.mark.parametrize("up", [(0.0, 1.0, 0.0), (0.0, 0.0, 1.0)])
def test_orbit_cameras_circle_the_target_at_the_given_elevation(up):
    target = torch.tensor([0.5, -0.2, 0.1], dtype=torch.float64)
    up_ = torch.tensor(up, dtype=torch.float64)
    n, radius, elevation = 8, 4.0, 30.0
    poses = orbit_cameras(n, radius, elevation, target=target, up=up, dtype=torch.float64)
    assert poses.shape == (n, 4, 4)
    check_camera_to_world(poses)
    offsets = poses[:, :3, 3] - target
    torch.testing.assert_close(offsets.norm(dim=1), torch.full((n,), radius, dtype=torch.float64))
    torch.testing.assert_close(
        offsets @ up_, torch.full((n,), radius * math.sin(math.radians(elevation)), dtype=torch.float64)
    )
    # evenly spaced azimuths, turning counter-clockwise about up (right-handed)
    flat = offsets - (offsets @ up_)[:, None] * up_
    turn = torch.linalg.cross(flat, flat.roll(-1, dims=0)) @ up_
    angle = torch.atan2(turn, (flat * flat.roll(-1, dims=0)).sum(1))
    torch.testing.assert_close(angle, torch.full((n,), 2 * math.pi / n, dtype=torch.float64))
    # every camera looks at the target: -z axis along target - eye
    torch.testing.assert_close(-poses[:, :3, 2], -offsets / radius)
    assert (poses[:, :3, 1] @ up_ > 0).all()  # and is upright


def _valid_poses() -> torch.Tensor:
    generator = torch.Generator().manual_seed(2)
    return torch.stack([_random_pose(generator) for _ in range(4)])


def test_check_camera_to_world_accepts_rigid_poses_in_float32():
    check_camera_to_world(_valid_poses().float())
    check_camera_to_world(torch.eye(4))


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda m: m[2, 1, 1].fill_(float("nan")), r"poses\[2\]: expected finite"),
        (lambda m: m[1, 3, 0].fill_(0.5), r"poses\[1\]: expected last row \(0, 0, 0, 1\)"),
        (lambda m: m[3, 3, 3].fill_(2.0), r"poses\[3\]: expected last row"),
        (lambda m: m[0, :3, 0].mul_(1.1), r"poses\[0\]: rotation block is not orthonormal"),
        (lambda m: m[1, :3, 1].add_(m[1, :3, 0] * 0.01), r"poses\[1\]: rotation block is not orthonormal"),
        (lambda m: m[2, :3, 2].neg_(), r"poses\[2\]: rotation block has det -1"),
    ],
)
def test_check_camera_to_world_rejects_non_rigid_poses(corrupt, message):
    poses = _valid_poses()
    corrupt(poses)
    with pytest.raises(ValueError, match=message):
        check_camera_to_world(poses, name="poses")


def test_check_camera_to_world_shape_errors():
    with pytest.raises(ValueError, match=r"pose: expected \(4, 4\) or \(\.\.\., 4, 4\).*got \(3, 4\)"):
        check_camera_to_world(torch.eye(4)[:3], name="pose")
    with pytest.raises(ValueError, match="pose: expected finite"):
        check_camera_to_world(torch.full((4, 4), float("inf")), name="pose")
