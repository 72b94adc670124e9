"""Forcing schemes that keep homogeneous isotropic turbulence statistically stationary.

A forcing is a callable ``f_hat = forcing(u_hat, grid, nu)`` on spectral velocities
``(..., 3, X, Y, Z//2+1)`` (the solver calls the in-place ``forcing.apply_(rhs, u_hat, grid, nu)`` when
it exists); it is evaluated at every Runge-Kutta stage (it depends on the state), is
proportional to ``u_hat`` on a set of forced modes and therefore solenoidal, and never touches the mean
(``k = 0``). Energies are per batch element.

* :class:`LinearForcing` (Lundgren 2003; Rosales & Meneveau 2005, Phys. Fluids 17, 095106):
  ``f = A u`` on all modes (or only on ``0 < |k| <= k_forcing``). With a fixed ``coefficient`` ``A`` the
  stationary state has ``eps = 2 A k``. With a ``target_energy`` ``k_0`` the coefficient is recomputed from
  the instantaneous state, ``A = (eps + (k_0 - k) / tau) / (2 k_f)`` (``k_f``: energy of the forced modes,
  ``eps``: the resolved dissipation ``nu sum |k|^2 |u_hat|^2``), so that ``dk/dt = (k_0 - k) / tau``: the
  energy relaxes to the target and stays there (the constant-energy variant of Bassenne et al. 2016,
  Phys. Fluids 28, 035114, with ``tau = t_0 / G``).
* :class:`BandForcing` (fixed-power forcing of the energy-containing shells, as in Machiels 1997,
  Phys. Rev. Lett. 79, 3411, and the JHU turbulence database runs):
  ``f_hat(k) = P / (2 E_f) u_hat(k)`` for ``0 < |k| <= k_forcing``, ``E_f`` the energy in those modes, so the
  injected power ``sum f . u`` equals ``P`` exactly at every instant and the mean dissipation rate of the
  stationary state is ``P``: the Kolmogorov scale ``(nu^3 / P)^{1/4}`` is known before the run.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sciml.core.errors import ConfigError
from sciml.physics.spectral import TWO_PI, SpectralGrid, deterministic_sum

_SPATIAL = (-3, -2, -1)


class _ModeForcing:
    """Shared machinery: forced-mode masks and per-batch energies of a spectral state.

    With a forcing wavenumber the forced modes sit in the corner blocks ``|m_i| <= ceil(k_f L / 2 pi)`` of
    the rfft array; the band energy and the force are computed on those few views only, so band forcing
    costs almost nothing next to the FFTs.
    """

    def __init__(self, k_forcing: float | None):
        if k_forcing is not None and not k_forcing > 0:
            raise ConfigError("k_forcing", f"must be a positive wavenumber or None, got {k_forcing!r}")
        self.k_forcing = k_forcing
        self._cache: tuple[SpectralGrid, Tensor, list] | None = None

    def _prepare(self, grid: SpectralGrid) -> tuple[Tensor, list]:
        if self._cache is None or self._cache[0] is not grid:
            forced = grid.k2_full > 0
            if self.k_forcing is not None:
                forced = forced & (grid.kmag <= self.k_forcing * (1.0 + 1e-12))
            mask = forced.to(grid.dtype)
            self._cache = (grid, mask, self._blocks(grid, mask))
        return self._cache[1], self._cache[2]

    def _blocks(self, grid: SpectralGrid, mask: Tensor) -> list:
        """(slices, mask block, energy weights block) covering every forced mode, or [] for all modes."""
        if self.k_forcing is None:
            return []
        bounds = [int(math.ceil(self.k_forcing * length / TWO_PI - 1e-9)) for length in grid.lengths]
        # Works on full rfft arrays and on compact retained blocks alike: both store the non-negative
        # modes of an axis first and the negative ones last.
        nx, ny, nzr = grid.spectral_shape
        if 2 * bounds[0] + 1 >= nx or 2 * bounds[1] + 1 >= ny or bounds[2] + 1 >= nzr:
            return []
        x_ranges = [slice(0, bounds[0] + 1), slice(nx - bounds[0], nx)]
        y_ranges = [slice(0, bounds[1] + 1), slice(ny - bounds[1], ny)]
        z_range = slice(0, bounds[2] + 1)
        blocks = []
        for sx in x_ranges:
            for sy in y_ranges:
                index = (sx, sy, z_range)
                if mask[index].any():
                    blocks.append((index, mask[index], grid.weights[index] * mask[index]))
        return blocks

    def mask(self, grid: SpectralGrid) -> Tensor:
        return self._prepare(grid)[0]

    @staticmethod
    def energy(u_hat: Tensor, grid: SpectralGrid, weight: Tensor | None = None) -> Tensor:
        """``0.5 sum |u_hat|^2`` (optionally weighted per mode) with Parseval scaling, shape (...)."""
        density = grid.mode_energy(u_hat)
        if weight is not None:
            density = density * weight
        return deterministic_sum(density, _SPATIAL)

    def forced_energy(self, u_hat: Tensor, grid: SpectralGrid) -> Tensor:
        """Kinetic energy of the forced modes, shape (...)."""
        mask, blocks = self._prepare(grid)
        if not blocks:
            return self.energy(u_hat, grid, mask)
        scale = 0.5 / float(grid.n_points) ** 2
        total = None
        for index, _, weights in blocks:
            view = u_hat[(..., slice(None), *index)]  # (..., 3, bx, by, bz)
            part = deterministic_sum((view.real.square() + view.imag.square()).sum(-4) * weights, _SPATIAL)
            total = part if total is None else total + part
        return total * scale

    def add_force_(self, rhs: Tensor, u_hat: Tensor, grid: SpectralGrid, coefficient: Tensor | float) -> None:
        """``rhs += coefficient * mask * u_hat`` (coefficient per batch element or a number)."""
        mask, blocks = self._prepare(grid)
        if isinstance(coefficient, Tensor):
            coefficient = self._broadcast(coefficient)
        if not blocks:
            rhs.add_(u_hat * (mask * coefficient))
            return
        for index, block_mask, _ in blocks:
            where = (..., slice(None), *index)
            rhs[where] += u_hat[where] * (block_mask * coefficient)

    @staticmethod
    def _broadcast(coefficient: Tensor) -> Tensor:
        return coefficient[..., None, None, None, None]  # (...) -> (..., 1, 1, 1, 1)

    def __call__(self, u_hat: Tensor, grid: SpectralGrid, nu: float) -> Tensor:
        """The force ``f_hat`` as a new tensor."""
        force = torch.zeros_like(u_hat)
        self.apply_(force, u_hat, grid, nu)
        return force


class LinearForcing(_ModeForcing):
    """``f = A u`` with a fixed ``coefficient`` A or an A that holds ``target_energy``."""

    def __init__(
        self,
        coefficient: float | None = None,
        target_energy: float | None = None,
        relaxation_time: float = 1.0,
        k_forcing: float | None = None,
    ):
        super().__init__(k_forcing)
        if (coefficient is None) == (target_energy is None):
            raise ConfigError(
                "forcing", "LinearForcing needs exactly one of `coefficient` or `target_energy`"
            )
        if target_energy is not None and not target_energy > 0:
            raise ConfigError("target_energy", f"must be positive, got {target_energy!r}")
        if not relaxation_time > 0:
            raise ConfigError("relaxation_time", f"must be positive, got {relaxation_time!r}")
        self.coefficient = coefficient
        self.target_energy = target_energy
        self.relaxation_time = relaxation_time

    def apply_(self, rhs: Tensor, u_hat: Tensor, grid: SpectralGrid, nu: float) -> None:
        """Add the force to ``rhs`` in place."""
        if self.coefficient is not None:
            self.add_force_(rhs, u_hat, grid, float(self.coefficient))
            return
        energy = self.energy(u_hat, grid)
        forced_energy = energy if self.k_forcing is None else self.forced_energy(u_hat, grid)
        dissipation = 2.0 * nu * self.energy(u_hat, grid, grid.k2)
        rate = dissipation + (self.target_energy - energy) / self.relaxation_time
        coefficient = torch.where(forced_energy > 0, rate / (2.0 * forced_energy.clamp_min(1e-300)), 0.0)
        self.add_force_(rhs, u_hat, grid, coefficient)

    def describe(self) -> dict:
        return {
            "kind": "linear",
            "coefficient": self.coefficient,
            "target_energy": self.target_energy,
            "relaxation_time": self.relaxation_time,
            "k_forcing": self.k_forcing,
        }


class BandForcing(_ModeForcing):
    """Inject energy at the fixed rate ``injection_rate`` into the modes with ``0 < |k| <= k_forcing``."""

    def __init__(self, injection_rate: float, k_forcing: float = 2.0):
        if not injection_rate > 0:
            raise ConfigError("injection_rate", f"must be positive, got {injection_rate!r}")
        if k_forcing is None:
            raise ConfigError("k_forcing", "BandForcing needs a forcing wavenumber")
        super().__init__(k_forcing)
        self.injection_rate = float(injection_rate)

    def apply_(self, rhs: Tensor, u_hat: Tensor, grid: SpectralGrid, nu: float) -> None:
        """Add the force to ``rhs`` in place."""
        forced_energy = self.forced_energy(u_hat, grid)
        coefficient = torch.where(
            forced_energy > 0, self.injection_rate / (2.0 * forced_energy.clamp_min(1e-300)), 0.0
        )
        self.add_force_(rhs, u_hat, grid, coefficient)

    def describe(self) -> dict:
        return {"kind": "band", "injection_rate": self.injection_rate, "k_forcing": self.k_forcing}
