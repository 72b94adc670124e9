"""Factorized (axial) attention with learnable integrals: the FactFormer block (Z. Li, D. Shu & A. Barati
Farimani, "Scalable Transformer for PDE Surrogate Modeling", NeurIPS 2023) in the two forms of IFactFormer
(H. Yang, Y. Wang & J. Wang, "Implicit factorized transformer approach to fast prediction of turbulent
channel flows", arXiv:2412.18840): chained (-o) and parallel (-m) axis kernels.

For a field ``u`` on a grid with axes ``a = 1..A`` (channels last):

    h      = LayerNorm(u)                            v = h W_v            (heads x dim_head)
    phi_a  = GeGLU-MLP(LayerNorm(mean_{other axes}(h W_in W_a)))       "learnable integral" along a
    K_a    = rot(phi_a W_q) rot(phi_a W_k)^T         per head, (n_a x n_a), no softmax, no 1/n
    -m:  y = concat_a (K_a x_a v)   (parallel)       -o:  y = K_A x_A ... K_1 x_1 v   (chained)
    out    = Linear(GELU(Linear(InstanceNorm(y))))

``K x_a v`` contracts the kernel with axis ``a`` of ``v`` (mode-a product); ``rot`` is the rotary embedding
of the physical coordinate of that axis.

Implementation choices that keep the block fast and lean (all exact up to float rounding):

* ``mean(h W_in W_a) = mean(h) W_in W_a`` because both maps are bias-free, so the axis averages are taken
  first and the two ``dim x dim`` maps act on ``(B, n_a, dim)`` instead of on the whole field.
* ``v`` is built head-major ``(B, H, *grid, dim_head)`` by one broadcast matmul, so every mode product is a
  batched matmul on a view (``K (n x n)`` against ``(lead, n, trail)``): no permuted copies of ``v``.
* InstanceNorm followed by the bias-free ``Linear`` is folded: per sample and channel,
  ``W (y - mu) / sigma = (W / sigma) y - W mu / sigma``, and the per-axis, per-head products are
  accumulated into the ``dim_out``-wide result, so the ``A * heads * dim_head`` concatenation and its
  normalized copy are never built; its backward is written out (one matmul and one fused elementwise
  pass per part, see :class:`_InstanceNormLinear`).
* The mode products, the normalization and the first output map form one autograd function
  (:func:`axis_mix_norm_linear`) that by default keeps only ``v`` and the kernels for backward and
  recomputes each product there, one at a time (``recompute_mixing``; the products are memory-bound and
  cheap next to the projections), so an application stores ``heads * dim_head`` instead of
  ``(A + 1) * heads * dim_head`` channels per point.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from sciml.nn.mlp import GeGLUMLP
from sciml.nn.rotary import RotaryEmbedding, apply_rotary


def apply_axis_kernel(
    kernel: Float[Tensor, "batch heads n n"],
    values: Float[Tensor, "batch heads *grid channels"],
    axis: int,
) -> Float[Tensor, "batch heads *grid channels"]:
    """Mode product ``out[.., i, ..] = sum_j kernel[b, h, i, j] values[b, h, .., j, ..]`` along grid ``axis``.

    ``values`` is viewed as ``(B, H, lead, n, trail)`` (``lead``/``trail``: the grid axes before/after
    ``axis``, channels folded into ``trail``), so the product is one batched matmul whose large operand is
    a view; only the small kernel is broadcast over ``lead``.
    """
    grid = values.shape[2:-1]
    if not 0 <= axis < len(grid):
        raise ValueError(f"apply_axis_kernel: axis {axis} out of range for a {len(grid)}-D grid")
    n = grid[axis]
    if kernel.shape[-2:] != (n, n):
        raise ValueError(
            f"apply_axis_kernel: expected a ({n} x {n}) kernel for axis {axis}, got {tuple(kernel.shape)}"
        )
    batch, heads = values.shape[:2]
    lead = math.prod(grid[:axis])
    values_3 = values.reshape(batch, heads, lead, n, -1)  # (B, H, lead, n, trail)
    out = torch.matmul(kernel.unsqueeze(2), values_3)  # (B, H, 1, n, n) @ (B, H, lead, n, trail)
    return out.view(values.shape)


def axis_mean(u: Float[Tensor, "batch *grid channels"], axis: int) -> Float[Tensor, "batch n channels"]:
    """Average a channels-last field over every grid axis except ``axis``: (B, *grid, C) -> (B, n_axis, C)."""
    n_grid = u.ndim - 2
    others = tuple(1 + a for a in range(n_grid) if a != axis)
    return u.mean(dim=others) if others else u


class AxisIntegral(nn.Module):
    """Learnable integral along one axis: ``GeGLU-MLP(LayerNorm(mean_other_axes(u) W))``.

    ``forward`` takes the already averaged ``(B, n, dim)`` features: averaging commutes with the
    bias-free projection, and averaging first is far cheaper (see the module docstring).
    """

    def __init__(self, dim: int, latent_dim: int):
        super().__init__()
        self.proj = nn.Linear(dim, dim, bias=False)
        self.norm = nn.LayerNorm(dim)
        self.mlp = GeGLUMLP(dim, dim, latent_dim)

    def forward(self, averaged: Float[Tensor, "batch n dim"]) -> Float[Tensor, "batch n latent"]:
        return self.mlp(self.norm(self.proj(averaged)))


class LowRankAxisKernel(nn.Module):
    """Per-head kernel ``K = rot(phi W_q) rot(phi W_k)^T * scaling`` of shape (B, heads, n, n).

    ``q``/``k`` weights use Xavier-uniform init with gain ``init_gain`` (0.02 in FactFormer), which keeps
    the softmax-free kernel close to zero at the start of training.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        kernel_dim: int,
        rotary: bool = True,
        min_freq: float = 1.0 / 64.0,
        init_gain: float = 0.02,
        scaling: float = 1.0,
    ):
        super().__init__()
        self.heads = heads
        self.kernel_dim = kernel_dim
        self.scaling = scaling
        self.to_q = nn.Linear(dim, heads * kernel_dim, bias=False)
        self.to_k = nn.Linear(dim, heads * kernel_dim, bias=False)
        self.rotary = RotaryEmbedding(kernel_dim, min_freq=min_freq) if rotary else None
        nn.init.xavier_uniform_(self.to_q.weight, gain=init_gain)
        nn.init.xavier_uniform_(self.to_k.weight, gain=init_gain)

    def forward(
        self, phi: Float[Tensor, "batch n dim"], coords: Float[Tensor, " n"]
    ) -> Float[Tensor, "batch heads n n"]:
        batch, n, _ = phi.shape
        q = self.to_q(phi).view(batch, n, self.heads, self.kernel_dim).transpose(1, 2)  # (B, H, n, Dk)
        k = self.to_k(phi).view(batch, n, self.heads, self.kernel_dim).transpose(1, 2)  # (B, H, n, Dk)
        if self.rotary is not None:
            cos, sin = self.rotary.cos_sin(coords)  # (n, Dk/2), broadcast over (B, H)
            q = apply_rotary(q, cos, sin)
            k = apply_rotary(k, cos, sin)
        kernel = torch.matmul(q, k.transpose(-1, -2))  # (B, H, n, n)
        return kernel * self.scaling if self.scaling != 1.0 else kernel


