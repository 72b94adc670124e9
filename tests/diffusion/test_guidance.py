"""Classifier-free guidance: label dropout, the guided combination on every channel, one batched call."""

import pytest
import torch

from sciml.diffusion import (
    GaussianDiffusion,
    classifier_free_guidance,
    concat_conditions,
    drop_labels,
    guided_eps,
)

NULL = 10  # the reserved "no class" label of a 10-class model


class ClassConstantNet:
    """eps = per-channel constants that differ between every class and the null class on every channel."""

    def __init__(self, channels: int = 4):
        self.channels = channels
        self.calls: list[tuple[tuple[int, ...], torch.Tensor, torch.Tensor]] = []

    def values(self, labels: torch.Tensor) -> torch.Tensor:
        channel = torch.arange(self.channels, dtype=torch.float32)
        conditional = 0.3 * labels[:, None].float() + 1.0 + channel  # (B, C)
        unconditional = -2.0 * (channel + 1.0)  # (C,)
        return torch.where((labels == NULL)[:, None], unconditional, conditional)

    def __call__(self, x, t, cond):
        self.calls.append((tuple(x.shape), t.clone(), cond.clone()))
        return self.values(cond)[:, :, None, None].expand_as(x) + 0 * x  # (B, C, H, W)


def test_combination_is_uncond_plus_scale_times_difference():
    cond, uncond = torch.tensor([1.0, -2.0, 0.5]), torch.tensor([0.0, 1.0, 0.5])
    torch.testing.assert_close(classifier_free_guidance(cond, uncond, 3.0), torch.tensor([3.0, -8.0, 0.5]))
    torch.testing.assert_close(classifier_free_guidance(cond, uncond, 1.0), cond)
    torch.testing.assert_close(classifier_free_guidance(cond, uncond, 0.0), uncond)
    with pytest.raises(ValueError, match="differ in shape"):
        classifier_free_guidance(cond, uncond[:2], 2.0)


def test_guidance_applies_to_every_output_channel():
    # DiT's sampler guided only channels [:3] of 4; every channel here has distinct cond and uncond values,
    # so leaving any channel unguided (or guiding it with another channel's values) fails the check.
    net = ClassConstantNet(channels=4)
    labels = torch.tensor([0, 3, 7])
    x = torch.randn(3, 4, 5, 6)
    scale = 4.0
    guided = guided_eps(net, x, torch.full((3,), 17), labels, scale, torch.tensor(NULL))
    cond = net.values(labels)
    uncond = net.values(torch.full((3,), NULL))
    assert (cond != uncond).all() and (cond - uncond).abs().min() > 0.5
    for channel in range(4):
        expected = uncond[:, channel] + scale * (cond[:, channel] - uncond[:, channel])  # (B,)
        torch.testing.assert_close(guided[:, channel], expected[:, None, None].expand(3, 5, 6))
        assert not torch.allclose(guided[:, channel], cond[:, channel, None, None].expand(3, 5, 6))


def test_conditional_and_unconditional_branches_share_one_batched_call():
    net = ClassConstantNet(channels=2)
    labels = torch.tensor([1, 2])
    t = torch.tensor([5, 9])
    guided_eps(net, torch.randn(2, 2, 3, 3), t, labels, 2.5, NULL)
    assert len(net.calls) == 1
    shape, t_seen, cond_seen = net.calls[0]
    assert shape == (4, 2, 3, 3)
    assert t_seen.tolist() == [5, 9, 5, 9]
    assert cond_seen.tolist() == [1, 2, NULL, NULL]


def test_scale_one_is_the_plain_conditional_call():
    net = ClassConstantNet(channels=3)
    x = torch.randn(2, 3, 4, 4)
    labels = torch.tensor([4, 5])
    out = guided_eps(net, x, torch.tensor([3, 3]), labels, 1.0, NULL)
    assert len(net.calls) == 1 and net.calls[0][0] == (2, 3, 4, 4)  # no unconditional half
    torch.testing.assert_close(out, net(x, torch.tensor([3, 3]), labels))


def test_sampling_with_scale_one_equals_conditional_sampling():
    diffusion = GaussianDiffusion.from_schedule(num_steps=40)

    def net(x, t, cond):  # a class-dependent, x-dependent eps
        return 0.5 * x + 0.1 * cond.float()[:, None, None] * torch.tanh(x)

    labels = torch.tensor([0, 1, 2, 3])
    for sampler in ("ddpm", "ddim", "dpmpp_2m"):
        steps = None if sampler == "ddpm" else 8
        plain = diffusion.sample(
            net, (4, 5, 3), labels, sampler, steps, generator=torch.Generator().manual_seed(3)
        )
        guided = diffusion.sample(
            net, (4, 5, 3), labels, sampler, steps, 1.0, NULL, generator=torch.Generator().manual_seed(3)
        )
        assert torch.equal(plain, guided), sampler


