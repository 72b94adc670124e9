"""Timestep, label and 3-D sin-cos position embeddings against their closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from sciml.nn.embeddings import LabelEmbedder, PatchEmbed3d, sincos_3d, timestep_features


def test_timestep_features_closed_form():
    t = torch.tensor([0, 7, 999])
    features = timestep_features(t, 8)
    frequencies = torch.tensor([10000 ** (-k / 4) for k in range(4)])
    torch.testing.assert_close(features[:, :4], torch.cos(t[:, None] * frequencies))
    torch.testing.assert_close(features[:, 4:], torch.sin(t[:, None] * frequencies))
    assert timestep_features(t, 9).shape == (3, 9)


def test_sincos_3d_splits_the_width_by_axis():
    grid = (2, 3, 4)
    embedding = sincos_3d(12, grid)
    assert embedding.shape == (24, 12)
    # token (i, j, k) in row-major order; each third encodes one axis: [sin(p w), cos(p w)], w = 1, 1e-2
    i, j, k = 1, 2, 3
    row = embedding[(i * 3 + j) * 4 + k]
    for axis, position in enumerate((i, j, k)):
        part = row[4 * axis : 4 * axis + 4]
        angles = (position, position / 100)
        expected = [math.sin(a) for a in angles] + [math.cos(a) for a in angles]
        torch.testing.assert_close(part, torch.tensor(expected))
    assert torch.cdist(embedding, embedding).add(torch.eye(24)).min() > 1e-3  # all tokens distinct
    with pytest.raises(ValueError, match="divisible by 6"):
        sincos_3d(8, grid)


def test_label_embedder_null_row_and_range_check():
    embedder = LabelEmbedder(3, 6)
    assert embedder.embedding_table.num_embeddings == 4 and embedder.null_label == 3
    assert embedder(torch.tensor([0, 3])).shape == (2, 6)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        embedder(torch.tensor([4]))
    with pytest.raises(ValueError, match="no null class"):
        _ = LabelEmbedder(3, 6, null_class=False).null_label


def test_patch_embedding_token_order_is_row_major_xyz():
    embed = PatchEmbed3d(1, 1, 2)
    with torch.no_grad():
        embed.proj.weight.fill_(1.0)
        embed.proj.bias.zero_()
    grid = torch.zeros(1, 1, 4, 4, 4)
    grid[0, 0, 2, 0, 0] = 1.0  # in patch (1, 0, 0) -> token 1 * 2 * 2 = 4
    tokens = embed(grid)
    assert tokens.shape == (1, 8, 1)
    assert tokens[0, :, 0].nonzero().flatten().tolist() == [4]
