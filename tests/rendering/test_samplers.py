"""Ray/box bounds, stratified samples and inverse-CDF (hierarchical) sampling."""

import math

import pytest
import torch

from sciml.rendering import (
    clip_near_far,
    ray_box_intersection,
    sample_pdf,
    sample_points,
    stratified_samples,
    uniform_bins,
)

UNIT_BOX = (torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64))


def _rays(*pairs):
    origins = torch.tensor([o for o, _ in pairs], dtype=torch.float64)
    directions = torch.tensor([d for _, d in pairs], dtype=torch.float64)
    return origins, directions


# ----------------------------------------------------------------------------------------- ray / box


def test_axis_aligned_rays_including_zero_and_negative_zero_components():
    origins, directions = _rays(
        ((-2.0, 0.5, 0.5), (1.0, 0.0, 0.0)),  # through the middle along +x
        ((0.5, 3.0, 0.25), (-0.0, -1.0, 0.0)),  # along -y, with a negative zero
        ((-2.0, 1.0, 0.0), (1.0, 0.0, -0.0)),  # on the y = 1 face plane and the z = 0 plane: closed box hits
        ((0.5, 0.5, -1.0), (0.0, 0.0, 2.0)),  # non-unit direction: t in units of |d|
    )
    near, far, hit = ray_box_intersection(origins, directions, *UNIT_BOX)
    assert hit.tolist() == [True, True, True, True]
    torch.testing.assert_close(near, torch.tensor([2.0, 2.0, 2.0, 0.5], dtype=torch.float64))
    torch.testing.assert_close(far, torch.tensor([3.0, 3.0, 3.0, 1.0], dtype=torch.float64))


def test_rays_that_miss_get_zero_bounds_and_no_nan():
    origins, directions = _rays(
        ((-2.0, 1.5, 0.5), (1.0, 0.0, 0.0)),  # parallel to x, above the box
        ((-2.0, 0.0, 0.0), (1.0, 1.5, 0.0)),  # passes above the corner
        ((2.0, 0.5, 0.5), (1.0, 0.0, 0.0)),  # box entirely behind the origin
        ((-1.0, 1.0, 0.5), (1.0, -1.0, 0.0)),  # touches the edge x = y = 0 only: a miss
    )
    near, far, hit = ray_box_intersection(origins, directions, *UNIT_BOX)
    assert not hit.any()
    assert torch.equal(near, torch.zeros(4, dtype=torch.float64)) and torch.equal(far, near)


def test_rays_starting_inside_have_near_zero_and_exit_on_the_surface():
    generator = torch.Generator().manual_seed(0)
    origins = 0.1 + 0.8 * torch.rand(64, 3, generator=generator, dtype=torch.float64)
    directions = torch.randn(64, 3, generator=generator, dtype=torch.float64)
    directions = directions / directions.norm(dim=1, keepdim=True)
    near, far, hit = ray_box_intersection(origins, directions, *UNIT_BOX)
    assert hit.all() and torch.equal(near, torch.zeros(64, dtype=torch.float64))
    exit_points = origins + far[:, None] * directions
    # the exit point is on the surface: inside the closed box with one coordinate on a face
    torch.testing.assert_close(
        (exit_points - 0.5).abs().amax(dim=1), torch.full((64,), 0.5, dtype=torch.float64)
    )


def test_box_intersection_matches_dense_marching():
    generator = torch.Generator().manual_seed(1)
    box_min = torch.tensor([-1.0, 0.0, 0.5], dtype=torch.float64)
    box_max = torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64)
    origins = 4 * torch.randn(300, 3, generator=generator, dtype=torch.float64)
    aims = box_min + (box_max - box_min) * (
        2 * torch.rand(300, 3, generator=generator, dtype=torch.float64) - 0.5
    )
    directions = aims - origins  # about half of the rays hit
    directions[:50, 0] = 0.0  # some rays parallel to a slab
    directions = directions / directions.norm(dim=1, keepdim=True)
    near, far, hit = ray_box_intersection(origins, directions, box_min, box_max)
    t = torch.linspace(0, 20, 4001, dtype=torch.float64)  # step 5e-3
    points = origins[:, None] + t[None, :, None] * directions[:, None]  # (R, T, 3)
    inside = ((points >= box_min) & (points <= box_max)).all(dim=-1)  # (R, T)
    assert inside.any(dim=1).logical_and(~hit).sum() == 0  # no inside point on a ray reported as a miss
    assert hit.sum() > 50  # the test exercises hits
    first = torch.where(inside, t, torch.inf).amin(dim=1)
    last = torch.where(inside, t, -torch.inf).amax(dim=1)
    long_hits = hit & (far - near > 0.05)  # marching resolves these
    assert (inside.any(dim=1) | ~long_hits).all()
    torch.testing.assert_close(first[long_hits], near[long_hits], rtol=0, atol=5e-3)
    torch.testing.assert_close(last[long_hits], far[long_hits], rtol=0, atol=5e-3)


