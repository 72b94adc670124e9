"""SHaDe's latent prior: autoencoder shapes and learning, the denoiser's shapes, conditioning, gradients,
token layout, and that sciml.diffusion trains and samples it unchanged."""

from __future__ import annotations

import pytest
import torch

from sciml.diffusion import GaussianDiffusion
from sciml.models.shade.latent_prior import LatentDenoiser, PlaneAutoencoder


def _wake(module, seed=1):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            if not parameter.any():
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
    return module


def test_autoencoder_shapes_and_it_learns_to_reconstruct_smooth_planes():
    torch.manual_seed(0)
    autoencoder = PlaneAutoencoder(channels=6, latent_channels=4, downsample=4, hidden=16)
    x = torch.linspace(0, 1, 16)
    planes = torch.stack([torch.sin(3 * k * x)[None, :] * torch.cos(2 * x)[:, None] for k in range(6)])[None]
    assert autoencoder.encode(planes).shape == (1, 4, 4, 4) and autoencoder(planes).shape == planes.shape
    optimizer = torch.optim.Adam(autoencoder.parameters(), lr=3e-3)
    first = float(torch.nn.functional.mse_loss(autoencoder(planes), planes).detach())
    for _ in range(150):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(autoencoder(planes), planes)
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < first / 10
    with pytest.raises(ValueError, match="multiple of 4"):
        autoencoder.encode(torch.zeros(1, 6, 10, 10))
    with pytest.raises(ValueError, match="power of 2"):
        PlaneAutoencoder(channels=6, downsample=3)


def test_denoiser_shapes_conditioning_and_gradients():
    torch.manual_seed(0)
    denoiser = _wake(
        LatentDenoiser(planes=3, latent_channels=2, latent_size=4, patch=2, dim=16, depth=2, heads=2)
    )
    x = torch.randn(2, 3, 2, 4, 4)
    t = torch.tensor([10, 500])
    out = denoiser(x, t, torch.tensor([0.1, 0.9]))
    assert out.shape == x.shape
    assert not torch.allclose(denoiser(x, t, torch.tensor([0.5, 0.9]))[0], out[0])  # the scene time matters
    out.square().mean().backward()
    for name, parameter in denoiser.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    with pytest.raises(ValueError, match=r"expected latents \(B, 3, 2, 4, 4\)"):
        denoiser(torch.zeros(2, 3, 2, 8, 8), t)


def test_tokens_map_back_to_their_own_patch():
    """Without blocks, the output at a patch depends only on that patch's input."""
    denoiser = LatentDenoiser(planes=2, latent_channels=1, latent_size=4, patch=2, dim=8, depth=1, heads=2)
    denoiser.blocks = torch.nn.ModuleList()
    _wake(denoiser)
    x = torch.randn(1, 2, 1, 4, 4)
    changed = x.clone()
    changed[0, 1, 0, 2:, 2:] += 1.0  # the last patch of plane 1
    difference = (denoiser(changed, torch.tensor([3])) - denoiser(x, torch.tensor([3]))).abs()[0]
    assert difference[1, 0, 2:, 2:].sum() > 0
    difference[1, 0, 2:, 2:] = 0
    assert difference.sum() == 0


def test_the_diffusion_package_trains_and_samples_the_prior_unchanged():
    torch.manual_seed(0)
    denoiser = LatentDenoiser(planes=2, latent_channels=2, latent_size=4, patch=2, dim=16, depth=1, heads=2)
    diffusion = GaussianDiffusion.from_schedule()
    latents, times = torch.randn(3, 2, 2, 4, 4), torch.tensor([0.0, 0.5, 1.0])
    loss = diffusion.training_loss(denoiser, latents, times)
    assert loss.shape == (3,) and bool(torch.isfinite(loss).all())
    sample = diffusion.sample(denoiser, (3, 2, 2, 4, 4), times, sampler="ddim", steps=3)
    assert sample.shape == (3, 2, 2, 4, 4)
