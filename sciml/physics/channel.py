"""Incompressible plane channel flow: Fourier x Chebyshev velocity-vorticity DNS (Kim, Moin & Moser 1987).

Equations (density 1, half-height h = 1, walls at ``y = -1, +1``, periodic in ``x`` and ``z``):
``du/dt = H - grad p + nu lap u + Pi e_x``, ``div u = 0``, ``u = 0`` at the walls, with the rotational
nonlinear term ``H = u x omega`` (``grad |u|^2/2`` is absorbed in ``p``) and ``Pi = -dP/dx`` the mean
pressure gradient that drives the flow.

Formulation (Kim, Moin & Moser 1987, J. Fluid Mech. 177, 133, eqs. 2.8-2.11), per Fourier mode
``(kx, kz)`` with ``k^2 = kx^2 + kz^2 > 0``:

* ``d phi/dt = h_v + nu L phi`` with ``phi = L v``, ``L = D^2 - k^2``,
  ``h_v = -D(i kx H_x + i kz H_z) - k^2 H_y``; and ``d omega_y/dt = h_g + nu L omega_y`` with
  ``h_g = i kz H_x - i kx H_z``. Boundary conditions ``v = Dv = omega_y = 0`` at both walls.
* ``u`` and ``w`` follow from continuity and the definition of ``omega_y``:
  ``u = i (kx Dv - kz omega_y) / k^2``, ``w = i (kz Dv + kx omega_y) / k^2``, so the velocity is
  divergence-free by construction (to rounding), and no pressure is ever computed.
* The mean (``k = 0``) mode: ``dU/dt = <H_x> + nu D^2 U + Pi``, ``dW/dt = <H_z> + nu D^2 W``, ``U = W = 0``
  at the walls; the mean ``v`` is zero. ``Pi`` is either fixed (constant pressure gradient) or chosen at
  every Runge-Kutta substage so that the bulk velocity ``U_b = (1/2) int U dy`` stays at its target
  (constant flow rate).

Discretisation and choices:

* ``y``: Chebyshev collocation on the Gauss-Lobatto points ``y_j = cos(pi j / N)``, ``j = 0..N``
  (``y[0] = +1``, ``y[-1] = -1``; ``ny = N + 1``), dense differentiation matrices (Canuto, Hussaini,
  Quarteroni & Zang 2006, *Spectral Methods: Fundamentals in Single Domains*, sec. 2.4). The state keeps
  ``phi`` rather than ``v`` so that only second derivatives are ever taken numerically: applying a
  collocation fourth-derivative matrix would amplify rounding by ``~N^8``.
* The fourth-order ``v`` problem is split into two second-order Dirichlet problems with the
  influence-matrix (Green's function) method of KMM: a particular ``phi_p`` (``phi_p = 0`` at the walls)
  plus the two homogeneous solutions ``phi_+-`` (``phi = 1`` on one wall), each followed by the Poisson
  problem ``L v = phi``, ``v = 0`` at the walls; the 2x2 combination makes ``Dv = 0`` at both walls. For a
  given ``dt`` and substage this whole chain is linear, so it is precomputed as one dense
  ``(modes, ny, ny)`` matrix per substage (batched inverses in float64, cached per ``dt``); a substage
  then costs a batched matrix product per field.
* ``x``, ``z``: Fourier, products on the grid with the 2/3 rule (Orszag 1971, J. Atmos. Sci. 28, 1074):
  only modes with ``3 |m| < n`` in each direction are kept. ``y`` is not dealiased (as in KMM).
* Time: the low-storage semi-implicit scheme of Spalart, Moser & Rogers (1991, J. Comput. Phys. 96, 297,
  appendix A): RK3 for ``H`` and ``Pi`` and Crank-Nicolson-type ``alpha_k, beta_k`` weights for the
  viscous terms, ``gamma = (8/15, 5/12, 3/4)``, ``zeta = (0, -17/60, -5/12)``,
  ``alpha = (29/96, -3/40, 1/6)``, ``beta = (37/160, 5/24, 1/6)``. The viscous terms (wall-normal and
  wall-parallel) are implicit, so ``dt`` has no viscous limit; the scheme is second order in time
  overall (third order for the explicit part alone).
* Time step: ``dt = cfl / max(|u|/dx + |v|/dy_j + |w|/dz)`` with ``dy_j`` the local Gauss-Lobatto spacing
  (with a closure also ``dt <= cfl / max(|nu_t| (kx_max^2 + 1/dy_j^2 + kz_max^2))``, the explicit SGS term);
  :meth:`ChannelFlow.advance` rounds it down to the ladder ``2^(k/8)`` so that the implicit operators,
  built once per ``dt`` (about three steps' work), are rebuilt only when the limit crosses a rung.
* Boundary values are Dirichlet data: ``v``, ``omega_y``, ``U``, ``W`` are exactly zero on the walls and
  ``Dv`` is set to its boundary value 0 there (the influence matrix makes it so to rounding), so the
  no-slip condition holds exactly.

Large-eddy simulation (optional, ``les``; closures of :mod:`sciml.physics.les`): the momentum equation
gains ``-d tau_ij/dx_j`` with the modelled deviatoric stress ``tau^d_ij = -2 nu_t S^d_ij`` (the trace goes
into the pressure), added to ``H`` before its projection, so it enters ``h_v``, ``h_g`` and the mean
equations like the convective term: explicitly in the RK3 part of the scheme, while the molecular
viscosity stays implicit. This is the usual split for spectral channel LES (Moin & Kim 1982, J. Fluid
Mech. 118, 341; Germano et al. 1991, Phys. Fluids A 3, 1760): ``nu_t`` varies in space and time, so an
implicit eddy viscosity would need a new operator every substage, and ``nu_t ~ nu`` or less on a
wall-resolved LES grid keeps the explicit limit near the convective one. The velocity gradient comes from
the solver's derivatives (Fourier ``i k`` in ``x, z``, the Chebyshev matrix in ``y``), its products on the
grid like ``H`` (2/3 rule in ``x, z``), the divergence of ``tau`` spectrally as well. Choices:

* filter width ``Delta(y) = (1.5 dx dy(y) 1.5 dz)^(1/3)`` (Deardorff 1970, J. Fluid Mech. 41, 453;
  :meth:`ChannelFlow.default_width`): the dealiased ``x, z`` spacings as in
  :func:`sciml.physics.les.default_width` and the local Gauss-Lobatto spacing in ``y``; ``les_width``
  replaces it by a constant;
* :class:`~sciml.physics.les.Smagorinsky` with ``wall_damped=True``: van Driest damping with
  ``y+ = (1 - |y|) u_tau / nu`` and ``u_tau = sqrt(tau_w)`` from the current mean wall shear of each
  flow (both walls averaged), re-evaluated at every substage (:meth:`ChannelFlow.wall_units`), so the
  damping follows the flow rather than a nominal ``Re_tau``; without damping ``nu_t`` stays finite at
  the wall, where the subgrid stress must vanish (Moin & Kim 1982 damp it the same way);
* :class:`~sciml.physics.les.DynamicSmagorinsky`: the coefficient is averaged over x-z planes
  (``average_dims=(-3, -1)`` is required) and, unless the model brings its own, the test filter is
  :meth:`ChannelFlow.test_filter`, a sharp cutoff in ``x, z`` at half the retained wavenumbers (width
  ``2 Delta`` in the sense above) and none in ``y``; ``nu + nu_t >= 0`` as in :mod:`sciml.physics.les`;
* :meth:`ChannelFlow.parameters`, :meth:`~ChannelFlow.save` and :meth:`~ChannelFlow.load` record the
  closure as :func:`~sciml.physics.les.closure_config`, so a restart continues the same LES; a closure a
  dict cannot describe (a fixed ``y_plus`` tensor, a callable test filter) raises ``ConfigError`` there.

``les=None`` runs exactly the DNS code path.

State: :class:`ChannelState` with spectral ``phi, omega (B, M, ny)`` complex over the ``M`` retained
non-mean modes (:attr:`ChannelFlow.kx`, :attr:`ChannelFlow.kz`), Fourier coefficients normalised so the
mode ``(0, 0)`` is the plane average; real mean profiles ``mean_u, mean_w (B, ny)``; ``pi (B,)`` the
pressure gradient of the last substage. ``B`` is a batch of independent flows advanced together. Physical
velocities are ``(B, 3, X, Y, Z)``; device and dtype follow the solver.

Validation: :func:`orr_sommerfeld_eigen` solves the Orr-Sommerfeld problem (Orszag 1971, J. Fluid Mech. 50,
689: ``c = 0.23752649 + 0.00373967 i`` at ``Re = 10^4``, ``0.24989154 + 0.00223497 i`` at ``Re = 7500``)
by Chebyshev collocation of ``v = (1 - y^2) g`` (Huang & Sloan 1994, SIAM J. Sci. Comput. 15, 36), which
builds in the clamped conditions and has no spurious eigenvalues.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import scipy.linalg
import torch
from jaxtyping import Float
from torch import Tensor

from sciml.core.atomic import atomic_path
from sciml.core.errors import ConfigError
from sciml.physics.les import (
    DynamicSmagorinsky,
    EddyViscosityModel,
    Smagorinsky,
    closure_config,
    closure_from_config,
    sgs_stress,
)

DRIVING = ("pressure_gradient", "flow_rate")
# Spalart, Moser & Rogers (1991), appendix A.
_GAMMA = (8.0 / 15.0, 5.0 / 12.0, 3.0 / 4.0)
_ZETA = (0.0, -17.0 / 60.0, -5.0 / 12.0)
_ALPHA = (29.0 / 96.0, -3.0 / 40.0, 1.0 / 6.0)
_BETA = (37.0 / 160.0, 5.0 / 24.0, 1.0 / 6.0)
_FFT_DIMS = (-3, -2)  # (x, z) of the internal (B, C, X, Z, ny) layout
_DT_LADDER = 8  # rungs per octave of the quantised CFL time step (see ChannelFlow.advance)
_OPERATOR_CACHE = 8  # implicit operator sets kept (least recently used dropped first)


def chebyshev_points(n: int) -> np.ndarray:
    """Gauss-Lobatto points ``cos(pi j / n)``, ``j = 0..n`` (from +1 down to -1)."""
    return np.cos(np.pi * np.arange(n + 1) / n)


def chebyshev_matrix(n: int) -> np.ndarray:
    """First-derivative collocation matrix on :func:`chebyshev_points` (Canuto et al. 2006, eq. 2.4.33).

    The diagonal is minus the off-diagonal row sum ("negative sum trick"), which differentiates
    constants exactly and reduces rounding errors.
    """
    y = chebyshev_points(n)
    c = np.ones(n + 1)
    c[0] = c[-1] = 2.0
    c *= (-1.0) ** np.arange(n + 1)
    dy = y[:, None] - y[None, :]
    d = np.outer(c, 1.0 / c) / (dy + np.eye(n + 1))
    return d - np.diag(d.sum(axis=1))


def chebyshev_interpolation(n: int, points: np.ndarray) -> np.ndarray:
    """``(len(points), n + 1)`` matrix evaluating at ``points`` the polynomial of degree ``n`` through
    values on :func:`chebyshev_points` ``(n)`` (Chebyshev coefficients by the well-conditioned
    ``T_k(y_j) = cos(pi j k / n)`` system)."""
    degrees = np.arange(n + 1)
    at_nodes = np.cos(np.outer(np.pi * np.arange(n + 1) / n, degrees))  # (nodes, degrees)
    at_points = np.cos(np.outer(np.arccos(np.clip(points, -1.0, 1.0)), degrees))  # (points, degrees)
    return np.linalg.solve(at_nodes.T, at_points.T).T


def clenshaw_curtis_weights(n: int) -> np.ndarray:
    """Quadrature weights on :func:`chebyshev_points`, exact for polynomials of degree <= n."""
    theta = np.pi * np.arange(n + 1) / n
    vandermonde = np.cos(np.outer(np.arange(n + 1), theta))  # (n+1 degrees, n+1 nodes): T_k(y_j)
    k = np.arange(n + 1)
    moments = np.where(k % 2 == 0, 2.0 / (1.0 - np.where(k == 1, 0, k) ** 2), 0.0)  # int T_k dy
    return np.linalg.solve(vandermonde, moments)


def wall_parallel_cutoff(
    field: Float[Tensor, "*batch X Y Z"], shape: tuple[int, int, int], max_modes: tuple[int, int]
) -> Float[Tensor, "*batch x y z"]:
    """A channel field on a coarser grid ``shape = (nx, ny, nz)`` of the same box (solver layout, ``y``
    descending): a sharp spectral cutoff to the Fourier modes ``|m_x| <= max_modes[0]``,
    ``|m_z| <= max_modes[1]`` evaluated on the coarse nodes ``x_i = i Lx / nx``, ``z_k = k Lz / nz``, and
    every ``(Y - 1) / (ny - 1)``-th Gauss-Lobatto point in ``y`` (no filter there: those points are points
    of the fine grid). The kept modes must be modes of both grids (``2 max + 1 <= n``)."""
    fine_x, fine_y, fine_z = field.shape[-3:]
    nx, ny, nz = shape
    keep_x, keep_z = max_modes
    if (fine_y - 1) % (ny - 1) or not (2 * keep_x < min(nx, fine_x) and 2 * keep_z < min(nz, fine_z)):
        raise ConfigError(
            "shape",
            f"cannot cut {tuple(field.shape[-3:])} to {tuple(shape)} keeping |m| <= {tuple(max_modes)}: "
            "ny - 1 must divide the fine grid's and each kept band must fit both grids",
        )
    sampled = field[..., :: (fine_y - 1) // (ny - 1), :]  # (..., X, ny, Z)
    spectrum = torch.fft.fft(torch.fft.rfft(sampled, dim=-1, norm="forward"), dim=-3, norm="forward")
    coarse = spectrum.new_zeros(*spectrum.shape[:-3], nx, ny, nz // 2 + 1)  # mode m at index m mod n
    coarse[..., : keep_x + 1, :, : keep_z + 1] = spectrum[..., : keep_x + 1, :, : keep_z + 1]
    if keep_x > 0:
        coarse[..., -keep_x:, :, : keep_z + 1] = spectrum[..., -keep_x:, :, : keep_z + 1]
    return torch.fft.irfft(torch.fft.ifft(coarse, dim=-3, norm="forward"), n=nz, dim=-1, norm="forward")


def orr_sommerfeld_eigen(alpha: float, re: float, n: int) -> tuple[complex, np.ndarray, np.ndarray]:
    """Least stable Orr-Sommerfeld mode of plane Poiseuille flow ``U = 1 - y^2``.

    ``(U - c)(D^2 - alpha^2) v - U'' v = (D^2 - alpha^2)^2 v / (i alpha re)``, ``v = Dv = 0`` at ``y = +-1``,
    solved as a generalised eigenproblem on the ``n - 1`` interior Gauss-Lobatto points with
    ``v = (1 - y^2) g`` (Huang & Sloan 1994). Returns ``(c, y, v)``: the phase speed with the largest
    imaginary part, the ``n + 1`` points and the eigenfunction there (``v = 0`` on the walls), scaled to
    ``max |v| = 1`` with a real maximum.
    """
    if n < 4:
        raise ConfigError("n", f"need at least 4 Chebyshev intervals, got {n}")
    y = chebyshev_points(n)
    d = chebyshev_matrix(n)
    d2 = d @ d
    d3 = d2 @ d
    d4 = d3 @ d
    inner = slice(1, n)
    yi = y[inner]
    # Derivatives of (1 - y^2) g with g = S v: the clamped fourth derivative on the interior points.
    s = np.diag(1.0 / (1.0 - yi**2))
    d4_clamped = (np.diag(1.0 - y**2) @ d4 - 8.0 * np.diag(y) @ d3 - 12.0 * d2)[inner, inner] @ s
    eye = np.eye(n - 1)
    lap = d2[inner, inner] - alpha**2 * eye  # Dirichlet second derivative minus alpha^2
    lap2 = d4_clamped - 2.0 * alpha**2 * d2[inner, inner] + alpha**4 * eye
    u = np.diag(1.0 - yi**2)
    a = lap2 / (1j * alpha * re) - u @ lap - 2.0 * eye  # U'' = -2
    eigenvalues, vectors = scipy.linalg.eig(a, -lap)  # A v = -c L v
    finite = np.isfinite(eigenvalues)
    index = np.flatnonzero(finite)[np.argmax(eigenvalues[finite].imag)]
    v = np.zeros(n + 1, dtype=complex)
    v[inner] = vectors[:, index]
    v /= v[np.argmax(np.abs(v))]
    return complex(eigenvalues[index]), y, v


@dataclass
class ChannelState:
    """Spectral state of a batch of channel flows (see the module docstring for the layout)."""

    phi: Tensor  # (B, M, ny) complex: Fourier coefficients of lap v
    omega: Tensor  # (B, M, ny) complex: wall-normal vorticity
    mean_u: Tensor  # (B, ny) real: plane-averaged streamwise velocity
    mean_w: Tensor  # (B, ny) real: plane-averaged spanwise velocity
    pi: Tensor  # (B,) real: mean pressure gradient -dP/dx of the last substage
    time: float = 0.0


class ChannelFlow:
    """Plane channel DNS (Kim, Moin & Moser 1987 formulation; see the module docstring).

    ``shape = (nx, ny, nz)``: Fourier points in ``x`` and ``z``, Gauss-Lobatto points in ``y``
    (``ny - 1`` Chebyshev intervals). ``driving="pressure_gradient"`` keeps ``Pi = pressure_gradient``;
    ``"flow_rate"`` keeps the bulk velocity at ``bulk_velocity``. The defaults (``Pi = 2 nu``,
    ``U_b = 2/3``) are those of laminar Poiseuille flow with centreline velocity 1.

    ``les``: an eddy-viscosity closure (:mod:`sciml.physics.les`, or the dict
    :func:`~sciml.physics.les.closure_config` records) whose stress divergence is added to the explicit
    nonlinear term (see "Large-eddy simulation" in the module docstring); ``None`` is the plain DNS.
    ``les_width``: a constant filter width instead of the default ``Delta(y)``.
    """

    def __init__(
        self,
        shape: tuple[int, int, int],
        nu: float,
        lengths: tuple[float, float] = (4.0 * math.pi, 4.0 * math.pi / 3.0),
        driving: str = "pressure_gradient",
        pressure_gradient: float | None = None,
        bulk_velocity: float = 2.0 / 3.0,
        cfl: float = 0.5,
        max_dt: float | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float64,
        les: EddyViscosityModel | dict | None = None,
        les_width: float | None = None,
    ):
        if len(shape) != 3 or min(shape) < 1 or shape[1] < 5:
            raise ConfigError("shape", f"expected (nx, ny, nz) with ny >= 5, got {shape!r}")
        if not nu > 0:
            raise ConfigError("nu", f"viscosity must be positive, got {nu!r}")
        if driving not in DRIVING:
            raise ConfigError("driving", f"expected one of {DRIVING}, got {driving!r}")
        if dtype not in (torch.float32, torch.float64):
            raise ConfigError("dtype", f"expected torch.float32 or torch.float64, got {dtype}")
        if not cfl > 0:
            raise ConfigError("cfl", f"must be positive, got {cfl!r}")
        self.nx, self.ny, self.nz = (int(s) for s in shape)
        self.lx, self.lz = (float(length) for length in lengths)
        self.nu = float(nu)
        self.driving = driving
        self.pressure_gradient = 2.0 * self.nu if pressure_gradient is None else float(pressure_gradient)
        self.bulk_target = float(bulk_velocity)
        self.cfl = float(cfl)
        self.max_dt = max_dt
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = dtype
        self.cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        n = self.ny - 1
        self._d64 = torch.from_numpy(chebyshev_matrix(n))
        self._d2_64 = self._d64 @ self._d64
        self.y = torch.from_numpy(chebyshev_points(n)).to(self.device, dtype)
        self._quadrature_64 = torch.from_numpy(clenshaw_curtis_weights(n))
        self.quadrature = self._quadrature_64.to(self.device, dtype)
        self.d = self._d64.to(self.device, dtype)
        self.d2 = self._d2_64.to(self.device, dtype)
        spacing = np.abs(np.diff(chebyshev_points(n)))
        local = np.minimum(np.r_[spacing[0], spacing], np.r_[spacing, spacing[-1]])
        self._inv_dy = torch.from_numpy(1.0 / local).to(self.device, dtype)

        # Retained Fourier modes (2/3 rule) in the flattened (X, Z//2+1) rfft layout, mean mode excluded.
        self.nzr = self.nz // 2 + 1
        mx = np.rint(np.fft.fftfreq(self.nx, 1.0 / self.nx)).astype(int)
        mz = np.arange(self.nzr)
        mx_grid, mz_grid = np.meshgrid(mx, mz, indexing="ij")  # (X, Zr)
        keep = (3 * np.abs(mx_grid) < self.nx) & (3 * mz_grid < self.nz)
        keep[0, 0] = False
        flat = np.flatnonzero(keep.ravel())
        if flat.size == 0:
            raise ConfigError("shape", f"no Fourier mode besides the mean survives the 2/3 rule at {shape}")
        self.mode_index = torch.from_numpy(flat).to(self.device)
        kx64 = torch.from_numpy(mx_grid.ravel()[flat] * (2.0 * math.pi / self.lx))
        kz64 = torch.from_numpy(mz_grid.ravel()[flat] * (2.0 * math.pi / self.lz))
        self._k2_64 = kx64**2 + kz64**2
        self.kx = kx64.to(self.device, dtype)[:, None]  # (M, 1), broadcasts against (B, M, ny)
        self.kz = kz64.to(self.device, dtype)[:, None]
        self.k2 = self._k2_64.to(self.device, dtype)[:, None]
        # (M, ny, ny): interior phi -> v with v = 0 on the walls (L v = phi), independent of dt.
        self._poisson_64 = self._dirichlet_inverse(self._laplacian_64(), zero_walls=True)
        self._poisson = self._to_device(self._poisson_64)
        self._operators: OrderedDict[float, list[dict]] = OrderedDict()
        self._operator_builds = 0
        self._pressure_cache: tuple[Tensor, Tensor] | None = None
        self._set_closure(les, les_width)

    @property
    def n_modes(self) -> int:
        return int(self.mode_index.numel())

    @property
    def operator_builds(self) -> int:
        """How many times the implicit operators of a time step were built (one set per distinct ``dt``)."""
        return self._operator_builds

    # ------------------------------------------------------------------ large-eddy simulation
    def _set_closure(self, les: EddyViscosityModel | dict | None, les_width: float | None) -> None:
        """Check and keep the closure. ``self.les`` is the model as given (what :meth:`parameters`
        records), ``self.closure`` the one evaluated at every substage: the same object, or for a dynamic
        model without a test filter a copy carrying :meth:`test_filter` (its ``coefficient`` is the last
        plane-averaged ``C``)."""
        if isinstance(les, dict):
            les = closure_from_config(les)
        if les is not None and not isinstance(les, EddyViscosityModel):
            raise ConfigError("les", f"expected an EddyViscosityModel, a closure dict or None, got {les!r}")
        if les_width is not None and not les_width > 0:
            raise ConfigError("les_width", f"must be positive or None, got {les_width!r}")
        self.les = les
        self.les_width = None if les_width is None else float(les_width)
        self.closure = les
        if isinstance(les, DynamicSmagorinsky):
            if -2 in {int(d) for d in les.average_dims}:
                raise ConfigError(
                    "les",
                    "the dynamic coefficient must be averaged over homogeneous x-z planes only: "
                    "DynamicSmagorinsky(average_dims=(-3, -1))",
                )
            if les.test_filter is None:
                # The user's model stays as given (and recordable); the copy carries the channel's filter.
                self.closure = copy.copy(les)
                self.closure.test_filter = self.test_filter
        if les_width is not None:
            self._width = torch.full((1, self.ny, 1), self.les_width, device=self.device, dtype=self.dtype)
        else:
            self._width = self.default_width()

    def default_width(self) -> Float[Tensor, "1 Y 1"]:
        """``Delta(y) = (1.5 dx dy(y) 1.5 dz)^(1/3)`` as ``(1, ny, 1)`` (broadcasts against ``(X, Y, Z)``).

        ``dx = Lx / nx``, ``dz = Lz / nz``, times 3/2 for the 2/3 rule as in
        :func:`sciml.physics.les.default_width`: the retained band ends at ``k_c = (2/3) pi / dx`` and a
        sharp filter's width is ``pi / k_c``. ``dy(y_j) = (y_{j-1} - y_{j+1}) / 2``, half the distance
        between the neighbouring Gauss-Lobatto points (the one-sided spacing on the walls), not dealiased
        since ``y`` is not.
        """
        y = chebyshev_points(self.ny - 1)
        spacing = np.empty(self.ny)
        spacing[1:-1] = 0.5 * (y[:-2] - y[2:])
        spacing[[0, -1]] = y[0] - y[1]
        volume = (1.5 * self.lx / self.nx) * spacing * (1.5 * self.lz / self.nz)
        return torch.from_numpy(np.cbrt(volume)).to(self.device, self.dtype).view(1, self.ny, 1)

    def test_filter(self, fields: Float[Tensor, "*batch X Y Z"]) -> Float[Tensor, "*batch X Y Z"]:
        """The dynamic model's test filter: a sharp cutoff in ``x`` and ``z`` only, at ``1 / test_ratio``
        of the retained wavenumbers (``3 r |m| < n`` per direction instead of the 2/3 rule's
        ``3 |m| < n``), so that its width is ``r Delta`` in the sense of :meth:`default_width`;
        ``y`` is not filtered (Germano et al. 1991 filter only the homogeneous directions)."""
        ratio = self.closure.test_ratio if isinstance(self.closure, DynamicSmagorinsky) else 2.0
        spectrum = torch.fft.rfftn(fields, dim=(-3, -1))  # (..., X, Y, Z//2+1)
        mx = torch.fft.fftfreq(self.nx, 1.0 / self.nx, device=fields.device).abs().view(-1, 1, 1)
        mz = torch.arange(self.nzr, device=fields.device).view(1, 1, -1)
        keep = (3.0 * ratio * mx < self.nx) & (3.0 * ratio * mz < self.nz)
        return torch.fft.irfftn(spectrum * keep.to(fields.dtype), s=(self.nx, self.nz), dim=(-3, -1))

    def wall_units(self, state: ChannelState) -> Float[Tensor, "B 1 Y 1"]:
        """``y+ = (1 - |y|) u_tau / nu`` per flow, ``(B, 1, ny, 1)``, with ``u_tau = sqrt(tau_w)`` from the
        current mean wall shear (both walls averaged; a negative shear counts as zero)."""
        u_tau = torch.sqrt(self.wall_shear(state).clamp_min(0.0))  # (B,)
        return ((1.0 - self.y.abs()) * (u_tau[:, None] / self.nu)).view(-1, 1, self.ny, 1)

    def _gradient_modes(
        self, state: ChannelState, u: Tensor, v: Tensor, w: Tensor, du_dy: Tensor, dw_dy: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``du_i/dx_j`` as modes (B, 9, M, ny) and plane means (B, 9, ny), row-major in ``(i, j)``."""
        dv_dy = self._dy(v)
        dv_dy[..., [0, -1]] = 0.0  # as in velocity_modes, so that the trace (div u) is zero
        ikx, ikz = 1j * self.kx, 1j * self.kz
        modes = torch.stack(
            (ikx * u, du_dy, ikz * u, ikx * v, dv_dy, ikz * v, ikx * w, dw_dy, ikz * w), dim=1
        )
        zero = torch.zeros_like(state.mean_u)
        du_mean, dw_mean = state.mean_u @ self.d.T, state.mean_w @ self.d.T
        means = torch.stack((zero, du_mean, zero, zero, zero, zero, zero, dw_mean, zero), dim=1)
        return modes, means

    def _eddy_viscosity(self, state: ChannelState, velocity: Tensor, gradient: Tensor) -> Tensor:
        """``nu_t (B, X, Y, Z)`` from the grid velocity (B, 3, X, Y, Z) and gradient (B, 3, 3, X, Y, Z)."""
        if isinstance(self.closure, Smagorinsky) and self.closure.wall_damped:
            return self.closure.eddy_viscosity(
                velocity, gradient, self._width, self.nu, y_plus=self.wall_units(state)
            )
        return self.closure.eddy_viscosity(velocity, gradient, self._width, self.nu)

    def _sgs_stress(self, state: ChannelState, velocity: Tensor, gradient: Tensor) -> tuple[Tensor, Tensor]:
        """``tau^d (B, 6, X, Z, ny)`` and ``nu_t (B, X, Y, Z)`` from the internal-layout velocity
        (B, 3, X, Z, ny) and gradient (B, 9, X, Z, ny)."""
        velocity = velocity.transpose(-1, -2)  # (B, 3, X, ny, Z)
        gradient = gradient.unflatten(1, (3, 3)).transpose(-1, -2)  # (B, 3, 3, X, ny, Z)
        nu_t = self._eddy_viscosity(state, velocity, gradient)  # (B, X, ny, Z)
        return sgs_stress(nu_t, gradient).transpose(-1, -2), nu_t  # (B, 6, X, Z, ny)

    def _sgs_force(self, tau_modes: Tensor, tau_mean: Tensor) -> tuple[Tensor, Tensor]:
        """``-d tau_ij / dx_j`` as modes (B, 3, M, ny) and means (B, 3, ny) from ``tau`` (6 components
        ``xx, yy, zz, xy, xz, yz``) as modes (B, 6, M, ny) and means (B, 6, ny)."""
        xx, yy, zz, xy, xz, yz = tau_modes.unbind(1)
        ikx, ikz = 1j * self.kx, 1j * self.kz
        modes = -torch.stack(
            (
                ikx * xx + self._dy(xy) + ikz * xz,
                ikx * xy + self._dy(yy) + ikz * yz,
                ikx * xz + self._dy(yz) + ikz * zz,
            ),
            dim=1,
        )
        means = -(tau_mean[:, [3, 1, 5]] @ self.d.T)  # only d/dy acts on a plane mean: <xy>, <yy>, <yz>
        return modes, means

    def eddy_viscosity(self, state: ChannelState) -> Float[Tensor, "B X Y Z"]:
        """The closure's ``nu_t`` on the grid, ``(B, X, Y, Z)`` (zeros without a closure)."""
        u, v, w = self.velocity_modes(state)
        if self.closure is None:
            return torch.zeros(u.shape[0], self.nx, self.ny, self.nz, device=self.device, dtype=self.dtype)
        du_dy, dw_dy = self._dy(u), self._dy(w)
        grad_modes, grad_means = self._gradient_modes(state, u, v, w, du_dy, dw_dy)
        means = torch.stack((state.mean_u, torch.zeros_like(state.mean_u), state.mean_w), dim=1)
        fields = self._to_grid(
            torch.cat((torch.stack((u, v, w), 1), grad_modes), 1), torch.cat((means, grad_means), 1)
        )
        velocity = fields[:, :3].transpose(-1, -2)  # (B, 3, X, ny, Z)
        gradient = fields[:, 3:].unflatten(1, (3, 3)).transpose(-1, -2)  # (B, 3, 3, X, ny, Z)
        return self._eddy_viscosity(state, velocity, gradient)

    # ------------------------------------------------------------------ operators
    def _to_device(self, matrix: Tensor) -> Tensor:
        return matrix.to(self.device, self.dtype)

    def _laplacian_64(self) -> Tensor:
        """``L = D^2 - k^2`` per mode: (M, ny, ny) float64."""
        eye = torch.eye(self.ny, dtype=torch.float64)
        return self._d2_64 - self._k2_64[:, None, None] * eye

    def _dirichlet_inverse(self, operator: Tensor, zero_walls: bool) -> Tensor:
        """Inverse of ``operator`` with its wall rows replaced by ``v = 0``-type identity rows, times ``Z``.

        ``Z`` zeroes the wall entries of the right-hand side, so the result maps interior data to the
        solution with homogeneous Dirichlet values; ``zero_walls`` makes those wall values exactly zero.
        """
        system = operator.clone()
        system[..., [0, -1], :] = torch.eye(self.ny, dtype=torch.float64)[[0, -1]]
        inverse = torch.linalg.inv(system)
        inverse[..., :, [0, -1]] = 0.0  # times Z
        if zero_walls:
            inverse[..., [0, -1], :] = 0.0
        return inverse

    def _stage_operators(self, dt: float) -> list[dict]:
        """Per substage: the implicit solution maps for ``phi`` (with the influence-matrix correction),
        ``omega_y`` and the mean profiles, and the mean response to a unit pressure gradient."""
        cached = self._operators.get(dt)
        if cached is not None:
            self._operators.move_to_end(dt)
            return cached
        if len(self._operators) >= _OPERATOR_CACHE:
            self._operators.popitem(last=False)  # the least recently used dt
        self._operator_builds += 1
        eye = torch.eye(self.ny, dtype=torch.float64)
        lap = self._laplacian_64()  # (M, ny, ny)
        poisson = self._poisson_64
        stages = []
        for alpha, beta in zip(_ALPHA, _BETA):
            implicit = eye - (beta * dt * self.nu) * lap  # (M, ny, ny)
            system = implicit.clone()
            system[..., [0, -1], :] = eye[[0, -1]]
            helmholtz = torch.linalg.inv(system)
            homogeneous = helmholtz[..., :, [0, -1]].clone()  # (M, ny, 2): phi_+, phi_- (1 on one wall)
            helmholtz[..., :, [0, -1]] = 0.0  # times Z: phi_p vanishes on the walls
            v_homogeneous = poisson @ homogeneous  # (M, ny, 2)
            wall_slope = self._d64[[0, -1]]  # (2, ny): Dv at y = +1, -1
            influence = torch.linalg.inv(wall_slope @ v_homogeneous)  # (M, 2, 2)
            particular_v = poisson @ helmholtz  # (M, ny, ny): R -> v_p
            # phi = phi_p + phi_+- a with a = -influence (Dv_p at the walls), so that Dv = 0 on both walls.
            phi_map = helmholtz - homogeneous @ influence @ wall_slope @ particular_v
            omega_map = helmholtz.clone()
            omega_map[..., [0, -1], :] = 0.0
            mean_map = self._dirichlet_inverse(eye - (beta * dt * self.nu) * self._d2_64, zero_walls=True)
            unit_forcing = mean_map @ torch.full((self.ny,), (alpha + beta) * dt, dtype=torch.float64)
            unit_bulk = 0.5 * float(unit_forcing @ self._quadrature_64)  # bulk velocity it adds
            stages.append(
                {
                    "phi": self._to_device(phi_map),
                    "omega": self._to_device(omega_map),
                    "mean": self._to_device(mean_map),
                    "unit_forcing": self._to_device(unit_forcing),
                    "unit_bulk": unit_bulk,
                }
            )
        self._operators[dt] = stages
        return stages

    # ------------------------------------------------------------------ spectral helpers
    @staticmethod
    def _apply(matrix: Tensor, field: Tensor) -> Tensor:
        """Real ``matrix (..., ny, ny)`` times complex ``field (..., ny)`` along the last axis."""
        real = torch.view_as_real(field)  # (..., ny, 2)
        return torch.view_as_complex((matrix @ real).contiguous())

    def _dy(self, field: Tensor) -> Tensor:
        """``d/dy`` of a complex field (..., ny) on the collocation points."""
        return self._apply(self.d, field)

    def _to_grid(self, modes: Tensor, means: Tensor) -> Tensor:
        """Spectral ``modes (B, C, M, ny)`` and real ``means (B, C, ny)`` -> physical (B, C, X, Z, ny)."""
        batch, channels = modes.shape[:2]
        full = modes.new_zeros(batch, channels, self.nx * self.nzr, self.ny)
        full[:, :, self.mode_index] = modes
        full[:, :, 0] = means
        full = full.view(batch, channels, self.nx, self.nzr, self.ny)  # (B, C, X, Zr, ny)
        return torch.fft.irfftn(full, s=(self.nx, self.nz), dim=_FFT_DIMS, norm="forward")

    def _from_grid(self, fields: Tensor) -> tuple[Tensor, Tensor]:
        """Physical ``(B, C, X, Z, ny)`` -> retained modes (B, C, M, ny) and real means (B, C, ny)."""
        spectra = torch.fft.rfftn(fields, dim=_FFT_DIMS, norm="forward").flatten(-3, -2)  # (B, C, X*Zr, ny)
        return spectra[:, :, self.mode_index], spectra[:, :, 0].real

    def velocity_modes(self, state: ChannelState) -> tuple[Tensor, Tensor, Tensor]:
        """Fourier coefficients ``u, v, w (B, M, ny)`` of the non-mean modes (continuity and omega_y)."""
        v = self._apply(self._poisson, state.phi)
        dv = self._dy(v)
        dv[..., [0, -1]] = 0.0  # the clamped condition Dv = 0, imposed exactly (see module docstring)
        u = 1j * (self.kx * dv - self.kz * state.omega) / self.k2
        w = 1j * (self.kz * dv + self.kx * state.omega) / self.k2
        return u, v, w

    def _explicit_terms(self, state: ChannelState) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
        """The explicit force ``H = u x omega`` (plus ``-d tau_ij/dx_j`` with a closure) as retained modes
        (B, 3, M, ny) and plane means (B, 3, ny), the grid velocity (B, 3, X, Z, ny), the modes
        ``v (B, M, ny)`` (the pressure's wall condition needs them) and ``nu_t (B, X, Y, Z)`` or None."""
        u, v, w = self.velocity_modes(state)
        du_dy, dw_dy = self._dy(u), self._dy(w)
        omega_x = dw_dy - 1j * self.kz * v
        omega_z = 1j * self.kx * v - du_dy
        modes = torch.stack((u, v, w, omega_x, state.omega, omega_z), dim=1)  # (B, 6, M, ny)
        zero = torch.zeros_like(state.mean_u)
        dmean = (state.mean_u @ self.d.T, state.mean_w @ self.d.T)
        means = torch.stack(
            (state.mean_u, zero, state.mean_w, dmean[1], zero, -dmean[0]), dim=1
        )  # (B, 6, ny)
        if self.closure is None:
            fields = self._to_grid(modes, means)  # (B, 6, X, Z, ny)
            velocity, vorticity = fields[:, :3], fields[:, 3:]
            cross = torch.linalg.cross(velocity, vorticity, dim=1)  # (B, 3, X, Z, ny): H = u x omega
            h_modes, h_mean = self._from_grid(cross)
            return h_modes, h_mean, velocity, v, None
        grad_modes, grad_means = self._gradient_modes(state, u, v, w, du_dy, dw_dy)
        fields = self._to_grid(torch.cat((modes, grad_modes), 1), torch.cat((means, grad_means), 1))
        velocity, vorticity, gradient = fields[:, :3], fields[:, 3:6], fields[:, 6:]  # gradient: 9 channels
        cross = torch.linalg.cross(velocity, vorticity, dim=1)  # (B, 3, X, Z, ny): H = u x omega
        tau, nu_t = self._sgs_stress(state, velocity, gradient)  # (B, 6, X, Z, ny), (B, X, Y, Z)
        spectra, spectra_mean = self._from_grid(torch.cat((cross, tau), 1))  # (B, 9, M, ny), (B, 9, ny)
        force, force_mean = self._sgs_force(spectra[:, 3:], spectra_mean[:, 3:])
        return spectra[:, :3] + force, spectra_mean[:, :3] + force_mean, velocity, v, nu_t

    def _nonlinear(self, state: ChannelState) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
        """``h_v, h_g (B, M, ny)``, plane-averaged ``<H> (B, 3, ny)``, the velocity (B, 3, X, Z, ny) and
        the eddy viscosity ``nu_t (B, X, Y, Z)`` (None without a closure)."""
        h_modes, h_mean, velocity, _, nu_t = self._explicit_terms(state)
        hx, hy, hz = h_modes.unbind(1)
        h_v = -self._dy(1j * (self.kx * hx + self.kz * hz)) - self.k2 * hy
        h_g = 1j * (self.kz * hx - self.kx * hz)
        return h_v, h_g, h_mean, velocity, nu_t

    # ------------------------------------------------------------------ time stepping
    def _speed(self, velocity: Tensor, nu_t: Tensor | None = None) -> float:
        """``max (|u|/dx + |v|/dy_j + |w|/dz)`` over the grid and the batch; velocity (B, 3, X, Z, ny).

        With a closure, at least ``max |nu_t| (kx_max^2 + 1/dy_j^2 + kz_max^2)`` (``nu_t (B, X, Y, Z)``):
        the explicit subgrid stress is a diffusion, and the same ``cfl`` keeps ``dt nu_t k^2`` well inside
        the real-axis stability interval of the RK3 scheme (about 2.5); an undamped eddy viscosity at the
        wall, where ``dy_j ~ 1/N^2``, would otherwise make the run blow up.
        """
        total = velocity[:, 0].abs() * (self.nx / self.lx)
        total = total + velocity[:, 1].abs() * self._inv_dy + velocity[:, 2].abs() * (self.nz / self.lz)
        speed = float(total.amax())
        if nu_t is None:
            return speed
        wavenumbers = float(self.kx.abs().amax()) ** 2 + float(self.kz.abs().amax()) ** 2
        rate = nu_t.abs() * (self._inv_dy.square() + wavenumbers)[:, None]  # (B, X, ny, Z)
        return max(speed, float(rate.amax()))

    def _dt_limit(self, speed: float) -> float:
        dt = math.inf if speed <= 0 else self.cfl / speed
        if self.max_dt is not None:
            dt = min(dt, float(self.max_dt))
        if not math.isfinite(dt):
            raise ConfigError("max_dt", "the flow is at rest and nothing limits the time step; set max_dt")
        return dt

    def _ladder_dt(self, speed: float) -> float:
        """The CFL limit rounded down to ``2^(k / _DT_LADDER)`` for an integer ``k``, capped by ``max_dt``."""
        limit = math.inf if speed <= 0 else self.cfl / speed
        if math.isfinite(limit):
            limit = 2.0 ** (math.floor(_DT_LADDER * math.log2(limit)) / _DT_LADDER)
        if self.max_dt is not None:
            limit = min(limit, float(self.max_dt))
        if not math.isfinite(limit):
            raise ConfigError("max_dt", "the flow is at rest and nothing limits the time step; set max_dt")
        return limit

    def stable_dt(self, state: ChannelState) -> float:
        """The largest time step the CFL number allows (capped by ``max_dt``)."""
        return self._dt_limit(self._speed(*self._nonlinear(state)[3:]))

    def step(self, state: ChannelState, dt: float) -> ChannelState:
        """One three-substage Spalart-Moser-Rogers step of size ``dt``."""
        if not dt > 0:
            raise ConfigError("dt", f"time step must be positive, got {dt!r}")
        return self._step(state, float(dt))

    def _step(self, state: ChannelState, dt: float, first: tuple | None = None) -> ChannelState:
        operators = self._stage_operators(dt)
        nu_dt = self.nu * dt
        previous = None
        for stage, ops in enumerate(operators):
            h_v, h_g, h_mean = (first if (stage == 0 and first is not None) else self._nonlinear(state))[:3]
            alpha, gamma, zeta = _ALPHA[stage], _GAMMA[stage], _ZETA[stage]
            lap_phi = self._apply(self.d2, state.phi) - self.k2 * state.phi
            lap_omega = self._apply(self.d2, state.omega) - self.k2 * state.omega
            rhs_phi = state.phi + (alpha * nu_dt) * lap_phi + (gamma * dt) * h_v
            rhs_omega = state.omega + (alpha * nu_dt) * lap_omega + (gamma * dt) * h_g
            means = torch.stack((state.mean_u, state.mean_w), dim=1)  # (B, 2, ny)
            rhs_mean = means + (alpha * nu_dt) * (means @ self.d2.T) + (gamma * dt) * h_mean[:, [0, 2]]
            if previous is not None:
                rhs_phi = rhs_phi + (zeta * dt) * previous[0]
                rhs_omega = rhs_omega + (zeta * dt) * previous[1]
                rhs_mean = rhs_mean + (zeta * dt) * previous[2][:, [0, 2]]
            previous = (h_v, h_g, h_mean)
            new_mean = rhs_mean @ ops["mean"].T  # (B, 2, ny), zero on the walls
            if self.driving == "pressure_gradient":
                pi = torch.full_like(state.pi, self.pressure_gradient)
            else:
                # Pi enters linearly: pick it so that the new bulk velocity is the target.
                shortfall = self.bulk_target - 0.5 * new_mean[:, 0] @ self.quadrature
                pi = shortfall / ops["unit_bulk"]
            mean_u = new_mean[:, 0] + pi[:, None] * ops["unit_forcing"]
            state = ChannelState(
                phi=self._apply(ops["phi"], rhs_phi),
                omega=self._apply(ops["omega"], rhs_omega),
                mean_u=mean_u,
                mean_w=new_mean[:, 1],
                pi=pi,
                time=state.time,
            )
        return replace(state, time=state.time + dt)

    def advance(
        self, state: ChannelState, duration: float, dt: float | None = None, max_steps: int | None = None
    ) -> tuple[ChannelState, int]:
        """Integrate over ``duration``; returns ``(state, steps)``.

        With ``dt=None`` every step takes the CFL limit of the current flow rounded down to the geometric
        ladder ``2^(k/8)`` (at most 9 % below the limit; ``max_dt`` caps it), so the step size, and with it
        the cached implicit operators, changes only when the limit crosses a rung; the last one or two
        steps share what remains so the run lands exactly on ``state.time + duration``. A given ``dt`` is
        used as is (the last step shortened).
        """
        if not duration >= 0:
            raise ConfigError("duration", f"must be >= 0, got {duration!r}")
        end = state.time + duration
        tolerance = 1e-12 * max(1.0, abs(end))
        steps = 0
        landing = None  # the step size of the one or two steps that end the run
        while end - state.time > tolerance:
            remaining = end - state.time
            first = None
            if dt is None:
                first = self._nonlinear(state)
                step_dt = self._ladder_dt(self._speed(*first[3:]))
                if landing is not None and landing <= step_dt:
                    step_dt = landing  # the second landing step reuses the first one's operators
                else:
                    steps_left = math.ceil(remaining / step_dt - 1e-9)
                    if steps_left <= 2:
                        step_dt = landing = remaining / steps_left  # no sliver of a step at the end
            else:
                step_dt = min(float(dt), remaining)
            state = self._step(state, step_dt, first)
            if step_dt >= remaining or (landing is not None and end - state.time <= tolerance):
                state = replace(state, time=end)
            steps += 1
            if max_steps is not None and steps >= max_steps:
                break
        if not bool(torch.isfinite(torch.view_as_real(state.phi)).all()):
            raise FloatingPointError(f"the solution blew up before t = {state.time:g}; lower cfl or dt")
        return state, steps

    # ------------------------------------------------------------------ states
    def laminar_state(self, batch_size: int = 1, centreline_velocity: float = 1.0) -> ChannelState:
        """Poiseuille flow ``U = U_c (1 - y^2)`` (a steady solution for ``Pi = 2 nu U_c``)."""
        profile = centreline_velocity * (1.0 - self.y**2)
        zeros = torch.zeros(batch_size, self.n_modes, self.ny, dtype=self.cdtype, device=self.device)
        return ChannelState(
            phi=zeros,
            omega=zeros.clone(),
            mean_u=profile.expand(batch_size, -1).clone(),
            mean_w=torch.zeros(batch_size, self.ny, dtype=self.dtype, device=self.device),
            pi=torch.full(
                (batch_size,), 2.0 * self.nu * centreline_velocity, dtype=self.dtype, device=self.device
            ),
        )

    def perturbed_state(
        self,
        batch_size: int = 1,
        amplitude: float = 0.1,
        centreline_velocity: float = 1.0,
        degree: int = 8,
        generator: torch.Generator | None = None,
    ) -> ChannelState:
        """Poiseuille flow plus seeded random perturbations that are divergence-free and vanish on the walls.

        Each mode gets ``v = (1 - y^2)^2 p(y)`` and ``omega_y = (1 - y^2) q(y)`` with random polynomials of
        degree ``< degree`` (Chebyshev series with coefficients decaying with the degree) and amplitude
        decaying like ``1 / (1 + k^2)``; then ``u, w`` follow from continuity, so ``div u = 0`` and
        ``u = 0`` on the walls hold by construction. The fields are scaled so the largest perturbation
        velocity on the grid is ``amplitude``.
        """
        degree = min(degree, self.ny - 5)  # (1 - y^2)^2 p must stay a polynomial the grid represents exactly
        y = self.y.double().cpu()
        basis = torch.cos(
            torch.arange(degree, dtype=torch.float64)[:, None] * torch.arccos(y)
        )  # (deg, ny): T_n
        decay = 1.0 / (1.0 + torch.arange(degree, dtype=torch.float64)) ** 2
        coefficients = torch.randn(
            2, batch_size, self.n_modes, degree, 2, generator=generator, dtype=torch.float64
        )
        coefficients = torch.view_as_complex(coefficients) * decay  # (2, B, M, deg)
        weight = 1.0 / (1.0 + self._k2_64[:, None])  # (M, 1)
        v = (coefficients[0] @ basis.to(torch.complex128)) * (1.0 - y**2) ** 2 * weight  # (B, M, ny)
        omega = (coefficients[1] @ basis.to(torch.complex128)) * (1.0 - y**2) * weight
        base = self.laminar_state(batch_size, centreline_velocity)
        # A round trip through the grid makes each field the transform of a real one (Hermitian kz = 0 plane).
        no_mean = base.mean_w[:, None]  # (B, 1, ny) zeros
        v = self._from_grid(self._to_grid(v.to(self.device, self.cdtype)[:, None], no_mean))[0][:, 0]
        omega = self._from_grid(self._to_grid(omega.to(self.device, self.cdtype)[:, None], no_mean))[0][:, 0]
        state = replace(base, phi=self._apply(self.d2, v) - self.k2 * v, omega=omega)
        u, v, w = self.velocity_modes(state)
        peak = self._to_grid(torch.stack((u, v, w), 1), no_mean.expand(-1, 3, -1)).abs()  # (B, 3, X, Z, ny)
        scale = amplitude / peak.amax(dim=(1, 2, 3, 4)).clamp_min(torch.finfo(self.dtype).tiny)  # (B,)
        return replace(state, phi=state.phi * scale[:, None, None], omega=state.omega * scale[:, None, None])

    def regrid(self, state: ChannelState, source: ChannelFlow) -> ChannelState:
        """``state`` of the ``source`` solver carried over to this solver's grid and box.

        Each retained mode of this solver takes the source's coefficients at the same physical wavenumber
        ``(kx, kz)``; modes the source does not have start at zero. A finer grid is thus the spectral
        interpolation of the source flow, and a box ``Lx / n`` keeps the source modes periodic in it (the
        average of the flow over its ``n`` shifts). Every mode stays divergence-free and no-slip on its own.

        A different ``ny`` carries ``v``, ``omega_y`` and the mean profiles by Chebyshev interpolation: the
        source polynomial evaluated on this grid's Gauss-Lobatto points (exact when refining; when
        coarsening to ``ny = (source.ny + 1) / 2`` it samples every second point). Walls are points of both
        grids, so ``v = omega_y = U = W = 0`` stay there; the clamped condition ``Dv = 0``, which the
        coarser polynomial through the samples misses by its aliasing error, is restored by adding the
        cubics ``(1 - y^2)(1 +- y) / 4`` (zero on both walls, slope -1 / +1 on one and 0 on the other)
        times the wall slopes. Then ``phi = (D^2 - k^2) v`` on this grid.
        """
        if source.ny != self.ny:
            # First the x-z modes on the source's wall-normal grid, then the wall-normal interpolation.
            between = ChannelFlow(
                (self.nx, source.ny, self.nz),
                source.nu,
                (self.lx, self.lz),
                device=self.device,
                dtype=self.dtype,
            )
            return self._interpolate_wall_normal(between.regrid(state, source), between)

        def mode_numbers(solver: ChannelFlow, lx: float, lz: float) -> np.ndarray:
            """(M, 2): each retained mode's wavenumber in units of ``2 pi / lx``, ``2 pi / lz``."""
            kx = solver.kx[:, 0].double().cpu().numpy() * lx / (2.0 * math.pi)
            kz = solver.kz[:, 0].double().cpu().numpy() * lz / (2.0 * math.pi)
            return np.stack((kx, kz), axis=1)

        # This solver's modes counted in the source box: integers where the source has the same wavenumber.
        wanted = mode_numbers(self, source.lx, source.lz)
        rounded = np.rint(wanted).astype(np.int64)
        lookup = {
            tuple(mode): index
            for index, mode in enumerate(np.rint(mode_numbers(source, source.lx, source.lz)).astype(np.int64))
        }
        targets, sources = [], []
        for index, (mode, exact) in enumerate(zip(rounded, wanted)):
            match = lookup.get(tuple(mode))
            if match is not None and np.allclose(mode, exact, atol=1e-6):
                targets.append(index)
                sources.append(match)
        batch = state.phi.shape[0]

        def carry(field: Tensor) -> Tensor:
            out = torch.zeros(batch, self.n_modes, self.ny, dtype=self.cdtype, device=self.device)
            out[:, targets] = field[:, sources].to(self.device, self.cdtype)
            return out

        return ChannelState(
            phi=carry(state.phi),
            omega=carry(state.omega),
            mean_u=state.mean_u.to(self.device, self.dtype),
            mean_w=state.mean_w.to(self.device, self.dtype),
            pi=state.pi.to(self.device, self.dtype),
            time=state.time,
        )

    def _interpolate_wall_normal(self, state: ChannelState, source: ChannelFlow) -> ChannelState:
        """``state`` of ``source`` (same x-z modes, another ``ny``) on this grid (see :meth:`regrid`)."""
        matrix = torch.from_numpy(chebyshev_interpolation(source.ny - 1, chebyshev_points(self.ny - 1)))
        matrix = self._to_device(matrix)  # (ny, source ny)
        v = self._apply(matrix, source._apply(source._poisson, state.phi))  # (B, M, ny)
        slopes = self._apply(self.d[[0, -1]], v)  # (B, M, 2): Dv at y = +1, -1
        y = self.y
        v = v + slopes[..., :1] * ((1 - y**2) * (1 + y) / 4) - slopes[..., 1:] * ((1 - y**2) * (1 - y) / 4)
        return ChannelState(
            phi=self._apply(self.d2, v) - self.k2 * v,
            omega=self._apply(matrix, state.omega),
            mean_u=state.mean_u @ matrix.T,
            mean_w=state.mean_w @ matrix.T,
            pi=state.pi,
            time=state.time,
        )

    def state_from_modes(
        self, base: ChannelState, v_hat: Tensor, omega_hat: Tensor | None = None
    ) -> ChannelState:
        """``base`` plus the perturbation with wall-normal velocity ``v_hat`` and vorticity ``omega_hat``.

        ``v_hat, omega_hat (B, M, ny)`` complex on the collocation points (Fourier coefficients of the
        retained modes, normalised as in :class:`ChannelState`); ``v_hat`` should satisfy ``v = Dv = 0``
        on the walls. Used to start from an eigenfunction (e.g. of :func:`orr_sommerfeld_eigen`).
        """
        v_hat = v_hat.to(self.device, self.cdtype)
        omega_hat = torch.zeros_like(v_hat) if omega_hat is None else omega_hat.to(self.device, self.cdtype)
        return replace(
            base, phi=base.phi + self._apply(self.d2, v_hat) - self.k2 * v_hat, omega=base.omega + omega_hat
        )

    # ------------------------------------------------------------------ diagnostics
    def velocity(self, state: ChannelState) -> Float[Tensor, "B 3 X Y Z"]:
        """Physical velocity on the grid, ``(B, 3, X, Y, Z)`` with ``Y`` the Gauss-Lobatto points."""
        u, v, w = self.velocity_modes(state)
        means = torch.stack((state.mean_u, torch.zeros_like(state.mean_u), state.mean_w), dim=1)  # (B, 3, ny)
        fields = self._to_grid(torch.stack((u, v, w), dim=1), means)  # (B, 3, X, Z, ny)
        return fields.permute(0, 1, 2, 4, 3)  # (B, 3, X, ny, Z)

    def divergence(self, velocity: Float[Tensor, "B 3 X Y Z"]) -> Float[Tensor, "B X Y Z"]:
        """``div u`` of a physical velocity: Fourier derivatives in ``x, z``, Chebyshev matrix in ``y``."""
        fields = velocity.permute(0, 1, 2, 4, 3)  # (B, 3, X, Z, ny)
        spectra = torch.fft.rfftn(fields, dim=_FFT_DIMS, norm="forward")  # (B, 3, X, Zr, ny)
        kx = torch.fft.fftfreq(self.nx, self.lx / (2 * math.pi * self.nx), device=self.device)
        kx = kx.to(self.dtype)[:, None, None]  # (X, 1, 1)
        kz = (torch.arange(self.nzr, device=self.device, dtype=self.dtype) * (2 * math.pi / self.lz))[:, None]
        if self.nx % 2 == 0:
            kx[self.nx // 2] = 0.0  # the Nyquist mode has no first derivative of a real field
        if self.nz % 2 == 0:
            kz[-1] = 0.0
        div = 1j * kx * spectra[:, 0] + 1j * kz * spectra[:, 2]
        div = torch.fft.irfftn(div, s=(self.nx, self.nz), dim=(-3, -2), norm="forward")  # (B, X, Z, ny)
        return (div + fields[:, 1] @ self.d.T).permute(0, 1, 3, 2)  # (B, X, ny, Z)

    def pressure(self, state: ChannelState) -> Float[Tensor, "B X Y Z"]:
        """Static pressure ``p`` on the grid, ``(B, X, Y, Z)``, without the driving part ``-Pi x``.

        The rotational form carries ``P = p + |u|^2 / 2``; taking the divergence of the momentum equation
        gives ``lap P = div H`` per Fourier mode, ``(D^2 - k^2) P = i kx H_x + D H_y + i kz H_z``, with the
        wall-normal momentum equation at the walls as the Neumann condition ``D P = H_y + nu D^2 v``
        (``k^2 v = 0`` there). The plane mean obeys ``dP/dy = <H_y>``. The gauge makes the volume average
        of ``p`` zero. With a closure ``H`` includes ``-d tau^d_ij/dx_j``, so ``p`` is the usual LES modified
        pressure ``p + tau_kk / 3`` (the closures model only the deviatoric stress).
        """
        h_modes, h_mean, velocity, v, _ = self._explicit_terms(state)
        hx, hy, hz = h_modes.unbind(1)  # (B, M, ny)
        rhs = 1j * (self.kx * hx + self.kz * hz) + self._dy(hy)
        rhs[..., [0, -1]] = hy[..., [0, -1]] + self.nu * self._apply(self.d2, v)[..., [0, -1]]
        poisson, mean_inverse = self._pressure_operators()
        total_modes = self._apply(poisson, rhs)
        mean_rhs = h_mean[:, 1].clone()  # (B, ny)
        mean_rhs[:, 0] = 0.0  # the gauge row
        total_mean = mean_rhs @ mean_inverse.T
        total = self._to_grid(total_modes[:, None], total_mean[:, None])[:, 0]  # (B, X, Z, ny)
        static = total - 0.5 * (velocity**2).sum(dim=1)
        volume_mean = static.mean(dim=(1, 2)) @ self.quadrature / 2.0  # (B,)
        return (static - volume_mean[:, None, None, None]).permute(0, 1, 3, 2)  # (B, X, ny, Z)

    def _pressure_operators(self) -> tuple[Tensor, Tensor]:
        """Inverse of ``D^2 - k^2`` with Neumann wall rows per mode, (M, ny, ny), and of the mean problem
        ``D P = <H_y>`` with its first row replaced by the zero-average gauge, (ny, ny); built once."""
        if self._pressure_cache is None:
            system = self._laplacian_64().clone()
            system[..., [0, -1], :] = self._d64[[0, -1]]
            mean_system = self._d64.clone()
            mean_system[0] = self._quadrature_64
            self._pressure_cache = (
                self._to_device(torch.linalg.inv(system)),
                self._to_device(torch.linalg.inv(mean_system)),
            )
        return self._pressure_cache

    def bulk_velocity(self, state: ChannelState) -> Tensor:
        """``U_b = (1/2) int_{-1}^{1} U dy`` per flow, (B,)."""
        return 0.5 * state.mean_u @ self.quadrature

    def wall_shear(self, state: ChannelState) -> Tensor:
        """Mean wall shear stress ``nu |dU/dy|`` averaged over both walls, (B,)."""
        slope = state.mean_u @ self.d[[0, -1]].T  # (B, 2): dU/dy at y = +1, -1
        return self.nu * 0.5 * (slope[:, 1] - slope[:, 0])

    def re_tau(self, state: ChannelState) -> Tensor:
        """Friction Reynolds number ``u_tau h / nu`` with ``u_tau = sqrt(tau_w)``, (B,)."""
        return torch.sqrt(self.wall_shear(state).clamp_min(0.0)) / self.nu

    def re_bulk(self, state: ChannelState) -> Tensor:
        """Bulk Reynolds number ``U_b 2h / nu``, (B,)."""
        return 2.0 * self.bulk_velocity(state) / self.nu

    # ------------------------------------------------------------------ save / restart
    def parameters(self) -> dict:
        """The constructor arguments (but device and dtype); the closure as
        :func:`~sciml.physics.les.closure_config` records it, which raises :class:`ConfigError` for a
        closure a dict cannot describe (a fixed ``y_plus`` tensor, a custom dynamic test filter)."""
        return {
            "shape": (self.nx, self.ny, self.nz),
            "lengths": (self.lx, self.lz),
            "nu": self.nu,
            "driving": self.driving,
            "pressure_gradient": self.pressure_gradient,
            "bulk_velocity": self.bulk_target,
            "cfl": self.cfl,
            "max_dt": self.max_dt,
            "les": closure_config(self.les),
            "les_width": self.les_width,
        }

    def save(self, state: ChannelState, path: str | Path) -> None:
        """Write the state and the solver parameters atomically (``torch.save`` of a dict of tensors), the
        closure included, so that :meth:`load` continues with the same LES."""
        payload = {
            "phi": state.phi.cpu(),
            "omega": state.omega.cpu(),
            "mean_u": state.mean_u.cpu(),
            "mean_w": state.mean_w.cpu(),
            "pi": state.pi.cpu(),
            "time": float(state.time),
            "parameters": self.parameters(),
        }
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(
        cls, path: str | Path, device: torch.device | str | None = None, dtype: torch.dtype = torch.float64
    ) -> tuple[ChannelFlow, ChannelState]:
        """A solver with the saved parameters and the saved state on ``device`` in ``dtype``."""
        payload = torch.load(path, map_location="cpu", weights_only=True)
        parameters = payload["parameters"]
        solver = cls(
            **{**parameters, "shape": tuple(parameters["shape"]), "lengths": tuple(parameters["lengths"])},
            device=device,
            dtype=dtype,
        )
        state = ChannelState(
            phi=payload["phi"].to(solver.device, solver.cdtype),
            omega=payload["omega"].to(solver.device, solver.cdtype),
            mean_u=payload["mean_u"].to(solver.device, dtype),
            mean_w=payload["mean_w"].to(solver.device, dtype),
            pi=payload["pi"].to(solver.device, dtype),
            time=payload["time"],
        )
        return solver, state