def test_box_corner_errors():
    origins, directions = _rays(((0.0, 0.0, 0.0), (1.0, 0.0, 0.0)))
    with pytest.raises(ValueError, match="box_min <= box_max"):
        ray_box_intersection(origins, directions, torch.ones(3), torch.zeros(3))
    with pytest.raises(ValueError, match=r"box_min: expected \(3,\), got \(2,\)"):
        ray_box_intersection(origins, directions, torch.zeros(2), torch.ones(3))
    with pytest.raises(ValueError, match=r"directions: expected \(R, 3\) = \(1, 3\), got \(2, 3\)"):
        ray_box_intersection(origins, torch.ones(2, 3, dtype=torch.float64), *UNIT_BOX)


def test_clip_near_far_combines_global_bounds_with_the_box():
    origins, directions = _rays(
        ((-2.0, 0.5, 0.5), (1.0, 0.0, 0.0)),  # box at t in [2, 3]
        ((-2.0, 0.5, 0.5), (1.0, 0.0, 0.0)),
        ((-2.0, 1.5, 0.5), (1.0, 0.0, 0.0)),  # misses the box
        ((-2.0, 0.5, 0.5), (1.0, 0.0, 0.0)),
    )
    box = torch.stack(UNIT_BOX)
    near = torch.tensor([0.1, 2.5, 0.1, 3.5], dtype=torch.float64)
    far = torch.tensor([10.0, 2.8, 10.0, 8.0], dtype=torch.float64)
    clipped_near, clipped_far, valid = clip_near_far(origins, directions, near, far, box)
    assert valid.tolist() == [True, True, False, False]  # the last box lies before near
    torch.testing.assert_close(clipped_near, torch.tensor([2.0, 2.5, 0.1, 3.5], dtype=torch.float64))
    torch.testing.assert_close(clipped_far, torch.tensor([3.0, 2.8, 0.1, 3.5], dtype=torch.float64))
    # without a box: scalar bounds are broadcast to every ray
    clipped_near, clipped_far, valid = clip_near_far(origins, directions, 2.0, 6.0)
    assert valid.all() and clipped_near.tolist() == [2.0] * 4 and clipped_far.tolist() == [6.0] * 4
    with pytest.raises(ValueError, match=r"box: expected \(2, 3\)"):
        clip_near_far(origins, directions, 2.0, 6.0, torch.zeros(6))
    with pytest.raises(ValueError, match=r"far: expected a number or \(R,\) = \(4,\), got \(3,\)"):
        clip_near_far(origins, directions, 2.0, torch.ones(3))


# ---------------------------------------------------------------------------------- stratified samples


def test_stratified_samples_stay_in_their_bins_and_are_sorted():
    generator = torch.Generator().manual_seed(2)
    near = torch.tensor([0.0, 2.0, 1.0, 5.0], dtype=torch.float64)
    far = torch.tensor([1.0, 6.0, 1.0, 5.5], dtype=torch.float64)  # one zero-length ray
    samples = 16
    t = stratified_samples(near, far, samples, perturb=True, generator=generator)
    edges = uniform_bins(near, far, samples)
    assert t.shape == (4, samples) and edges.shape == (4, samples + 1)
    assert (t >= edges[:, :-1]).all() and (t <= edges[:, 1:]).all()
    assert (t.diff(dim=1) >= 0).all()
    torch.testing.assert_close(edges[:, 0], near)
    torch.testing.assert_close(edges[:, -1], far)
    torch.testing.assert_close(edges.diff(dim=1), ((far - near) / samples)[:, None].expand(4, samples))
    # the same generator state gives the same samples; the offsets are not all at the midpoints
    again = stratified_samples(near, far, samples, perturb=True, generator=torch.Generator().manual_seed(2))
    assert torch.equal(t, again)
    assert not torch.allclose(t[:2], ((edges[:, :-1] + edges[:, 1:]) / 2)[:2])


def test_stratified_offsets_are_uniform_within_bins():
    generator = torch.Generator().manual_seed(3)
    near, far = torch.zeros(4000, dtype=torch.float64), torch.full((4000,), 8.0, dtype=torch.float64)
    t = stratified_samples(near, far, 8, perturb=True, generator=generator)
    offsets = (t - torch.arange(8, dtype=torch.float64)).flatten()  # bins of width 1
    assert offsets.min() >= 0 and offsets.max() < 1
    # U[0, 1): mean 1/2 and variance 1/12 (32000 draws: standard errors 1.6e-3 and 1e-3)
    assert abs(float(offsets.mean()) - 0.5) < 0.01
    assert abs(float(offsets.var()) - 1 / 12) < 0.006


def test_deterministic_stratified_samples_are_bin_midpoints():
    t = stratified_samples(torch.tensor([2.0]), torch.tensor([6.0]), 4, perturb=False)
    torch.testing.assert_close(t, torch.tensor([[2.5, 3.5, 4.5, 5.5]]))


