"""Self-attention: global equals a written-out softmax attention; 3-D windows never mix samples, equal
global attention when one window covers the grid, and attend exactly over the real tokens of padded
windows."""

from __future__ import annotations

import pytest
import torch

from sciml.nn.attention import SelfAttention, window_partition, window_unpartition


def _reference_attention(module: SelfAttention, x: torch.Tensor) -> torch.Tensor:
    """Softmax attention written out, on (L, C) tokens of one sample, before the output projection."""
    length, channels = x.shape
    heads = module.num_heads
    q, k, v = module.qkv(x).view(length, 3, heads, -1).permute(1, 2, 0, 3)  # each (heads, L, hd)
    weights = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
    return (weights @ v).transpose(0, 1).reshape(length, channels)


def _module(window=0, dim=12, heads=3, seed=0):
    torch.manual_seed(seed)
    return SelfAttention(dim, heads, window_size=window).double()


def test_global_attention_matches_the_written_out_softmax():
    module = _module()
    x = torch.randn(2, 7, 12, dtype=torch.float64)
    expected = torch.stack([module.proj(_reference_attention(module, sample)) for sample in x])
    torch.testing.assert_close(module(x), expected)


@pytest.mark.parametrize("grid", [(4, 4, 4), (3, 5, 2)])
def test_partition_round_trips(grid):
    x = torch.randn(2, *grid, 5)
    windows, mask = window_partition(x, 2)
    assert windows.shape[1:] == (8, 5)
    assert (mask is None) == all(n % 2 == 0 for n in grid)
    torch.testing.assert_close(window_unpartition(windows, 2, grid, 2), x, rtol=0, atol=0)


def test_window_equal_to_the_grid_is_global_attention():
    windowed, plain = _module(window=3), _module(window=0)
    plain.load_state_dict(windowed.state_dict())
    x = torch.randn(2, 27, 12, dtype=torch.float64)
    torch.testing.assert_close(windowed(x, (3, 3, 3)), plain(x))


@pytest.mark.parametrize("grid", [(4, 4, 4), (5, 3, 4)])
def test_windows_attend_over_their_own_real_tokens_only(grid):
    """Each window's output equals global attention over just that window's (unpadded) tokens."""
    module = _module(window=2)
    batch, length = 2, grid[0] * grid[1] * grid[2]
    x = torch.randn(batch, length, 12, dtype=torch.float64)
    out = module(x, grid).view(batch, *grid, 12)
    cube = x.view(batch, *grid, 12)
    for b in range(batch):
        for i in range(0, grid[0], 2):
            for j in range(0, grid[1], 2):
                for k in range(0, grid[2], 2):
                    window = (b, slice(i, i + 2), slice(j, j + 2), slice(k, k + 2))
                    expected = module.proj(_reference_attention(module, cube[window].reshape(-1, 12)))
                    torch.testing.assert_close(out[window].reshape(-1, 12), expected)


def test_changing_one_sample_never_changes_another():
    module = _module(window=2)
    x = torch.randn(3, 64, 12, dtype=torch.float64)
    changed = x.clone()
    changed[1] = torch.randn(64, 12, dtype=torch.float64)
    before, after = module(x, (4, 4, 4)), module(changed, (4, 4, 4))
    torch.testing.assert_close(after[[0, 2]], before[[0, 2]], rtol=0, atol=0)
    assert not torch.allclose(after[1], before[1])


def test_window_attention_needs_the_grid():
    with pytest.raises(ValueError, match="token grid"):
        _module(window=2)(torch.zeros(1, 8, 12, dtype=torch.float64))
