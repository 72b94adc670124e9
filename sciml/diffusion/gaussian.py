"""Discrete-time Gaussian diffusion: forward process, eps-prediction loss and three samplers.

Notation (zero-based steps ``t = 0 .. T-1``, as in the DDPM / PVD / DiT code): ``alpha_t = 1 - beta_t``,
``abar_t = prod_{s<=t} alpha_s`` and ``abar_{-1} = 1``.

* **Forward process** (Ho et al. 2020, "Denoising Diffusion Probabilistic Models", eq. 4):
  ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps``.
* **Posterior** ``q(x_{t-1} | x_t, x_0) = N(c1_t x_0 + c2_t x_t, betatilde_t)`` (DDPM eq. 6-7) with
  ``c1_t = beta_t sqrt(abar_{t-1}) / (1 - abar_t)``, ``c2_t = (1 - abar_{t-1}) sqrt(alpha_t) / (1 - abar_t)``
  and the "fixed small" variance ``betatilde_t = beta_t (1 - abar_{t-1}) / (1 - abar_t)``. At ``t = 0``
  ``abar_{-1} = 1`` makes ``betatilde_0 = 0``: the last ancestral step adds no noise (DDPM and PVD mask
  it). ``posterior_log_variance_clipped`` replaces the ``log 0`` at ``t = 0`` by ``log betatilde_1`` as DDPM
  does, for likelihood code; the samplers never use it.
* **Training loss** (DDPM eq. 14, "L_simple", as PVD and DiT-3D train): ``t ~ U{0..T-1}``, ``eps ~ N(0, I)``,
  per-sample ``mean((eps - net(x_t, t, cond))^2)`` over all non-batch dimensions.
* **Samplers** (``sample``), all under ``torch.no_grad``:

  - ``"ddpm"``: ancestral sampling through all ``T`` steps (DDPM Alg. 2) with the fixed-small variance,
    ``x_{t-1} = c1_t x0_hat + c2_t x_t + sqrt(betatilde_t) z``, ``x0_hat = (x_t - sqrt(1 - abar_t) eps_hat)
    / sqrt(abar_t)``, no noise at ``t = 0`` and no clipping of ``x0_hat`` (PVD: ``clip_denoised=False``).
    Even with the exact eps the fixed-small variance omits the uncertainty of ``x0_hat``, so DDPM's output
    std is slightly low: -1.2 % / -0.45 % / -0.35 % for Gaussian data of std 0.3 / 1 / 1.5 (linear, T=1000).
  - ``"ddim"``: deterministic DDIM, eta = 0 (Song et al. 2021, "Denoising Diffusion Implicit Models",
    eq. 12): ``x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev) eps_hat``.
  - ``"dpmpp_2m"``: DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of
    Diffusion Probabilistic Models", Alg. 2), multistep second order in the data prediction
    ``x0_hat`` with ``lambda_t = log(alpha_t / sigma_t)``, ``alpha_t = sqrt(abar_t)``,
    ``sigma_t = sqrt(1 - abar_t)``, ``h_i = lambda_{t_i} - lambda_{t_{i-1}}``, ``r_i = h_{i-1} / h_i``:
    ``D_i = (1 + 1/(2 r_i)) x0_hat_{i-1} - 1/(2 r_i) x0_hat_{i-2}`` and
    ``x_{t_i} = (sigma_{t_i} / sigma_{t_{i-1}}) x_{t_{i-1}} + alpha_{t_i} (1 - e^{-h_i}) D_i``. The first
    step is first order (``D_1 = x0_hat_0``, which is DDIM).

  **Time grid of DDIM and DPM-Solver++.** ``steps = S`` network evaluations at ``S`` strictly decreasing
  integer timesteps from ``T - 1`` (where ``x_T ~ N(0, I)`` is most accurate) to ``0``, followed by a final
  step from ``t = 0`` to clean data (``abar = 1``, ``sigma = 0``, ``lambda = inf``) that returns ``x0_hat``
  at ``t = 0``. That final step is first order for both samplers: DDIM with ``abar_prev = 1`` (as DDIM's
  code does after its last timestep) and, for DPM-Solver++, the ``h -> inf`` limit of the first-order
  update (Lu et al.'s "lower order final"; a second-order step is undefined there, ``r = 0``). Ending at
  ``t = 0`` rather than jumping to clean data from a noisier step matters: ``x0_hat`` is a posterior mean,
  whose spread falls short of the data's by the posterior variance at the last timestep (``~beta_0``).
  The default ``spacing="logsnr"`` places the timesteps at the ``lambda_t`` nearest to a uniform grid in
  ``lambda`` (DPM-Solver's "logSNR" skip type, Lu et al. 2022a sec. 3.3, mapped to the discrete
  timesteps; targets that crowd closer than one timestep near ``t = 0`` are pushed to consecutive
  timesteps); ``spacing="time_uniform"`` is ``round(linspace(T - 1, 0, S))``. The choice is measured: for
  Gaussian data ``N(mu, s^2)`` with the exact denoiser and the linear schedule, the relative RMS distance
  to the exact probability-flow map of ``x_T`` at ``s = 0.3 / 1.0 / 1.5`` is, with ``logsnr``, DDIM 0.24 /
  0.23 / 0.24 (10 steps), 0.049 / 0.048 / 0.049 (50) and DPM-Solver++ 0.027 / 0.036 / 0.038 (10),
  0.015 / 0.014 / 0.015 (20); with ``time_uniform`` DPM-Solver++ at 20 steps is 0.30 / 0.11 / 0.064, worse
  than DDIM at ``s = 0.3``, because its last interval spans a large ``lambda`` range (step-size ratios
  ``r ~ 0.3`` amplify the second-order extrapolation). ``logsnr`` errors are also independent of the data
  scale, which suits data of unknown spread.

* **Classifier-free guidance**: see :mod:`sciml.diffusion.guidance`; one batched call per step.
* **NFE**: ``sample(..., return_nfe=True)`` returns ``(x0, nfe)``, the number of network calls: ``T`` for
  DDPM, ``steps`` for DDIM / DPM-Solver++. A guided step's batched conditional + unconditional call
  counts as one NFE (it is one forward pass on a ``2 B`` batch). With a :class:`TaylorCache` the network is
  still called on every step (only its cached features are forecast), so NFE is unchanged and the cache's
  ``full_steps`` / ``forecast_steps`` say how many steps computed the cached features.

Schedule tensors are float64 on the CPU; per-sample coefficients (``q_sample``, ``training_loss``) are cast
to the data's dtype and device on use (cached per device and dtype), the samplers use Python floats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from sciml.diffusion.caching import TaylorCache
from sciml.diffusion.guidance import Denoiser, evaluate_denoiser, guided_eps
from sciml.diffusion.schedules import beta_schedule

#: Every sampler :meth:`GaussianDiffusion.sample` accepts.
SAMPLERS = ("ddpm", "ddim", "dpmpp_2m")
#: Steps used when ``sample(steps=None)``; DDPM always runs all ``T`` steps.
DEFAULT_STEPS = {"ddim": 50, "dpmpp_2m": 20}

#: Timestep spacings of the DDIM / DPM-Solver++ grid, see :meth:`GaussianDiffusion.sampling_timesteps`.
SPACINGS = ("logsnr", "time_uniform")

Sampler = Literal["ddpm", "ddim", "dpmpp_2m"]
Spacing = Literal["logsnr", "time_uniform"]


def standard_normal(
    shape: tuple[int, ...],
    generator: torch.Generator | Sequence[torch.Generator] | None,
    device: torch.device | str,
    dtype: torch.dtype,
) -> Tensor:
    """``N(0, I)`` noise of ``shape`` on ``device`` from one generator (or the global RNG) or one per sample.

    With a sequence, row ``b`` is ``torch.randn(shape[1:])`` drawn from ``generator[b]`` on its own device,
    then moved to ``device``.
    """
    if generator is None or isinstance(generator, torch.Generator):
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)
    if len(generator) != shape[0]:
        raise ValueError(f"expected one generator per sample ({shape[0]}), got {len(generator)}")
    rows = [torch.randn(shape[1:], generator=g, device=g.device, dtype=dtype) for g in generator]
    return torch.stack(rows).to(device)


class GaussianDiffusion:
    """The Gaussian diffusion process of a beta schedule (see the module docstring for the equations).

    Args:
        betas: ``(T,)`` noise variances in (0, 1), e.g. from :func:`sciml.diffusion.beta_schedule`.
    """

    def __init__(self, betas: Float[Tensor, " T"]):
        betas = torch.as_tensor(betas).detach().to(device="cpu", dtype=torch.float64)
        if betas.ndim != 1 or betas.numel() == 0:
            raise ValueError(f"betas must be a non-empty 1-D tensor (T,), got shape {tuple(betas.shape)}")
        if not torch.isfinite(betas).all() or (betas <= 0).any() or (betas >= 1).any():
            raise ValueError("betas must all lie in the open interval (0, 1)")
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.alphas_cumprod_prev = torch.cat([betas.new_ones(1), self.alphas_cumprod[:-1]])
        self.sqrt_alphas_cumprod = self.alphas_cumprod.sqrt()
        self.sqrt_one_minus_alphas_cumprod = (1.0 - self.alphas_cumprod).sqrt()
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        if betas.numel() > 1:
            padded = torch.cat([self.posterior_variance[1:2], self.posterior_variance[1:]])
        else:
            # T = 1 has no t = 1 to borrow from; use beta_0, DDPM's "fixed large" value.
            padded = betas.clone()
        self.posterior_log_variance_clipped = padded.log()
        self.posterior_mean_coef1 = betas * self.alphas_cumprod_prev.sqrt() / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (
            (1.0 - self.alphas_cumprod_prev) * self.alphas.sqrt() / (1.0 - self.alphas_cumprod)
        )
        # lambda_t = log(alpha_t / sigma_t) = (log abar_t - log(1 - abar_t)) / 2, the half log-SNR.
        self.log_snr_half = 0.5 * (self.alphas_cumprod.log() - torch.log1p(-self.alphas_cumprod))
        self._cast_cache: dict[tuple[str, torch.device, torch.dtype], Tensor] = {}

    @classmethod
    def from_schedule(
        cls, kind: str = "linear", num_steps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
    ) -> GaussianDiffusion:
        """The process of ``beta_schedule(kind, num_steps, beta_start, beta_end)``."""
        return cls(beta_schedule(kind, num_steps, beta_start, beta_end))

    @property
    def num_timesteps(self) -> int:
        """``T``, the number of diffusion steps."""
        return self.betas.numel()

    # ------------------------------------------------------------------ forward process and loss

    def _coefficient(self, name: str, t: Tensor, like: Tensor) -> Tensor:
        """Schedule ``name`` at timesteps ``t`` (B,) in ``like``'s dtype and device, shaped (B, 1, ..., 1)."""
        key = (name, like.device, like.dtype)
        table = self._cast_cache.get(key)
        if table is None:
            # Cast on the CPU first: some accelerators (MPS) have no float64.
            table = getattr(self, name).to(like.dtype).to(like.device)
            self._cast_cache[key] = table
        return table[t.to(like.device)].reshape(-1, *([1] * (like.ndim - 1)))

    def _check_timesteps(self, t: Tensor, x: Tensor) -> None:
        if t.ndim != 1 or t.shape[0] != x.shape[0]:
            raise ValueError(f"expected timesteps t of shape ({x.shape[0]},), got {tuple(t.shape)}")
        if t.dtype != torch.int64:
            raise TypeError(f"timesteps must be int64, got {t.dtype}")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= self.num_timesteps):
            raise ValueError(
                f"timesteps must lie in [0, {self.num_timesteps - 1}], got [{int(t.min())}, {int(t.max())}]"
            )

    def q_sample(
        self, x0: Float[Tensor, " B *shape"], t: Int[Tensor, " B"], noise: Float[Tensor, " B *shape"]
    ) -> Float[Tensor, " B *shape"]:
        """``x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise`` (DDPM eq. 4)."""
        self._check_timesteps(t, x0)
        if noise.shape != x0.shape:
            raise ValueError(f"noise shape {tuple(noise.shape)} differs from x0 shape {tuple(x0.shape)}")
        return (
            self._coefficient("sqrt_alphas_cumprod", t, x0) * x0
            + self._coefficient("sqrt_one_minus_alphas_cumprod", t, x0) * noise
        )

    def q_posterior(
        self, x0: Float[Tensor, " B *shape"], x_t: Float[Tensor, " B *shape"], t: Int[Tensor, " B"]
    ) -> tuple[Float[Tensor, " B *shape"], Float[Tensor, " B *ones"]]:
        """Mean ``c1_t x0 + c2_t x_t`` and variance ``betatilde_t`` of ``q(x_{t-1} | x_t, x0)``."""
        self._check_timesteps(t, x_t)
        mean = (
            self._coefficient("posterior_mean_coef1", t, x_t) * x0
            + self._coefficient("posterior_mean_coef2", t, x_t) * x_t
        )
        return mean, self._coefficient("posterior_variance", t, x_t)

    def predict_x0(
        self, x_t: Float[Tensor, " B *shape"], t: Int[Tensor, " B"], eps: Float[Tensor, " B *shape"]
    ) -> Float[Tensor, " B *shape"]:
        """``x0_hat = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)``."""
        self._check_timesteps(t, x_t)
        return (x_t - self._coefficient("sqrt_one_minus_alphas_cumprod", t, x_t) * eps) / self._coefficient(
            "sqrt_alphas_cumprod", t, x_t
        )

    def training_loss(
        self,
        net: Denoiser,
        x0: Float[Tensor, " B *shape"],
        cond: Any = None,
        generator: torch.Generator | None = None,
        *,
        t: Int[Tensor, " B"] | None = None,
        noise: Float[Tensor, " B *shape"] | None = None,
    ) -> Float[Tensor, " B"]:
        """Per-sample eps-prediction MSE ``mean((eps - net(x_t, t, cond))^2)`` over all non-batch dims (B,).

        ``t`` (uniform over ``0..T-1``) and ``noise`` (standard normal) are drawn from ``generator`` (on
        ``x0``'s device; torch's global RNG when None) unless given, ``t`` first.
        """
        if x0.ndim < 2:
            raise ValueError(
                f"expected x0 of shape (B, ...) with at least one non-batch dim, got {tuple(x0.shape)}"
            )
        batch = x0.shape[0]
        if t is None:
            t = torch.randint(0, self.num_timesteps, (batch,), generator=generator, device=x0.device)
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        x_t = self.q_sample(x0, t, noise)
        eps = evaluate_denoiser(net, x_t, t, cond)
        return (eps - noise).square().reshape(batch, -1).mean(dim=1)

    # ------------------------------------------------------------------ sampling

    def sampling_timesteps(self, steps: int, spacing: Spacing = "logsnr") -> list[int]:
        """The ``steps`` strictly decreasing timesteps, from ``T - 1`` to ``0``, of DDIM / DPM-Solver++.

        ``"logsnr"``: the timesteps whose ``lambda_t`` is nearest to
        ``linspace(lambda_{T-1}, lambda_0, steps)``; where those targets crowd closer than one timestep (near
        ``t = 0``) they are pushed apart to consecutive timesteps. ``"time_uniform"``:
        ``round(linspace(T - 1, 0, steps))``.
        """
        if spacing not in SPACINGS:
            raise ValueError(f"unknown timestep spacing {spacing!r}; expected one of {', '.join(SPACINGS)}")
        last = self.num_timesteps - 1
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= self.num_timesteps:
            raise ValueError(f"steps must be an integer in [1, {self.num_timesteps}], got {steps!r}")
        if steps == 1:
            return [last]
        if spacing == "time_uniform":
            # Spacing (T - 1) / (steps - 1) >= 1 keeps the rounded values distinct.
            return torch.linspace(last, 0, steps, dtype=torch.float64).round().long().tolist()
        lam = self.log_snr_half
        targets = torch.linspace(float(lam[-1]), float(lam[0]), steps, dtype=torch.float64)  # (steps,)
        grid = (lam[None, :] - targets[:, None]).abs().argmin(dim=1).tolist()  # (steps, T) -> (steps,)
        grid[0], grid[-1] = last, 0
        for i in range(steps - 2, -1, -1):
            # Within [steps-1-i, T-1-i] and at least one above its successor: distinct and in range.
            grid[i] = max(min(grid[i], last - i), steps - 1 - i, grid[i + 1] + 1)
        return grid

    @torch.no_grad()
    def sample(
        self,
        net: Denoiser,
        shape: tuple[int, ...],
        cond: Any = None,
        sampler: Sampler = "ddpm",
        steps: int | None = None,
        guidance_scale: float = 1.0,
        null_cond: Any = None,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        cache: TaylorCache | None = None,
        progress: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        spacing: Spacing = "logsnr",
        noise: Tensor | None = None,
        return_nfe: bool = False,
    ) -> Float[Tensor, " B *shape"] | tuple[Float[Tensor, " B *shape"], int]:
        """Draw ``x0`` samples of ``shape = (B, ...)`` by running ``sampler`` from ``x_T ~ N(0, I)``.

        Args:
            net: the denoiser ``net(x, t, cond) -> eps`` (given ``cache=`` only when ``cache`` is not None).
            cond: the condition passed to ``net`` (e.g. int64 labels ``(B,)``), or None.
            sampler: ``"ddpm"`` (all ``T`` steps), ``"ddim"`` or ``"dpmpp_2m"`` (``steps`` NFEs).
            steps: network evaluations for DDIM / DPM-Solver++ (default :data:`DEFAULT_STEPS`); for DDPM
                only None or ``T``.
            guidance_scale, null_cond: classifier-free guidance, see :func:`~sciml.diffusion.guided_eps`.
            generator: source of the initial noise (drawn first, as ``torch.randn(shape, generator=generator,
                device=device, dtype=dtype)``) and of DDPM's per-step noise; torch's global RNG is used only
                when it is None. A sequence of ``B`` generators draws each sample's noise from its own
                generator, on that generator's device, then moves it to ``device``: a sample's noise then
                depends only on its generator, not on the batch it is in or the device it is sampled on.
            cache: a :class:`TaylorCache`; it is reset here and told each step index before each network call.
            progress: show a ``rich`` progress bar.
            device: where to sample; default ``noise``'s device, else ``generator``'s (a single one), else
                the CPU.
            dtype: the dtype of the sample (ignored when ``noise`` is given).
            spacing: the DDIM / DPM-Solver++ time grid, ``"logsnr"`` or ``"time_uniform"`` (module docstring).
            noise: the initial ``x_T`` (``shape``) instead of drawing it.
            return_nfe: also return the number of network calls (a guided batched call counts as one).
        """
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; expected one of {', '.join(SAMPLERS)}")
        shape = tuple(int(n) for n in shape)
        if len(shape) < 2 or min(shape) < 1:
            raise ValueError(
                f"shape must be (B, ...) with at least one non-batch dim and no empty dims, got {shape}"
            )
        if sampler == "ddpm":
            if steps not in (None, self.num_timesteps):
                raise ValueError(
                    f"the ddpm sampler runs all {self.num_timesteps} steps (got steps={steps}); "
                    "use 'ddim' or 'dpmpp_2m' for fewer"
                )
            timesteps = list(range(self.num_timesteps - 1, -1, -1))
        else:
            timesteps = self.sampling_timesteps(DEFAULT_STEPS[sampler] if steps is None else steps, spacing)

        if noise is not None:
            if tuple(noise.shape) != shape:
                raise ValueError(f"noise shape {tuple(noise.shape)} differs from the requested shape {shape}")
            x = noise.to(device=device, copy=True) if device is not None else noise.clone()
        else:
            if device is None:
                device = generator.device if isinstance(generator, torch.Generator) else torch.device("cpu")
            x = standard_normal(shape, generator, device, dtype)
        if cache is not None:
            cache.reset()

        nfe = 0

        def eps_at(x: Tensor, t: int) -> Tensor:
            nonlocal nfe
            if cache is not None:
                cache.begin_step(nfe)
            t_batch = torch.full((shape[0],), t, dtype=torch.int64, device=x.device)
            eps = guided_eps(net, x, t_batch, cond, guidance_scale, null_cond, cache)
            nfe += 1
            return eps

        steps_iter = range(len(timesteps))
        if progress:
            from rich.progress import track

            steps_iter = track(steps_iter, description=f"sampling ({sampler})", transient=True)

        if sampler == "ddpm":
            x = self._ddpm(x, timesteps, eps_at, steps_iter, generator)
        elif sampler == "ddim":
            x = self._ddim(x, timesteps, eps_at, steps_iter)
        else:
            x = self._dpmpp_2m(x, timesteps, eps_at, steps_iter)
        return (x, nfe) if return_nfe else x

    # The sampler loops see the schedule as Python floats (all samples share the timestep) and iterate over
    # ``steps_iter`` (range(len(timesteps)), possibly wrapped in a progress bar) to the end.

    def _ddpm(self, x: Tensor, timesteps: list[int], eps_at, steps_iter, generator) -> Tensor:
        abar = self.alphas_cumprod.tolist()
        coef1, coef2 = self.posterior_mean_coef1.tolist(), self.posterior_mean_coef2.tolist()
        std = self.posterior_variance.sqrt().tolist()
        for i in steps_iter:
            t = timesteps[i]
            eps = eps_at(x, t)
            x0_hat = (x - math.sqrt(1.0 - abar[t]) * eps) / math.sqrt(abar[t])
            x = coef1[t] * x0_hat + coef2[t] * x
            if t > 0:  # betatilde_0 = 0: the last step returns the posterior mean
                x = x + std[t] * standard_normal(x.shape, generator, x.device, x.dtype)
        return x

    def _ddim(self, x: Tensor, timesteps: list[int], eps_at, steps_iter) -> Tensor:
        abar = [float(self.alphas_cumprod[t]) for t in timesteps] + [1.0]  # then clean data, abar = 1
        for i in steps_iter:
            eps = eps_at(x, timesteps[i])
            x0_hat = (x - math.sqrt(1.0 - abar[i]) * eps) / math.sqrt(abar[i])
            x = math.sqrt(abar[i + 1]) * x0_hat + math.sqrt(1.0 - abar[i + 1]) * eps
        return x

    def _dpmpp_2m(self, x: Tensor, timesteps: list[int], eps_at, steps_iter) -> Tensor:
        abar = [float(self.alphas_cumprod[t]) for t in timesteps]
        alpha = [math.sqrt(a) for a in abar]
        sigma = [math.sqrt(1.0 - a) for a in abar]
        lam = [float(self.log_snr_half[t]) for t in timesteps]
        previous_x0: Tensor | None = None
        previous_h = 0.0
        for i in steps_iter:
            x0_hat = (x - sigma[i] * eps_at(x, timesteps[i])) / alpha[i]
            if i + 1 == len(timesteps):
                # To sigma = 0 (lambda = inf): the limit of the first-order update is x0_hat itself.
                x = x0_hat
                continue
            h = lam[i + 1] - lam[i]
            if previous_x0 is None:
                d = x0_hat  # first step: first order (this is DDIM)
            else:
                r = previous_h / h
                d = (1.0 + 0.5 / r) * x0_hat - (0.5 / r) * previous_x0
            # alpha (1 - e^{-h}) = -alpha expm1(-h), accurate for small h.
            x = (sigma[i + 1] / sigma[i]) * x - alpha[i + 1] * math.expm1(-h) * d
            previous_x0, previous_h = x0_hat, h
        return x
