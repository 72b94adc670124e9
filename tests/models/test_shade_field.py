"""SHaDe fields: the deformation's closed form and identity start, the SH-attention head's view
dependence, shapes/gradients/time dependence of the SHaDe and HexPlane fields."""

from __future__ import annotations

import pytest
import torch

from sciml.models.shade import HexPlaneField, ShadeField, SHAttentionHead, TriPlaneDeformation
from sciml.models.shade.deformation import time_features

BOX = ((-1.5, 1.5),) * 3


def _inputs(n=50, seed=0):
    generator = torch.Generator().manual_seed(seed)
    points = torch.rand(n, 3, generator=generator) * 3 - 1.5
    directions = torch.nn.functional.normalize(torch.randn(n, 3, generator=generator), dim=1)
    times = torch.rand(n, generator=generator)
    return points, directions, times


def _wake(module, seed=1):
    """Randomise every all-zero parameter (zero-initialised layers) so every part of a module acts."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            if not parameter.any():
                parameter.copy_(0.3 * torch.randn(parameter.shape, generator=generator))
    return module


def test_deformation_starts_as_the_identity_and_learns():
    deformation = TriPlaneDeformation(BOX, resolution=8, channels=4)
    points, _, times = _inputs()
    offset = deformation(points, times)
    assert torch.equal(offset, torch.zeros_like(points))
    offset.sum().backward()
    assert deformation.planes.planes[0].grad.abs().sum() > 0  # the planes get a gradient through W


def test_deformation_closed_form():
    """Constant planes c_p, no modulation: dx = (sum_p c_p) W; a shift beta(t) moves every point alike."""
    deformation = TriPlaneDeformation(BOX, resolution=4, channels=2, learn_projection=False)
    with torch.no_grad():
        for index, plane in enumerate(deformation.planes.planes):
            plane.copy_(torch.tensor([1.0, -2.0])[:, None, None] * (index + 1))
    points, _, times = _inputs(10)
    expected = torch.tensor([6.0, -12.0]) @ deformation.projection
    torch.testing.assert_close(deformation(points, times), expected.expand(10, 3))
    assert "projection" not in dict(deformation.named_parameters())  # fixed projection: a buffer
    with torch.no_grad():
        deformation.modulation.linear.weight[3 * 2 + 1, 1] = 0.5  # beta of plane 0, channel 1, on sin(pi t)
    shifted = deformation(points, times) - expected
    torch.testing.assert_close(
        shifted, (0.5 * torch.sin(torch.pi * times))[:, None] * deformation.projection[1][None, :]
    )


def test_time_features_and_smoothness():
    t = torch.tensor([0.0, 0.25])
    torch.testing.assert_close(
        time_features(t, 2)[1], torch.tensor([1.0, 0.5**0.5, 1.0, 0.5**0.5, 0.0]), atol=1e-6, rtol=0
    )
    deformation = TriPlaneDeformation(BOX, resolution=4, channels=2)
    points = _inputs(20)[0]
    assert float(deformation.time_smoothness(points).detach()) == 0.0  # static
    _wake(deformation)
    assert float(deformation.time_smoothness(points).detach()) > 0.0


def test_sh_head_starts_view_independent_and_learns_view_dependence():
    head = SHAttentionHead(feature_dim=8, degree=3, token_dim=8, heads=2)
    features = torch.randn(5, 8)
    d1, d2 = torch.tensor([[0.0, 0.0, 1.0]]).expand(5, 3), torch.tensor([[1.0, 0.0, 0.0]]).expand(5, 3)
    rgb = head(features, d1)
    assert rgb.shape == (5, 3) and bool(((rgb > 0) & (rgb < 1)).all())
    torch.testing.assert_close(head(features, d2), rgb)  # the view path starts at zero
    _wake(head)
    assert not torch.allclose(head(features, d2), head(features, d1))
    weights = head.band_weights(features, d1)
    assert weights.shape == (5, 2, 4)
    torch.testing.assert_close(weights.sum(-1), torch.ones(5, 2))


def test_degree_zero_head_has_no_view_dependence():
    head = _wake(SHAttentionHead(feature_dim=4, degree=0, token_dim=4, heads=1))
    features = torch.randn(3, 4)
    up, side = torch.tensor([[0.0, 1.0, 0.0]]).expand(3, 3), torch.tensor([[0.0, 0.0, -1.0]]).expand(3, 3)
    torch.testing.assert_close(head(features, up), head(features, side))


@pytest.mark.parametrize(
    "field",
    [
        lambda: ShadeField(
            BOX, resolution=8, channels=6, deformation_resolution=8, deformation_channels=4, token_dim=8
        ),
        lambda: HexPlaneField(BOX, resolution=8, time_resolution=5, channels=4, hidden=16),
    ],
    ids=["shade", "hexplane"],
)
def test_fields_shapes_gradients_and_time_dependence(field):
    torch.manual_seed(0)
    model = _wake(field())
    points, directions, times = _inputs()
    out = model(points, directions, times)
    assert out["density"].shape == (50,) and bool((out["density"] >= 0).all())
    assert out["rgb"].shape == (50, 3)
    loss = out["density"].mean() + out["rgb"].mean() + sum(model.regularizers(points[:10]).values())
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    later = model(points, directions, (times + 0.5) % 1)
    assert not torch.allclose(later["density"], out["density"])  # the scene moves


def test_shade_field_rejects_bad_shapes():
    field = ShadeField(
        BOX, resolution=4, channels=2, deformation_resolution=4, deformation_channels=2, token_dim=4
    )
    with pytest.raises(ValueError, match=r"expected points \(N, 3\), directions \(N, 3\), times \(N,\)"):
        field(torch.zeros(4, 3), torch.zeros(4, 3), torch.zeros(4, 1))
