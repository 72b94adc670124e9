"""Pseudo-spectral solver of the incompressible Navier-Stokes equations in a triply periodic box.

Equations (density 1): ``du/dt + (u . grad) u = -grad p + nu lap u + f``, ``div u = 0``.

* State: the rfft of the velocity, ``u_hat (..., 3, X, Y, Z//2+1)``; any leading dims are a batch of
  independent flows advanced together (one time step for all of them). Public run/step inputs and outputs
  in physical space are ``(..., 3, X, Y, Z)``; device and dtype follow the input tensors.
* Nonlinear term, evaluated pseudo-spectrally (products on the grid, derivatives in Fourier space):
  ``"rotational"``: ``u x omega`` (the gradient ``grad |u|^2/2`` is absorbed in the pressure), 9 scalar FFTs;
  ``"skew_symmetric"``: ``-(1/2) [(u . grad) u + div(u u)]``, 21 scalar FFTs. Both conserve kinetic energy
  of the semi-discrete inviscid system; with 2/3-rule dealiasing (Orszag 1971) they give identical
  results to rounding, without it they alias differently (Zang 1991, Appl. Numer. Math. 7, 27).
* Pressure: Leray projection ``N_hat <- (I - k k^T / |k|^2) N_hat`` (Canuto et al. 2007, *Spectral
  Methods: Evolution to Complex Geometries*), which solves the pressure Poisson equation exactly; the
  mean (``k = 0``) mode is left untouched (no mean forcing, mean momentum conserved).
* Viscosity: ``"integrating_factor"`` (default) treats ``-nu |k|^2 u_hat`` exactly through
  ``exp(-nu |k|^2 t)`` (integrating-factor Runge-Kutta, Lawson 1967, SIAM J. Numer. Anal. 4, 372), so the
  time step has no viscous limit; ``"explicit"`` adds it to the right-hand side and limits ``dt`` by
  ``nu |k|^2_max dt <= 0.9 beta`` with ``beta`` the real-axis stability bound of the scheme
  (2.785 for RK4, 2.512 for RK3).
* Time stepping: classical RK4, or Williamson's (1980) low-storage three-stage third-order scheme
  (``A = (0, -5/9, -153/128)``, ``B = (1/3, 15/16, 8/15)``, stage times ``0, 1/3, 3/4``); with an
  integrating factor every stage is moved forward to its own time, so all exponentials decay.
* Time step: ``dt = cfl / max_x sum_i |u_i| / dx_i`` (one ``dt`` for the whole batch, taken from the
  fastest flow). The advective eigenvalues of the dealiased operator are bounded by
  ``(2 pi / 3) max sum_i |u_i| / dx_i``, so the scheme is linearly stable up to ``cfl ~ 1.35`` for RK4
  (imaginary-axis bound ``2 sqrt 2``) and ``cfl ~ 0.83`` for RK3 (``sqrt 3``). :meth:`advance` shortens
  the steps evenly so it lands exactly on the requested time.
* LES closure (optional, ``les``, see :mod:`sciml.physics.les`): ``-d tau_ij / dx_j`` with
  ``tau_ij = -2 nu_t S^d_ij`` is added to the nonlinear term before the projection. Velocity and gradient
  come from the (dealiased) spectral state, ``nu_t`` and ``tau`` are formed on the grid and transformed back
  through the same truncation as the nonlinear term (12 inverse and 6 forward scalar FFTs per stage).
  The filter width defaults to :func:`sciml.physics.les.default_width`. ``les=None`` changes nothing.
* CPU performance: the batch is advanced in chunks of flows (at most 16 MiB of work array each) and,
  with ``workers > 1``, chunks run concurrently on Python threads with one intra-op torch thread each;
  both are pure scheduling: the result is the same bit for bit.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from sciml.core.errors import ConfigError
from sciml.physics.les import EddyViscosityModel, default_width, sgs_stress
from sciml.physics.spectral import RetainedModes, SpectralGrid, irfft3, rfft3

FORMS = ("rotational", "skew_symmetric")
SCHEMES = ("rk4", "rk3")
VISCOUS = ("integrating_factor", "explicit")
# Real-axis stability bounds of the RK schemes (for the explicit viscous limit).
_REAL_AXIS_BOUND = {"rk4": 2.785, "rk3": 2.512}
_WILLIAMSON_A = (0.0, -5.0 / 9.0, -153.0 / 128.0)
_WILLIAMSON_B = (1.0 / 3.0, 15.0 / 16.0, 8.0 / 15.0)
_WILLIAMSON_C = (0.0, 1.0 / 3.0, 3.0 / 4.0, 1.0)
_WILLIAMSON_SHIFTS = tuple(b - a for a, b in zip(_WILLIAMSON_C[:-1], _WILLIAMSON_C[1:]))

Forcing = Callable[[Tensor, SpectralGrid, float], Tensor]
StepCallback = Callable[[int, float, float, Tensor], None]


_POOLS: dict[int, ThreadPoolExecutor] = {}


def _thread_pool(workers: int) -> ThreadPoolExecutor:
    pool = _POOLS.get(workers)
    if pool is None:
        pool = _POOLS[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sciml-ns")
    return pool


@dataclass
class SimulationResult:
    """Output of :meth:`NavierStokes3D.run`."""

    u: Tensor  # (..., 3, X, Y, Z) at t_end
    time: float
    steps: int
    snapshots: Tensor | None  # (S, ..., 3, X, Y, Z) at snapshot_times, or None
    snapshot_times: list[float]


class NavierStokes3D:
    """Incompressible Navier-Stokes in a periodic box (see the module docstring for the method)."""

    def __init__(
        self,
        grid: SpectralGrid,
        nu: float,
        form: str = "rotational",
        forcing: Forcing | None = None,
        cfl: float = 0.5,
        scheme: str = "rk4",
        viscous: str = "integrating_factor",
        dealias: bool = True,
        max_dt: float | None = None,
        chunk_size: int | None = None,
        workers: int = 1,
        les: EddyViscosityModel | None = None,
        les_width: float | None = None,
    ):
        if not isinstance(grid, SpectralGrid):
            raise ConfigError("grid", f"expected a SpectralGrid, got {type(grid).__name__}")
        if not nu >= 0:
            raise ConfigError("nu", f"viscosity must be >= 0, got {nu!r}")
        if form not in FORMS:
            raise ConfigError("form", f"expected one of {FORMS}, got {form!r}")
        if scheme not in SCHEMES:
            raise ConfigError("scheme", f"expected one of {SCHEMES}, got {scheme!r}")
        if viscous not in VISCOUS:
            raise ConfigError("viscous", f"expected one of {VISCOUS}, got {viscous!r}")
        if not cfl > 0:
            raise ConfigError("cfl", f"must be positive, got {cfl!r}")
        if max_dt is not None and not max_dt > 0:
            raise ConfigError("max_dt", f"must be positive or None, got {max_dt!r}")
        self.grid = grid
        self.nu = float(nu)
        self.form = form
        self.forcing = forcing
        self.cfl = float(cfl)
        self.scheme = scheme
        self.viscous = viscous
        self.dealias = dealias
        self.max_dt = max_dt
        if chunk_size is not None and not (isinstance(chunk_size, int) and chunk_size > 0):
            raise ConfigError("chunk_size", f"must be a positive integer or None, got {chunk_size!r}")
        self.chunk_size = chunk_size
        if not (isinstance(workers, int) and workers >= 1):
            raise ConfigError("workers", f"must be an integer >= 1, got {workers!r}")
        self.workers = workers
        if les is not None and not isinstance(les, EddyViscosityModel):
            raise ConfigError("les", f"expected an EddyViscosityModel or None, got {type(les).__name__}")
        if les_width is not None and not les_width > 0:
            raise ConfigError("les_width", f"must be positive or None, got {les_width!r}")
        self.les = les
        self.les_width = float(les_width) if les_width is not None else default_width(grid.spacing, dealias)
        self._factor_cache: dict = {}
        self._set_grid(grid)

    # ------------------------------------------------------------------ grid / device handling
    def _set_grid(self, grid: SpectralGrid) -> None:
        self.grid = grid
        # Internal state: the dealiased block only (or the full rfft array without dealiasing).
        self.modes = RetainedModes(grid) if self.dealias else grid
        self._inv_dx_float = tuple(1.0 / d for d in grid.spacing)
        self._factor_cache = {}
        self._buffers = threading.local()

    def _follow(self, tensor: Tensor) -> None:
        grid = self.grid.like(tensor)
        if grid is not self.grid:
            self._set_grid(grid)

    def _compact(self, u_hat: Tensor) -> Tensor:
        return self.modes.gather(u_hat) if self.dealias else u_hat

    def _expand(self, state: Tensor) -> Tensor:
        return self.modes.scatter(state) if self.dealias else state

    def _full_buffer(self, state: Tensor, channels: int) -> Tensor:
        """A per-thread full rfft array (..., channels, X, Y, Zr), zero outside the retained block.

        Only the block is ever written, so the zeros survive between calls (torch's inverse FFT copies
        its input), saving a zero-fill and a fresh allocation per transform.
        """
        key = (tuple(state.shape[:-4]), channels, state.dtype, state.device)
        cache = self._buffers.__dict__
        buffer = cache.get(key)
        if buffer is None:
            buffer = cache[key] = state.new_zeros(*state.shape[:-4], channels, *self.grid.spectral_shape)
        return buffer

    def _inverse(self, state: Tensor) -> Tensor:
        """Compact (or full) spectral fields (..., C, ...) -> physical (..., C, X, Y, Z)."""
        if not self.dealias:
            return irfft3(state, self.grid.shape)
        full = self.modes.scatter(state, out=self._full_buffer(state, state.shape[-4]))
        return irfft3(full, self.grid.shape)

    def _forward(self, fields: Tensor) -> Tensor:
        """Physical fields -> compact (or full) spectral fields."""
        return self._compact(rfft3(fields))

    # ------------------------------------------------------------------ transforms
    def to_spectral(self, u: Float[Tensor, "*batch 3 X Y Z"]) -> Tensor:
        """Physical velocity -> projected (and dealiased) spectral state, a full rfft array."""
        self.grid.check_physical(u)
        self._follow(u)
        u_hat = self.grid.project(rfft3(u))
        if self.dealias:
            u_hat = u_hat * self.grid.dealias
        return u_hat

    def to_physical(self, u_hat: Tensor) -> Float[Tensor, "*batch 3 X Y Z"]:
        return irfft3(u_hat, self.grid.shape)

    # ------------------------------------------------------------------ right-hand side
    def _speed(self, u: Tensor) -> float:
        """``max_x sum_i |u_i| / dx_i`` over the grid and the whole batch (an exact, order-free max)."""
        inv_dx = self._inv_dx_float
        u0, u1, u2 = u.unbind(-4)
        total = u0.abs().mul_(inv_dx[0])
        total.add_(u1.abs(), alpha=inv_dx[1]).add_(u2.abs(), alpha=inv_dx[2])
        return float(total.amax())

    def _nonlinear_rotational(self, state: Tensor) -> tuple[Tensor, Tensor]:
        g = self.modes
        both = state.new_empty(*state.shape[:-4], 6, *g.spectral_shape)  # (..., 6, ...): u_hat, omega_hat
        both[..., :3, :, :, :] = state
        ux, uy, uz = state.unbind(-4)
        wx, wy, wz = both[..., 3:, :, :, :].unbind(-4)
        torch.mul(uz, g.iky, out=wx).addcmul_(uy, g.ikz, value=-1)
        torch.mul(ux, g.ikz, out=wy).addcmul_(uz, g.ikx, value=-1)
        torch.mul(uy, g.ikx, out=wz).addcmul_(ux, g.iky, value=-1)
        fields = self._inverse(both)  # (..., 6, X, Y, Z)
        del both
        u0, u1, u2, w0, w1, w2 = fields.unbind(-4)
        cross = fields.new_empty(*fields.shape[:-4], 3, *self.grid.shape)
        c0, c1, c2 = cross.unbind(-4)
        torch.mul(u1, w2, out=c0).addcmul_(u2, w1, value=-1)
        torch.mul(u2, w0, out=c1).addcmul_(u0, w2, value=-1)
        torch.mul(u0, w1, out=c2).addcmul_(u1, w0, value=-1)
        return self._forward(cross), fields[..., :3, :, :, :]

    def _nonlinear_skew(self, state: Tensor) -> tuple[Tensor, Tensor]:
        g = self.modes
        batch = state.shape[:-4]
        spectra_in = state.new_empty(*batch, 12, *g.spectral_shape)  # u_hat, then i k_j u_hat_i (j-major)
        spectra_in[..., :3, :, :, :] = state
        for j, ik in enumerate((g.ikx, g.iky, g.ikz)):
            torch.mul(state, ik, out=spectra_in[..., 3 + 3 * j : 6 + 3 * j, :, :, :])
        fields = self._inverse(spectra_in)  # (..., 12, X, Y, Z)
        del spectra_in
        u = fields[..., :3, :, :, :]
        grad = fields[..., 3:, :, :, :].unflatten(-4, (3, 3))  # grad[..., j, i, :, :, :] = du_i/dx_j
        work = u.new_empty(*batch, 9, *self.grid.shape)  # (..., 9, X, Y, Z): (u.grad)u, then u_i u_j
        convective = work[..., :3, :, :, :]
        torch.mul(grad[..., 0, :, :, :, :], u[..., 0:1, :, :, :], out=convective)
        convective.addcmul_(grad[..., 1, :, :, :, :], u[..., 1:2, :, :, :])
        convective.addcmul_(grad[..., 2, :, :, :, :], u[..., 2:3, :, :, :])
        for slot, (i, j) in enumerate(((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)), start=3):
            torch.mul(u[..., i, :, :, :], u[..., j, :, :, :], out=work[..., slot, :, :, :])
        spectra = self._forward(work)  # (..., 9, ...)
        out = spectra[..., :3, :, :, :]
        xx, yy, zz, xy, xz, yz = spectra[..., 3:, :, :, :].unbind(-4)
        o0, o1, o2 = out.unbind(-4)
        o0.addcmul_(xx, g.ikx).addcmul_(xy, g.iky).addcmul_(xz, g.ikz)
        o1.addcmul_(xy, g.ikx).addcmul_(yy, g.iky).addcmul_(yz, g.ikz)
        o2.addcmul_(xz, g.ikx).addcmul_(yz, g.iky).addcmul_(zz, g.ikz)
        return out.mul_(-0.5), u

    def _add_sgs_force(self, n_hat: Tensor, state: Tensor) -> None:
        """``n_hat -= i k_j tau_hat_ij`` for the LES closure, in place (before the projection)."""
        g = self.modes
        spectra = state.new_empty(*state.shape[:-4], 12, *g.spectral_shape)  # u_hat, then i k_j u_hat_i
        spectra[..., :3, :, :, :] = state
        for i in range(3):
            for j, ik in enumerate((g.ikx, g.iky, g.ikz)):
                torch.mul(state[..., i, :, :, :], ik, out=spectra[..., 3 + 3 * i + j, :, :, :])
        fields = self._inverse(spectra)  # (..., 12, X, Y, Z)
        del spectra
        grad = fields[..., 3:, :, :, :].unflatten(-4, (3, 3))  # grad[..., i, j, :, :, :] = du_i/dx_j
        nu_t = self.les.eddy_viscosity(fields[..., :3, :, :, :], grad, self.les_width, self.nu)
        tau = self._forward(sgs_stress(nu_t, grad))  # (..., 6, ...): xx, yy, zz, xy, xz, yz
        xx, yy, zz, xy, xz, yz = tau.unbind(-4)
        n0, n1, n2 = n_hat.unbind(-4)
        n0.addcmul_(xx, g.ikx, value=-1).addcmul_(xy, g.iky, value=-1).addcmul_(xz, g.ikz, value=-1)
        n1.addcmul_(xy, g.ikx, value=-1).addcmul_(yy, g.iky, value=-1).addcmul_(yz, g.ikz, value=-1)
        n2.addcmul_(xz, g.ikx, value=-1).addcmul_(yz, g.iky, value=-1).addcmul_(zz, g.ikz, value=-1)

    def _rhs(self, state: Tensor, want_speed: bool = False) -> Tensor | tuple[Tensor, float]:
        """Time derivative of the internal state (without the viscous term when it is integrated exactly)."""
        nonlinear = self._nonlinear_rotational if self.form == "rotational" else self._nonlinear_skew
        n_hat, u = nonlinear(state)
        speed = self._speed(u) if want_speed else None
        del u
        g = self.modes
        if self.les is not None:
            self._add_sgs_force(n_hat, state)
        n0, n1, n2 = n_hat.unbind(-4)
        # Leray projection in place: n <- n - k (k . n) / |k|^2; the mean is not forced.
        k_dot_n = n0 * g.kx
        k_dot_n.addcmul_(n1, g.ky).addcmul_(n2, g.kz).mul_(g.inv_k2)
        n0.addcmul_(k_dot_n, g.kx, value=-1)
        n1.addcmul_(k_dot_n, g.ky, value=-1)
        n2.addcmul_(k_dot_n, g.kz, value=-1)
        n_hat[..., 0, 0, 0] = 0
        if self.forcing is not None:
            apply_in_place = getattr(self.forcing, "apply_", None)
            if apply_in_place is not None:
                apply_in_place(n_hat, state, g, self.nu)
            else:
                n_hat.add_(self.forcing(state, g, self.nu))
        if self.viscous == "explicit" and self.nu > 0:
            n_hat.addcmul_(state, g.k2_full, value=-self.nu)
        if want_speed:
            return n_hat, speed
        return n_hat

    def rhs(self, u_hat: Tensor, want_speed: bool = False) -> Tensor | tuple[Tensor, float]:
        """Time derivative of a full spectral state (..., 3, X, Y, Z//2+1): projected nonlinear term, forcing
        (and the viscous term when explicit). With dealiasing, modes outside the 2/3 cube are zero."""
        self.grid.check_spectral(u_hat)
        self._follow(u_hat)
        out = self._rhs(self._compact(u_hat), want_speed)
        if want_speed:
            return self._expand(out[0]), out[1]
        return self._expand(out)

    # ------------------------------------------------------------------ time step
    def _dt_limit(self, speed: float) -> float:
        dt = math.inf if speed <= 0 else self.cfl / speed
        if self.viscous == "explicit" and self.nu > 0:
            k2_max = float(self.modes.k2_full.amax())
            dt = min(dt, 0.9 * _REAL_AXIS_BOUND[self.scheme] / (self.nu * k2_max))
        if self.max_dt is not None:
            dt = min(dt, self.max_dt)
        return dt

    def stable_dt(self, u_hat: Tensor) -> float:
        """The largest time step allowed by the CFL number (and the viscous limit when explicit)."""
        self._follow(u_hat)
        return self._dt_limit(self._speed(self.to_physical(u_hat)))

    def _factor(self, dt: float, fraction: float) -> Tensor | None:
        """``exp(-nu |k|^2 fraction dt)`` (None when the viscous term is explicit or nu = 0)."""
        if self.viscous != "integrating_factor" or self.nu == 0 or fraction == 0:
            return None
        key = (dt, fraction)
        factor = self._factor_cache.get(key)
        if factor is None:
            if len(self._factor_cache) > 16:
                self._factor_cache.clear()
            factor = torch.exp(self.modes.k2_full * (-self.nu * fraction * dt))
            self._factor_cache[key] = factor
        return factor

    def _rk4(self, u_hat: Tensor, dt: float, k1: Tensor) -> Tensor:
        half = self._factor(dt, 0.5)
        full = self._factor(dt, 1.0)
        stage = torch.add(u_hat, k1, alpha=0.5 * dt)
        if half is not None:
            stage.mul_(half)
        k2 = self._rhs(stage)
        if half is None:
            torch.add(u_hat, k2, alpha=0.5 * dt, out=stage)
        else:
            torch.mul(u_hat, half, out=stage).add_(k2, alpha=0.5 * dt)
        k3 = self._rhs(stage)
        # Last stage: E u + dt E_half k3 (E = E_half^2); E u is reused for the update.
        decayed = u_hat if full is None else u_hat * full
        k2.add_(k3)
        if half is not None:
            k3.mul_(half)
            k2.mul_(half)
        torch.add(decayed, k3, alpha=dt, out=stage)
        k4 = self._rhs(stage)
        # u_new = E u + dt/6 (E k1 + 2 E_half (k2 + k3) + k4).
        if full is not None:
            k1.mul_(full)
        k1.add_(k2, alpha=2.0).add_(k4)
        return torch.add(decayed, k1, alpha=dt / 6.0, out=stage)

    def _rk3(self, u_hat: Tensor, dt: float, k1: Tensor) -> Tensor:
        u = u_hat.clone()
        q = k1.mul_(dt)
        for stage in range(3):
            if stage > 0:
                q.mul_(_WILLIAMSON_A[stage]).add_(self._rhs(u), alpha=dt)
            u.add_(q, alpha=_WILLIAMSON_B[stage])
            shift = self._factor(dt, _WILLIAMSON_SHIFTS[stage])
            if shift is not None:
                u.mul_(shift)
                if stage < 2:
                    q.mul_(shift)
        return u

    def _chunks(self, batch: int) -> list[slice]:
        """Slices of the flattened batch processed together.

        On the CPU a whole batch of 64^3 fields does not fit in cache and every temporary is a fresh
        page-faulted allocation; advancing a few flows at a time (at most 16 MiB of work array per
        chunk, and at least one chunk per worker) is faster. On GPUs the whole batch goes at once.
        """
        size = self.chunk_size
        if size is None:
            if self.grid.device.type != "cpu":
                size = batch
            else:
                per_flow = 6 * self.grid.n_points * self.grid.dtype.itemsize  # the 6-field real work array
                size = max(1, (16 * 2**20) // per_flow)
                if self.workers > 1:
                    size = min(size, math.ceil(batch / self.workers))
        return [slice(i, min(i + size, batch)) for i in range(0, batch, size)]

    def _map(self, function: Callable, items: list) -> list:
        """``[function(item) ...]``, on ``workers`` Python threads when there is more than one item.

        torch releases the GIL inside its kernels, so flows in different chunks advance concurrently
        with one intra-op thread each: no per-kernel barrier between threads, which on a shared CPU
        costs a scheduler time slice whenever a worker is descheduled. Chunks are independent, so the
        result does not depend on the number of workers.
        """
        if self.workers == 1 or len(items) == 1:
            return [function(item) for item in items]
        return list(_thread_pool(self.workers).map(function, items))

    def _step(self, u_hat: Tensor, dt: float | None, remaining: float | None = None) -> tuple[Tensor, float]:
        batch_shape = u_hat.shape[:-4]
        flows = u_hat.reshape(-1, *u_hat.shape[-4:])  # (B, 3, ...) internal states
        chunks = self._chunks(flows.shape[0])
        fixed_dt = dt
        first = self._map(lambda chunk: self._rhs(flows[chunk], want_speed=fixed_dt is None), chunks)
        if dt is None:
            speed = max(item[1] for item in first)
            first = [item[0] for item in first]
            dt = self._dt_limit(speed)
            if remaining is not None:
                # Equal steps that land exactly on the end of the interval.
                dt = remaining if dt >= remaining else remaining / math.ceil(remaining / dt - 1e-9)
            if not math.isfinite(dt):
                raise ConfigError(
                    "max_dt", "the flow is at rest and nothing limits the time step; set max_dt"
                )
        advance = self._rk4 if self.scheme == "rk4" else self._rk3
        for fraction in (0.5, 1.0) if self.scheme == "rk4" else _WILLIAMSON_SHIFTS:
            self._factor(dt, fraction)  # fill the cache before the worker threads read it
        outs = self._map(lambda item: advance(flows[item[0]], dt, item[1]), list(zip(chunks, first)))
        out = outs[0] if len(outs) == 1 else torch.cat(outs)
        return out.reshape(*batch_shape, *out.shape[-4:]), dt

    def step(self, u_hat: Tensor, dt: float) -> Tensor:
        """One Runge-Kutta step of size ``dt`` of the spectral state ``(..., 3, X, Y, Z//2+1)``."""
        self.grid.check_spectral(u_hat)
        self._follow(u_hat)
        if not dt > 0:
            raise ConfigError("dt", f"time step must be positive, got {dt!r}")
        return self._expand(self._step(self._compact(u_hat), float(dt))[0])

    def advance(
        self,
        u_hat: Tensor,
        duration: float,
        *,
        t0: float = 0.0,
        callback: StepCallback | None = None,
        max_steps: int | None = None,
    ) -> tuple[Tensor, int]:
        """Integrate the spectral state over ``duration`` with CFL-limited steps; returns (u_hat, steps).

        ``callback(step, t, dt, u_hat)`` is called after every step; the last call has ``t = t0 + duration``.
        """
        self.grid.check_spectral(u_hat)
        self._follow(u_hat)
        if not duration >= 0:
            raise ConfigError("duration", f"must be >= 0, got {duration!r}")
        elapsed = 0.0
        steps = 0
        state = self._compact(u_hat)
        while duration - elapsed > 1e-12 * max(1.0, duration):
            state, dt = self._step(state, None, remaining=duration - elapsed)
            steps += 1
            finished = dt >= duration - elapsed
            elapsed = duration if finished else elapsed + dt
            if callback is not None:
                callback(steps, t0 + duration if finished else t0 + elapsed, dt, self._expand(state))
            if max_steps is not None and steps >= max_steps:
                break
        u_hat = self._expand(state)
        if not bool(torch.isfinite(u_hat.real).all()):
            raise FloatingPointError(
                f"the solution blew up before t = {t0 + elapsed:g} (cfl={self.cfl}, scheme={self.scheme}); "
                "lower cfl or resolve the flow better"
            )
        return u_hat, steps

    def run(
        self,
        u0: Float[Tensor, "*batch 3 X Y Z"],
        t_end: float,
        *,
        t0: float = 0.0,
        snapshot_times: Sequence[float] | None = None,
        callback: StepCallback | None = None,
    ) -> SimulationResult:
        """Integrate a physical velocity from ``t0`` to ``t_end``, optionally keeping snapshots.

        ``u0`` is projected onto divergence-free fields (and dealiased) first.
        """
        if t_end < t0:
            raise ConfigError("t_end", f"must be >= t0 = {t0}, got {t_end}")
        times = sorted(float(t) for t in (snapshot_times or []))
        if times and (times[0] < t0 or times[-1] > t_end):
            raise ConfigError("snapshot_times", f"must lie in [{t0}, {t_end}], got {times[0]} .. {times[-1]}")
        u_hat = self.to_spectral(u0)
        t = t0
        steps = 0
        snapshots = []
        for target in [*times, float(t_end)]:
            u_hat, n = self.advance(u_hat, target - t, t0=t, callback=callback)
            steps += n
            t = target
            if len(snapshots) < len(times):
                snapshots.append(self.to_physical(u_hat))
        return SimulationResult(
            u=self.to_physical(u_hat),
            time=t,
            steps=steps,
            snapshots=torch.stack(snapshots) if snapshots else None,
            snapshot_times=times,
        )
