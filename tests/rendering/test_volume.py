"""Emission-absorption volume rendering against closed forms for homogeneous slabs."""

import math

import pytest
import torch

from sciml.rendering import (
    INFINITE_DELTA,
    clip_near_far,
    sample_pdf,
    stratified_samples,
    uniform_bins,
    volume_render,
)

F64 = torch.float64


def _midpoint_samples(near: float, far: float, samples: int, rays: int = 1):
    """Bin midpoints and bin widths of ``samples`` equal bins of ``[near, far]`` for ``rays`` rays."""
    edges = uniform_bins(torch.full((rays,), near, dtype=F64), torch.full((rays,), far, dtype=F64), samples)
    return (edges[:, 1:] + edges[:, :-1]) / 2, edges.diff(dim=1)


def _naive_render(densities, colors, deltas, background):
    """NeRF's equation 3 written out sample by sample: T_i = prod_{j<i} (1 - alpha_j)."""
    rays, samples = densities.shape
    rgb = torch.zeros(rays, colors.shape[-1], dtype=densities.dtype)
    weights = torch.zeros(rays, samples, dtype=densities.dtype)
    for r in range(rays):
        transmittance = 1.0
        for i in range(samples):
            alpha = 1.0 - math.exp(-float(densities[r, i] * deltas[r, i]))
            weights[r, i] = transmittance * alpha
            rgb[r] += weights[r, i] * colors[r, i]
            transmittance *= 1.0 - alpha
        rgb[r] += transmittance * background
    return rgb, weights


@pytest.mark.parametrize("samples", [1, 7, 64])
def test_constant_density_slab_transmittance_and_colour(samples):
    near, far = 2.0, 5.0
    length = far - near
    sigma = torch.tensor([0.0, 0.1, 0.7, 3.0], dtype=F64)
    t, deltas = _midpoint_samples(near, far, samples, rays=4)
    colour = torch.tensor([0.2, 0.5, 0.9], dtype=F64)
    out = volume_render(
        sigma[:, None].expand(4, samples),
        colour.expand(4, samples, 3),
        t,
        deltas,
        background=torch.ones(3, dtype=F64),
    )
    accumulation = 1 - torch.exp(-sigma * length)  # whatever the number of samples
    torch.testing.assert_close(out["accumulation"], accumulation)
    torch.testing.assert_close(out["weights"].sum(dim=1), accumulation)
    torch.testing.assert_close(out["rgb"], colour * accumulation[:, None] + (1 - accumulation[:, None]))
    # the light reaching sample i has crossed i bins of the slab
    crossed = torch.arange(samples, dtype=F64) * length / samples
    torch.testing.assert_close(out["transmittance"], torch.exp(-sigma[:, None] * crossed))


def test_expected_depth_of_a_slab_matches_the_discrete_and_continuous_closed_forms():
    near, far, sigma = 1.0, 4.0, 0.8
    length = far - near
    # discrete: w_i = q^i (1 - q) with q = exp(-sigma delta) at t_i = near + (i + 1/2) delta
    samples = 7
    delta = length / samples
    q = math.exp(-sigma * delta)
    discrete = (near + delta / 2) * (1 - q**samples) + delta * q * (
        1 - samples * q ** (samples - 1) + (samples - 1) * q**samples
    ) / (1 - q)
    t, deltas = _midpoint_samples(near, far, samples)
    out = volume_render(
        torch.full((1, samples), sigma, dtype=F64), torch.zeros(1, samples, 3, dtype=F64), t, deltas
    )
    torch.testing.assert_close(out["depth"], torch.tensor([discrete], dtype=F64))
    torch.testing.assert_close(out["depth_normalized"], out["depth"] / out["accumulation"])
    # continuous: integral_near^far t sigma exp(-sigma (t - near)) dt; the midpoint rule errs by O(delta^2)
    opacity = 1 - math.exp(-sigma * length)
    continuous = near * opacity + (1 - math.exp(-sigma * length) * (1 + sigma * length)) / sigma
    t, deltas = _midpoint_samples(near, far, 2000)
    out = volume_render(
        torch.full((1, 2000), sigma, dtype=F64), torch.zeros(1, 2000, 3, dtype=F64), t, deltas
    )
    assert out["depth"].item() == pytest.approx(continuous, rel=1e-6)
    assert out["depth_normalized"].item() == pytest.approx(continuous / opacity, rel=1e-6)


