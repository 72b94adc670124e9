"""IFactFormer: implicit factorized transformer for next-field prediction of turbulent flows
(H. Yang, Y. Wang & J. Wang, "Implicit factorized transformer approach to fast prediction of turbulent
channel flows", Sci. China Phys. Mech. Astron. 2025, arXiv:2412.18840), variants -m (parallel axis
kernels, the paper's model) and -o (chained kernels, the original IFactFormer).

    u_0     = Lift(x) + Linear(GFF(coords))                      lift channels x steps to width ``dim``
    u_{l+1} = u_l + Block(u_l) / n_layer,  l = 0 .. n_layer-1    ONE weight-tied block (the "implicit" part)
    y       = Decode(u_{n_layer})                                 pointwise, to the next field

``Block`` is :class:`sciml.nn.factorized_attention.FactorizedAttentionBlock` (per-axis learnable integrals,
low-rank rotary kernels ``K = q k^T`` without softmax, InstanceNorm, Linear-GELU-Linear).

Layers, following the authors' reference code (github.com/EntropyXi/IFactFormer-m, libs/model.py and
libs/factorization_module.py, FactFormer's libs/ for the shared pieces), at ``C`` input channels, ``T``
input steps, width ``d`` (``d/2`` must be a multiple of ``C``):

* Lift: a grouped pointwise map, channel ``c`` -> ``d/(2C)`` features (weight + bias; the reference's
  ``Conv2d(C, d/2, 1, groups=C)``), GELU, then ``Linear(d/2 * T -> d, bias=False)`` over the features and
  the time window (the reference's ``Conv2d(d/2, d, (T, 1), bias=False)``; input order (channel, feature,
  step)).
* Position encoding, added once before the tied block: Gaussian Fourier features of the 3-D physical
  coordinates (``B`` of shape ``3 x d/2``, entries ``N(0, 8^2)``), ``[sin, cos]`` -> ``Linear(d, d)``
  with bias.
* Block (no biases except in LayerNorms and the GeGLU MLPs): LayerNorm(d); values ``Linear(d, H*D)``; a shared
  ``Linear(d, d)``; per axis a learnable integral (``Linear(d, d)``, mean, LayerNorm(d), GeGLU MLP
  ``d -> 2d | d -> d``) and ``q``/``k`` ``Linear(d, H*D*m)`` each (Xavier gain 0.02, rotary with
  ``min_freq = 1/64``, kernel scale 1 since ``m <= 4``); InstanceNorm without affine; ``Linear(3*H*D, d)``
  (-m) or ``Linear(H*D, d)`` (-o), GELU, ``Linear(d, d)``.
* Decode: ``Linear(d, d/2, bias=False)``, GELU, ``Linear(d/2, out_channels)`` with bias.

Parameter count at the paper configuration (C = 3, T = 1, out 3, d = 96, H = 5, D = 96, m = 3; the three
channels are the velocity components only -- the reference notebook keeps fields 0:3 of its 4-field data,
one input step, and the count below pins T = 1 and 3 outputs):
lift 96 + 4,608; position encoding 9,312; block 1,144,416 (LayerNorm 192, values 46,080, shared map 9,216,
integrals 3 x 37,344, kernels 3 x 276,480, output 147,456); decode 4,755. Trainable total 1,163,187. The
paper's 1,163,331 counts ``model.parameters()`` of the reference, where the fixed Fourier matrix ``B``
(3 x 48 = 144 entries) is a frozen ``nn.Parameter``; here ``B`` is a buffer (it never trains), and
:meth:`IFactFormer.parameter_count` reports either number.

Choices where the paper is silent or our setting differs (configurable):

* Coordinates, the physical node positions that the position encoding and the rotary kernels read
  (``coords_x/y/z``, buffers in the state dict, so a checkpoint restores them without the data):
  ``coordinates="data"`` (default) takes them from the data through :meth:`IFactFormer.set_coordinates`
  (the surrogate task does this in ``setup``), so a non-uniform axis such as the Chebyshev wall-normal
  grid of a channel is encoded where its nodes really are; until the data arrives it holds the periodic
  placeholder ``x_i = i L / n``, which is also exactly what a periodic data file stores, so periodic
  results do not change. ``"periodic"`` fixes ``x_i = i L / n`` (the sciml convention for periodic
  grids); ``"linspace"`` fixes ``linspace(0, L, n)`` as the reference code does (the preset
  :meth:`IFactFormer.paper` selects it). Coordinates may run in either direction (a solver may store the
  wall-normal axis from +1 down to -1): the network sees a node only through its values and its
  coordinate, and its sums over nodes do not depend on their order, so an axis stored reversed together
  with its coordinates gives the reversed output and nothing else changes.
* What is not coordinate-aware, as in the reference code: the learnable integrals (axis means) and the
  kernel contractions ``K_a x_a v`` are plain sums over the nodes, without quadrature weights, so on a
  stretched axis the densely spaced nodes (near the walls) weigh more in them than their share of the
  length. The network learns with these sums; weighting them would depart from the paper's model.
* ``B`` is drawn from a generator seeded with ``fourier_seed`` instead of the global RNG, and stored in the
  state dict together with the coordinates, so a checkpoint reproduces the network without its config.
* Memory knobs (results identical to rounding): ``recompute_mixing`` (default on) stores only the values
  ``v`` of each application and recomputes the axis-kernel products ``K_a x_a v`` in backward;
  ``checkpoint_block`` recomputes whole applications, so only one width-``d`` field per application is
  kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from sciml.core.errors import ConfigError
from sciml.nn.factorized_attention import FactorizedAttentionBlock
from sciml.nn.fourier_features import GaussianFourierFeatures

PAPER_GRID_SHAPE: tuple[int, int, int] = (32, 33, 16)
PAPER_DOMAIN_LENGTHS: tuple[float, float, float] = (4 * math.pi, 2.0, 4 * math.pi / 3)
#: ``sum(p.numel() for p in model.parameters())`` of the reference code at the paper configuration.
PAPER_PARAMETER_COUNT = 1_163_331


class GroupedPointwiseLift(nn.Module):
    """Map each input channel on its own to ``G`` features: ``h[c, g] = w[c, g] x[c] + b[c, g]``.

    Equal to ``Conv(C, C * G, kernel 1, groups=C)``, including its default init (fan-in 1: ``U(-1, 1)``).
    """

    def __init__(self, channels: int, features_per_channel: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(channels, features_per_channel, 1))
        self.bias = nn.Parameter(torch.empty(channels, features_per_channel, 1))
        nn.init.uniform_(self.weight, -1.0, 1.0)
        nn.init.uniform_(self.bias, -1.0, 1.0)

    def forward(
        self, x: Float[Tensor, "*batch channels steps"]
    ) -> Float[Tensor, "*batch channels features steps"]:
        return torch.addcmul(self.bias, self.weight, x.unsqueeze(-2))  # (..., C, G, T)


class IFactFormer(nn.Module):
    """IFactFormer-m / -o next-field predictor on a fixed 3-D grid.

    Args:
        in_channels: physical channels of the input field (3 velocity components).
        out_channels: channels of the predicted field.
        in_steps: input time steps ``T_in``; channels and steps are mixed by the lifting layer.
        dim: hidden width ``d`` (``d/2`` must be a multiple of ``in_channels``).
        heads, dim_head: value heads and their width.
        kernel_multiplier: ``q``/``k`` width per head is ``dim_head * kernel_multiplier``.
        n_layer: applications of the single weight-tied block.
        grid_shape: grid points along (x, y, z); inputs must match it.
        domain_lengths: physical lengths along (x, y, z), used by the rotary and Fourier encodings.
        variant: ``"m"`` (parallel, IFactFormer-m) or ``"o"`` (chained, IFactFormer-o).
        fourier_scale: standard deviation of the Gaussian Fourier matrix (8 in the paper).
        fourier_seed: seed of the Fourier matrix.
        coordinates: ``"data"`` (set from the data by :meth:`set_coordinates`; ``i L / n`` until then),
            ``"periodic"`` (``i L / n``) or ``"linspace"`` (``linspace(0, L, n)``, reference code). With
            ``"data"``, ``domain_lengths`` only sets the placeholder.
        checkpoint_block: recompute each block application in backward (least memory, ~1/3 more time).
        recompute_mixing: inside the block, recompute the axis-kernel products in backward instead of
            storing them (about half the activation memory for a few percent more time).
    """

    coords_x: Tensor
    coords_y: Tensor
    coords_z: Tensor

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        in_steps: int = 1,
        dim: int = 96,
        heads: int = 5,
        dim_head: int = 96,
        kernel_multiplier: int = 3,
        n_layer: int = 10,
        grid_shape: tuple[int, int, int] = PAPER_GRID_SHAPE,
        domain_lengths: tuple[float, float, float] = PAPER_DOMAIN_LENGTHS,
        variant: Literal["m", "o"] = "m",
        fourier_scale: float = 8.0,
        fourier_seed: int = 0,
        coordinates: Literal["data", "periodic", "linspace"] = "data",
        checkpoint_block: bool = False,
        recompute_mixing: bool = True,
    ):
        super().__init__()
        self._config: dict[str, Any] = dict(
            in_channels=in_channels,
            out_channels=out_channels,
            in_steps=in_steps,
            dim=dim,
            heads=heads,
            dim_head=dim_head,
            kernel_multiplier=kernel_multiplier,
            n_layer=n_layer,
            grid_shape=tuple(int(n) for n in grid_shape),
            domain_lengths=tuple(float(length) for length in domain_lengths),
            variant=variant,
            fourier_scale=float(fourier_scale),
            fourier_seed=int(fourier_seed),
            coordinates=coordinates,
            checkpoint_block=bool(checkpoint_block),
            recompute_mixing=bool(recompute_mixing),
        )
        _check_config(
            {key: self._config[key] for key in _INTEGER_SIZES},
            grid_shape=grid_shape,
            domain_lengths=domain_lengths,
            variant=variant,
            coordinates=coordinates,
        )
        self.in_channels, self.out_channels, self.in_steps = in_channels, out_channels, in_steps
        self.dim, self.n_layer, self.variant = dim, n_layer, variant
        self.grid_shape = self._config["grid_shape"]
        self.domain_lengths = self._config["domain_lengths"]
        self.checkpoint_block = bool(checkpoint_block)
        self.coordinates = coordinates

        for name, n, length in zip(
            ("coords_x", "coords_y", "coords_z"), self.grid_shape, self.domain_lengths
        ):
            self.register_buffer(name, _axis_coordinates(n, length, coordinates), persistent=True)

        half = dim // 2
        self.lift = GroupedPointwiseLift(in_channels, half // in_channels)
        self.lift_mix = nn.Linear(half * in_steps, dim, bias=False)
        self.fourier = GaussianFourierFeatures(3, half, scale=fourier_scale, seed=fourier_seed)
        self.position_proj = nn.Linear(2 * half, dim)
        kernel_dim = dim_head * kernel_multiplier
        self.block = FactorizedAttentionBlock(
            dim,
            heads,
            dim_head,
            kernel_dim,
            num_axes=3,
            variant=variant,
            # FactFormer scales K by 1/sqrt(width) only for wide kernels (multiplier > 4).
            kernel_scaling=1.0 / math.sqrt(kernel_dim) if kernel_multiplier > 4 else 1.0,
            recompute_mixing=recompute_mixing,
        )
        self.decode_hidden = nn.Linear(dim, half, bias=False)
        self.decode_out = nn.Linear(half, out_channels)

    # -- construction helpers -------------------------------------------------------------------------
    @classmethod
    def paper(
        cls, variant: Literal["m", "o"] = "m", checkpoint_block: bool = False, recompute_mixing: bool = True
    ) -> IFactFormer:
        """The configuration of the paper (Re_tau 180 channel, 32 x 33 x 16 grid, reference coordinates)."""
        return cls(
            variant=variant,
            coordinates="linspace",
            checkpoint_block=checkpoint_block,
            recompute_mixing=recompute_mixing,
        )

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments; ``IFactFormer(**model.config)`` rebuilds the same architecture."""
        return dict(self._config)

    def parameter_count(self, include_fourier_matrix: bool = True) -> int:
        """Trainable parameters, plus the fixed Fourier matrix when counting as the reference code does."""
        count = sum(p.numel() for p in self.parameters())
        return count + (self.fourier.frequencies.numel() if include_fourier_matrix else 0)

    @property
    def coords(self) -> tuple[Tensor, Tensor, Tensor]:
        return self.coords_x, self.coords_y, self.coords_z

    def set_coordinates(
        self, x: Sequence[float] | Tensor, y: Sequence[float] | Tensor, z: Sequence[float] | Tensor
    ) -> None:
        """Place the nodes at the data's physical coordinates along (x, y, z) (``coordinates="data"``).

        Each axis takes one coordinate per grid point, finite and strictly monotonic (either direction).
        The values are copied into the buffers, keeping their dtype and device.
        """
        if self.coordinates != "data":
            raise ConfigError(
                "coordinates",
                f"is {self.coordinates!r}, which fixes the node positions; set it to 'data' to take them "
                "from the data",
            )
        checked = [
            _checked_axis(axis, values, n)
            for axis, values, n in zip(("x", "y", "z"), (x, y, z), self.grid_shape)
        ]
        for buffer, values in zip(self.coords, checked):
            buffer.copy_(values)

    @property
    def expected_input_shape(self) -> str:
        return f"(B, {self.in_channels}, {self.in_steps}, {', '.join(str(n) for n in self.grid_shape)})"

    # -- forward --------------------------------------------------------------------------------------
    def position_encoding(self) -> Float[Tensor, "x y z dim"]:
        """``Linear(GFF(x, y, z))`` on the grid, (X, Y, Z, dim)."""
        mesh = torch.stack(torch.meshgrid(*self.coords, indexing="ij"), dim=-1)  # (X, Y, Z, 3)
        return self.position_proj(self.fourier(mesh).to(self.position_proj.weight.dtype))

    def forward(
        self, x: Float[Tensor, "batch channels steps x y z"]
    ) -> Float[Tensor, "batch out_channels x y z"]:
        expected = (self.in_channels, self.in_steps, *self.grid_shape)
        if x.ndim != 6 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"IFactFormer: expected {self.expected_input_shape}, got {tuple(x.shape)}")
        batch = x.shape[0]
        # (B, C, T, X, Y, Z) -> channels last (B, X, Y, Z, C, T); the input is narrow, so this copy is tiny.
        x = x.permute(0, 3, 4, 5, 1, 2)
        lifted = F.gelu(self.lift(x))  # (B, X, Y, Z, C, G, T)
        u = self.lift_mix(lifted.reshape(batch, *self.grid_shape, -1))  # (B, X, Y, Z, dim)
        u = u + self.position_encoding()

        coords = self.coords
        use_checkpoint = self.checkpoint_block and torch.is_grad_enabled()
        for _ in range(self.n_layer):
            if use_checkpoint:
                update = checkpoint(self.block, u, coords, use_reentrant=False)
            else:
                update = self.block(u, coords)
            u = u + update / self.n_layer

        y = self.decode_out(F.gelu(self.decode_hidden(u)))  # (B, X, Y, Z, out)
        return y.permute(0, 4, 1, 2, 3).contiguous()  # (B, out, X, Y, Z)

    def extra_repr(self) -> str:
        return f"variant={self.variant!r}, n_layer={self.n_layer}, grid_shape={self.grid_shape}"


