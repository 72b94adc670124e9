"""SHaDe's rendering head: view-dependent colour by attention over spherical-harmonics frequency bands,
in place of NeRF's MLP decoder.

The paper states only that the head "attends over learned spherical-harmonics frequency bands"; the form
below is sciml's choice (configurable: SH degree, token width, heads).

For a point feature ``f`` (from the canonical tri-plane) and a unit view direction ``d``:

    tokens   T_l(d) = e_l + P_l Y_l(d),            l = 0 .. L         one token per SH band
    query    q = W_q f                              keys/values  K = W_k T,  V = W_v T
    o        = MultiHead softmax_l(q . K_l / sqrt(h)) V_l               the point weighs the bands
    rgb      = sigmoid(W_f f + W_o o)

``Y_l(d)`` are the ``2l + 1`` real harmonics of band ``l`` (:func:`sciml.rendering.spherical_harmonics`),
``e_l`` a learned band embedding and ``P_l`` a learned ``(2l+1) -> h`` map, so band ``l`` carries the
angular frequency ``l`` of the view direction. A diffuse point can put its weight on band 0 (no view
dependence), a glossy one on the higher bands. ``W_f f`` is the view-independent base colour; ``W_o`` is
zero-initialised, so training starts diffuse and learns view dependence where the images need it.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn

from sciml.rendering.sh import spherical_harmonics


class SHAttentionHead(nn.Module):
    """``(features (N, F), directions (N, 3)) -> rgb (N, 3)`` in [0, 1] (module docstring).

    Args:
        feature_dim: point feature width ``F``.
        degree: highest SH degree ``L`` (0..4); ``L + 1`` band tokens.
        token_dim: token width ``h``.
        heads: attention heads (``token_dim`` must be divisible by it).
    """

    def __init__(self, feature_dim: int, degree: int = 3, token_dim: int = 32, heads: int = 2):
        super().__init__()
        if not 0 <= degree <= 4:
            raise ValueError(f"degree: expected 0..4, got {degree}")
        if token_dim % heads:
            raise ValueError(f"token_dim {token_dim} is not divisible by heads={heads}")
        self.degree, self.heads = degree, heads
        self.band_embedding = nn.Parameter(torch.randn(degree + 1, token_dim) * 0.1)
        self.band_maps = nn.ModuleList(
            nn.Linear(2 * band + 1, token_dim, bias=False) for band in range(degree + 1)
        )
        self.query = nn.Linear(feature_dim, token_dim)
        self.key = nn.Linear(token_dim, token_dim, bias=False)
        self.value = nn.Linear(token_dim, token_dim, bias=False)
        self.base_colour = nn.Linear(feature_dim, 3)
        self.view_colour = nn.Linear(token_dim, 3, bias=False)
        nn.init.zeros_(self.view_colour.weight)

    def band_tokens(self, directions: Float[Tensor, "N 3"]) -> Float[Tensor, "N B h"]:
        """One token per SH band from the view directions (``B = degree + 1``)."""
        basis = spherical_harmonics(directions, self.degree)  # (N, (L+1)^2)
        tokens = [
            self.band_embedding[band] + projection(basis[:, band**2 : (band + 1) ** 2])
            for band, projection in enumerate(self.band_maps)
        ]
        return torch.stack(tokens, dim=1)

    def band_weights(self, features: Float[Tensor, "N F"], directions: Float[Tensor, "N 3"]) -> Tensor:
        """Attention weights ``(N, heads, B)`` of each point over the bands."""
        return self._attend(features, directions)[1]

    def _attend(self, features: Tensor, directions: Tensor) -> tuple[Tensor, Tensor]:
        tokens = self.band_tokens(directions)  # (N, B, h)
        n, bands, width = tokens.shape
        head_dim = width // self.heads
        q = self.query(features).view(n, self.heads, 1, head_dim)  # (N, H, 1, d)
        k = self.key(tokens).view(n, bands, self.heads, head_dim).transpose(1, 2)  # (N, H, B, d)
        v = self.value(tokens).view(n, bands, self.heads, head_dim).transpose(1, 2)
        weights = torch.softmax((q @ k.transpose(-1, -2)) / head_dim**0.5, dim=-1)  # (N, H, 1, B)
        out = (weights @ v).reshape(n, width)  # (N, H, 1, d) -> (N, h)
        return out, weights[:, :, 0]

    def forward(
        self, features: Float[Tensor, "N F"], directions: Float[Tensor, "N 3"]
    ) -> Float[Tensor, "N 3"]:
        if features.ndim != 2 or directions.shape != (features.shape[0], 3):
            shapes = f"{tuple(features.shape)} and {tuple(directions.shape)}"
            raise ValueError(f"expected features (N, F) and unit directions (N, 3), got {shapes}")
        out, _ = self._attend(features, directions)
        return torch.sigmoid(self.base_colour(features) + self.view_colour(out))
