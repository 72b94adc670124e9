"""LES filters in spectral form and coarse-graining from a DNS grid to an LES grid.

Transfer functions ``G(k)`` for a filter of width ``Delta`` (Pope 2000, *Turbulent Flows*, Table 13.2),
applied as ``u_bar_hat(k) = G(k) u_hat(k)``, separable over the three directions:

* ``"sharp"``: ``G = prod_i H(pi / Delta_i - |k_i|)``; modes with ``|k_i| >= pi / Delta_i`` (at or above the
  cutoff in any direction) are removed. The cutoff is a cube in wavenumber space, the natural choice on a
  Cartesian grid: with ``Delta`` equal to the LES grid spacing it keeps exactly the modes the LES grid
  represents (its Nyquist modes excluded).
* ``"gaussian"``: ``G = exp(-|k|^2 Delta^2 / 24)`` (second moment ``Delta^2 / 12`` like the box filter).
* ``"box"`` (top-hat): real-space average over ``[x - Delta/2, x + Delta/2]`` in each direction,
  ``G = prod_i sin(k_i Delta_i / 2) / (k_i Delta_i / 2)``.

:func:`coarse_grain` filters on the fine grid, then keeps only the Fourier modes representable on the
coarse grid (``|m_i| <= (n_coarse_i - 1) // 2``) and rescales by ``n_coarse / n_fine`` so an inverse FFT on
the coarse grid returns physical values: the coarse field is the filtered field sampled at the coarse
nodes, exactly, whenever the filtered field contains no modes above the coarse grid's resolution
(always true for the default sharp filter). The default width is the coarse grid spacing ``L / n_coarse``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from sciml.core.errors import ConfigError
from sciml.physics.spectral import TWO_PI, as_triple, cached_grid, check_field, irfft3, resample_hat, rfft3

FILTER_KINDS = ("sharp", "gaussian", "box")


def transfer_function(
    kind: str,
    width: float | Sequence[float],
    shape: Sequence[int],
    lengths: float | Sequence[float] = TWO_PI,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """``G(k)`` on the rfft grid of ``shape``: (X, Y, Z//2+1), real."""
    if kind not in FILTER_KINDS:
        raise ConfigError("filter", f"expected one of {FILTER_KINDS}, got {kind!r}")
    widths = as_triple(width, "width")
    if min(widths) <= 0:
        raise ConfigError("width", f"filter width must be positive, got {width!r}")
    grid = cached_grid(
        as_triple(shape, "shape", int), as_triple(lengths, "lengths"), torch.device(device or "cpu"), dtype
    )
    # Full (not derivative) wavenumbers: a filter acts on the Nyquist mode like on any other.
    k = [
        m.to(dtype) * (TWO_PI / length) for m, length in zip(grid.modes, grid.lengths)
    ]  # broadcastable (X,1,1), (1,Y,1), (1,1,Zr)
    if kind == "sharp":
        # A tiny relative tolerance so a mode sitting exactly on the cutoff is removed despite rounding.
        keep = [(ki.abs() < (math.pi / w) * (1.0 - 1e-9)) for ki, w in zip(k, widths)]
        return (keep[0] & keep[1] & keep[2]).to(dtype)
    if kind == "gaussian":
        exponent = sum((ki * w) ** 2 for ki, w in zip(k, widths)) / 24.0
        return torch.exp(-exponent)
    factors = [torch.sinc(ki * w / TWO_PI) for ki, w in zip(k, widths)]  # torch.sinc(x) = sin(pi x)/(pi x)
    return factors[0] * factors[1] * factors[2]


def spectral_filter(
    u: Float[Tensor, "*batch X Y Z"],
    kind: str = "sharp",
    width: float | Sequence[float] | None = None,
    lengths: float | Sequence[float] = TWO_PI,
) -> Float[Tensor, "*batch X Y Z"]:
    """Filter a periodic field (any leading dims, e.g. (..., 3, X, Y, Z)) on its own grid."""
    check_field(u, "u", vector=False)
    if width is None:
        raise ConfigError("width", "spectral_filter needs a filter width (same length units as `lengths`)")
    g = transfer_function(kind, width, u.shape[-3:], lengths, device=u.device, dtype=u.dtype)
    return irfft3(rfft3(u) * g, u.shape[-3:])


def coarse_grain(
    u: Float[Tensor, "*batch X Y Z"],
    shape: int | Sequence[int],
    kind: str | None = "sharp",
    width: float | Sequence[float] | None = None,
    lengths: float | Sequence[float] = TWO_PI,
) -> Float[Tensor, "*batch Xc Yc Zc"]:
    """Filter ``u`` (``kind=None``: no filter) and restrict it spectrally to a coarse grid ``shape``.

    ``width`` defaults to the coarse grid spacing per direction.
    """
    check_field(u, "u", vector=False)
    coarse = as_triple(shape, "shape", int)
    fine = tuple(u.shape[-3:])
    if any(c > f for c, f in zip(coarse, fine)) or min(coarse) < 2:
        raise ConfigError(
            "shape", f"coarse grid {coarse} must be >= 2 and no finer than the input grid {fine}"
        )
    lengths3 = as_triple(lengths, "lengths")
    u_hat = rfft3(u)
    if kind is not None:
        if width is None:
            width = tuple(length / n for length, n in zip(lengths3, coarse))
        u_hat = u_hat * transfer_function(kind, width, fine, lengths3, device=u.device, dtype=u.dtype)
    return irfft3(resample_hat(u_hat, fine, coarse), coarse)
