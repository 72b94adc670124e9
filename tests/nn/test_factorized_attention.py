"""The factorized attention block equals the literal IFactFormer formulas (materialized permutes, full-field
projections, concatenation and nn.InstanceNorm3d), for both variants, in value and gradient."""

import pytest
import torch
import torch.nn.functional as F

from sciml.nn.factorized_attention import (
    FactorizedAttentionBlock,
    apply_axis_kernel,
    axis_mix_norm_linear,
    instance_norm_linear,
)


def _rotate(x, coords, rotary):
    # FactFormer: freqs = [theta, theta], x cos + rotate_half(x) sin
    theta = torch.outer(coords * (rotary.scale / rotary.min_freq), rotary.inv_freq)
    freqs = torch.cat([theta, theta], dim=-1)
    x1, x2 = x.chunk(2, dim=-1)
    return x * freqs.cos() + torch.cat([-x2, x1], dim=-1) * freqs.sin()


def literal_block(block, u, coords):
    """The reference code's data flow, written with the block's own weights."""
    b, nx, ny, nz, _ = u.shape
    heads, dim_head = block.heads, block.dim_head
    h = block.norm(u)
    v = block.to_v(h)
    t = block.to_in(h)  # applied to the whole field, then averaged
    fields = [t, t.permute(0, 2, 1, 3, 4), t.permute(0, 3, 1, 2, 4)]
    kernels = []
    for axis in range(3):
        integral, kernel = block.integrals[axis], block.kernels[axis]
        phi = integral.mlp(integral.norm(integral.proj(fields[axis]).mean(dim=(2, 3))))
        n = phi.shape[1]
        q = kernel.to_q(phi).view(b, n, heads, -1).permute(0, 2, 1, 3)
        k = kernel.to_k(phi).view(b, n, heads, -1).permute(0, 2, 1, 3)
        q, k = _rotate(q, coords[axis], kernel.rotary), _rotate(k, coords[axis], kernel.rotary)
        kernels.append(torch.einsum("bhid,bhjd->bhij", q, k) * kernel.scaling)
    u_phi = v.view(b, nx, ny, nz, heads, dim_head).permute(0, 4, 1, 2, 3, 5)
    x_mix = lambda w: torch.einsum("bhij,bhjmsc->bhimsc", kernels[0], w)  # noqa: E731
    y_mix = lambda w: torch.einsum("bhlm,bhimsc->bhilsc", kernels[1], w)  # noqa: E731
    z_mix = lambda w: torch.einsum("bhrs,bhilsc->bhilrc", kernels[2], w)  # noqa: E731
    if block.variant == "m":
        u_phi = torch.cat([x_mix(u_phi), y_mix(u_phi), z_mix(u_phi)], dim=5)
    else:
        u_phi = z_mix(y_mix(x_mix(u_phi)))
    channels = u_phi.shape[-1]
    u_phi = u_phi.permute(0, 1, 5, 2, 3, 4).reshape(b, heads * channels, nx, ny, nz)
    u_phi = F.instance_norm(u_phi, eps=1e-5).permute(0, 2, 3, 4, 1)
    return block.out_fc(F.gelu(block.out_proj(u_phi)))


def _setup(variant, seed=0):
    torch.manual_seed(seed)
    block = FactorizedAttentionBlock(8, heads=2, dim_head=4, kernel_dim=6, variant=variant).double()
    # Paper init (gain 0.02) makes K nearly zero; larger q/k weights exercise the kernels for real.
    for kernel in block.kernels:
        torch.nn.init.normal_(kernel.to_q.weight, std=0.4)
        torch.nn.init.normal_(kernel.to_k.weight, std=0.4)
    u = torch.randn(2, 5, 6, 4, 8, dtype=torch.float64, requires_grad=True)
    coords = [
        torch.linspace(0, length, n, dtype=torch.float64) for length, n in ((3.0, 5), (2.0, 6), (1.5, 4))
    ]
    return block, u, coords


@pytest.mark.parametrize("variant", ["m", "o"])
@pytest.mark.parametrize("recompute_mixing", [True, False])
def test_block_matches_literal_formulas_in_value_and_gradient(variant, recompute_mixing):
    block, u, coords = _setup(variant)
    block.recompute_mixing = recompute_mixing
    ours = block(u, coords)
    reference = literal_block(block, u, coords)
    assert ours.shape == (2, 5, 6, 4, 8)
    assert reference.abs().max() > 0.1  # not a trivially small output
    torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-12)

    seed = torch.randn_like(ours)
    params = [u, *block.parameters()]
    grads_ours = torch.autograd.grad(ours, params, seed)
    grads_ref = torch.autograd.grad(reference, params, seed)
    for g_ours, g_ref in zip(grads_ours, grads_ref):
        torch.testing.assert_close(g_ours, g_ref, rtol=1e-9, atol=1e-11)


