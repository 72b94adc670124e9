"""Classifier-free guidance (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance", eq. 6 and Alg. 1-2).

Training drops the condition: each label is replaced by a reserved ``null_label`` with probability
``p_uncond`` (:func:`drop_labels`), so one network learns both ``eps(x_t, t, c)`` and ``eps(x_t, t, null)``.
Sampling combines the two predictions as

    eps_guided = eps_uncond + s * (eps_cond - eps_uncond),

which is the paper's ``(1 + w) eps_cond - w eps_uncond`` with ``s = 1 + w`` (the DiT / DiT-3D convention:
``s = 1`` is plain conditional sampling, ``s = 0`` unconditional). The combination is applied to *every*
output channel: DiT's released sampler guided only the first three of four latent channels, a bug that
was copied into several later projects; ``test_guidance.py`` checks every channel.

:func:`guided_eps` evaluates the conditional and unconditional branches in *one* network call on a batch
of ``2 B`` (inputs and timesteps repeated, conditions ``[cond, null_cond]`` concatenated along the batch),
which is what DiT does and what the samplers count as one network function evaluation (NFE).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from jaxtyping import Float, Int, Shaped
from torch import Tensor

from sciml.diffusion.caching import TaylorCache

#: ``net(x, t, cond) -> eps`` (optionally with a keyword ``cache=``), see :mod:`sciml.diffusion`.
Denoiser = Callable[..., Tensor]


def drop_labels(
    labels: Shaped[Tensor, "*batch"],
    prob: float,
    null_label: int,
    generator: torch.Generator | None = None,
) -> Shaped[Tensor, "*batch"]:
    """A copy of ``labels`` with each entry replaced by ``null_label`` with probability ``prob``.

    The Bernoulli draws come from ``generator`` (on ``labels``' device) when given, else from torch's global
    RNG. ``labels`` itself is not modified.
    """
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"label-dropout probability must lie in [0, 1], got {prob}")
    if labels.is_floating_point() or labels.is_complex():
        raise TypeError(f"labels must be an integer tensor, got dtype {labels.dtype}")
    drop = torch.rand(labels.shape, generator=generator, device=labels.device) < prob
    return torch.where(drop, torch.full_like(labels, null_label), labels)


def classifier_free_guidance(
    eps_cond: Float[Tensor, "*shape"], eps_uncond: Float[Tensor, "*shape"], scale: float
) -> Float[Tensor, "*shape"]:
    """``eps_uncond + scale * (eps_cond - eps_uncond)`` on every element (every channel included)."""
    if eps_cond.shape != eps_uncond.shape:
        raise ValueError(
            f"conditional and unconditional predictions differ in shape: "
            f"{tuple(eps_cond.shape)} vs {tuple(eps_uncond.shape)}"
        )
    return eps_uncond + scale * (eps_cond - eps_uncond)


def concat_conditions(cond: Any, null_cond: Any) -> Any:
    """``[cond, null_cond]`` along the batch dimension, for one batched conditional + unconditional call.

    ``cond`` is a tensor ``(B, ...)`` or a dict / list / tuple of them (recursively). ``null_cond`` has the
    same structure; each of its leaves is a tensor broadcastable to the matching ``cond`` leaf (``(B, ...)``,
    ``(1, ...)`` or a scalar) or a Python number, which fills a tensor like ``cond``'s leaf.
    """
    if isinstance(cond, Tensor):
        if isinstance(null_cond, (bool, int, float)):
            null = torch.full_like(cond, null_cond)
        elif isinstance(null_cond, Tensor):
            try:
                null = null_cond.to(device=cond.device, dtype=cond.dtype).expand_as(cond)
            except RuntimeError as error:
                raise ValueError(
                    f"null condition of shape {tuple(null_cond.shape)} does not broadcast to the condition's "
                    f"shape {tuple(cond.shape)}"
                ) from error
        else:
            raise TypeError(
                f"null condition for a tensor condition must be a tensor or number, got {null_cond!r}"
            )
        return torch.cat([cond, null], dim=0)
    if isinstance(cond, Mapping):
        if not isinstance(null_cond, Mapping) or set(null_cond) != set(cond):
            raise ValueError(f"null condition must be a mapping with the condition's keys {sorted(cond)}")
        return {key: concat_conditions(value, null_cond[key]) for key, value in cond.items()}
    if isinstance(cond, (list, tuple)):
        if not isinstance(null_cond, (list, tuple)) or len(null_cond) != len(cond):
            raise ValueError(f"null condition must be a sequence of {len(cond)} entries like the condition")
        return type(cond)(concat_conditions(c, n) for c, n in zip(cond, null_cond))
    raise TypeError(
        f"classifier-free guidance batches the condition with the null condition, which needs a tensor "
        f"(or a dict/list/tuple of tensors) condition; got {type(cond).__name__}"
    )


def evaluate_denoiser(
    net: Denoiser,
    x: Float[Tensor, " B *shape"],
    t: Int[Tensor, " B"],
    cond: Any = None,
    cache: TaylorCache | None = None,
) -> Float[Tensor, " B *shape"]:
    """``net(x, t, cond)`` (``cache=cache`` added only when given), checked to return ``x``'s shape."""
    eps = net(x, t, cond) if cache is None else net(x, t, cond, cache=cache)
    if not isinstance(eps, Tensor) or eps.shape != x.shape:
        got = tuple(eps.shape) if isinstance(eps, Tensor) else type(eps).__name__
        raise ValueError(
            f"the denoiser must return an eps prediction shaped like its input {tuple(x.shape)}, got {got}"
        )
    return eps


def guided_eps(
    net: Denoiser,
    x: Float[Tensor, " B *shape"],
    t: Int[Tensor, " B"],
    cond: Any = None,
    guidance_scale: float = 1.0,
    null_cond: Any = None,
    cache: TaylorCache | None = None,
) -> Float[Tensor, " B *shape"]:
    """The (guided) eps prediction at ``(x, t)`` from exactly one network call.

    ``guidance_scale == 1`` calls ``net(x, t, cond)`` and ignores ``null_cond``. Any other scale needs both a
    ``cond`` and a ``null_cond`` and calls the net once on the ``2 B`` batch ``[x, x]``, ``[t, t]``,
    ``[cond, null_cond]``, combining the halves with :func:`classifier_free_guidance`.
    """
    if guidance_scale == 1.0:
        return evaluate_denoiser(net, x, t, cond, cache)
    if cond is None or null_cond is None:
        raise ValueError(
            f"guidance_scale={guidance_scale} needs both a condition and a null condition "
            f"(cond is {'None' if cond is None else 'given'}, "
            f"null_cond is {'None' if null_cond is None else 'given'})"
        )
    batch = x.shape[0]
    eps = evaluate_denoiser(
        net, torch.cat([x, x]), torch.cat([t, t]), concat_conditions(cond, null_cond), cache
    )
    return classifier_free_guidance(eps[:batch], eps[batch:], guidance_scale)