class FactorizedAttentionBlock(nn.Module):
    """The IFactFormer block on an ``A``-D grid, channels last: (B, *grid, dim) -> (B, *grid, dim_out).

    Args:
        dim: input width.
        heads, dim_head: value heads and their width.
        kernel_dim: per-head width of the ``q``/``k`` projections (``dim_head * kernel_multiplier``).
        num_axes: number of grid axes ``A`` (3 for IFactFormer).
        variant: ``"m"`` applies the axis kernels in parallel and concatenates; ``"o"`` chains them.
        latent_dim: output width of the learnable integrals (``dim`` in the papers).
        dim_out: output width (``dim`` in the papers).
        kernel_scaling: factor on ``K``; FactFormer uses 1 unless ``kernel_multiplier > 4``.
        rotary: rotary embedding of the axis coordinates in ``q``/``k``.
        norm_eps: epsilon of the instance norm (``nn.InstanceNorm3d`` default, 1e-5).
        recompute_mixing: recompute the mode products ``K_a x_a v`` in backward instead of storing
            them: the block then keeps ``heads * dim_head`` instead of ``(A + 1) * heads * dim_head``
            channels per point for backward, at the cost of repeating the (cheap) products.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        dim_head: int,
        kernel_dim: int,
        num_axes: int = 3,
        variant: Literal["m", "o"] = "m",
        latent_dim: int | None = None,
        dim_out: int | None = None,
        kernel_scaling: float = 1.0,
        rotary: bool = True,
        norm_eps: float = 1e-5,
        recompute_mixing: bool = True,
    ):
        super().__init__()
        if variant not in ("m", "o"):
            raise ValueError(f"FactorizedAttentionBlock: variant must be 'm' or 'o', got {variant!r}")
        latent_dim = dim if latent_dim is None else latent_dim
        dim_out = dim if dim_out is None else dim_out
        self.dim, self.heads, self.dim_head, self.num_axes = dim, heads, dim_head, num_axes
        self.variant = variant
        self.dim_out = dim_out
        self.norm_eps = norm_eps
        self.recompute_mixing = recompute_mixing

        self.norm = nn.LayerNorm(dim)
        self.to_v = nn.Linear(dim, heads * dim_head, bias=False)
        self.to_in = nn.Linear(dim, dim, bias=False)
        self.integrals = nn.ModuleList(AxisIntegral(dim, latent_dim) for _ in range(num_axes))
        self.kernels = nn.ModuleList(
            LowRankAxisKernel(latent_dim, heads, kernel_dim, rotary=rotary, scaling=kernel_scaling)
            for _ in range(num_axes)
        )
        # Input channels ordered (head, axis, dim_head) for "m" -- the reference's per-head concatenation --
        # and (head, dim_head) for "o".
        mixed = heads * dim_head * (num_axes if variant == "m" else 1)
        self.out_proj = nn.Linear(mixed, dim_out, bias=False)
        self.out_fc = nn.Linear(dim_out, dim_out, bias=False)

    def forward(
        self, u: Float[Tensor, "batch *grid dim"], coords: Sequence[Tensor]
    ) -> Float[Tensor, "batch *grid dim_out"]:
        grid = tuple(u.shape[1:-1])
        if len(grid) != self.num_axes or len(coords) != self.num_axes or u.shape[-1] != self.dim:
            raise ValueError(
                f"FactorizedAttentionBlock: expected (B, {self.num_axes} grid axes, {self.dim}) and "
                f"{self.num_axes} coordinate vectors, got {tuple(u.shape)} and {len(coords)}"
            )
        batch, n_points = u.shape[0], math.prod(grid)
        heads, dim_head = self.heads, self.dim_head

        h = self.norm(u)
        kernels = [
            kernel(integral(self.to_in(axis_mean(h, axis))), coords[axis])  # (B, H, n_a, n_a)
            for axis, (integral, kernel) in enumerate(zip(self.integrals, self.kernels))
        ]
        weight_v = self.to_v.weight.view(heads, dim_head, self.dim).transpose(1, 2)  # (H, dim, D)
        v = torch.matmul(h.reshape(batch, 1, n_points, self.dim), weight_v)  # (B, H, N, D)
        v = v.view(batch, heads, *grid, dim_head)

        weight = self.out_proj.weight.view(
            self.dim_out, heads, self.num_axes if self.variant == "m" else 1, dim_head
        )  # (O, H, P, D), input channels ordered (head, part, dim_head)
        z = axis_mix_norm_linear(
            v,
            kernels,
            weight,
            chained=self.variant == "o",
            eps=self.norm_eps,
            store=not self.recompute_mixing,
        )  # (B, N, O)
        z = self.out_fc(F.gelu(z))
        return z.view(batch, *grid, self.dim_out)


def axis_mix_norm_linear(
    values: Float[Tensor, "batch heads *grid dim_head"],
    kernels: Sequence[Tensor],
    weight: Float[Tensor, "out heads parts dim_head"],
    *,
    chained: bool = False,
    eps: float = 1e-5,
    store: bool = False,
) -> Float[Tensor, "batch points out"]:
    """The mixing half of the block: axis kernels applied to the values, InstanceNorm, bias-free Linear.

    Parallel (``chained=False``, IFactFormer-m): parts ``y_a = K_a x_a v``, one per axis, ``weight`` of
    shape (O, H, A, D). Chained (IFactFormer-o): one part ``K_A x_A ... K_1 x_1 v``, ``weight`` (O, H, 1, D).
    Equal to ``instance_norm_linear(parts, weight)``; the difference is memory: by default only ``v`` and
    the kernels are kept for backward, which recomputes each part (a cheap, memory-bound mode product)
    right where it is needed, one at a time; ``store=True`` keeps the parts instead.
    """
    n_parts = 1 if chained else len(kernels)
    if weight.shape[2] != n_parts or len(kernels) != values.ndim - 3:
        raise ValueError(
            f"axis_mix_norm_linear: {len(kernels)} kernels for a {values.ndim - 3}-D grid and a weight "
            f"with {weight.shape[2]} parts (expected {n_parts})"
        )
    return _AxisMixNormLinear.apply(weight, eps, chained, store, values.contiguous(), *kernels)


def instance_norm_linear(
    parts: Sequence[Tensor], weight: Float[Tensor, "out heads parts dim_head"], eps: float = 1e-5
) -> Float[Tensor, "batch points out"]:
    """``Linear(InstanceNorm(y))`` without bias, where ``y`` is the per-head concatenation of ``parts``.

    ``parts[p]`` is (B, H, *grid, D); the concatenated channel (h, p, d) -- the order of
    ``torch.cat(parts, dim=-1)`` followed by merging heads -- is normalized over the grid with biased
    variance and no affine map, as ``nn.InstanceNormNd`` does, and mapped by ``weight`` (O, H, P, D).
    Returns (B, N, O) with ``N`` the number of grid points.

    The normalization is folded into the weight per sample, and the backward pass is written out, so
    neither the concatenation nor its normalized copy is ever built.
    """
    if len(parts) != weight.shape[2]:
        raise ValueError(f"instance_norm_linear: weight has {weight.shape[2]} parts, got {len(parts)}")
    flat = [part.reshape(*part.shape[:2], -1, part.shape[-1]) for part in parts]  # (B, H, N, D) views
    return _InstanceNormLinear.apply(weight, eps, *flat)


# ------------------------------------------------------------------------------------------------ kernels
# With n = (y - mu) r (r = 1/sigma per sample and channel) and z = sum_p W_p n_p:
#   forward   z = sum_p (W_p r_p) y_p - sum_p W_p (mu_p r_p)          (the norm folded into the weight)
#   backward  G_p = dz^T y_p;  dW_p = r_p (G_p - s mu_p)  with s = sum_n dz
#             dy_p = r (dn - mean(dn) - n mean(dn n)),  dn = dz W_p,
# where mean(dn) = s W / N and mean(dn n) = sum_o W r (G - s mu) / N are small, so dy_p costs one matmul and
# one fused elementwise pass. Half-precision inputs (autocast) are widened to float32 for all of it.


def _compute_dtype(*tensors: Tensor) -> torch.dtype:
    """float32 or float64: half-precision inputs (autocast) are widened for the statistics and sums."""
    dtype = functools.reduce(torch.promote_types, (t.dtype for t in tensors))
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _channel_stats(y: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Mean and 1/sqrt(biased var + eps) over axis 2 of (B, H, N, D): two passes, reductions as GEMVs."""
    average = y.new_full((1, 1, 1, y.shape[2]), 1.0 / y.shape[2])
    mean = torch.matmul(average, y)  # (B, H, 1, D)
    centered = y - mean
    var = torch.matmul(average, centered.mul_(centered))  # (B, H, 1, D)
    return mean.squeeze(2), torch.rsqrt(var.squeeze(2) + eps)