def test_variants_differ():
    block_m, u, coords = _setup("m")
    block_o, _, _ = _setup("o")
    assert block_m.out_proj.weight.shape == (8, 2 * 4 * 3) and block_o.out_proj.weight.shape == (8, 2 * 4)
    assert not torch.allclose(block_m(u, coords), block_o(u, coords))


@pytest.mark.parametrize(
    "axis,equation", [(0, "bhij,bhjyzc->bhiyzc"), (1, "bhij,bhxjzc->bhxizc"), (2, "bhij,bhxyjc->bhxyic")]
)
def test_axis_kernel_is_the_mode_product(axis, equation):
    values = torch.randn(2, 3, 4, 5, 6, 7, dtype=torch.float64)
    n = values.shape[2 + axis]
    kernel = torch.randn(2, 3, n, n, dtype=torch.float64)
    torch.testing.assert_close(
        apply_axis_kernel(kernel, values, axis), torch.einsum(equation, kernel, values)
    )
    with pytest.raises(ValueError, match="kernel for axis"):
        apply_axis_kernel(kernel[..., :-1, :-1], values, axis)


def test_instance_norm_linear_gradcheck():
    torch.manual_seed(3)
    # channel offsets much larger than the spread: the two-pass variance must not cancel
    parts = [(torch.randn(2, 2, 3, 4, 3, dtype=torch.float64) + 5.0).requires_grad_() for _ in range(2)]
    weight = torch.randn(4, 2, 2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w, *p: instance_norm_linear(p, w), (weight, *parts))
    y = torch.cat(parts, dim=-1).permute(0, 1, 4, 2, 3).reshape(2, 12, 3, 4)  # channels (head, part, d)
    expected = torch.einsum("bcxy,oc->bxyo", F.instance_norm(y, eps=1e-5), weight.reshape(4, 12))
    torch.testing.assert_close(instance_norm_linear(parts, weight), expected.reshape(2, 12, 4))


def test_half_precision_parts_are_widened_for_the_statistics():
    torch.manual_seed(4)
    parts = [torch.randn(1, 2, 6, 5, 3).add(3.0).bfloat16().requires_grad_() for _ in range(3)]
    weight = torch.randn(4, 2, 3, 3, requires_grad=True)
    out = instance_norm_linear(parts, weight)
    assert out.dtype == torch.float32
    wide = [part.detach().float().requires_grad_() for part in parts]
    expected = instance_norm_linear(wide, weight)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    seed = torch.randn_like(out)
    grads = torch.autograd.grad(out, [weight, *parts], seed)
    grads_wide = torch.autograd.grad(expected, [weight, *wide], seed)
    torch.testing.assert_close(grads[0], grads_wide[0], rtol=1e-6, atol=1e-6)
    for grad, grad_wide in zip(grads[1:], grads_wide[1:]):
        assert grad.dtype == torch.bfloat16
        torch.testing.assert_close(grad, grad_wide.bfloat16())


@pytest.mark.parametrize("chained", [False, True])
@pytest.mark.parametrize("store", [False, True])
def test_axis_mix_norm_linear_gradcheck(chained, store):
    torch.manual_seed(5)
    v = torch.randn(2, 2, 3, 4, 2, 3, dtype=torch.float64, requires_grad=True)
    kernels = [torch.randn(2, 2, n, n, dtype=torch.float64, requires_grad=True) for n in (3, 4, 2)]
    weight = torch.randn(4, 2, 1 if chained else 3, 3, dtype=torch.float64, requires_grad=True)

    def fused(weight, v, *kernels):
        return axis_mix_norm_linear(v, kernels, weight, chained=chained, store=store)

    def literal(weight, v, *kernels):
        if chained:
            parts = [v]
            for axis, kernel in enumerate(kernels):
                parts = [apply_axis_kernel(kernel, parts[0], axis)]
        else:
            parts = [apply_axis_kernel(kernel, v, axis) for axis, kernel in enumerate(kernels)]
        return instance_norm_linear(parts, weight)

    inputs = (weight, v, *kernels)
    torch.testing.assert_close(fused(*inputs), literal(*inputs), rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(fused, inputs)
