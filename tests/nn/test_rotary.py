"""Rotary embedding: q_i . k_j depends only on x_i - x_j; rotations keep norms; the FactFormer angles."""

import pytest
import torch

from sciml.nn.rotary import RotaryEmbedding, apply_rotary


def _dot(rope, q, k, x_q, x_k):
    rq = rope(q.expand(len(x_q), -1), torch.as_tensor(x_q, dtype=torch.float64))
    rk = rope(k.expand(len(x_k), -1), torch.as_tensor(x_k, dtype=torch.float64))
    return rq @ rk.T  # (n_q, n_k)


def test_scores_depend_only_on_the_coordinate_difference():
    torch.manual_seed(0)
    rope = RotaryEmbedding(16, min_freq=1 / 64).double()
    q, k = torch.randn(1, 16, dtype=torch.float64), torch.randn(1, 16, dtype=torch.float64)
    x = [0.0, 0.3, 1.7, 4.0]
    base = _dot(rope, q, k, x, x)
    for shift in (0.5, -2.25, 11.0):
        shifted = _dot(rope, q, k, [xi + shift for xi in x], [xi + shift for xi in x])
        torch.testing.assert_close(shifted, base, rtol=1e-10, atol=1e-10)
    # ... and the score does change with the difference, so the check above is not vacuous.
    assert not torch.allclose(base[0, 1], base[0, 2])
    # the score at zero offset is the plain dot product
    torch.testing.assert_close(base[2, 2], (q @ k.T)[0, 0])


def test_rotation_preserves_norms_and_uses_factformer_angles():
    rope = RotaryEmbedding(8, min_freq=1 / 64).double()
    coords = torch.tensor([0.0, 0.1, 2.0], dtype=torch.float64)
    x = torch.randn(2, 3, 8, dtype=torch.float64)
    y = rope(x, coords)
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))
    expected = coords[:, None] * 64.0 * 10000.0 ** (-torch.arange(0, 8, 2, dtype=torch.float64) / 8)
    # inv_freq is a float32 buffer, as in the reference: compare at float32 precision
    torch.testing.assert_close(rope.angles(coords), expected, rtol=1e-6, atol=1e-6)
    # literal "x cos + rotate_half(x) sin" with the doubled angle table
    theta = rope.angles(coords)
    freqs = torch.cat([theta, theta], dim=-1)
    x1, x2 = x.chunk(2, dim=-1)
    literal = x * freqs.cos() + torch.cat([-x2, x1], dim=-1) * freqs.sin()
    torch.testing.assert_close(y, literal)
    torch.testing.assert_close(apply_rotary(x, *rope.cos_sin(coords)), literal)


def test_odd_width_is_rejected():
    with pytest.raises(ValueError, match="dim must be even"):
        RotaryEmbedding(7)
