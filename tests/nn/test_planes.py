"""Feature planes: exact bilinear reads of linear functions, node values at nodes, border clamping,
gradients to the four neighbouring nodes, total variation, errors."""

from __future__ import annotations

import pytest
import torch

from sciml.nn.planes import HEXPLANE_AXES, TRIPLANE_AXES, FeaturePlanes

BOX = [(-1.5, 1.5), (-1.0, 2.0), (0.0, 1.0)]


def _linear_planes(resolution=(5, 7, 4)) -> FeaturePlanes:
    """Planes whose channel 0 holds 2 u_a - 3 u_b + 1 at the node coordinates (u in box units)."""
    planes = FeaturePlanes(TRIPLANE_AXES, resolution, channels=2, bounds=BOX).double()
    with torch.no_grad():
        for plane, (a, b) in zip(planes.planes, planes.axes):
            ua = torch.linspace(*BOX[a], resolution[a], dtype=torch.float64)
            ub = torch.linspace(*BOX[b], resolution[b], dtype=torch.float64)
            plane[0] = 2 * ua[None, :] - 3 * ub[:, None] + 1  # (R_b, R_a)
            plane[1] = 0.5
    return planes


def test_bilinear_reads_of_a_linear_function_are_exact():
    planes = _linear_planes()
    lo, hi = torch.tensor([b[0] for b in BOX]), torch.tensor([b[1] for b in BOX])
    points = (lo + torch.rand(100, 3, dtype=torch.float64) * (hi - lo)).double()
    features = planes(points)
    assert features.shape == (3, 100, 2)
    for index, (a, b) in enumerate(TRIPLANE_AXES):
        torch.testing.assert_close(features[index, :, 0], 2 * points[:, a] - 3 * points[:, b] + 1)
        torch.testing.assert_close(features[index, :, 1], torch.full((100,), 0.5, dtype=torch.float64))


def test_points_outside_the_box_read_the_border():
    planes = _linear_planes()
    inside = torch.tensor([[1.5, 2.0, 1.0]], dtype=torch.float64)
    outside = torch.tensor([[9.0, 5.0, 3.0]], dtype=torch.float64)
    torch.testing.assert_close(planes(outside), planes(inside))


def test_gradient_reaches_exactly_the_four_neighbouring_nodes():
    planes = FeaturePlanes([(0, 1)], 5, channels=1, bounds=[(0.0, 4.0), (0.0, 4.0)]).double()
    planes(torch.tensor([[1.25, 2.5]], dtype=torch.float64)).sum().backward()
    grad = planes.planes[0].grad[0]  # (R_y, R_x)
    expected = torch.zeros(5, 5, dtype=torch.float64)
    expected[2, 1], expected[2, 2], expected[3, 1], expected[3, 2] = (
        0.75 * 0.5,
        0.25 * 0.5,
        0.75 * 0.5,
        0.25 * 0.5,
    )
    torch.testing.assert_close(grad, expected)


def test_hexplane_axes_cover_space_and_time():
    planes = FeaturePlanes(HEXPLANE_AXES, (8, 8, 8, 4), channels=3, bounds=[*BOX, (0.0, 1.0)], init="ones")
    assert [tuple(p.shape) for p in planes.planes][:4] == [(3, 8, 8), (3, 8, 8), (3, 8, 8), (3, 4, 8)]
    assert planes(torch.zeros(5, 4)).shape == (6, 5, 3)
    assert abs(float(planes.planes[0].detach().mean()) - 1.0) < 0.05


def test_total_variation_is_zero_only_for_constant_planes():
    planes = FeaturePlanes(TRIPLANE_AXES, 6, channels=2, bounds=BOX, init="zeros")
    assert float(planes.total_variation().detach()) == 0.0
    with torch.no_grad():
        planes.planes[1][0, 2, 3] = 1.0
    assert float(planes.total_variation().detach()) > 0.0


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"expected coordinates \(N, 3\), got \(4, 2\)"):
        FeaturePlanes(TRIPLANE_AXES, 4, 2, BOX)(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="axes"):
        FeaturePlanes([(0, 0)], 4, 2, BOX)
    with pytest.raises(ValueError, match="bounds"):
        FeaturePlanes(TRIPLANE_AXES, 4, 2, [(1.0, 0.0)] * 3)
    with pytest.raises(ValueError, match="init"):
        FeaturePlanes(TRIPLANE_AXES, 4, 2, BOX, init="xavier")
