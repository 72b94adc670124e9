"""Where to evaluate a field along each ray: stratified samples and inverse-CDF (hierarchical) samples.

Samples are ray parameters ``t`` (distances along unit-length rays, see :mod:`sciml.rendering.cameras`),
``(R, S)``, sorted along each ray; :func:`sample_points` turns them into positions ``o + t d``.

* :func:`uniform_bins` splits each ``[near, far]`` into ``S`` equal bins, edges ``(R, S + 1)``
  ``t_k = near + (far - near) k / S``. Their widths are the ``deltas`` to hand to
  :func:`~sciml.rendering.volume.volume_render` for samples taken one per bin.
* :func:`stratified_samples` (NeRF, Mildenhall et al. 2020, eq. 2) draws one sample per bin,
  ``t_k = edge_k + xi_k (edge_{k+1} - edge_k)`` with ``xi_k ~ U[0, 1)`` independently when ``perturb``, and
  ``xi_k = 1/2`` (bin midpoints) otherwise, e.g. at evaluation.
* :func:`sample_pdf` (NeRF section 5.2, "hierarchical volume sampling"; the proposal sampling of
  mip-NeRF 360 and nerfstudio's ``PDFSampler``) draws from the piecewise-constant density whose mass in
  bin ``k`` of ``bins`` is ``w_k / sum w``, uniform within the bin, by inverting its CDF
  ``F(bins_k) = sum_{j<k} w_j / sum w`` (piecewise linear in t). The quantiles are stratified,
  ``u_i = (i + xi_i) / N`` with ``xi_i ~ U[0, 1)`` (lower variance than NeRF's sorted i.i.d. uniforms, with
  the same marginal law: a uniformly chosen ``u_i`` is ``U[0, 1)``), or the midpoints ``(i + 1/2) / N`` when
  ``deterministic``. Both give sorted samples. Choices: a ray whose weights are all zero samples uniformly in
  ``[bins_0, bins_S]`` (NeRF instead adds ``1e-5`` to every weight, which biases every ray a little); the
  samples carry no gradient (bins and weights are detached, as in NeRF and nerfstudio).

  With coarse samples ``t_c`` from :func:`stratified_samples` and their rendering weights ``w_c``, the NeRF
  fine pass is ``sample_pdf(uniform_bins(near, far, S), w_c, N)`` (weights of the bins the coarse samples
  fell in) or, as in NeRF's code, ``sample_pdf((t_c[:, 1:] + t_c[:, :-1]) / 2, w_c[:, 1:-1], N)``; merge
  the two sets with ``torch.sort(torch.cat([t_c, t_f], -1), -1)`` before rendering.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor


def _check_bounds(near: Tensor, far: Tensor) -> None:
    if near.ndim != 1:
        raise ValueError(f"near: expected (R,), got {tuple(near.shape)}")
    if far.shape != near.shape:
        raise ValueError(f"far: expected (R,) = {tuple(near.shape)}, got {tuple(far.shape)}")


def _check_count(name: str, count: int) -> None:
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"{name}: expected a positive int, got {count!r}")


def uniform_bins(near: Float[Tensor, " R"], far: Float[Tensor, " R"], num_bins: int) -> Float[Tensor, "R E"]:
    """Edges ``near + (far - near) k / S``, ``k = 0..S``, of ``S = num_bins`` equal bins, ``(R, E = S + 1)``.

    Their widths ``bins.diff(dim=-1)`` are the ``deltas`` of samples taken one per bin.
    """
    _check_bounds(near, far)
    _check_count("num_bins", num_bins)
    fractions = torch.linspace(0.0, 1.0, num_bins + 1, dtype=near.dtype, device=near.device)  # (S+1,)
    return near[:, None] + (far - near)[:, None] * fractions  # (R, S+1)


def stratified_samples(
    near: Float[Tensor, " R"],
    far: Float[Tensor, " R"],
    num_samples: int,
    perturb: bool,
    generator: torch.Generator | None = None,
) -> Float[Tensor, "R S"]:
    """One sample in each of ``num_samples`` equal bins of ``[near, far]`` (module docstring).

    Random within its bin when ``perturb`` (drawn with ``generator``), the bin midpoint otherwise. The
    result is sorted along each ray when ``far >= near``.
    """
    _check_count("num_samples", num_samples)
    edges = uniform_bins(near, far, num_samples)  # (R, S+1)
    lower, upper = edges[:, :-1], edges[:, 1:]
    if perturb:
        offsets = torch.rand(lower.shape, generator=generator, dtype=lower.dtype, device=lower.device)
    else:
        offsets = torch.full_like(lower, 0.5)
    return lower + (upper - lower) * offsets  # (R, S)


def sample_points(
    origins: Float[Tensor, "R 3"], directions: Float[Tensor, "R 3"], t: Float[Tensor, "R S"]
) -> Float[Tensor, "R S 3"]:
    """Positions ``o + t d`` of the samples ``t`` along each ray."""
    if origins.ndim != 2 or origins.shape[1] != 3:
        raise ValueError(f"origins: expected (R, 3), got {tuple(origins.shape)}")
    if directions.shape != origins.shape:
        raise ValueError(
            f"directions: expected (R, 3) = {tuple(origins.shape)}, got {tuple(directions.shape)}"
        )
    if t.ndim != 2 or t.shape[0] != origins.shape[0]:
        raise ValueError(f"t: expected (R, S) with R = {origins.shape[0]}, got {tuple(t.shape)}")
    return origins[:, None, :] + t[..., None] * directions[:, None, :]  # (R, S, 3)


def sample_pdf(
    bins: Float[Tensor, "R E"],
    weights: Float[Tensor, "R S"],
    num_samples: int,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
) -> Float[Tensor, "R N"]:
    """``num_samples`` sorted draws per ray from the piecewise-constant pdf of ``weights`` over ``bins``.

    ``bins`` are ``E = S + 1`` non-decreasing bin edges per ray, ``weights`` the non-negative
    (unnormalized) mass of each bin; zero-width bins must have zero weight. Inverse-CDF sampling with
    stratified quantiles, midpoint quantiles when ``deterministic`` (module docstring). The result is
    detached from the graph.
    """
    if weights.ndim != 2 or weights.shape[1] < 1:
        raise ValueError(f"weights: expected (R, S) with S >= 1, got {tuple(weights.shape)}")
    rays, num_bins = weights.shape
    if bins.shape != (rays, num_bins + 1):
        raise ValueError(f"bins: expected (R, S+1) = ({rays}, {num_bins + 1}), got {tuple(bins.shape)}")
    _check_count("num_samples", num_samples)
    bins, weights = bins.detach(), weights.detach().to(bins.dtype)
    if not torch.isfinite(bins).all() or (bins[:, 1:] < bins[:, :-1]).any():
        raise ValueError("bins: expected finite edges, non-decreasing along each ray")
    if not torch.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("weights: expected finite, non-negative values")

    total = weights.sum(dim=1, keepdim=True)  # (R, 1)
    widths = bins[:, 1:] - bins[:, :-1]  # (R, S)
    length = widths.sum(dim=1, keepdim=True)
    # rays without weight: uniform in t (mass = width); a zero-length ray: equal mass per (empty) bin
    fallback = torch.where(length > 0, widths / torch.where(length > 0, length, 1.0), 1.0 / num_bins)
    positive = total > 0
    pdf = torch.where(positive, weights / torch.where(positive, total, 1.0), fallback)  # (R, S)
    inner = torch.cumsum(pdf[:, :-1], dim=1).clamp_max(1.0)  # (R, S-1): rounding must not exceed F(end) = 1
    cdf = torch.cat([torch.zeros_like(total), inner, torch.ones_like(total)], dim=1)  # (R, S+1)

    steps = torch.arange(num_samples, dtype=bins.dtype, device=bins.device)  # (N,)
    if deterministic:
        u = ((steps + 0.5) / num_samples).expand(rays, num_samples)
    else:
        jitter = torch.rand(rays, num_samples, generator=generator, dtype=bins.dtype, device=bins.device)
        u = (steps + jitter) / num_samples  # (R, N), in [0, 1] (1 only through rounding)
    u = u.contiguous()

    # first edge with F > u, so cdf[lo] <= u < cdf[lo + 1]: bin lo has positive mass (empty bins are skipped)
    above = torch.searchsorted(cdf, u, right=True)  # (R, N) in [1, S+1]
    lower = (above - 1).clamp(0, num_bins - 1)
    upper = lower + 1
    cdf_lower, cdf_upper = cdf.gather(1, lower), cdf.gather(1, upper)  # (R, N)
    edge_lower, edge_upper = bins.gather(1, lower), bins.gather(1, upper)
    mass = cdf_upper - cdf_lower
    fraction = ((u - cdf_lower) / torch.where(mass > 0, mass, 1.0)).clamp(0.0, 1.0)
    return edge_lower + fraction * (edge_upper - edge_lower)  # (R, N)