def _norm_linear_accumulate(
    out: Tensor, shift: Tensor, y: Tensor, w: Tensor, eps: float
) -> tuple[Tensor, Tensor]:
    """Add ``W (y - mu) r`` of one part to ``out`` (B, N, O) (the ``mu`` term to ``shift`` (B, O)).

    ``y`` (B, H, N, D), ``w`` (O, H, D). Returns the part's ``mu`` and ``r`` (B, H, D).
    """
    mean, rstd = _channel_stats(y, eps)
    scaled = w.permute(1, 2, 0) * rstd.unsqueeze(-1)  # (B, H, D, O)
    shift += torch.einsum("bhdo,bhd->bo", scaled, mean)
    for head in range(y.shape[1]):
        out.baddbmm_(y[:, head], scaled[:, head])  # (B, N, D) @ (B, D, O), accumulated in place
    return mean, rstd


def _norm_linear_part_backward(
    dz: Tensor, dz_sum: Tensor, y: Tensor, mean: Tensor, rstd: Tensor, w: Tensor, need_input: bool
) -> tuple[Tensor, Tensor | None]:
    """Gradients of one part: (dW_p (O, H, D), dy_p (B, H, N, D) or None)."""
    batch, _, n_points, _ = y.shape
    # G[b, h] = dz[b]^T y[b, h]; the 2-D @ 3-D matmul broadcasts dz[b]^T without copying it.
    gram = torch.stack([torch.matmul(dz[b].transpose(0, 1), y[b]) for b in range(batch)])  # (B, H, O, D)
    dz_n = (gram - dz_sum[:, None, :, None] * mean[:, :, None, :]) * rstd[:, :, None, :]  # dz^T n
    grad_w = dz_n.sum(0).transpose(0, 1)  # (O, H, D)
    if not need_input:
        return grad_w, None
    mean_dn = torch.einsum("bo,ohd->bhd", dz_sum, w) / n_points
    mean_dn_n = torch.einsum("ohd,bhod->bhd", w, dz_n) / n_points
    w_scaled = w.transpose(0, 1).unsqueeze(0) * rstd.unsqueeze(2)  # (B, H, O, D)
    grad_y = torch.empty_like(y)
    for b in range(batch):
        torch.matmul(dz[b], w_scaled[b], out=grad_y[b])  # (N, O) @ (H, O, D) -> (H, N, D)
    coef_y = rstd * rstd * mean_dn_n
    const = rstd * (rstd * mean * mean_dn_n - mean_dn)
    grad_y.addcmul_(y, -coef_y.unsqueeze(2)).add_(const.unsqueeze(2))
    return grad_w, grad_y