def test_zero_density_renders_the_background():
    t, deltas = _midpoint_samples(0.0, 3.0, 5, rays=2)
    colors = torch.rand(2, 5, 3, dtype=F64)
    background = torch.tensor([[0.1, 0.2, 0.3], [1.0, 1.0, 1.0]], dtype=F64)
    out = volume_render(torch.zeros(2, 5, dtype=F64), colors, t, deltas, background=background)
    assert torch.equal(out["rgb"], background)
    assert torch.equal(out["accumulation"], torch.zeros(2, dtype=F64))
    assert torch.equal(out["depth"], torch.zeros(2, dtype=F64))
    assert torch.equal(out["depth_normalized"], torch.zeros(2, dtype=F64))
    # and with no background term it renders black
    assert torch.equal(
        volume_render(torch.zeros(2, 5), colors.float(), t.float(), far=3.0)["rgb"], torch.zeros(2, 3)
    )


def test_matches_the_sample_by_sample_formula_and_weights_sum_to_at_most_one():
    generator = torch.Generator().manual_seed(0)
    rays, samples = 6, 12
    densities = torch.rand(rays, samples, generator=generator, dtype=F64) * 4
    densities[0] = 0.0
    densities[1, 5] = 1e4  # an opaque sample
    colors = torch.rand(rays, samples, 3, generator=generator, dtype=F64)
    deltas = torch.rand(rays, samples, generator=generator, dtype=F64) * 0.3
    t = deltas.cumsum(dim=1)
    background = torch.tensor([0.3, 0.6, 0.9], dtype=F64)
    out = volume_render(densities, colors, t, deltas, background=background)
    rgb, weights = _naive_render(densities, colors, deltas, background)
    torch.testing.assert_close(out["rgb"], rgb)
    torch.testing.assert_close(out["weights"], weights)
    assert (out["weights"] >= 0).all() and (out["accumulation"] <= 1).all()
    torch.testing.assert_close(out["accumulation"], 1 - torch.exp(-(densities * deltas).sum(dim=1)))
    # everything behind the opaque sample is hidden
    assert out["weights"][1, 6:].abs().max() < 1e-12 and out["accumulation"][1] == pytest.approx(1.0)


def test_far_convention_spaces_samples_forward_and_infinite_far_makes_the_last_sample_opaque():
    t = torch.tensor([[1.0, 1.5, 2.5], [0.5, 1.0, 3.0]], dtype=F64)
    densities = torch.tensor([[0.2, 0.4, 0.6], [1.0, 0.0, 0.0]], dtype=F64)
    colors = torch.rand(2, 3, 3, dtype=F64)
    far = torch.tensor([4.0, 2.0], dtype=F64)  # the second ray's last sample lies beyond far: zero spacing
    explicit = torch.tensor([[0.5, 1.0, 1.5], [0.5, 2.0, 0.0]], dtype=F64)
    by_far = volume_render(densities, colors, t, far=far)
    by_deltas = volume_render(densities, colors, t, explicit)
    for key in by_far:
        torch.testing.assert_close(by_far[key], by_deltas[key])
    # NeRF: the last interval is infinite, so any density in the last sample absorbs the rest of the ray
    infinite = volume_render(
        torch.tensor([[0.0, 0.0, 1e-3]]), torch.ones(1, 3, 3), t[:1].float(), far=math.inf
    )
    assert infinite["accumulation"].item() == 1.0
    assert infinite["weights"][0].tolist() == [0.0, 0.0, 1.0]
    assert INFINITE_DELTA == 1e10


def test_gradients_are_finite_with_an_infinite_last_interval_and_empty_rays():
    densities = torch.tensor([[0.0, 0.0, 0.0], [0.5, 2.0, 0.0]], dtype=F64, requires_grad=True)
    colors = torch.rand(2, 3, 3, dtype=F64, requires_grad=True)
    t = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]], dtype=F64)
    out = volume_render(densities, colors, t, far=math.inf, background=torch.ones(3, dtype=F64))
    (out["rgb"].sum() + out["depth_normalized"].sum()).backward()
    assert torch.isfinite(densities.grad).all() and torch.isfinite(colors.grad).all()
    assert densities.grad[1].abs().sum() > 0 and colors.grad[1, :2].abs().sum() > 0
    assert torch.equal(colors.grad[0], torch.zeros(3, 3, dtype=F64))  # an empty ray sees no colour


