"""PVCNN voxelization (normalize=True, average pooling) and trilinear devoxelization."""

import pytest
import torch

from sciml.geometry import devoxelize, normalized_voxel_coords, voxelize


def _reference_voxelize(features: torch.Tensor, points: torch.Tensor, r: int) -> torch.Tensor:
    """Loop-over-points average pooling at the rounded normalized coordinates."""
    coords = normalized_voxel_coords(points, r).round().long()
    batch, _, channels = features.shape
    sums = torch.zeros(batch, channels, r, r, r, dtype=features.dtype)
    counts = torch.zeros(batch, 1, r, r, r, dtype=features.dtype)
    for b in range(batch):
        for n, (i, j, k) in enumerate(coords[b].tolist()):
            sums[b, :, i, j, k] += features[b, n]
            counts[b, :, i, j, k] += 1
    return sums / counts.clamp_min(1)


def test_six_axis_points_and_a_pair_sharing_the_centre_voxel():
    # Mean 0, farthest point at norm 1, so coords = (p / 2 + 0.5) * R, then clamped to R - 1.
    r = 4
    axis = torch.eye(3, dtype=torch.float64)
    pair = torch.tensor([[0.1, 0.0, 0.0], [-0.1, 0.0, 0.0]], dtype=torch.float64)
    points = torch.cat([axis, -axis, pair])[None]  # (1, 8, 3)
    features = torch.arange(1.0, 9.0, dtype=torch.float64)[None, :, None]  # (1, 8, 1)
    grid, coords = voxelize(features, points, r)

    expected_coords = torch.tensor(
        [[3, 2, 2], [2, 3, 2], [2, 2, 3], [0, 2, 2], [2, 0, 2], [2, 2, 0], [2.2, 2, 2], [1.8, 2, 2]],
        dtype=torch.float64,
    )
    torch.testing.assert_close(coords[0], expected_coords)
    assert grid.shape == (1, 1, r, r, r)
    expected = torch.zeros(r, r, r, dtype=torch.float64)
    for value, (i, j, k) in zip(
        range(1, 7), [(3, 2, 2), (2, 3, 2), (2, 2, 3), (0, 2, 2), (2, 0, 2), (2, 2, 0)]
    ):
        expected[i, j, k] = value
    expected[2, 2, 2] = (7.0 + 8.0) / 2  # both pair points round to the centre voxel and are averaged
    torch.testing.assert_close(grid[0, 0], expected)
    assert int((grid != 0).sum()) == 7  # every other voxel is empty and holds 0


def test_voxelize_matches_a_loop_over_points_and_keeps_axis_order():
    torch.manual_seed(0)
    points = torch.randn(3, 200, 3, dtype=torch.float64) * torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    features = torch.randn(3, 200, 4, dtype=torch.float64)
    grid, _ = voxelize(features, points, 6)
    torch.testing.assert_close(grid, _reference_voxelize(features, points, 6))
    # Extents y > x > z, so occupancy spans most voxels along grid axis 3 (j), then 2 (i), then 4 (k).
    occupied = (grid != 0).any(dim=1)  # (B, R, R, R)
    spans = [occupied.any(dim=d).sum(dim=-1).max() for d in ((2, 3), (1, 3), (1, 2))]
    assert spans[1] > spans[0] > spans[2]


def test_normalization_fills_the_ball_of_radius_r_half_and_is_translation_and_scale_invariant():
    torch.manual_seed(1)
    r = 8
    points = torch.rand(2, 300, 3, dtype=torch.float64) - 0.5
    points[:, 0] = torch.tensor([0.9, 0.9, 0.9], dtype=torch.float64)  # farthest point on the diagonal
    coords = normalized_voxel_coords(points, r)
    assert coords.min() >= 0 and coords.max() <= r - 1
    # The farthest point (along the diagonal, unclamped) sits exactly R / 2 from the shape's mean.
    centred_points = points - points.mean(dim=1, keepdim=True)
    far = centred_points.norm(dim=2).argmax(dim=1)
    unclamped = coords[torch.arange(2), far]
    assert (unclamped < r - 1).all()
    distance_from_centre = (unclamped - r / 2).norm(dim=1)  # the shape's mean maps to the grid centre
    torch.testing.assert_close(distance_from_centre, torch.full((2,), r / 2, dtype=torch.float64))

    features = torch.randn(2, 300, 3, dtype=torch.float64)
    grid, coords = voxelize(features, points, r)
    moved = points * 3.7 + torch.tensor([5.0, -2.0, 11.0], dtype=torch.float64)
    grid_moved, coords_moved = voxelize(features, moved, r)
    torch.testing.assert_close(coords_moved, coords)
    torch.testing.assert_close(grid_moved, grid)


