"""Variance (beta) schedules for discrete-time Gaussian diffusion (Ho et al. 2020, "Denoising Diffusion
Probabilistic Models", sec. 4; Zhou et al. 2021, "3D Shape Generation and Completion through Point-Voxel
Diffusion", PVD).

The forward process adds noise with ``q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)`` for
``t = 0 .. T-1`` (zero-based, as in the reference code). Kinds:

* ``"linear"``: ``beta_t = linspace(beta_start, beta_end, T)`` (DDPM; PVD's and DiT-3D's default, with
  ``beta_start = 1e-4``, ``beta_end = 0.02``, ``T = 1000``).
* ``"warm0.1"``, ``"warm0.2"``, ``"warm0.5"``: PVD's warm-up schedules (PVD ``get_betas``, used by PVD and
  DiT-3D for the airplane category): ``beta_t = beta_end`` everywhere, then the first
  ``W = int(T * frac)`` steps are replaced by ``linspace(beta_start, beta_end, W)``. ``int`` truncates, as
  in PVD, so ``T = 15`` with ``warm0.1`` has one warm-up step (``beta_0 = beta_start``).

Schedules are float64: ``alphas_cumprod`` is a product of up to thousands of factors and the samplers take
logarithms of it, so it is computed once in double precision and cast to the data's dtype on use.
"""

from __future__ import annotations

import torch
from jaxtyping import Float64
from torch import Tensor

#: Warm-up fraction of each ``"warm*"`` kind.
WARMUP_FRACTIONS = {"warm0.1": 0.1, "warm0.2": 0.2, "warm0.5": 0.5}
#: Every kind :func:`beta_schedule` accepts.
SCHEDULE_KINDS = ("linear", *WARMUP_FRACTIONS)


def beta_schedule(
    kind: str, num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
) -> Float64[Tensor, " T"]:
    """The betas ``(T,)`` of schedule ``kind`` over ``T = num_steps`` steps, as a float64 CPU tensor."""
    if kind not in SCHEDULE_KINDS:
        raise ValueError(f"unknown beta schedule {kind!r}; expected one of {', '.join(SCHEDULE_KINDS)}")
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {num_steps!r}")
    for name, value in (("beta_start", beta_start), ("beta_end", beta_end)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must lie in (0, 1), got {value}")
    if kind == "linear":
        return torch.linspace(beta_start, beta_end, num_steps, dtype=torch.float64)
    betas = torch.full((num_steps,), beta_end, dtype=torch.float64)
    warmup = int(num_steps * WARMUP_FRACTIONS[kind])
    betas[:warmup] = torch.linspace(beta_start, beta_end, warmup, dtype=torch.float64)
    return betas