def _kernel_grad(grad_out: Tensor, inputs: Tensor, axis: int) -> Tensor:
    """Gradient of ``K`` in ``out = K x_axis inputs``: ``sum over all but axis of grad_out[i] inputs[j]``."""
    batch, heads = inputs.shape[:2]
    grid = inputs.shape[2:-1]
    n, lead = grid[axis], math.prod(grid[:axis])
    g = grad_out.reshape(batch, heads, lead, n, -1)  # (B, H, lead, n, trail)
    x = inputs.reshape(batch, heads, lead, n, -1)
    return torch.matmul(g, x.transpose(-1, -2)).sum(2)  # (B, H, n, n)


class _InstanceNormLinear(torch.autograd.Function):
    """``z = sum_p W_p InstanceNorm(y_p)``; saves the parts, ``W`` and the statistics."""

    @staticmethod
    def forward(ctx, weight: Tensor, eps: float, *parts: Tensor) -> Tensor:
        dtype = _compute_dtype(weight, *parts)
        batch, _, n_points, _ = parts[0].shape
        with torch.autocast(parts[0].device.type, enabled=False):
            weight_c = weight.to(dtype)
            out = parts[0].new_zeros(batch, n_points, weight.shape[0], dtype=dtype)  # (B, N, O)
            shift = parts[0].new_zeros(batch, weight.shape[0], dtype=dtype)  # (B, O)
            stats = [
                _norm_linear_accumulate(out, shift, part.to(dtype), weight_c[:, :, p], eps)
                for p, part in enumerate(parts)
            ]
            out -= shift.unsqueeze(1)
        means, rstds = (torch.stack(s) for s in zip(*stats))
        ctx.save_for_backward(weight, means, rstds, *parts)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        weight, means, rstds, *parts = ctx.saved_tensors
        dtype = means.dtype
        with torch.autocast(grad_out.device.type, enabled=False):
            weight_c = weight.to(dtype)
            dz = grad_out.to(dtype).contiguous()  # (B, N, O)
            dz_sum = dz.sum(1)  # (B, O)
            grad_weight = torch.empty_like(weight_c)
            grad_parts = []
            for p, part in enumerate(parts):
                grad_weight[:, :, p], grad_y = _norm_linear_part_backward(
                    dz,
                    dz_sum,
                    part.to(dtype),
                    means[p],
                    rstds[p],
                    weight_c[:, :, p],
                    ctx.needs_input_grad[2 + p],
                )
                grad_parts.append(None if grad_y is None else grad_y.to(part.dtype))
        return grad_weight.to(weight.dtype), None, *grad_parts


