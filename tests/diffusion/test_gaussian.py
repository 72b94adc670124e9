"""GaussianDiffusion: schedule quantities, forward process, loss, and the samplers against exact Gaussians.

The key check: for data x0 ~ N(mu, s^2) (independent per dimension) the eps-predictor
``eps*(x_t, t) = sqrt(1 - abar_t) (x_t - sqrt(abar_t) mu) / (abar_t s^2 + 1 - abar_t)`` is exact, and
the probability-flow ODE keeps ``z = (x_t - sqrt(abar_t) mu) / sqrt(abar_t s^2 + 1 - abar_t)`` constant,
so every deterministic sample has a known exact value and the samplers' errors can be measured per path.
"""

import math
import typing

import pytest
import torch
from jaxtyping import jaxtyped

from sciml.diffusion import GaussianDiffusion, beta_schedule

MU = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
STD = torch.tensor([0.3, 1.0, 1.5], dtype=torch.float64)


@pytest.fixture(scope="module")
def diffusion():
    return GaussianDiffusion.from_schedule("linear", 1000)


def exact_gaussian_eps(diffusion, mu=MU, std=STD):
    """The exact eps-predictor of per-coordinate Gaussian data, for x of shape (B, N, 3)."""
    abar = diffusion.alphas_cumprod

    def net(x, t, cond):
        a = abar[t].to(x.dtype).reshape(-1, 1, 1)  # (B, 1, 1)
        m, s = mu.to(x.dtype), std.to(x.dtype)
        return (1 - a).sqrt() * (x - a.sqrt() * m) / (a * s**2 + 1 - a)

    return net


def exact_flow(diffusion, x_T):
    """The probability-flow ODE solution at clean data from x_T at t = T - 1."""
    a = diffusion.alphas_cumprod[-1].item()
    return MU + STD * (x_T - math.sqrt(a) * MU) / torch.sqrt(a * STD**2 + 1 - a)


def relative_rms(x, reference):
    """Per-coordinate RMS of x - reference over all samples, relative to the data std (3,)."""
    return (x - reference).reshape(-1, 3).pow(2).mean(0).sqrt() / STD


# ---- schedule quantities


def test_schedule_quantities_match_their_closed_forms(diffusion):
    betas = beta_schedule("linear", 1000)
    assert torch.equal(diffusion.betas, betas) and diffusion.num_timesteps == 1000
    abar = diffusion.alphas_cumprod
    assert abar.dtype == torch.float64
    for t in (0, 1, 17, 500, 999):
        product = math.prod(1 - b for b in betas[: t + 1].tolist())
        assert abar[t].item() == pytest.approx(product, rel=1e-12)
        abar_prev = 1.0 if t == 0 else abar[t - 1].item()
        beta = betas[t].item()
        assert diffusion.posterior_variance[t].item() == pytest.approx(
            beta * (1 - abar_prev) / (1 - abar[t].item()), rel=1e-12, abs=0
        )
    assert diffusion.posterior_variance[0].item() == 0.0  # abar_{-1} = 1: no noise on the last step
    assert diffusion.posterior_log_variance_clipped[0] == diffusion.posterior_log_variance_clipped[1]
    torch.testing.assert_close(
        diffusion.posterior_log_variance_clipped[1:], diffusion.posterior_variance[1:].log()
    )
    # Fixed-small variance lies between 0 and beta_t.
    assert (diffusion.posterior_variance[1:] > 0).all() and (diffusion.posterior_variance <= betas).all()
    # lambda_t = log(alpha_t / sigma_t) decreases from ~4.6 at t = 0 to ~-5.1 at T - 1.
    lam = diffusion.log_snr_half
    assert (lam.diff() < 0).all()
    assert lam[0].item() == pytest.approx(0.5 * math.log((1 - 1e-4) / 1e-4), rel=1e-9)


def test_posterior_matches_bayes_rule(diffusion):
    # q(x_{t-1} | x_t, x0) from q(x_{t-1} | x0) = N(sqrt(abar_{t-1}) x0, 1 - abar_{t-1}) and
    # q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, beta_t), by completing the square.
    t = torch.tensor([1, 10, 250, 999])
    x0, x_t = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    mean, variance = diffusion.q_posterior(x0, x_t, t)
    for i, step in enumerate(t.tolist()):
        abar_prev, beta = diffusion.alphas_cumprod[step - 1].item(), diffusion.betas[step].item()
        precision = 1 / (1 - abar_prev) + (1 - beta) / beta
        expected_mean = (
            math.sqrt(abar_prev) * x0[i] / (1 - abar_prev) + math.sqrt(1 - beta) * x_t[i] / beta
        ) / precision
        torch.testing.assert_close(mean[i], expected_mean)
        assert variance[i].item() == pytest.approx(1 / precision, rel=1e-10)
    # t = 0: the posterior collapses onto x0.
    mean0, variance0 = diffusion.q_posterior(x0, x_t, torch.zeros(4, dtype=torch.int64))
    torch.testing.assert_close(mean0, x0)
    assert (variance0 == 0).all()


