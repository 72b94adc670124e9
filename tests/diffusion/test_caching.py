"""TaylorCache: the full/forecast step schedule, exact polynomial forecasts, and sampling integration."""

import pytest
import torch

from sciml.diffusion import GaussianDiffusion, TaylorCache


def run(cache: TaylorCache, feature, num_steps: int, key: str = "f"):
    """Drive the cache over ``num_steps`` steps; return its outputs and the steps that called compute."""
    outputs, computed = [], []
    for step in range(num_steps):
        cache.begin_step(step)

        def compute(step=step):
            computed.append(step)
            return feature(step)

        outputs.append(cache(key, compute))
    return outputs, computed


def polynomial(*coefficients):
    """A (2, 3) feature whose entries are different polynomials of the step index."""
    scales = torch.tensor([[1.0, -2.0, 0.5], [3.0, 0.25, -1.0]], dtype=torch.float64)

    def feature(step):
        return sum(c * scales**k * float(step) ** k for k, c in enumerate(coefficients))

    return feature


def test_full_steps_are_the_warmup_then_every_interval():
    cache = TaylorCache(interval=3, order=1, warmup_steps=2)
    assert [s for s in range(14) if cache.is_full_step(s)] == [0, 1, 4, 7, 10, 13]
    _, computed = run(cache, polynomial(1.0), 14)
    assert computed == [0, 1, 4, 7, 10, 13]
    assert (cache.full_steps, cache.forecast_steps) == (6, 8)
    assert [s for s in range(8) if TaylorCache(interval=2, warmup_steps=1).is_full_step(s)] == [0, 2, 4, 6]
    assert all(TaylorCache(interval=1).is_full_step(s) for s in range(20))


def test_order_one_reproduces_a_linear_feature_exactly():
    feature = polynomial(0.7, -0.3)
    outputs, computed = run(TaylorCache(interval=3, order=1, warmup_steps=2), feature, 20)
    assert len(computed) == 8  # 0, 1, 4, 7, 10, 13, 16, 19
    for step, out in enumerate(outputs):
        torch.testing.assert_close(out, feature(step), rtol=1e-12, atol=1e-12)


def test_order_two_reproduces_a_quadratic_feature_exactly_on_uneven_full_steps():
    feature = polynomial(0.7, -0.3, 0.05)
    outputs, computed = run(TaylorCache(interval=3, order=2, warmup_steps=2), feature, 20)
    assert computed[:3] == [0, 1, 4]  # gaps 1 then 3: TaylorSeer's last-gap differences are not exact here
    # Steps 2 and 3 have only two full steps behind them: the forecast falls back to order 1 (a secant).
    for step in (2, 3):
        secant = feature(1) + (feature(1) - feature(0)) * (step - 1)
        torch.testing.assert_close(outputs[step], secant, rtol=1e-12, atol=1e-12)
        assert not torch.allclose(outputs[step], feature(step))
    for step in range(5, 20):
        torch.testing.assert_close(outputs[step], feature(step), rtol=1e-10, atol=1e-10)


def test_order_two_reproduces_a_quadratic_when_every_step_after_warmup_is_forecast_far_ahead():
    feature = polynomial(-1.0, 0.2, -0.04)
    outputs, computed = run(TaylorCache(interval=5, order=2, warmup_steps=3), feature, 30)
    assert computed == [0, 1, 2, 7, 12, 17, 22, 27]
    for step, out in enumerate(outputs):
        torch.testing.assert_close(out, feature(step), rtol=1e-10, atol=1e-10)


def test_order_one_on_a_quadratic_extrapolates_the_last_secant():
    feature = polynomial(0.0, 0.0, 1.0)
    outputs, _ = run(TaylorCache(interval=3, order=1, warmup_steps=2), feature, 7)
    # Step 5 forecasts from the full steps 1 and 4: F(4) + (F(4) - F(1)) / 3 * (5 - 4).
    torch.testing.assert_close(outputs[5], feature(4) + (feature(4) - feature(1)) / 3)
    assert not torch.allclose(outputs[5], feature(5))


def test_order_zero_reuses_the_last_computed_value():
    feature = polynomial(1.0, 1.0)
    outputs, _ = run(TaylorCache(interval=4, order=0, warmup_steps=1), feature, 8)
    assert [out[0, 0].item() for out in outputs] == [1.0, 1.0, 1.0, 1.0, 5.0, 5.0, 5.0, 5.0]


