"""Fourier machinery for triply periodic boxes: wavenumbers, dealiasing masks, real FFTs, resampling.

Conventions (shared by every module of ``sciml.physics``):

* A field is ``(..., X, Y, Z)`` (a velocity is ``(..., 3, X, Y, Z)``); node coordinates
  ``x_i = i L / n``. Spectral arrays are ``torch.fft.rfftn`` over the last three axes, shape
  ``(..., X, Y, Z // 2 + 1)``, with the unnormalised forward transform, so the Fourier coefficient of the
  continuous field is ``u_hat / (X Y Z)``.
* Wavenumbers ``k_i = 2 pi m_i / L_i`` with integer ``m_i`` in FFT order. For even ``n`` the Nyquist mode
  ``m = -n/2`` has no well-defined first derivative for a real field; first-derivative wavenumbers
  (:attr:`SpectralGrid.kx` ...) set it to zero (Canuto et al. 2006, *Spectral Methods: Fundamentals in
  Single Domains*), which keeps spectral
  differentiation skew-adjoint on the grid, while :attr:`SpectralGrid.k2_full` keeps its true ``|k|^2``
  for the viscous term.
* Dealiasing: the 2/3 rule (Orszag 1971) keeps modes with ``3 |m_i| < n_i`` in every direction
  (a cube in index space), so quadratic products of retained modes alias only onto discarded ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import torch
from torch import Tensor

from sciml.core.errors import ConfigError

TWO_PI = 2.0 * math.pi
FFT_DIMS = (-3, -2, -1)


def as_triple(value, name: str, kind=float) -> tuple:
    """``value`` as a 3-tuple of ``kind`` (a scalar is repeated); errors name ``name``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        values = (value, value, value)
    else:
        try:
            values = tuple(value)
        except TypeError as error:
            raise ConfigError(name, f"expected a number or 3 numbers, got {value!r}") from error
        if len(values) != 3:
            raise ConfigError(name, f"expected a number or 3 numbers, got {len(values)} values {value!r}")
    try:
        return tuple(kind(v) for v in values)
    except (TypeError, ValueError) as error:
        raise ConfigError(name, f"expected numbers, got {value!r}") from error


def check_field(u: Tensor, name: str = "u", vector: bool = True) -> None:
    """Fail fast with the expected layout ``(..., 3, X, Y, Z)`` (or ``(..., X, Y, Z)`` for scalars)."""
    if not isinstance(u, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(u).__name__}")
    if vector and (u.ndim < 4 or u.shape[-4] != 3):
        raise ValueError(f"{name}: expected a velocity field (..., 3, X, Y, Z), got shape {tuple(u.shape)}")
    if not vector and u.ndim < 3:
        raise ValueError(f"{name}: expected a field (..., X, Y, Z), got shape {tuple(u.shape)}")
    if not u.is_floating_point():
        raise TypeError(f"{name}: expected a real floating-point tensor, got {u.dtype}")


def rfft3(u: Tensor) -> Tensor:
    """Unnormalised real FFT over the last three axes: (..., X, Y, Z) -> (..., X, Y, Z//2+1)."""
    return torch.fft.rfftn(u, dim=FFT_DIMS)


def irfft3(u_hat: Tensor, shape: Sequence[int]) -> Tensor:
    """Inverse of :func:`rfft3` back to the grid ``shape`` (X, Y, Z)."""
    return torch.fft.irfftn(u_hat, s=tuple(shape), dim=FFT_DIMS)


