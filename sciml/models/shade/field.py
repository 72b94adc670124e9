"""Dynamic radiance fields for SHaDe: the SHaDe field and a HexPlane-style baseline, built from the same
plane encodings (:mod:`sciml.nn.planes`) and rendered by the same volume renderer (:mod:`sciml.rendering`).

Both are ``field(points (N, 3), directions (N, 3), times (N,)) -> {"density": (N,), "rgb": (N, 3), ...}``
with ``regularizers()`` returning their plane total variation and time-smoothness terms.

* :class:`ShadeField` (the paper's design): the deformation tri-plane maps ``(x, t)`` to the canonical
  point ``x_c = x + dx`` (:class:`~sciml.models.shade.deformation.TriPlaneDeformation`); a canonical
  tri-plane (XY, YZ, XZ) is read at ``x_c`` and its three feature vectors summed; density is
  ``softplus(w . f + b)``; colour comes from the SH-attention head
  (:class:`~sciml.models.shade.sh_head.SHAttentionHead`). Choices where the paper is silent: summation
  (as for the deformation planes), softplus density, ``b = -1`` so empty space starts nearly transparent.
* :class:`HexPlaneField` (the baseline, after Cao & Johnson 2023, no deformation): six planes over
  ``(x, y, z, t)``; each space plane is multiplied with its complementary space-time plane (XY x ZT,
  YZ x XT, XZ x YT), the three products concatenated; density is a linear map + softplus and colour a
  small MLP of the features and the degree-2 SH of the view direction.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from sciml.models.shade.deformation import TriPlaneDeformation
from sciml.models.shade.sh_head import SHAttentionHead
from sciml.nn.planes import HEXPLANE_AXES, TRIPLANE_AXES, FeaturePlanes
from sciml.rendering.sh import spherical_harmonics


def _check_inputs(points: Tensor, directions: Tensor, times: Tensor) -> None:
    n = points.shape[0]
    if points.shape != (n, 3) or directions.shape != (n, 3) or times.shape != (n,):
        shapes = f"{tuple(points.shape)}, {tuple(directions.shape)}, {tuple(times.shape)}"
        raise ValueError(f"expected points (N, 3), directions (N, 3), times (N,), got {shapes}")


class ShadeField(nn.Module):
    """Deformation tri-plane + canonical tri-plane + SH-attention colour (module docstring).

    Args:
        bounds: ``(lo, hi)`` of x, y, z (the scene box).
        resolution, channels: canonical planes (256 x 256, 32 channels in the paper).
        deformation_resolution, deformation_channels: deformation planes (256, 32 in the paper).
        learn_projection: learn the deformation's 32 x 3 map (else a fixed random projection).
        time_frequencies: Fourier frequencies of the deformation's time modulation.
        sh_degree, token_dim, heads: the SH-attention head.
    """

    def __init__(
        self,
        bounds: Sequence[tuple[float, float]] = ((-1.5, 1.5),) * 3,
        resolution: int = 256,
        channels: int = 32,
        deformation_resolution: int = 256,
        deformation_channels: int = 32,
        learn_projection: bool = True,
        time_frequencies: int = 4,
        sh_degree: int = 3,
        token_dim: int = 32,
        heads: int = 2,
    ):
        super().__init__()
        bounds = [tuple(float(v) for v in pair) for pair in bounds]
        self.config = dict(
            bounds=bounds,
            resolution=resolution,
            channels=channels,
            deformation_resolution=deformation_resolution,
            deformation_channels=deformation_channels,
            learn_projection=learn_projection,
            time_frequencies=time_frequencies,
            sh_degree=sh_degree,
            token_dim=token_dim,
            heads=heads,
        )
        self.deformation = TriPlaneDeformation(
            bounds, deformation_resolution, deformation_channels, learn_projection, time_frequencies
        )
        self.canonical = FeaturePlanes(
            TRIPLANE_AXES, resolution, channels, bounds, init="normal", init_scale=0.1
        )
        self.density = nn.Linear(channels, 1)
        nn.init.constant_(self.density.bias, -1.0)
        self.head = SHAttentionHead(channels, sh_degree, token_dim, heads)

    def forward(
        self, points: Float[Tensor, "N 3"], directions: Float[Tensor, "N 3"], times: Float[Tensor, " N"]
    ) -> dict[str, Tensor]:
        _check_inputs(points, directions, times)
        offset = self.deformation(points, times)
        canonical = points + offset
        features = self.canonical(canonical).sum(dim=0)  # (3, N, C) -> (N, C)
        density = F.softplus(self.density(features)[:, 0])
        return {"density": density, "rgb": self.head(features, directions), "offset": offset}

    def plane_features(self, times: Float[Tensor, " B"], resolution: int) -> Float[Tensor, "B 6 C R R"]:
        """What the latent prior models: the canonical planes and the deformation planes at each time
        (:meth:`TriPlaneDeformation.modulated_planes`), resized bilinearly to ``resolution``."""
        channels = self.config["channels"]
        if self.config["deformation_channels"] != channels:
            raise ValueError(
                "plane_features stacks canonical and deformation planes: channels "
                f"({channels}) and deformation_channels ({self.config['deformation_channels']}) must match"
            )

        def resize(planes: Tensor) -> Tensor:
            return F.interpolate(planes, size=(resolution, resolution), mode="bilinear", align_corners=True)

        canonical = resize(torch.stack(list(self.canonical.planes)))  # (3, C, R, R)
        moving = self.deformation.modulated_planes(times)  # (B, 3, C, R_d, R_d)
        moving = resize(moving.flatten(0, 1)).view(len(times), 3, channels, resolution, resolution)
        return torch.cat([canonical.expand(len(times), -1, -1, -1, -1), moving], dim=1)

    def regularizers(self, sample_points: Float[Tensor, "M 3"] | None = None) -> dict[str, Tensor]:
        terms = {"tv": self.canonical.total_variation() + self.deformation.planes.total_variation()}
        if sample_points is not None:
            terms["time_smoothness"] = self.deformation.time_smoothness(sample_points)
        return terms


class HexPlaneField(nn.Module):
    """HexPlane-style baseline: six planes fused by multiplication, a small decoder, no deformation.

    Args:
        bounds: ``(lo, hi)`` of x, y, z.
        resolution: space plane nodes per axis; ``time_resolution``: nodes along t.
        channels: channels per plane (the concatenated feature has ``3 * channels``).
        hidden: width of the colour MLP.
    """

    def __init__(
        self,
        bounds: Sequence[tuple[float, float]] = ((-1.5, 1.5),) * 3,
        resolution: int = 256,
        time_resolution: int = 32,
        channels: int = 24,
        hidden: int = 64,
    ):
        super().__init__()
        bounds = [tuple(float(v) for v in pair) for pair in bounds]
        self.config = dict(
            bounds=bounds,
            resolution=resolution,
            time_resolution=time_resolution,
            channels=channels,
            hidden=hidden,
        )
        resolutions = [resolution, resolution, resolution, time_resolution]
        self.planes = FeaturePlanes(HEXPLANE_AXES, resolutions, channels, [*bounds, (0.0, 1.0)], init="ones")
        self.density = nn.Linear(3 * channels, 1)
        nn.init.constant_(self.density.bias, -1.0)
        self.colour = nn.Sequential(
            nn.Linear(3 * channels + 9, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 3),
        )

    def forward(
        self, points: Float[Tensor, "N 3"], directions: Float[Tensor, "N 3"], times: Float[Tensor, " N"]
    ) -> dict[str, Tensor]:
        _check_inputs(points, directions, times)
        planes = self.planes(torch.cat([points, times[:, None]], dim=1))  # (6, N, C)
        # space planes XY, YZ, XZ times their complementary space-time planes ZT, XT, YT
        features = torch.cat([planes[0] * planes[5], planes[1] * planes[3], planes[2] * planes[4]], dim=1)
        density = F.softplus(self.density(features)[:, 0])
        rgb = torch.sigmoid(self.colour(torch.cat([features, spherical_harmonics(directions, 2)], dim=1)))
        return {"density": density, "rgb": rgb}

    def regularizers(self, sample_points: Float[Tensor, "M 3"] | None = None) -> dict[str, Tensor]:
        time_planes = self.planes.planes[3:]  # (C, R_t, R_space): t runs along dim 1
        smoothness = sum(
            (plane[:, 2:] - 2 * plane[:, 1:-1] + plane[:, :-2]).square().mean() for plane in time_planes
        ) / len(time_planes)
        return {"tv": self.planes.total_variation(), "time_smoothness": smoothness}
