"""SHaDe's latent prior: autoencoder shapes and learning, the denoiser's shapes, conditioning, gradients,
token layout, that sciml.diffusion trains and samples it unchanged, the field's plane features it models,
and how LatentPrior's losses route gradients."""

from __future__ import annotations

import pytest
import torch

from sciml.diffusion import GaussianDiffusion
from sciml.models.shade import LatentPrior, ShadeField
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


def _small_field(seed=0):
    torch.manual_seed(seed)
    field = ShadeField(
        resolution=16, channels=4, deformation_resolution=8, deformation_channels=4, token_dim=8
    )
    with torch.no_grad():  # a moving scene: non-zero deformation planes and time modulation
        for plane in field.deformation.planes.planes:
            plane.normal_()
        field.deformation.modulation.linear.weight.normal_()
    return field


def test_plane_features_are_the_planes_the_field_reads_at_that_time():
    field = _small_field()
    times = torch.tensor([0.2, 0.7])
    planes = field.plane_features(times, resolution=8)
    assert planes.shape == (2, 6, 4, 8, 8)
    # The canonical planes do not depend on time; the deformation planes do.
    torch.testing.assert_close(planes[0, :3], planes[1, :3])
    assert not torch.allclose(planes[0, 3:], planes[1, 3:])
    # At their own resolution, the modulated planes read bilinearly and summed give the deformation features.
    x = torch.rand(50, 3) * 3 - 1.5
    moving = field.deformation.modulated_planes(torch.tensor([0.7]))[0]  # (3, C, 8, 8)
    reader = field.deformation.planes
    with torch.no_grad():
        original = [plane.clone() for plane in reader.planes]
        for plane, value in zip(reader.planes, moving):
            plane.copy_(value)
        read = reader(x).sum(dim=0)
        for plane, value in zip(reader.planes, original):
            plane.copy_(value)
    torch.testing.assert_close(read, field.deformation.features(x, torch.full((50,), 0.7)))


def test_plane_features_refuse_unequal_channel_counts():
    field = ShadeField(
        resolution=8, channels=4, deformation_resolution=8, deformation_channels=6, token_dim=8
    )
    with pytest.raises(ValueError, match="deformation_channels"):
        field.plane_features(torch.zeros(1), resolution=8)


def _prior():
    torch.manual_seed(1)
    return LatentPrior(
        channels=4, resolution=8, latent_channels=2, downsample=2, hidden=8, dim=16, depth=1, heads=2
    )


def test_prior_losses_train_each_part_on_its_own_loss_only():
    prior, field = _prior(), _small_field()
    times = torch.tensor([0.1, 0.9])
    planes = field.plane_features(times, 8).detach()
    terms = prior.losses(planes, times)
    assert prior.latent_scale > 0  # set from the first training batch
    terms["denoising"].backward()
    assert all(p.grad is None for p in prior.autoencoder.parameters())  # the encoder cannot game the noise
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in prior.denoiser.parameters())
    prior.zero_grad(set_to_none=True)
    prior.losses(planes, times)["reconstruction"].backward()
    assert all(p.grad is None for p in prior.denoiser.parameters())
    assert all(p.grad is not None for p in prior.autoencoder.parameters())


def test_the_frozen_prior_refines_planes_without_training_itself():
    prior, field = _prior(), _small_field()
    _wake(prior.denoiser)  # adaLN-Zero starts as eps = 0, constant in its input: no gradient to planes
    times = torch.tensor([0.3])
    prior.losses(field.plane_features(times, 8).detach(), times)  # calibrates latent_scale
    frozen = {name: weight.detach() for name, weight in prior.named_parameters()}
    refinement = torch.func.functional_call(prior, frozen, (field.plane_features(times, 8), times))
    refinement.backward()
    assert all(p.grad is None for p in prior.parameters())
    assert field.canonical.planes[0].grad.abs().sum() > 0
    assert field.deformation.planes.planes[0].grad.abs().sum() > 0
    assert field.deformation.modulation.linear.weight.grad.abs().sum() > 0


def test_latent_scale_is_a_running_estimate_in_training_only():
    prior = _prior()
    planes, times = torch.randn(2, 6, 4, 8, 8), torch.rand(2)
    prior.losses(planes, times)
    first = float(prior.latent_scale)
    prior.losses(3 * torch.randn(2, 6, 4, 8, 8), times)  # normalized per plane: about the same scale
    second = float(prior.latent_scale)
    assert second != first and abs(second - first) / first < 0.1
    prior.eval()
    prior.losses(planes, times)
    assert float(prior.latent_scale) == second


def test_pretraining_lowers_the_prior_loss_on_fixed_planes():
    prior, field = _prior(), _small_field()
    times = torch.linspace(0, 1, 4)
    planes = field.plane_features(times, 8).detach()
    optimizer = torch.optim.Adam(prior.parameters(), lr=3e-3)

    def total(seed):
        torch.manual_seed(seed)  # the same diffusion steps and noise before and after
        terms = prior.losses(planes, times)
        return terms["reconstruction"] + terms["denoising"]

    before = float(total(123))
    for step in range(150):
        optimizer.zero_grad()
        total(step).backward()
        optimizer.step()
    assert float(total(123)) < 0.6 * before


def test_prior_rejects_planes_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"expected planes \(B, 6, 4, 8, 8\)"):
        _prior().losses(torch.zeros(1, 6, 4, 16, 16), torch.zeros(1))