def test_rejects_invalid_betas():
    with pytest.raises(ValueError, match="open interval"):
        GaussianDiffusion(torch.tensor([0.1, 1.0]))
    with pytest.raises(ValueError, match=r"1-D tensor \(T,\)"):
        GaussianDiffusion(torch.full((2, 2), 0.1))


# ---- forward process, loss


def test_q_sample_has_the_forward_moments(diffusion):
    t = torch.tensor([0, 100, 600, 999])
    x0 = torch.tensor([1.5, -0.5, 3.0, 2.0])[:, None].expand(4, 50_000)
    generator = torch.Generator().manual_seed(0)
    x_t = diffusion.q_sample(x0, t, torch.randn(x0.shape, generator=generator))
    abar = diffusion.alphas_cumprod[t].float()
    # Standard errors: sqrt(var / n) <= 0.0045 for the mean, sqrt(2 / n) var <= 0.0064 for the variance.
    torch.testing.assert_close(x_t.mean(1), abar.sqrt() * x0[:, 0], atol=0.02, rtol=0)
    torch.testing.assert_close(x_t.var(1), 1 - abar, atol=0.03, rtol=0.03)
    assert x_t.dtype == torch.float32


def test_predict_x0_inverts_q_sample(diffusion):
    x0, noise = torch.randn(3, 4, 3, dtype=torch.float64), torch.randn(3, 4, 3, dtype=torch.float64)
    t = torch.tensor([0, 400, 900])
    torch.testing.assert_close(diffusion.predict_x0(diffusion.q_sample(x0, t, noise), t, noise), x0)


def test_training_loss_is_zero_for_the_oracle_noise_predictor(diffusion):
    x0 = torch.randn(16, 64, 3)
    abar = diffusion.alphas_cumprod.float()

    def oracle(x_t, t, cond):  # knows x0, so it recovers the noise exactly
        a = abar[t].reshape(-1, 1, 1)
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    loss = diffusion.training_loss(oracle, x0, generator=torch.Generator().manual_seed(0))
    assert loss.shape == (16,)
    assert loss.max().item() < 1e-6
    # A net predicting zero pays the noise's mean square, ~1 per sample.
    zero = diffusion.training_loss(lambda x, t, c: torch.zeros_like(x), x0, generator=torch.Generator())
    assert zero.shape == (16,) and 0.7 < zero.mean().item() < 1.3