class _AxisMixNormLinear(torch.autograd.Function):
    """``z = sum_p W_p InstanceNorm(y_p)`` with ``y_p`` the axis-kernel products of ``v`` (see
    :func:`axis_mix_norm_linear`); backward recomputes the products unless ``store``."""

    @staticmethod
    def forward(
        ctx, weight: Tensor, eps: float, chained: bool, store: bool, v: Tensor, *kernels: Tensor
    ) -> Tensor:
        dtype = _compute_dtype(weight, v, *kernels)
        batch, heads, dim_head = v.shape[0], v.shape[1], v.shape[-1]
        n_points = math.prod(v.shape[2:-1])
        with torch.autocast(v.device.type, enabled=False):
            weight_c, v_c = weight.to(dtype), v.to(dtype)
            kernels_c = [kernel.to(dtype) for kernel in kernels]
            out = v.new_zeros(batch, n_points, weight.shape[0], dtype=dtype)  # (B, N, O)
            shift = v.new_zeros(batch, weight.shape[0], dtype=dtype)  # (B, O)
            stats, stored = [], []
            for p, part in enumerate(_mix_parts(v_c, kernels_c, chained)):
                flat = part.view(batch, heads, n_points, dim_head)  # (B, H, N, D)
                stats.append(_norm_linear_accumulate(out, shift, flat, weight_c[:, :, p], eps))
                if store:
                    stored.append(part.to(v.dtype))
            out -= shift.unsqueeze(1)
        means, rstds = (torch.stack(s) for s in zip(*stats))
        ctx.chained, ctx.store = chained, store
        ctx.save_for_backward(weight, means, rstds, v, *kernels, *stored)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Tensor):
        weight, means, rstds, v, *rest = ctx.saved_tensors
        n_axes = v.ndim - 3
        kernels, stored = rest[:n_axes], rest[n_axes:]
        dtype = means.dtype
        batch, heads, dim_head = v.shape[0], v.shape[1], v.shape[-1]
        n_points = math.prod(v.shape[2:-1])
        need_v = ctx.needs_input_grad[4]
        with torch.autocast(grad_out.device.type, enabled=False):
            weight_c, v_c = weight.to(dtype), v.to(dtype)
            kernels_c = [kernel.to(dtype) for kernel in kernels]
            dz = grad_out.to(dtype).contiguous()  # (B, N, O)
            dz_sum = dz.sum(1)  # (B, O)
            grad_weight = torch.empty_like(weight_c)
            grad_kernels: list[Tensor | None] = [None] * n_axes
            if ctx.chained:
                # y_0 = v, y_a = K_a x_a y_{a-1}; the last one is the part. Recompute the chain (or reuse
                # the stored part), then walk it backwards.
                chain = [v_c]
                for axis in range(n_axes - 1):
                    chain.append(apply_axis_kernel(kernels_c[axis], chain[-1], axis))
                part = (
                    stored[0].to(dtype) if stored else apply_axis_kernel(kernels_c[-1], chain[-1], n_axes - 1)
                )
                flat = part.view(batch, heads, n_points, dim_head)
                grad_weight[:, :, 0], grad = _norm_linear_part_backward(
                    dz, dz_sum, flat, means[0], rstds[0], weight_c[:, :, 0], True
                )
                grad = grad.view(part.shape)
                del part, flat
                for axis in reversed(range(n_axes)):
                    grad_kernels[axis] = _kernel_grad(grad, chain[axis], axis)
                    if axis > 0 or need_v:
                        grad = apply_axis_kernel(kernels_c[axis].transpose(-1, -2), grad, axis)
                grad_v = grad if need_v else None
            else:
                grad_v = torch.zeros_like(v_c) if need_v else None
                for axis in range(n_axes):
                    part = stored[axis].to(dtype) if stored else apply_axis_kernel(kernels_c[axis], v_c, axis)
                    flat = part.view(batch, heads, n_points, dim_head)
                    grad_weight[:, :, axis], grad = _norm_linear_part_backward(
                        dz, dz_sum, flat, means[axis], rstds[axis], weight_c[:, :, axis], True
                    )
                    del part, flat
                    grad = grad.view(v.shape)
                    grad_kernels[axis] = _kernel_grad(grad, v_c, axis)
                    if need_v:
                        grad_v += apply_axis_kernel(kernels_c[axis].transpose(-1, -2), grad, axis)
        grad_kernels = [
            None if g is None or not ctx.needs_input_grad[5 + a] else g.to(kernels[a].dtype)
            for a, g in enumerate(grad_kernels)
        ]
        grad_v = None if grad_v is None else grad_v.to(v.dtype)
        return grad_weight.to(weight.dtype), None, None, None, grad_v, *grad_kernels


def _mix_parts(v: Tensor, kernels: Sequence[Tensor], chained: bool):
    """Yield the parts one at a time: ``K_a x_a v`` per axis, or the single chained product."""
    if chained:
        part = v
        for axis, kernel in enumerate(kernels):
            part = apply_axis_kernel(kernel, part, axis)
        yield part
    else:
        for axis, kernel in enumerate(kernels):
            yield apply_axis_kernel(kernel, v, axis)