def _integer_modes(n: int, half: bool, device) -> Tensor:
    """Signed integer mode numbers in FFT order (``rfft`` order when ``half``)."""
    if half:
        return torch.arange(n // 2 + 1, device=device)
    return torch.fft.fftfreq(n, d=1.0 / n, device=device).round().long()


class SpectralGrid:
    """Wavenumber tensors and masks of an ``(X, Y, Z)`` periodic grid with box ``lengths``.

    All tensors broadcast against spectral arrays ``(..., X, Y, Z//2+1)``:
    ``kx (X,1,1)``, ``ky (1,Y,1)``, ``kz (1,1,Z//2+1)`` (first-derivative wavenumbers, Nyquist zeroed),
    ``k2`` and ``inv_k2`` built from them (``inv_k2 = 0`` where ``k2 = 0``), ``k2_full`` (true ``|k|^2``),
    ``kmag = sqrt(k2_full)``, ``dealias`` (2/3-rule mask, float 0/1) and ``weights`` (how many complex
    modes each ``rfft`` entry stands for: 1 on the ``kz = 0`` and Nyquist planes, 2 elsewhere).
    """

    def __init__(
        self,
        shape: int | Sequence[int],
        lengths: float | Sequence[float] = TWO_PI,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float64,
    ):
        self.shape = as_triple(shape, "shape", int)
        self.lengths = as_triple(lengths, "lengths", float)
        if min(self.shape) < 2:
            raise ConfigError("shape", f"every grid size must be >= 2, got {self.shape}")
        if min(self.lengths) <= 0:
            raise ConfigError("lengths", f"box lengths must be positive, got {self.lengths}")
        if dtype not in (torch.float32, torch.float64):
            raise ConfigError("dtype", f"expected torch.float32 or torch.float64, got {dtype}")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype
        self.spectral_shape = (self.shape[0], self.shape[1], self.shape[2] // 2 + 1)
        nx, ny, nz = self.shape
        view = ((-1, 1, 1), (1, -1, 1), (1, 1, -1))

        modes = []
        derivative_k = []
        full_k = []
        for axis, (n, length) in enumerate(zip(self.shape, self.lengths)):
            m = _integer_modes(n, half=(axis == 2), device=self.device)
            k = m.to(dtype) * (TWO_PI / length)
            kd = k.clone()
            if n % 2 == 0:
                kd[m.abs() == n // 2] = 0.0
            modes.append(m.view(view[axis]))
            full_k.append(k.view(view[axis]))
            derivative_k.append(kd.view(view[axis]))
        self.modes = tuple(modes)
        self.kx, self.ky, self.kz = derivative_k
        self.k2 = self.kx**2 + self.ky**2 + self.kz**2
        self.k2_full = full_k[0] ** 2 + full_k[1] ** 2 + full_k[2] ** 2
        self.kmag = self.k2_full.sqrt()
        self.inv_k2 = torch.where(self.k2 > 0, 1.0 / torch.where(self.k2 > 0, self.k2, 1.0), 0.0)
        keep = [(3 * m.abs() < n) for m, n in zip(self.modes, self.shape)]
        self.dealias = (keep[0] & keep[1] & keep[2]).to(dtype)
        w = torch.full((nz // 2 + 1,), 2.0, dtype=dtype, device=self.device)
        w[0] = 1.0
        if nz % 2 == 0:
            w[-1] = 1.0
        self.weights = w.view(1, 1, -1).expand(self.spectral_shape)
        self.k_vectors = (self.kx, self.ky, self.kz)
        complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        # i k as complex tensors so derivative kernels multiply once instead of twice.
        self.ikx, self.iky, self.ikz = (1j * k.to(complex_dtype) for k in self.k_vectors)

    # ------------------------------------------------------------------ helpers
    @property
    def n_points(self) -> int:
        return self.shape[0] * self.shape[1] * self.shape[2]

    @property
    def spacing(self) -> tuple[float, float, float]:
        return tuple(length / n for length, n in zip(self.lengths, self.shape))

    @property
    def k_max_dealiased(self) -> float:
        """Largest wavenumber kept by the 2/3 rule along the most poorly resolved axis."""
        return min(TWO_PI / length * ((n - 1) // 3) for length, n in zip(self.lengths, self.shape))

    def to(self, device=None, dtype: torch.dtype | None = None) -> SpectralGrid:
        """The same grid on another device/dtype (``self`` when nothing changes)."""
        device = torch.device(device) if device is not None else self.device
        dtype = dtype or self.dtype
        if device == self.device and dtype == self.dtype:
            return self
        return cached_grid(self.shape, self.lengths, device, dtype)

    def like(self, tensor: Tensor) -> SpectralGrid:
        """The grid on the device of ``tensor`` with its real dtype (the real part's for complex inputs)."""
        dtype = tensor.real.dtype if tensor.is_complex() else tensor.dtype
        return self.to(tensor.device, dtype)

    def coordinates(self) -> tuple[Tensor, Tensor, Tensor]:
        """1-D node coordinates ``x_i = i L / n`` per axis."""
        return tuple(
            torch.arange(n, device=self.device, dtype=self.dtype) * (length / n)
            for n, length in zip(self.shape, self.lengths)
        )

    def mesh(self) -> Tensor:
        """Node coordinates as a (3, X, Y, Z) tensor ("ij" indexing)."""
        return torch.stack(torch.meshgrid(*self.coordinates(), indexing="ij"))

    def fft(self, u: Tensor) -> Tensor:
        return rfft3(u)

    def ifft(self, u_hat: Tensor) -> Tensor:
        return irfft3(u_hat, self.shape)

    def check_spectral(self, u_hat: Tensor, name: str = "u_hat") -> None:
        if tuple(u_hat.shape[-3:]) != self.spectral_shape or u_hat.ndim < 4 or u_hat.shape[-4] != 3:
            raise ValueError(
                f"{name}: expected a spectral velocity (..., 3, {', '.join(map(str, self.spectral_shape))}), "
                f"got shape {tuple(u_hat.shape)}"
            )

    def check_physical(self, u: Tensor, name: str = "u") -> None:
        check_field(u, name)
        if tuple(u.shape[-3:]) != self.shape:
            raise ValueError(f"{name}: expected grid {self.shape}, got spatial shape {tuple(u.shape[-3:])}")

    # ------------------------------------------------------------------ operators on spectral vectors
    def divergence_hat(self, u_hat: Tensor) -> Tensor:
        """i k . u_hat : (..., 3, X, Y, Zr) -> (..., X, Y, Zr)."""
        ux, uy, uz = u_hat.unbind(-4)
        return 1j * (self.kx * ux + self.ky * uy + self.kz * uz)

    def curl_hat(self, u_hat: Tensor) -> Tensor:
        """i k x u_hat : (..., 3, X, Y, Zr) -> (..., 3, X, Y, Zr)."""
        ux, uy, uz = u_hat.unbind(-4)
        curl = torch.stack(
            (self.ky * uz - self.kz * uy, self.kz * ux - self.kx * uz, self.kx * uy - self.ky * ux), dim=-4
        )
        return curl.mul_(1j)

    def project(self, u_hat: Tensor) -> Tensor:
        """Leray projection onto divergence-free fields, ``(I - k k^T / |k|^2) u_hat``."""
        ux, uy, uz = u_hat.unbind(-4)
        k_dot_u = (self.kx * ux + self.ky * uy + self.kz * uz) * self.inv_k2
        return torch.stack((ux - self.kx * k_dot_u, uy - self.ky * k_dot_u, uz - self.kz * k_dot_u), dim=-4)

    def mode_energy(self, u_hat: Tensor) -> Tensor:
        """Kinetic energy carried by each ``rfft`` entry, (..., 3, X, Y, Zr) -> (..., X, Y, Zr).

        Summed over all entries it equals ``0.5 <u_i u_i>`` (Parseval, with the rfft weights).
        """
        scale = 0.5 / float(self.n_points) ** 2
        return (u_hat.real.square() + u_hat.imag.square()).sum(-4) * (self.weights * scale)


@lru_cache(maxsize=32)
def cached_grid(shape: tuple, lengths: tuple, device: torch.device, dtype: torch.dtype) -> SpectralGrid:
    """Grids are immutable; statistics and filters reuse one per (shape, lengths, device, dtype)."""
    return SpectralGrid(shape, lengths, device=device, dtype=dtype)


def grid_for(u: Tensor, lengths: float | Sequence[float] = TWO_PI) -> SpectralGrid:
    """The cached grid matching the spatial shape, device and dtype of ``u``."""
    dtype = u.real.dtype if u.is_complex() else u.dtype
    return cached_grid(tuple(u.shape[-3:]), as_triple(lengths, "lengths"), u.device, dtype)


def deterministic_sum(x: Tensor, dims: Sequence[int]) -> Tensor:
    """Sum over ``dims`` one axis at a time, innermost first.

    A single all-axes reduction to one number splits the work between CPU threads and so rounds
    differently with the thread count; reducing one axis at a time keeps several outputs per call,
    which torch parallelises over outputs only, so the result does not depend on the thread count.
    """
    for dim in sorted((d % x.ndim for d in dims), reverse=True):
        x = x.sum(dim)
    return x


def _resample_modes(n_src: int, n_dst: int) -> int:
    """Largest |m| kept when moving between grids of n_src and n_dst points (Nyquist dropped)."""
    return min((n_src - 1) // 2, (n_dst - 1) // 2)


def resample_hat(u_hat: Tensor, src_shape: Sequence[int], dst_shape: Sequence[int]) -> Tensor:
    """Truncate or zero-pad an rfft spectrum between grids, rescaling so physical values are preserved.

    Modes with ``|m_i| <= min((n_src-1)//2, (n_dst-1)//2)`` are copied, all others dropped; in particular
    the Nyquist modes of even grids are removed, because a real field cannot carry ``sin(n x / 2)`` on an
    ``n``-point grid. A field band-limited to the kept modes is therefore reproduced exactly.
    Returns ``(..., X', Y', Z'//2+1)``.
    """
    src_shape, dst_shape = tuple(src_shape), tuple(dst_shape)
    kx, ky, kz = (_resample_modes(a, b) for a, b in zip(src_shape, dst_shape))
    out = u_hat.new_zeros(*u_hat.shape[:-3], dst_shape[0], dst_shape[1], dst_shape[2] // 2 + 1)
    scale = math.prod(dst_shape) / math.prod(src_shape)
    x_blocks = [(slice(0, kx + 1), slice(0, kx + 1))]
    if kx > 0:
        x_blocks.append((slice(src_shape[0] - kx, src_shape[0]), slice(dst_shape[0] - kx, dst_shape[0])))
    y_blocks = [(slice(0, ky + 1), slice(0, ky + 1))]
    if ky > 0:
        y_blocks.append((slice(src_shape[1] - ky, src_shape[1]), slice(dst_shape[1] - ky, dst_shape[1])))
    z = slice(0, kz + 1)
    for sx, dx in x_blocks:
        for sy, dy in y_blocks:
            out[..., dx, dy, z] = u_hat[..., sx, sy, z] * scale
    return out


def resample(u: Tensor, shape: int | Sequence[int]) -> Tensor:
    """Spectral (Fourier) interpolation of a periodic field (..., X, Y, Z) onto another grid size."""
    shape = as_triple(shape, "shape", int)
    src = tuple(u.shape[-3:])
    return irfft3(resample_hat(rfft3(u), src, shape), shape)


class RetainedModes(SpectralGrid):
    """The 2/3-rule retained modes of ``grid`` stored as a compact block.

    A dealiased spectral field is zero outside ``|m_i| <= K_i = (n_i - 1) // 3``; keeping only that block,
    ``(2 K_x + 1, 2 K_y + 1, K_z + 1)`` in FFT order (non-negative then negative modes), cuts the
    spectral-space work of the solver to about 30 % of the full rfft array (``(43 * 43 * 22) /
    (64 * 64 * 33)`` at 64^3). Every wavenumber attribute and operator of :class:`SpectralGrid` is
    available on the block; :meth:`gather` and :meth:`scatter` convert to and from full rfft arrays.
    """

    def __init__(self, grid: SpectralGrid):  # noqa: D107 - fills the SpectralGrid attributes directly
        self.full = grid
        self.shape = grid.shape
        self.lengths = grid.lengths
        self.device = grid.device
        self.dtype = grid.dtype
        self.retained = tuple((n - 1) // 3 for n in grid.shape)
        kx, ky, kz = self.retained
        self.spectral_shape = (2 * kx + 1, 2 * ky + 1, kz + 1)
        self._x_blocks = self._axis_blocks(kx, grid.shape[0])
        self._y_blocks = self._axis_blocks(ky, grid.shape[1])
        self._z = slice(0, kz + 1)
        index_x = torch.cat([torch.arange(grid.shape[0], device=grid.device)[f] for f, _ in self._x_blocks])
        index_y = torch.cat([torch.arange(grid.shape[1], device=grid.device)[f] for f, _ in self._y_blocks])

        def pick(t: Tensor) -> Tensor:
            """(X|1, Y|1, Zr|1) full-grid tensor -> the compact block."""
            if t.shape[0] > 1:
                t = t.index_select(0, index_x)
            if t.shape[1] > 1:
                t = t.index_select(1, index_y)
            return t[:, :, self._z] if t.shape[2] > 1 else t

        self.modes = tuple(pick(m) for m in grid.modes)
        self.kx, self.ky, self.kz = (pick(k) for k in grid.k_vectors)
        self.k_vectors = (self.kx, self.ky, self.kz)
        self.ikx, self.iky, self.ikz = (pick(k) for k in (grid.ikx, grid.iky, grid.ikz))
        self.k2 = pick(grid.k2)
        self.k2_full = pick(grid.k2_full)
        self.kmag = pick(grid.kmag)
        self.inv_k2 = pick(grid.inv_k2)
        self.dealias = torch.ones(self.spectral_shape, dtype=grid.dtype, device=grid.device)
        self.weights = pick(grid.weights).contiguous()

    @staticmethod
    def _axis_blocks(k: int, n: int) -> list[tuple[slice, slice]]:
        """(full slice, compact slice) pairs of the non-negative and negative retained modes of one axis."""
        blocks = [(slice(0, k + 1), slice(0, k + 1))]
        if k > 0:
            blocks.append((slice(n - k, n), slice(k + 1, 2 * k + 1)))
        return blocks

    def _pairs(self):
        for full_x, compact_x in self._x_blocks:
            for full_y, compact_y in self._y_blocks:
                yield (full_x, full_y, self._z), (compact_x, compact_y, slice(None))

    def gather(self, u_hat: Tensor) -> Tensor:
        """Full rfft array (..., X, Y, Zr) -> compact block (..., 2Kx+1, 2Ky+1, Kz+1)."""
        out = u_hat.new_empty(*u_hat.shape[:-3], *self.spectral_shape)
        for full, compact in self._pairs():
            out[(..., *compact)] = u_hat[(..., *full)]
        return out

    def scatter(self, compact: Tensor, out: Tensor | None = None) -> Tensor:
        """Compact block -> full rfft array; ``out`` must be zero outside the block (it is reused as is)."""
        if out is None:
            out = compact.new_zeros(*compact.shape[:-3], *self.full.spectral_shape)
        for full, block in self._pairs():
            out[(..., *full)] = compact[(..., *block)]
        return out

    def to(self, device=None, dtype: torch.dtype | None = None) -> RetainedModes:
        grid = self.full.to(device, dtype)
        return self if grid is self.full else RetainedModes(grid)
