"""Beta schedules: DDPM's linear schedule and PVD's warm-up schedules."""

import pytest
import torch

from sciml.diffusion import SCHEDULE_KINDS, beta_schedule


def test_linear_schedule_is_ddpms_linspace():
    betas = beta_schedule("linear")
    assert betas.dtype == torch.float64 and betas.shape == (1000,)
    assert betas[0].item() == pytest.approx(1e-4, abs=1e-15)
    assert betas[-1].item() == pytest.approx(0.02, abs=1e-15)
    assert betas[1].item() == pytest.approx(1e-4 + (0.02 - 1e-4) / 999, rel=1e-12)
    steps = betas.diff()
    assert (steps > 0).all()
    torch.testing.assert_close(steps, torch.full_like(steps, (0.02 - 1e-4) / 999), rtol=1e-9, atol=0)


@pytest.mark.parametrize(("kind", "warmup"), [("warm0.1", 100), ("warm0.2", 200), ("warm0.5", 500)])
def test_warmup_schedules_ramp_then_stay_at_beta_end(kind, warmup):
    betas = beta_schedule(kind, num_steps=1000, beta_start=1e-4, beta_end=0.02)
    assert betas.dtype == torch.float64 and betas.shape == (1000,)
    assert betas[0].item() == pytest.approx(1e-4, abs=1e-15)
    # The ramp reaches beta_end exactly at its own last step, warmup - 1, and stays there.
    assert betas[warmup - 1].item() == pytest.approx(0.02, abs=1e-15)
    assert betas[warmup - 2].item() == pytest.approx(0.02 - (0.02 - 1e-4) / (warmup - 1), rel=1e-12)
    assert (betas[warmup:] == 0.02).all()
    assert (betas[:warmup].diff() > 0).all()
    torch.testing.assert_close(betas[:warmup], torch.linspace(1e-4, 0.02, warmup, dtype=torch.float64))
    # A faster ramp injects more noise in total, so less signal is left at the end.
    assert torch.prod(1 - betas) < torch.prod(1 - beta_schedule("linear"))


def test_warmup_length_truncates_like_pvd():
    # int(15 * 0.1) = 1: a one-step "ramp" is just beta_start.
    betas = beta_schedule("warm0.1", num_steps=15, beta_start=0.001, beta_end=0.05)
    assert betas[0].item() == pytest.approx(0.001)
    assert (betas[1:] == 0.05).all()
    # int(9 * 0.1) = 0: no warm-up at all.
    assert (beta_schedule("warm0.1", num_steps=9) == 0.02).all()
    assert beta_schedule("warm0.5", num_steps=7)[:3].tolist() == pytest.approx([1e-4, 0.01005, 0.02])


def test_schedule_kinds_are_all_accepted():
    assert set(SCHEDULE_KINDS) == {"linear", "warm0.1", "warm0.2", "warm0.5"}
    for kind in SCHEDULE_KINDS:
        betas = beta_schedule(kind, num_steps=50)
        assert betas.shape == (50,) and (betas > 0).all() and (betas < 1).all()
        assert (betas.diff() >= 0).all()


def test_unknown_kind_lists_the_kinds():
    with pytest.raises(ValueError, match="unknown beta schedule 'cosine'.*linear, warm0.1, warm0.2, warm0.5"):
        beta_schedule("cosine")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_steps": 0}, "num_steps must be a positive integer"),
        ({"num_steps": 10.0}, "num_steps must be a positive integer"),
        ({"beta_start": 0.0}, r"beta_start must lie in \(0, 1\)"),
        ({"beta_end": 1.0}, r"beta_end must lie in \(0, 1\)"),
    ],
)
def test_invalid_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        beta_schedule("linear", **kwargs)