def test_any_number_of_channels():
    t, deltas = _midpoint_samples(0.0, 1.0, 4, rays=3)
    colors = torch.rand(3, 4, 5, dtype=F64)
    out = volume_render(torch.ones(3, 4, dtype=F64), colors, t, deltas, background=torch.zeros(5, dtype=F64))
    assert out["rgb"].shape == (3, 5)
    torch.testing.assert_close(out["rgb"], (out["weights"][..., None] * colors).sum(dim=1))


def test_input_errors_name_the_expected_shape():
    t = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="exactly one of deltas"):
        volume_render(torch.zeros(2, 4), torch.zeros(2, 4, 3), t)
    with pytest.raises(ValueError, match="exactly one of deltas"):
        volume_render(torch.zeros(2, 4), torch.zeros(2, 4, 3), t, torch.zeros(2, 4), far=1.0)
    with pytest.raises(ValueError, match=r"colors: expected \(R, S, C\) = \(2, 4, C\), got \(2, 3, 3\)"):
        volume_render(torch.zeros(2, 4), torch.zeros(2, 3, 3), t, far=1.0)
    with pytest.raises(ValueError, match=r"deltas: expected \(R, S\) = \(2, 4\), got \(2, 3\)"):
        volume_render(torch.zeros(2, 4), torch.zeros(2, 4, 3), t, torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"background: expected \(C,\) = \(3,\) or \(R, C\) = \(2, 3\)"):
        volume_render(torch.zeros(2, 4), torch.zeros(2, 4, 3), t, far=1.0, background=torch.zeros(4))
    with pytest.raises(ValueError, match=r"far: expected a number or \(R,\) = \(2,\)"):
        volume_render(torch.zeros(2, 4), torch.zeros(2, 4, 3), t, far=torch.ones(3))


def test_coarse_to_fine_rendering_of_a_box_scene():
    """Coarse then fine samples gather in a dense slab; a ray missing the scene box shows the background."""
    box = torch.tensor([[-0.5, -0.5, -0.5], [0.5, 0.5, 0.5]], dtype=F64)
    origins = torch.tensor([[0.0, 0.0, 3.0], [0.2, -0.1, 3.0], [2.0, 0.0, 3.0]], dtype=F64)
    directions = torch.tensor([[0.0, 0.0, -1.0]] * 3, dtype=F64)
    near, far, valid = clip_near_far(origins, directions, 0.5, 6.0, box)
    assert valid.tolist() == [True, True, False]
    torch.testing.assert_close(near, torch.tensor([2.5, 2.5, 0.5], dtype=F64))

    def density(t):  # sigma = 5 inside the slab |z| < 0.25 of the box, 0 elsewhere
        points = origins[:, None] + t[..., None] * directions[:, None]
        inside = ((points >= box[0]) & (points <= box[1])).all(-1) & (points[..., 2].abs() < 0.25)
        return 5.0 * inside.to(F64)

    generator = torch.Generator().manual_seed(1)
    coarse_bins = uniform_bins(near, far, 32)
    coarse_t = stratified_samples(near, far, 32, perturb=True, generator=generator)
    coarse = volume_render(
        density(coarse_t), torch.ones(3, 32, 3, dtype=F64), coarse_t, coarse_bins.diff(dim=1)
    )
    fine_t = sample_pdf(coarse_bins, coarse["weights"], 64, generator=generator)
    in_slab = ((3.0 - fine_t).abs() < 0.25 + 1 / 32)[:2]  # within a coarse bin of the slab
    assert in_slab.all()
    t, _ = torch.sort(torch.cat([coarse_t, fine_t], dim=1), dim=1)
    fine = volume_render(
        density(t), torch.full((3, 96, 3), 0.25, dtype=F64), t, far=far, background=torch.ones(3, dtype=F64)
    )
    assert (fine["accumulation"][:2] > 0.9).all()  # 1 - exp(-5 * 0.5) = 0.918 for the continuous slab
    assert torch.equal(fine["rgb"][2], torch.ones(3, dtype=F64))  # misses the box
    assert ((fine["depth_normalized"][:2] - 3.0).abs() < 0.25).all()
