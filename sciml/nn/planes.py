"""Axis-aligned feature planes: the factorized grid encodings of tri-plane fields (EG3D, K-Planes) and of
HexPlane (Cao & Johnson 2023), sampled bilinearly.

A plane over axes ``(a, b)`` is a learnable ``(C, R_a, R_b)`` grid; a point is projected onto it by
dropping its other coordinate(s) and the plane is read by bilinear interpolation (``grid_sample`` with
``align_corners=True``: grid node ``i`` sits at ``lo + i (hi - lo) / (R - 1)``, so the box edges are nodes).
Coordinates are given in a box ``[lo, hi]^d`` and mapped to ``[-1, 1]``; points outside read the border
value (``padding_mode="border"``), which keeps gradients finite for stray samples.

:class:`FeaturePlanes` holds any set of planes over the axes of a ``d``-dimensional input (``(x, y, z)``
for a tri-plane, ``(x, y, z, t)`` for the HexPlane's three space planes and three space-time planes) and
returns one feature vector per plane; callers fuse them (sum, product or concatenation).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

#: The tri-plane's planes over (x, y, z): XY, YZ, XZ.
TRIPLANE_AXES: tuple[tuple[int, int], ...] = ((0, 1), (1, 2), (0, 2))
#: HexPlane's planes over (x, y, z, t): XY, YZ, XZ in space, then XT, YT, ZT in space-time.
HEXPLANE_AXES: tuple[tuple[int, int], ...] = ((0, 1), (1, 2), (0, 2), (0, 3), (1, 3), (2, 3))


class FeaturePlanes(nn.Module):
    """Learnable ``(C, R_a, R_b)`` planes over pairs of input axes, read bilinearly.

    Args:
        axes: the axis pair of each plane (e.g. :data:`TRIPLANE_AXES`).
        resolution: grid nodes per input axis (one value for all axes, or one per axis).
        channels: features per plane.
        bounds: ``(lo, hi)`` of each input axis (the box the planes cover).
        init: ``"normal"`` (N(0, init_scale^2)), ``"uniform"`` (U(-init_scale, init_scale)), ``"ones"`` (1 +
            N(0, init_scale^2), for planes fused by multiplication, as HexPlane/K-Planes initialize them) or
            ``"zeros"`` (for planes whose output must start at 0, e.g. a deformation).
    """

    def __init__(
        self,
        axes: Sequence[tuple[int, int]],
        resolution: int | Sequence[int],
        channels: int,
        bounds: Sequence[tuple[float, float]],
        init: str = "normal",
        init_scale: float = 0.1,
    ):
        super().__init__()
        dims = len(bounds)
        resolutions = (
            [int(resolution)] * dims if isinstance(resolution, int) else [int(r) for r in resolution]
        )
        if len(resolutions) != dims:
            raise ValueError(f"resolution: expected one value or {dims}, got {resolutions}")
        if min(resolutions) < 2:
            raise ValueError(f"resolution: planes need at least 2 nodes per axis, got {resolutions}")
        for a, b in axes:
            if not (0 <= a < dims and 0 <= b < dims and a != b):
                raise ValueError(f"axes: ({a}, {b}) is not a pair of distinct axes of a {dims}-d input")
        self.axes = [tuple(pair) for pair in axes]
        self.channels = channels
        lo = torch.tensor([float(low) for low, _ in bounds])
        hi = torch.tensor([float(high) for _, high in bounds])
        if not bool((hi > lo).all()):
            raise ValueError(f"bounds: every axis needs lo < hi, got {list(bounds)}")
        self.register_buffer("lo", lo)
        self.register_buffer("hi", hi)
        self.planes = nn.ParameterList(
            nn.Parameter(_initial(init, init_scale, (channels, resolutions[b], resolutions[a])))
            for a, b in self.axes
        )

    @property
    def dims(self) -> int:
        return self.lo.numel()

    def forward(self, coords: Float[Tensor, "N D"]) -> Float[Tensor, "P N C"]:
        """Features of each plane at ``coords`` (``P`` planes, ``N`` points, ``C`` channels)."""
        if coords.ndim != 2 or coords.shape[1] != self.dims:
            raise ValueError(f"expected coordinates (N, {self.dims}), got {tuple(coords.shape)}")
        unit = (coords - self.lo) / (self.hi - self.lo) * 2 - 1  # box -> [-1, 1]
        features = []
        for plane, (a, b) in zip(self.planes, self.axes):
            # grid_sample reads (x, y) = (width index, height index): axis a runs along the plane's last dim.
            grid = unit[:, [a, b]].view(1, -1, 1, 2)  # (1, N, 1, 2)
            sampled = F.grid_sample(
                plane[None], grid, mode="bilinear", padding_mode="border", align_corners=True
            )  # (1, C, N, 1)
            features.append(sampled[0, :, :, 0].t())  # (N, C)
        return torch.stack(features)

    def total_variation(self) -> Tensor:
        """Mean squared difference of neighbouring nodes, over every plane and both plane axes."""
        total = 0.0
        for plane in self.planes:
            total = total + (plane[:, 1:] - plane[:, :-1]).square().mean()
            total = total + (plane[:, :, 1:] - plane[:, :, :-1]).square().mean()
        return total / len(self.planes)


def _initial(init: str, scale: float, shape: tuple[int, int, int]) -> Tensor:
    if init == "normal":
        return torch.randn(shape) * scale
    if init == "uniform":
        return (torch.rand(shape) * 2 - 1) * scale
    if init == "ones":
        return 1 + torch.randn(shape) * scale
    if init == "zeros":
        return torch.zeros(shape)
    raise ValueError(f"init: expected 'normal', 'uniform', 'ones' or 'zeros', got {init!r}")