def test_training_loss_is_the_per_sample_mse_and_draws_t_uniformly(diffusion):
    x0, noise, t = torch.randn(4, 5, 3), torch.randn(4, 5, 3), torch.tensor([3, 30, 300, 999])
    labels = torch.tensor([0, 1, 2, 3])

    def net(x, t_in, cond):
        assert torch.equal(t_in, t) and torch.equal(cond, labels)
        return 0.5 * x + cond[:, None, None].float()

    loss = diffusion.training_loss(net, x0, labels, t=t, noise=noise)
    x_t = diffusion.q_sample(x0, t, noise)
    torch.testing.assert_close(loss, ((net(x_t, t, labels) - noise) ** 2).mean(dim=(1, 2)))

    seen = []

    def recorder(x, t_in, cond):
        seen.append(t_in)
        return torch.zeros_like(x)

    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        diffusion.training_loss(recorder, torch.zeros(200, 2), generator=generator)
    steps = torch.cat(seen)
    assert steps.dtype == torch.int64 and steps.min() >= 0 and steps.max() <= 999
    counts = torch.bincount(steps // 100, minlength=10).float()  # 10000 draws in 10 bins of 1000
    assert (counts - 1000).abs().max() < 150  # binomial sd 30
    # Reproducible from the generator alone.
    a = diffusion.training_loss(lambda x, t, c: x, x0, generator=torch.Generator().manual_seed(5))
    b = diffusion.training_loss(lambda x, t, c: x, x0, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_annotations_describe_the_shapes(diffusion):
    hints = typing.get_type_hints(GaussianDiffusion.training_loss)

    @jaxtyped(typechecker=None)
    def check(x0, t, loss):
        return isinstance(x0, hints["x0"]) and isinstance(t, hints["t"]) and isinstance(loss, hints["return"])

    x0, t = torch.randn(4, 6, 3), torch.tensor([1, 2, 3, 4])
    loss = diffusion.training_loss(lambda x, t, c: x, x0, t=t)
    assert check(x0, t, loss)
    assert not check(x0, t, loss[:3])


# ---- samplers


def test_sampling_timesteps(diffusion):
    for spacing in ("logsnr", "time_uniform"):
        for steps in (1, 2, 5, 10, 20, 50, 333, 999, 1000):
            grid = diffusion.sampling_timesteps(steps, spacing)
            assert len(grid) == steps and grid[0] == 999
            assert all(a > b for a, b in zip(grid, grid[1:]))
            assert steps == 1 or grid[-1] == 0
        assert diffusion.sampling_timesteps(1000, spacing) == list(range(999, -1, -1))
    assert diffusion.sampling_timesteps(5, "time_uniform") == [999, 749, 500, 250, 0]
    # logsnr: lambda steps close to uniform where the discrete grid allows it.
    lam = diffusion.log_snr_half[diffusion.sampling_timesteps(10)]
    gaps = lam.diff()  # lambda grows as t falls
    uniform = (diffusion.log_snr_half[0] - diffusion.log_snr_half[-1]) / 9
    assert ((gaps - uniform).abs() < 0.15 * uniform).all()
    with pytest.raises(ValueError, match=r"steps must be an integer in \[1, 1000\]"):
        diffusion.sampling_timesteps(1001)
    with pytest.raises(ValueError, match="unknown timestep spacing"):
        diffusion.sampling_timesteps(10, "quadratic")


def test_ddpm_matches_the_data_distribution(diffusion):
    # Fixed-small DDPM is not exact even with the exact eps: its reverse variance omits the x0 uncertainty.
    # Propagating mean and variance through the (linear-Gaussian) chain, written here from the closed forms,
    # gives its exact output law; the samples must follow it, and it must be within 1.5 % of the data.
    betas = diffusion.betas.tolist()
    abar = diffusion.alphas_cumprod.tolist()
    mean, var = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    for t in range(999, -1, -1):
        a, a_prev, beta = abar[t], (abar[t - 1] if t else 1.0), betas[t]
        k = math.sqrt(1 - a) / (a * STD**2 + 1 - a)  # eps* = k (x - sqrt(a) mu)
        c1, c2 = beta * math.sqrt(a_prev) / (1 - a), (1 - a_prev) * math.sqrt(1 - beta) / (1 - a)
        gain = c1 * (1 - math.sqrt(1 - a) * k) / math.sqrt(a) + c2  # x_{t-1} = gain x_t + shift + noise
        shift = c1 * math.sqrt(1 - a) * k * MU
        mean, var = gain * mean + shift, gain**2 * var + beta * (1 - a_prev) / (1 - a)
    std = var.sqrt()
    assert ((std / STD - 1).abs() < 0.015).all() and ((mean - MU).abs() < 1e-3).all()

    n = 40_000
    x, nfe = diffusion.sample(
        exact_gaussian_eps(diffusion),
        (400, 100, 3),
        generator=torch.Generator().manual_seed(0),
        return_nfe=True,
    )
    assert nfe == 1000 and x.dtype == torch.float32 and x.shape == (400, 100, 3)
    flat = x.reshape(-1, 3).double()
    # 4 standard errors: std / sqrt(n) for the mean, std / sqrt(2 n) for the std.
    assert ((flat.mean(0) - mean).abs() < 4 * std / math.sqrt(n)).all(), flat.mean(0)
    assert ((flat.std(0) - std).abs() < 4 * std / math.sqrt(2 * n)).all(), flat.std(0)


@pytest.mark.parametrize(("sampler", "steps", "path_tolerance"), [("ddim", 50, 0.06), ("dpmpp_2m", 20, 0.02)])
def test_deterministic_samplers_match_the_data_distribution(diffusion, sampler, steps, path_tolerance):
    n = 20_000
    generator = torch.Generator().manual_seed(1)
    x_T = torch.randn((200, 100, 3), generator=generator)
    x, nfe = diffusion.sample(
        exact_gaussian_eps(diffusion), x_T.shape, None, sampler, steps, noise=x_T, return_nfe=True
    )
    assert nfe == steps
    flat = x.reshape(-1, 3).double()
    # x_T ~ N(0, I) instead of q(x_T): the exact flow's mean is off by s sqrt(abar_T) mu / ~1 (<= 0.02).
    prior_bias = STD * math.sqrt(diffusion.alphas_cumprod[-1].item()) * MU.abs()
    assert ((flat.mean(0) - MU).abs() < 4 * STD / math.sqrt(n) + prior_bias).all(), flat.mean(0)
    # The std is off by the discretization error (measured 0.049 for DDIM at 50 steps and 0.015 for
    # DPM-Solver++ at 20, independent of the data std) plus sampling error.
    assert ((flat.std(0) / STD - 1).abs() < path_tolerance + 4 / math.sqrt(2 * n)).all(), flat.std(0)
    # Per path against the exact probability-flow solution.
    assert (relative_rms(x.double(), exact_flow(diffusion, x_T.double())) < path_tolerance).all()


def test_dpm_solver_beats_ddim_at_equal_nfe_and_both_converge(diffusion):
    net = exact_gaussian_eps(diffusion)
    x_T = torch.randn((40, 50, 3), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    exact = exact_flow(diffusion, x_T)

    def error(sampler, steps):
        return relative_rms(diffusion.sample(net, x_T.shape, None, sampler, steps, noise=x_T), exact).max()

    ddim = {steps: error("ddim", steps) for steps in (10, 50, 1000)}
    dpm = {steps: error("dpmpp_2m", steps) for steps in (10, 20, 50)}
    # Measured: DDIM 0.24 vs DPM-Solver++ 0.038 at 10 steps.
    assert dpm[10] < 0.3 * ddim[10]
    # First order: 5x the steps, ~5x less error; second order: 2.5x the steps, ~6x less error.
    assert ddim[50] < ddim[10] / 3.5 and ddim[1000] < 0.006
    assert dpm[50] < dpm[20] / 4 and dpm[50] < 0.003


def test_two_step_dpm_solver_is_ddim(diffusion):
    # With two timesteps DPM-Solver++ takes only first-order steps, which are DDIM's (Lu et al. 2022).
    net = exact_gaussian_eps(diffusion)
    x_T = torch.randn((4, 10, 3), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ddim = diffusion.sample(net, x_T.shape, None, "ddim", 2, noise=x_T)
    dpm = diffusion.sample(net, x_T.shape, None, "dpmpp_2m", 2, noise=x_T)
    torch.testing.assert_close(dpm, ddim, rtol=1e-12, atol=1e-12)


def test_ddim_single_step_returns_the_x0_prediction(diffusion):
    # One DDIM step from T - 1 goes to clean data: x0_hat = (x_T - sqrt(1 - abar) eps) / sqrt(abar).
    x_T = torch.randn(2, 3, 4, dtype=torch.float64)
    eps = torch.randn(2, 3, 4, dtype=torch.float64)
    x = diffusion.sample(lambda x, t, c: eps, x_T.shape, None, "ddim", 1, noise=x_T)
    torch.testing.assert_close(x, diffusion.predict_x0(x_T, torch.tensor([999, 999]), eps))


def test_sampling_is_reproducible_and_leaves_the_global_rng_alone(diffusion):
    small = GaussianDiffusion.from_schedule(num_steps=50)

    def net(x, t, cond):
        return torch.tanh(x) * (1 + t[:, None, None].float() / 50)

    for sampler, steps in (("ddpm", None), ("ddim", 10), ("dpmpp_2m", 10)):
        state = torch.get_rng_state()
        a = small.sample(
            net, (3, 7, 3), sampler=sampler, steps=steps, generator=torch.Generator().manual_seed(4)
        )
        b = small.sample(
            net, (3, 7, 3), sampler=sampler, steps=steps, generator=torch.Generator().manual_seed(4)
        )
        assert torch.equal(torch.get_rng_state(), state), sampler
        assert torch.equal(a, b), sampler
        c = small.sample(
            net, (3, 7, 3), sampler=sampler, steps=steps, generator=torch.Generator().manual_seed(5)
        )
        assert not torch.allclose(a, c), sampler
    # The initial noise is the generator's first draw, so `noise=` reproduces a generator run.
    x_T = torch.randn((3, 7, 3), generator=torch.Generator().manual_seed(6))
    from_noise = small.sample(net, (3, 7, 3), sampler="ddim", steps=5, noise=x_T)
    from_generator = small.sample(
        net, (3, 7, 3), sampler="ddim", steps=5, generator=torch.Generator().manual_seed(6)
    )
    assert torch.equal(from_noise, from_generator)


def test_sampling_passes_the_protocol_arguments_and_counts_nfe():
    small = GaussianDiffusion.from_schedule(num_steps=25)
    labels = torch.tensor([3, 1])
    seen = []

    def net(x, t, cond):
        assert t.dtype == torch.int64 and t.shape == (2,) and (t == t[0]).all()
        assert torch.equal(cond, labels) and x.dtype == torch.float64
        seen.append(int(t[0]))
        return torch.zeros_like(x)

    x, nfe = small.sample(net, (2, 4), labels, "ddpm", dtype=torch.float64, return_nfe=True)
    assert nfe == 25 and seen == list(range(24, -1, -1)) and x.dtype == torch.float64
    for sampler in ("ddim", "dpmpp_2m"):
        seen.clear()
        _, nfe = small.sample(net, (2, 4), labels, sampler, 6, dtype=torch.float64, return_nfe=True)
        assert nfe == 6 and seen == small.sampling_timesteps(6)
    seen.clear()
    _, nfe = small.sample(net, (2, 4), labels, "dpmpp_2m", dtype=torch.float64, return_nfe=True)
    assert nfe == 20  # the default step count


def test_sampling_builds_no_autograd_graph_and_shows_progress():
    small = GaussianDiffusion.from_schedule(num_steps=20)
    layer = torch.nn.Linear(3, 3)
    with_bar = small.sample(
        lambda x, t, c: layer(x), (2, 5, 3), generator=torch.Generator().manual_seed(0), progress=True
    )
    plain = small.sample(lambda x, t, c: layer(x), (2, 5, 3), generator=torch.Generator().manual_seed(0))
    assert not with_bar.requires_grad and torch.equal(with_bar, plain)


def test_sampling_errors_are_clear():
    small = GaussianDiffusion.from_schedule(num_steps=20)

    def net(x, t, c):
        return torch.zeros_like(x)

    with pytest.raises(ValueError, match="unknown sampler 'euler'; expected one of ddpm, ddim, dpmpp_2m"):
        small.sample(net, (2, 3), sampler="euler")
    with pytest.raises(ValueError, match="ddpm sampler runs all 20 steps"):
        small.sample(net, (2, 3), sampler="ddpm", steps=10)
    with pytest.raises(ValueError, match=r"steps must be an integer in \[1, 20\]"):
        small.sample(net, (2, 3), sampler="ddim", steps=50)
    with pytest.raises(ValueError, match=r"shape must be \(B, ...\)"):
        small.sample(net, (4,))
    with pytest.raises(ValueError, match="noise shape"):
        small.sample(net, (2, 3), noise=torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"shaped like its input \(2, 3\), got \(2, 6\)"):
        small.sample(lambda x, t, c: torch.cat([x, x], 1), (2, 3))
    with pytest.raises(ValueError, match=r"timesteps must lie in \[0, 19\]"):
        small.q_sample(torch.zeros(2, 3), torch.tensor([0, 20]), torch.zeros(2, 3))
    with pytest.raises(TypeError, match="timesteps must be int64"):
        small.q_sample(torch.zeros(2, 3), torch.tensor([0.0, 2.0]), torch.zeros(2, 3))


def test_dpm_solver_follows_algorithm_2_on_uneven_steps(diffusion):
    # Lu et al. 2022 (DPM-Solver++), Alg. 2, written out for 4 time-uniform timesteps, whose lambda steps
    # are uneven (r != 1), then the first-order step to clean data.
    grid = diffusion.sampling_timesteps(4, "time_uniform")
    assert grid == [999, 666, 333, 0]
    abar = [diffusion.alphas_cumprod[t].item() for t in grid]
    alpha, sigma = [math.sqrt(a) for a in abar], [math.sqrt(1 - a) for a in abar]
    lam = [math.log(a / s) for a, s in zip(alpha, sigma)]

    def net(x, t, cond):
        return torch.sin(x) + 1e-3 * t[:, None].double()

    def data_prediction(x, i):
        return (x - sigma[i] * net(x, torch.full((x.shape[0],), grid[i]), None)) / alpha[i]

    x_T = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x, h = x_T, [None] + [lam[i] - lam[i - 1] for i in range(1, 4)]
    d0 = data_prediction(x, 0)
    x = sigma[1] / sigma[0] * x - alpha[1] * (math.exp(-h[1]) - 1) * d0
    previous = d0
    for i in (2, 3):
        r = h[i - 1] / h[i]
        d_now = data_prediction(x, i - 1)
        d = (1 + 1 / (2 * r)) * d_now - 1 / (2 * r) * previous
        x = sigma[i] / sigma[i - 1] * x - alpha[i] * (math.exp(-h[i]) - 1) * d
        previous = d_now
    expected = data_prediction(x, 3)
    assert abs(h[2] / h[3] - 1) > 0.5  # the ratio matters here
    got = diffusion.sample(net, (3, 5), None, "dpmpp_2m", 4, spacing="time_uniform", noise=x_T)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