def test_guided_sampling_counts_one_nfe_per_batched_call():
    diffusion = GaussianDiffusion.from_schedule(num_steps=30)
    net = ClassConstantNet(channels=2)
    labels = torch.tensor([1, 2, 3])
    for sampler, steps, expected in (("ddpm", None, 30), ("ddim", 7, 7), ("dpmpp_2m", 7, 7)):
        net.calls.clear()
        x, nfe = diffusion.sample(
            net,
            (3, 2, 4, 4),
            labels,
            sampler,
            steps,
            3.0,
            NULL,
            torch.Generator().manual_seed(0),
            return_nfe=True,
        )
        assert nfe == expected == len(net.calls)
        assert all(shape == (6, 2, 4, 4) for shape, _, _ in net.calls)
        assert x.shape == (3, 2, 4, 4)


def test_guided_sampling_follows_the_guided_eps():
    # With eps independent of x, one DDIM step from t to clean data is x0 = (x_T - sqrt(1 - abar) eps) /
    # sqrt(abar): the sample must move by the *guided* eps on every channel.
    diffusion = GaussianDiffusion.from_schedule(num_steps=20)
    net = ClassConstantNet(channels=3)
    labels = torch.tensor([2, 6])
    noise = torch.randn(2, 3, 2, 2)
    x0 = diffusion.sample(net, (2, 3, 2, 2), labels, "ddim", 1, 2.0, NULL, noise=noise)
    eps = classifier_free_guidance(net.values(labels), net.values(torch.full((2,), NULL)), 2.0)[
        :, :, None, None
    ]
    abar = diffusion.alphas_cumprod[-1].item()
    torch.testing.assert_close(x0, (noise - (1 - abar) ** 0.5 * eps) / abar**0.5)


def test_guidance_needs_a_condition_and_a_null_condition():
    net = ClassConstantNet()
    x, t = torch.randn(2, 4, 2, 2), torch.tensor([1, 1])
    with pytest.raises(ValueError, match="needs both a condition and a null condition"):
        guided_eps(net, x, t, torch.tensor([1, 2]), 2.0, None)
    with pytest.raises(ValueError, match="needs both a condition and a null condition"):
        guided_eps(net, x, t, None, 2.0, NULL)


def test_concat_conditions_broadcasts_null_conditions():
    labels = torch.tensor([3, 4])
    assert concat_conditions(labels, NULL).tolist() == [3, 4, NULL, NULL]
    assert concat_conditions(labels, torch.tensor(NULL)).tolist() == [3, 4, NULL, NULL]
    embeddings = torch.ones(2, 3)
    both = concat_conditions({"emb": embeddings, "label": labels}, {"emb": torch.zeros(1, 3), "label": NULL})
    assert both["emb"].shape == (4, 3) and both["emb"][2:].eq(0).all() and both["emb"][:2].eq(1).all()
    assert both["label"].tolist() == [3, 4, NULL, NULL]
    assert concat_conditions((labels,), (NULL,))[0].tolist() == [3, 4, NULL, NULL]
    with pytest.raises(ValueError, match=r"does not broadcast to the condition's shape \(2, 3\)"):
        concat_conditions(embeddings, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="with the condition's keys"):
        concat_conditions({"emb": embeddings}, {"other": embeddings})
    with pytest.raises(TypeError, match="needs a tensor"):
        concat_conditions("a prompt", "")


def test_drop_labels_replaces_with_the_given_probability():
    labels = torch.arange(100_000) % 10
    dropped = drop_labels(labels, 0.3, NULL, torch.Generator().manual_seed(0))
    replaced = dropped == NULL
    # Binomial(100000, 0.3): standard deviation 0.00145 in the fraction.
    assert abs(replaced.float().mean().item() - 0.3) < 0.006
    assert torch.equal(dropped[~replaced], labels[~replaced])  # the rest is untouched
    assert dropped.dtype == labels.dtype
    assert labels.max() == 9  # the input is not modified
    # Dropping is independent of the class.
    for label in range(10):
        assert abs(replaced[labels == label].float().mean().item() - 0.3) < 0.02


def test_drop_labels_extremes_reproducibility_and_global_rng():
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7])
    assert torch.equal(drop_labels(labels, 0.0, NULL), labels)
    assert (drop_labels(labels, 1.0, NULL) == NULL).all()
    state = torch.get_rng_state()
    a = drop_labels(labels.repeat(100), 0.5, NULL, torch.Generator().manual_seed(7))
    b = drop_labels(labels.repeat(100), 0.5, NULL, torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b)
    assert not torch.equal(a, drop_labels(labels.repeat(100), 0.5, NULL, torch.Generator().manual_seed(8)))


def test_drop_labels_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        drop_labels(torch.tensor([1, 2]), 1.5, NULL)
    with pytest.raises(TypeError, match="integer tensor"):
        drop_labels(torch.tensor([1.0, 2.0]), 0.1, NULL)