def test_eps_shrinks_the_shape_and_coincident_points_land_on_the_centre():
    points = torch.tensor([[[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]])
    coords = normalized_voxel_coords(points, 10, eps=2.0)  # divide by 2 * 1 + 2 = 4 instead of 2
    torch.testing.assert_close(coords[0, :, 0], torch.tensor([7.5, 2.5]))
    still = normalized_voxel_coords(torch.ones(1, 5, 3), 10)
    torch.testing.assert_close(still, torch.full((1, 5, 3), 5.0))


def test_devoxelize_at_voxel_centres_returns_the_voxel_values():
    torch.manual_seed(2)
    r = 5
    grid = torch.randn(2, 3, r, r, r)
    index = torch.randint(0, r, (2, 40, 3))
    values = devoxelize(grid, index.float())
    expected = torch.stack([grid[b][:, index[b, :, 0], index[b, :, 1], index[b, :, 2]].T for b in range(2)])
    torch.testing.assert_close(values, expected)


def test_devoxelize_reproduces_a_linear_field_exactly():
    r = 7
    a, b, c = 0.5, -1.25, 2.0
    ijk = torch.arange(r, dtype=torch.float64)
    field = a * ijk[:, None, None] + b * ijk[None, :, None] + c * ijk[None, None, :]  # f(i, j, k)
    grid = torch.stack([field, 2 * field])[None]  # (1, 2, R, R, R)
    torch.manual_seed(3)
    coords = torch.rand(1, 100, 3, dtype=torch.float64) * (r - 1)
    coords[0, :3] = torch.tensor(
        [[0.0, 0.0, 0.0], [r - 1, r - 1, r - 1], [r - 1, 0.5, 3.25]], dtype=torch.float64
    )
    values = devoxelize(grid, coords)
    expected = coords @ torch.tensor([a, b, c], dtype=torch.float64)
    torch.testing.assert_close(values, torch.stack([expected, 2 * expected], dim=-1))


def test_devoxelize_blends_the_eight_corners_with_trilinear_weights():
    grid = torch.zeros(1, 1, 2, 2, 2, dtype=torch.float64)
    grid[0, 0, 1, 1, 1] = 8.0
    grid[0, 0, 1, 0, 0] = 1.0
    coords = torch.tensor([[[0.5, 0.25, 0.75]]], dtype=torch.float64)
    expected = 8.0 * 0.5 * 0.25 * 0.75 + 1.0 * 0.5 * 0.75 * 0.25
    torch.testing.assert_close(devoxelize(grid, coords), torch.tensor([[[expected]]], dtype=torch.float64))


def test_batch_items_are_independent():
    torch.manual_seed(4)
    points = torch.randn(3, 64, 3)
    points[1] = points[1] * 10 + 4
    features = torch.randn(3, 64, 2)
    grid, coords = voxelize(features, points, 4)
    out = devoxelize(grid, coords)
    for b in range(3):
        grid_b, coords_b = voxelize(features[b : b + 1], points[b : b + 1], 4)
        torch.testing.assert_close(grid[b : b + 1], grid_b)
        torch.testing.assert_close(coords[b : b + 1], coords_b)
        torch.testing.assert_close(out[b : b + 1], devoxelize(grid_b, coords_b))


def test_gradcheck_voxelize_wrt_features_and_devoxelize_wrt_grid():
    torch.manual_seed(5)
    points = torch.randn(2, 12, 3, dtype=torch.float64)
    features = torch.randn(2, 12, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f: voxelize(f, points, 3)[0], (features,))
    grid = torch.randn(2, 2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    coords = torch.rand(2, 10, 3, dtype=torch.float64) * 2
    assert torch.autograd.gradcheck(lambda g: devoxelize(g, coords), (grid,))


def test_points_carry_no_gradient_through_voxelize():
    points = torch.randn(1, 8, 3, requires_grad=True)
    features = torch.randn(1, 8, 2, requires_grad=True)
    grid, coords = voxelize(features, points, 3)
    assert not coords.requires_grad
    grid.sum().backward()
    assert points.grad is None and features.grad is not None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: voxelize(torch.zeros(2, 5, 1), torch.zeros(2, 5, 2), 4),
            r"points: expected \(B, N, 3\), got \(2, 5, 2\)",
        ),
        (
            lambda: voxelize(torch.zeros(2, 4, 1), torch.zeros(2, 5, 3), 4),
            r"features: expected \(B, N, C\) = \(2, 5, C\)",
        ),
        (
            lambda: voxelize(torch.zeros(2, 5, 1), torch.zeros(2, 5, 3), 0),
            "resolution: expected a positive int",
        ),
        (
            lambda: devoxelize(torch.zeros(2, 1, 4, 4), torch.zeros(2, 5, 3)),
            r"grid: expected \(B, C, R, R, R\)",
        ),
        (
            lambda: devoxelize(torch.zeros(2, 1, 4, 4, 4), torch.zeros(3, 5, 3)),
            r"coords: expected \(B, N, 3\) with B = 2",
        ),
    ],
)
def test_bad_shapes_name_the_expected_shape(call, message):
    with pytest.raises(ValueError, match=message):
        call()