def test_sample_points_are_origin_plus_t_direction():
    origins = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    directions = torch.tensor([[0.0, 0.0, -1.0], [0.6, 0.8, 0.0]])
    t = torch.tensor([[0.0, 2.0], [5.0, 10.0]])
    points = sample_points(origins, directions, t)
    expected = torch.tensor([[[1.0, 2.0, 3.0], [1.0, 2.0, 1.0]], [[3.0, 4.0, 0.0], [6.0, 8.0, 0.0]]])
    torch.testing.assert_close(points, expected)
    with pytest.raises(ValueError, match=r"t: expected \(R, S\) with R = 2, got \(3, 2\)"):
        sample_points(origins, directions, torch.zeros(3, 2))


def test_sample_count_errors():
    with pytest.raises(ValueError, match="num_samples: expected a positive int"):
        stratified_samples(torch.zeros(2), torch.ones(2), 0, perturb=False)
    with pytest.raises(ValueError, match=r"far: expected \(R,\) = \(2,\), got \(3,\)"):
        stratified_samples(torch.zeros(2), torch.ones(3), 4, perturb=False)


# ------------------------------------------------------------------------------------------ sample_pdf

EDGES = [0.0, 1.0, 3.0, 3.5, 6.0]
MASSES = [1.0, 0.0, 2.0, 5.0]  # probabilities 1/8, 0, 1/4, 5/8


def test_sample_pdf_draws_follow_the_piecewise_constant_pdf():
    rays, per_ray = 25_000, 4
    bins = torch.tensor(EDGES, dtype=torch.float64).expand(rays, 5)
    weights = 3.0 * torch.tensor(MASSES, dtype=torch.float64).expand(rays, 4)  # unnormalized
    t = sample_pdf(bins, weights, per_ray, generator=torch.Generator().manual_seed(4))
    assert t.shape == (rays, per_ray)
    assert (t.diff(dim=1) >= 0).all()
    draws = t.flatten()
    n = draws.numel()
    assert ((draws > 1.0) & (draws < 3.0)).sum() == 0  # the empty bin is never sampled
    # uniform inside each bin: every quarter of a bin gets a quarter of its mass
    for k, (lo, hi, mass) in enumerate(zip(EDGES[:-1], EDGES[1:], MASSES)):
        if mass == 0:
            continue
        for q in range(4):
            a, b = lo + (hi - lo) * q / 4, lo + (hi - lo) * (q + 1) / 4
            p = mass / sum(MASSES) / 4
            count = int(((draws >= a) & (draws < b)).sum())
            assert abs(count - n * p) < 5 * math.sqrt(n * p * (1 - p)), (k, q, count, n * p)


def test_deterministic_sample_pdf_returns_the_midpoint_quantiles():
    bins = torch.tensor([EDGES], dtype=torch.float64)
    weights = torch.tensor([MASSES], dtype=torch.float64)
    t = sample_pdf(bins, weights, 8, deterministic=True)
    # F^{-1}((i + 1/2) / 8) with F rising by 1/8 on [0, 1], 0 on [1, 3], 1/4 on [3, 3.5], 5/8 on [3.5, 6]
    expected = torch.tensor([[0.5, 3.125, 3.375, 3.75, 4.25, 4.75, 5.25, 5.75]], dtype=torch.float64)
    torch.testing.assert_close(t, expected)


def test_sample_pdf_with_zero_weights_is_uniform_in_t_and_handles_zero_length_rays():
    bins = torch.tensor([[0.0, 2.0, 10.0], [4.0, 4.0, 4.0]])
    t = sample_pdf(bins, torch.zeros(2, 2), 4, deterministic=True)
    torch.testing.assert_close(t, torch.tensor([[1.25, 3.75, 6.25, 8.75], [4.0, 4.0, 4.0, 4.0]]))


def test_sample_pdf_concentrates_on_a_single_bin_and_is_detached():
    bins = torch.linspace(0.0, 1.0, 11).expand(3, 11).clone().requires_grad_()
    weights = torch.zeros(3, 10)
    weights[:, 6] = 0.3
    weights.requires_grad_()
    t = sample_pdf(bins, weights, 64, generator=torch.Generator().manual_seed(5))
    assert not t.requires_grad
    assert (t >= 0.6 - 1e-6).all() and (t <= 0.7 + 1e-6).all()
    # stratified quantiles: one draw in each 1/64 of the bin's mass
    index = ((t - 0.6) / 0.1 * 64).floor().clamp(0, 63)
    assert torch.equal(index, torch.arange(64.0).expand(3, 64))


def test_sample_pdf_input_errors():
    bins, weights = torch.linspace(0, 1, 5).expand(2, 5), torch.ones(2, 4)
    with pytest.raises(ValueError, match=r"bins: expected \(R, S\+1\) = \(2, 5\), got \(2, 4\)"):
        sample_pdf(bins[:, :4], weights, 8)
    with pytest.raises(ValueError, match="non-negative"):
        sample_pdf(bins, -weights, 8)
    with pytest.raises(ValueError, match="non-decreasing"):
        sample_pdf(bins.flip(1), weights, 8)
    with pytest.raises(ValueError, match="num_samples"):
        sample_pdf(bins, weights, 0)
