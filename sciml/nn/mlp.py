"""Transformer MLPs: the plain GELU MLP of ViT/DiT and the gated GeGLU.

GeGLU (Shazeer 2020, "GLU Variants Improve Transformer", eq. 6 with GELU):

    GeGLU(x) = W_2 (GELU(x W_a + b_a) * (x W_b + b_b)) + b_2,

with ``W_a | W_b`` stored as one ``(in, 2 * hidden)`` layer whose first half is the activated branch and
second half the gate (the FactFormer ``GeAct`` layout, so reference weights map one to one).
"""

from __future__ import annotations

import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn


class GeGLU(nn.Module):
    """``GELU(a) * b`` for ``[a, b] = x`` split in halves along the last axis."""

    def forward(self, x: Float[Tensor, "*batch two_hidden"]) -> Float[Tensor, "*batch hidden"]:
        a, b = x.chunk(2, dim=-1)
        return F.gelu(a) * b


class GeGLUMLP(nn.Module):
    """Two-layer GeGLU MLP ``in_features -> hidden_features -> out_features`` with biases."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int):
        super().__init__()
        self.fc_in = nn.Linear(in_features, 2 * hidden_features)
        self.act = GeGLU()
        self.fc_out = nn.Linear(hidden_features, out_features)

    def forward(self, x: Float[Tensor, "*batch in_features"]) -> Float[Tensor, "*batch out_features"]:
        return self.fc_out(self.act(self.fc_in(x)))


class FeedForward(nn.Module):
    """The transformer MLP ``fc2(GELU(fc1(x)))`` (timm ``Mlp`` layout: keys ``fc1``, ``fc2``).

    ``approximate`` is GELU's: ``"none"`` (exact erf, what the DiT-3D code runs) or ``"tanh"`` (DiT's).
    """

    def __init__(self, in_features: int, hidden_features: int, approximate: str = "none"):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU(approximate=approximate)
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x: Float[Tensor, "*batch features"]) -> Float[Tensor, "*batch features"]:
        return self.fc2(self.act(self.fc1(x)))