def _axis_coordinates(n: int, length: float, coordinates: str) -> Tensor:
    if coordinates in ("periodic", "data"):
        values = torch.arange(n, dtype=torch.float64) * (length / n)
    else:
        values = torch.linspace(0.0, length, n, dtype=torch.float64)
    return values.to(torch.get_default_dtype())


def _checked_axis(axis: str, values: Sequence[float] | Tensor, n: int) -> Tensor:
    """The coordinates of one axis as a float64 vector, or a ConfigError naming the axis."""
    vector = torch.as_tensor(values, dtype=torch.float64).detach().cpu()
    if vector.ndim != 1 or len(vector) != n:
        raise ConfigError(
            "grid_shape",
            f"has {n} points along {axis}, but the data's {axis} coordinates have shape "
            f"{tuple(vector.shape)}",
        )
    if not bool(torch.isfinite(vector).all()):
        raise ConfigError("coordinates", f"the data's {axis} coordinates contain NaN or Inf")
    steps = vector.diff()
    if not (bool((steps > 0).all()) or bool((steps < 0).all())):
        raise ConfigError("coordinates", f"the data's {axis} coordinates are not strictly monotonic")
    return vector


#: Constructor arguments that must be positive integers (stored unconverted, so 2.5 is caught).
_INTEGER_SIZES = (
    "in_channels",
    "out_channels",
    "in_steps",
    "dim",
    "heads",
    "dim_head",
    "kernel_multiplier",
    "n_layer",
)


