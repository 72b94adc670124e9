"""The generative process, independent of any network: schedules, loss, DDPM / DDIM / DPM-Solver++, CFG.

Any denoiser ``net(x, t, cond) -> eps`` works: ``x`` is ``(B, ...)``, ``t`` int64 timesteps ``(B,)`` in
``[0, T-1]``, ``cond`` whatever the net accepts (or None); a net that caches features also takes ``cache=``.

    diffusion = GaussianDiffusion(beta_schedule("linear", 1000))
    loss = diffusion.training_loss(net, x0, cond).mean()
    x0, nfe = diffusion.sample(net, (B, N, 3), cond, sampler="dpmpp_2m", steps=20, guidance_scale=4.0,
                               null_cond=null_label, return_nfe=True)

Steps, solver and guidance are sampler arguments, never network arguments.
"""

from sciml.diffusion.caching import TaylorCache
from sciml.diffusion.gaussian import DEFAULT_STEPS, SAMPLERS, SPACINGS, GaussianDiffusion
from sciml.diffusion.guidance import (
    Denoiser,
    classifier_free_guidance,
    concat_conditions,
    drop_labels,
    evaluate_denoiser,
    guided_eps,
)
from sciml.diffusion.schedules import SCHEDULE_KINDS, beta_schedule

__all__ = [
    "DEFAULT_STEPS",
    "SAMPLERS",
    "SCHEDULE_KINDS",
    "SPACINGS",
    "Denoiser",
    "GaussianDiffusion",
    "TaylorCache",
    "beta_schedule",
    "classifier_free_guidance",
    "concat_conditions",
    "drop_labels",
    "evaluate_denoiser",
    "guided_eps",
]
