"""Transformer blocks conditioned by adaptive layer norm with zero initialization (adaLN-Zero; Peebles &
Xie 2023, "Scalable Diffusion Models with Transformers", section 3.2).

A conditioning vector ``c`` (timestep + class embedding) regresses, per block, the shift ``beta``, scale
``gamma`` and residual gate ``alpha`` of the attention and MLP branches:

    x <- x + alpha_1 * Attn(LN(x) * (1 + gamma_1) + beta_1)
    x <- x + alpha_2 * MLP(LN(x) * (1 + gamma_2) + beta_2)

with affine-free LayerNorms (eps 1e-6). The regression ``SiLU -> Linear`` is zero-initialised, so every
block starts as the identity. The final layer maps tokens to patch outputs after one more modulated norm.
Key names follow the DiT code (``norm1``, ``attn``, ``norm2``, ``mlp``, ``adaLN_modulation.1``,
``linear``) so its checkpoints load unchanged.
"""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor, nn

from sciml.nn.attention import SelfAttention
from sciml.nn.mlp import FeedForward


def modulate(x: Float[Tensor, "B L C"], shift: Float[Tensor, "B C"], scale: Float[Tensor, "B C"]) -> Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class AdaLNZeroBlock(nn.Module):
    """One DiT block: adaLN-Zero modulated self-attention (global or 3-D windowed) and MLP.

    Args:
        dim: token width.
        num_heads: attention heads.
        mlp_ratio: MLP hidden width over ``dim``.
        window_size: 0 for global attention, else the 3-D window edge in tokens.
        gelu_approximate: GELU form of the MLP (``"none"`` or ``"tanh"``).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        window_size: int = 0,
        gelu_approximate: str = "none",
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(dim, num_heads, qkv_bias=True, window_size=window_size)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = FeedForward(dim, int(dim * mlp_ratio), approximate=gelu_approximate)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.adaLN_modulation[1].weight)
        nn.init.zeros_(self.adaLN_modulation[1].bias)

    def forward(
        self, x: Float[Tensor, "B L C"], c: Float[Tensor, "B C"], grid: tuple[int, int, int] | None = None
    ) -> Float[Tensor, "B L C"]:
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate_a.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_a, scale_a), grid)
        return x + gate_m.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_m, scale_m))


class AdaLNFinalLayer(nn.Module):
    """Modulated LayerNorm, then ``Linear(dim, out_features)``; all zero-initialised."""

    def __init__(self, dim: int, out_features: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, out_features)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        for layer in (self.linear, self.adaLN_modulation[1]):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: Float[Tensor, "B L C"], c: Float[Tensor, "B C"]) -> Float[Tensor, "B L out"]:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))