def _check_config(
    positive: dict[str, int],
    *,
    grid_shape: tuple[int, int, int],
    domain_lengths: tuple[float, float, float],
    variant: str,
    coordinates: str,
) -> None:
    """``positive``: the integer sizes (in_channels, out_channels, in_steps, dim, heads, dim_head, ...)."""
    for key, value in positive.items():
        if not isinstance(value, int) or value < 1:
            raise ConfigError(key, f"must be a positive integer, got {value!r}")
    dim, in_channels = positive["dim"], positive["in_channels"]
    if dim % 2 or (dim // 2) % in_channels:
        raise ConfigError(
            "dim", f"dim/2 must be a multiple of in_channels={in_channels} (grouped lift), got dim={dim}"
        )
    if (positive["dim_head"] * positive["kernel_multiplier"]) % 2:
        raise ConfigError("dim_head", "dim_head * kernel_multiplier must be even (rotary embedding)")
    if len(grid_shape) != 3 or any(int(n) < 1 for n in grid_shape):
        raise ConfigError("grid_shape", f"expected three positive sizes (X, Y, Z), got {grid_shape!r}")
    if len(domain_lengths) != 3 or any(float(length) <= 0 for length in domain_lengths):
        raise ConfigError("domain_lengths", f"expected three positive lengths, got {domain_lengths!r}")
    if variant not in ("m", "o"):
        raise ConfigError("variant", f"must be 'm' or 'o', got {variant!r}")
    if coordinates not in ("data", "periodic", "linspace"):
        raise ConfigError("coordinates", f"must be 'data', 'periodic' or 'linspace', got {coordinates!r}")