def test_keys_are_independent_and_late_keys_compute():
    cache = TaylorCache(interval=2, order=1, warmup_steps=2)  # full steps 0, 1, 3, 5
    seen = []
    for step in range(6):
        cache.begin_step(step)
        a = cache("a", lambda step=step: torch.tensor([2.0 * step]))
        b = cache("b", lambda step=step: torch.tensor([-1.0 * step + 3]))
        assert a.item() == 2.0 * step and b.item() == -1.0 * step + 3
        if step == 4:  # first seen on a forecast step: nothing to forecast from, so it is computed

            def late_feature(step=step):
                seen.append(step)
                return torch.tensor([7.0])

            late = cache("late", late_feature)
            assert late.item() == 7.0 and seen == [4]
    assert cache.forecast_steps == 2


def test_reset_forgets_features_and_counters():
    cache = TaylorCache(interval=3, order=1, warmup_steps=2)
    run(cache, polynomial(1.0, 1.0), 6)
    cache.reset()
    assert (cache.full_steps, cache.forecast_steps, cache.step_index) == (0, 0, None)
    outputs, computed = run(cache, polynomial(5.0, -1.0), 6)
    assert computed == [0, 1, 4]
    torch.testing.assert_close(outputs[3], polynomial(5.0, -1.0)(3))


def test_misuse_is_reported():
    cache = TaylorCache()
    with pytest.raises(RuntimeError, match="before begin_step"):
        cache("f", lambda: torch.zeros(1))
    cache.begin_step(0)
    cache("f", lambda: torch.zeros(1))
    with pytest.raises(RuntimeError, match="used twice in step 0"):
        cache("f", lambda: torch.zeros(1))
    with pytest.raises(ValueError, match="must increase within a sampling run.*reset"):
        cache.begin_step(0)
    for kwargs in ({"interval": 0}, {"order": -1}, {"warmup_steps": 0}, {"interval": 2.0}):
        with pytest.raises(ValueError, match="must be an integer >="):
            TaylorCache(**kwargs)


class CachingNet:
    """eps = tanh(W x) + a cached "trunk" feature that depends on the timestep (and on x for the test)."""

    def __init__(self, feature):
        self.feature = feature
        self.trunk_calls = 0

    def __call__(self, x, t, cond, cache=None):
        def trunk():
            self.trunk_calls += 1
            return self.feature(x, t)

        residual = trunk() if cache is None else cache("trunk", trunk)
        return torch.tanh(0.5 * x) + residual


def test_interval_one_reproduces_uncached_sampling_exactly():
    diffusion = GaussianDiffusion.from_schedule(num_steps=50)
    net = CachingNet(lambda x, t: torch.sin(x) * t[:, None, None].float() / 50)
    for sampler, steps in (("ddpm", None), ("ddim", 10), ("dpmpp_2m", 10)):
        plain = diffusion.sample(
            net, (3, 8, 3), None, sampler, steps, generator=torch.Generator().manual_seed(1)
        )
        cache = TaylorCache(interval=1, order=2)
        cached = diffusion.sample(
            net, (3, 8, 3), None, sampler, steps, generator=torch.Generator().manual_seed(1), cache=cache
        )
        assert torch.equal(plain, cached), sampler
        assert cache.forecast_steps == 0 and cache.full_steps == (50 if steps is None else steps)


def test_sampling_with_forecasts_skips_the_trunk_and_matches_an_exactly_forecastable_feature():
    diffusion = GaussianDiffusion.from_schedule(num_steps=1000)
    steps = 12
    step_of = {t: i for i, t in enumerate(diffusion.sampling_timesteps(steps))}

    def linear_in_step(x, t):  # the trunk's output is an affine function of the sampling step index
        step = torch.tensor([step_of[int(v)] for v in t], dtype=x.dtype)
        return (0.1 - 0.02 * step)[:, None, None].expand_as(x).clone()

    net = CachingNet(linear_in_step)
    plain, nfe_plain = diffusion.sample(
        net, (4, 6, 3), None, "dpmpp_2m", steps, generator=torch.Generator().manual_seed(2), return_nfe=True
    )
    net.trunk_calls = 0
    cache = TaylorCache(interval=3, order=1, warmup_steps=2)
    cached, nfe_cached = diffusion.sample(
        net,
        (4, 6, 3),
        None,
        "dpmpp_2m",
        steps,
        generator=torch.Generator().manual_seed(2),
        cache=cache,
        return_nfe=True,
    )
    # Full steps 0, 1, 4, 7, 10; the net is still called on every step (NFE), its trunk only on full ones.
    assert (cache.full_steps, cache.forecast_steps) == (5, 7)
    assert net.trunk_calls == 5
    assert nfe_plain == nfe_cached == steps
    torch.testing.assert_close(cached, plain, rtol=1e-5, atol=1e-5)

    # The cache is reset by every sample() call: a second run counts the same.
    diffusion.sample(net, (4, 6, 3), None, "dpmpp_2m", steps, cache=cache, generator=torch.Generator())
    assert (cache.full_steps, cache.forecast_steps) == (5, 7)
