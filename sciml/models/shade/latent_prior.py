"""SHaDe's latent prior: an autoencoder that compresses plane features, and a time-aware transformer
denoiser over the compressed planes, trained with :mod:`sciml.diffusion` unchanged.

The paper states a transformer latent diffusion prior, aware of time, that refines the tri-plane and
deformation features in a compressed latent space; the architecture is sciml's choice (configurable):

* :class:`PlaneAutoencoder`: each plane ``(C, R, R)`` is encoded on its own by a small convolutional
  encoder (``downsample`` = 2^k stride-2 convolutions with SiLU) to ``(c, R/2^k, R/2^k)`` and decoded by
  the mirror image (transposed convolutions); planes of one field share the autoencoder.
* :class:`LatentDenoiser`: the ``P`` latent planes are cut into ``patch x patch`` tokens
  (``P (R'/patch)^2`` tokens), given a fixed 2-D sin-cos position embedding plus a learned embedding per
  plane, and denoised by adaLN-Zero transformer blocks (:class:`sciml.nn.adaln.AdaLNZeroBlock`)
  conditioned on the diffusion timestep and the scene time (both sinusoidal,
  :class:`sciml.nn.embeddings.TimestepEmbedder`; the scene time in [0, 1] is scaled by 1000 so it spans
  the same frequencies). It follows the denoiser protocol ``net(x, t, cond)``: ``x`` is
  ``(B, P, c, R', R')``, ``t`` the diffusion step, ``cond`` the scene time ``(B,)``; it predicts the noise.
* :class:`LatentPrior`: both, plus the diffusion process (:class:`sciml.diffusion.GaussianDiffusion`,
  ``schedule`` over ``diffusion_steps``), over the ``P`` planes of a field at one scene time resized to
  ``resolution`` (:meth:`sciml.models.shade.ShadeField.plane_features`). Each plane is divided by its
  root-mean-square value (a constant, no gradient) so the small deformation features weigh as much as the
  canonical ones, and latents are multiplied by ``latent_scale``, a running estimate of one over their
  standard deviation (as latent diffusion scales its latents to unit variance). Its losses keep the parts
  apart: the autoencoder learns from the reconstruction error only and the denoiser from the noise error
  on the autoencoder's detached latents, so the encoder cannot make latents trivially easy to denoise;
  :meth:`LatentPrior.forward` is the noise error of planes under the frozen prior, whose gradient refines
  the planes (the joint stage of :class:`sciml.tasks.shade.ShadeTask`).
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor, nn

from sciml.diffusion import GaussianDiffusion
from sciml.nn.adaln import AdaLNFinalLayer, AdaLNZeroBlock
from sciml.nn.embeddings import TimestepEmbedder, sincos_1d


class PlaneAutoencoder(nn.Module):
    """``(B, C, R, R)`` planes <-> ``(B, c, R / 2^k, R / 2^k)`` latents (module docstring).

    Args:
        channels: plane channels ``C``.
        latent_channels: latent channels ``c``.
        downsample: spatial reduction factor (a power of 2).
        hidden: width of the intermediate convolutions.
    """

    def __init__(self, channels: int, latent_channels: int = 4, downsample: int = 4, hidden: int = 32):
        super().__init__()
        levels = int(round(math.log2(downsample)))
        if 2**levels != downsample or levels < 1:
            raise ValueError(f"downsample: expected a power of 2 >= 2, got {downsample}")
        self.downsample = downsample
        encoder: list[nn.Module] = [nn.Conv2d(channels, hidden, 3, padding=1)]
        for _ in range(levels):
            encoder += [nn.SiLU(), nn.Conv2d(hidden, hidden, 4, stride=2, padding=1)]
        encoder += [nn.SiLU(), nn.Conv2d(hidden, latent_channels, 3, padding=1)]
        decoder: list[nn.Module] = [nn.Conv2d(latent_channels, hidden, 3, padding=1)]
        for _ in range(levels):
            decoder += [nn.SiLU(), nn.ConvTranspose2d(hidden, hidden, 4, stride=2, padding=1)]
        decoder += [nn.SiLU(), nn.Conv2d(hidden, channels, 3, padding=1)]
        self.encoder, self.decoder = nn.Sequential(*encoder), nn.Sequential(*decoder)

    def encode(self, planes: Float[Tensor, "B C R R"]) -> Float[Tensor, "B c r r"]:
        if planes.ndim != 4 or planes.shape[-1] % self.downsample or planes.shape[-2] % self.downsample:
            shape = tuple(planes.shape)
            raise ValueError(
                f"expected planes (B, C, R, R) with R a multiple of {self.downsample}, got {shape}"
            )
        return self.encoder(planes)

    def decode(self, latents: Float[Tensor, "B c r r"]) -> Float[Tensor, "B C R R"]:
        return self.decoder(latents)

    def forward(self, planes: Float[Tensor, "B C R R"]) -> Float[Tensor, "B C R R"]:
        return self.decode(self.encode(planes))


class LatentDenoiser(nn.Module):
    """Noise prediction for ``P`` latent planes, conditioned on the diffusion step and the scene time.

    Args:
        planes: latent planes per sample ``P``.
        latent_channels: channels ``c`` of a latent plane.
        latent_size: edge ``R'`` of a latent plane.
        patch: token edge (``R'`` must be a multiple of it).
        dim, depth, heads: transformer width, blocks and heads.
    """

    def __init__(
        self,
        planes: int = 6,
        latent_channels: int = 4,
        latent_size: int = 16,
        patch: int = 2,
        dim: int = 128,
        depth: int = 4,
        heads: int = 4,
    ):
        super().__init__()
        if latent_size % patch:
            raise ValueError(f"latent_size {latent_size} is not a multiple of patch {patch}")
        if dim % 4:
            raise ValueError(f"dim must be divisible by 4 (2-D sin-cos embedding), got {dim}")
        self.config = dict(
            planes=planes,
            latent_channels=latent_channels,
            latent_size=latent_size,
            patch=patch,
            dim=dim,
            depth=depth,
            heads=heads,
        )
        self.planes, self.channels, self.size, self.patch = planes, latent_channels, latent_size, patch
        grid = latent_size // patch
        self.embed = nn.Linear(latent_channels * patch * patch, dim)
        rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
        position = torch.cat([sincos_1d(dim // 2, rows), sincos_1d(dim // 2, cols)], dim=1).float()
        self.register_buffer("position", position, persistent=False)  # (grid^2, dim), rebuilt from config
        self.plane_embedding = nn.Parameter(torch.randn(planes, dim) * 0.02)
        self.step_embedder = TimestepEmbedder(dim)
        self.time_embedder = TimestepEmbedder(dim)
        self.blocks = nn.ModuleList(AdaLNZeroBlock(dim, heads) for _ in range(depth))
        self.final = AdaLNFinalLayer(dim, latent_channels * patch * patch)

    def forward(
        self, x: Float[Tensor, "B P c r r"], t: Tensor, cond: Float[Tensor, " B"] | None = None
    ) -> Float[Tensor, "B P c r r"]:
        expected = (self.planes, self.channels, self.size, self.size)
        if x.ndim != 5 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"expected latents (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        batch, p, g = x.shape[0], self.patch, self.size // self.patch
        # (B, P, c, g p, g p) -> (B, P, g, g, c p p) -> (B, P g^2, c p^2)
        tokens = x.view(batch, self.planes, self.channels, g, p, g, p).permute(0, 1, 3, 5, 2, 4, 6)
        tokens = self.embed(tokens.reshape(batch, self.planes, g * g, -1))
        tokens = tokens + self.position + self.plane_embedding[:, None]  # (B, P, g^2, dim)
        tokens = tokens.reshape(batch, self.planes * g * g, -1)
        scene_time = torch.zeros(batch, device=x.device) if cond is None else cond
        c = self.step_embedder(t) + self.time_embedder(scene_time * 1000)
        for block in self.blocks:
            tokens = block(tokens, c)
        out = self.final(tokens, c).view(batch, self.planes, g, g, self.channels, p, p)
        return out.permute(0, 1, 4, 2, 5, 3, 6).reshape(x.shape)  # back to (B, P, c, g p, g p)


class LatentPrior(nn.Module):
    """Autoencoder + time-aware latent denoiser + diffusion process over a field's planes (module docstring).

    Args:
        planes: planes per scene time ``P`` (6 for SHaDe: three canonical, three deformation planes).
        channels: plane channels ``C``.
        resolution: edge the planes are resized to before encoding.
        latent_channels, downsample, hidden: the :class:`PlaneAutoencoder`.
        patch, dim, depth, heads: the :class:`LatentDenoiser`.
        schedule, diffusion_steps: the beta schedule (:func:`sciml.diffusion.beta_schedule`).
        scale_momentum: weight of the previous value in the running ``latent_scale``.
    """

    latent_scale: Tensor

    def __init__(
        self,
        planes: int = 6,
        channels: int = 32,
        resolution: int = 64,
        latent_channels: int = 4,
        downsample: int = 4,
        hidden: int = 32,
        patch: int = 2,
        dim: int = 128,
        depth: int = 4,
        heads: int = 4,
        schedule: str = "linear",
        diffusion_steps: int = 1000,
        scale_momentum: float = 0.99,
    ):
        super().__init__()
        if resolution % downsample:
            raise ValueError(f"resolution {resolution} is not a multiple of downsample {downsample}")
        self.config = dict(
            planes=planes,
            channels=channels,
            resolution=resolution,
            latent_channels=latent_channels,
            downsample=downsample,
            hidden=hidden,
            patch=patch,
            dim=dim,
            depth=depth,
            heads=heads,
            schedule=schedule,
            diffusion_steps=diffusion_steps,
            scale_momentum=scale_momentum,
        )
        self.planes, self.channels, self.resolution = planes, channels, resolution
        self.scale_momentum = scale_momentum
        self.autoencoder = PlaneAutoencoder(channels, latent_channels, downsample, hidden)
        self.denoiser = LatentDenoiser(
            planes, latent_channels, resolution // downsample, patch, dim, depth, heads
        )
        self.diffusion = GaussianDiffusion.from_schedule(schedule, diffusion_steps)
        self.register_buffer("latent_scale", torch.zeros(()))  # 0 until the first training batch

    def _normalized(self, planes: Float[Tensor, "B P C R R"]) -> Tensor:
        expected = (self.planes, self.channels, self.resolution, self.resolution)
        if planes.ndim != 5 or tuple(planes.shape[1:]) != expected:
            raise ValueError(
                f"expected planes (B, {', '.join(map(str, expected))}), got {tuple(planes.shape)}"
            )
        rms = planes.detach().square().mean(dim=(0, 2, 3, 4), keepdim=True).sqrt()
        return planes / rms.clamp_min(1e-6)

    def _encode(self, normalized: Float[Tensor, "B P C R R"]) -> Float[Tensor, "B P c r r"]:
        latents = self.autoencoder.encode(normalized.flatten(0, 1))
        return latents.view(*normalized.shape[:2], *latents.shape[1:])

    def losses(self, planes: Float[Tensor, "B P C R R"], times: Float[Tensor, " B"]) -> dict[str, Tensor]:
        """The prior's own training losses: ``reconstruction`` (autoencoder) and ``denoising`` (denoiser)."""
        normalized = self._normalized(planes)
        latents = self._encode(normalized)
        decoded = self.autoencoder.decode(latents.flatten(0, 1)).view_as(normalized)
        if self.training:
            scale = 1.0 / latents.detach().std().clamp_min(1e-6)
            if self.latent_scale == 0:
                self.latent_scale.copy_(scale)
            else:
                self.latent_scale.lerp_(scale, 1.0 - self.scale_momentum)
        denoising = self.diffusion.training_loss(self.denoiser, latents.detach() * self.latent_scale, times)
        return {"reconstruction": (decoded - normalized).square().mean(), "denoising": denoising.mean()}

    def forward(self, planes: Float[Tensor, "B P C R R"], times: Float[Tensor, " B"]) -> Tensor:
        """Noise-prediction error of ``planes`` at scene ``times`` (the score-matching loss), differentiable
        with respect to the planes; call it through frozen weights to refine planes (module docstring)."""
        latents = self._encode(self._normalized(planes)) * self.latent_scale
        return self.diffusion.training_loss(self.denoiser, latents, times).mean()
