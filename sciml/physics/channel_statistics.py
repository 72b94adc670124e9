"""Turbulent channel statistics in wall units from velocity snapshots (Pope 2000, *Turbulent Flows*, ch. 7).

Input: physical velocities ``(B, 3, X, Y, Z)`` of :class:`sciml.physics.channel.ChannelFlow` (half-height
``h = 1``, walls at ``y = -1, +1``, ``Y`` the Gauss-Lobatto points ``y_j = cos(pi j / N)`` from ``+1`` down
to ``-1``). Every batch element of every snapshot is one equally weighted sample.

Averages ``<.>`` run over ``x``, ``z``, the samples and both halves of the channel. Fluctuations are taken
about the final ensemble mean: the per-sample plane covariance is accumulated together with the plane means,
so ``<u_i' u_j'> = mean(plane covariance) + mean(plane mean_i * plane mean_j) - <u_i><u_j>`` without the
cancellation of ``<u_i u_j> - <u_i><u_j>``.

Wall units and folding:

* ``tau_w = nu (dU/dy(-1) - dU/dy(+1)) / 2`` from the mean profile (Chebyshev derivative, both walls),
  ``u_tau = sqrt(tau_w)``, ``Re_tau = u_tau h / nu``; velocities ``+ = / u_tau``, stresses ``/ u_tau^2``,
  lengths ``y+ = (distance from the wall) u_tau / nu``, wavenumbers ``k+ = k nu / u_tau``.
* Profiles are returned on the lower half ``eta = 1 + y in [0, 1]`` (points ``j = 0 .. N // 2`` from the
  wall), in the frame of the lower wall. The upper half enters through the reflection ``y -> -y``, which
  maps ``(u, v, w) -> (u, -v, w)``: ``U, W, <u'^2>, <v'^2>, <w'^2>, <u'w'>`` are averaged symmetrically,
  ``V, <u'v'>, <v'w'>`` and ``dU/dy`` with the sign of the upper half flipped. So ``-<u'v'>+ > 0`` next to
  both walls.
* Total shear stress (mean streamwise momentum of a statistically steady channel, Pope eq. 7.13):
  ``dU+/dy+ - <u'v'>+ = 1 - y+ / Re_tau`` with ``y+`` the wall distance (``= |y| / h`` in the centred
  coordinate); :attr:`ChannelProfiles.stress_residual` is left minus right, zero at the wall by the
  definition of ``u_tau``.
* One-dimensional spectra of the fluctuations about each sample's plane average, as energy per discrete
  wavenumber bin (``k >= 0``; ``+k`` and ``-k`` summed): ``sum_kx E_ii(kx; y) = sum_kz E_ii(kz; y) =``
  the plane-averaged variance (Parseval), which is ``<u_i'^2>`` when the plane means do not change between
  samples. Divide by ``dk = 2 pi / L`` for a density. Spectra are folded like the variances.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float
from scipy.interpolate import BarycentricInterpolator
from torch import Tensor

from sciml.core.atomic import atomic_path
from sciml.core.errors import ConfigError
from sciml.physics.channel import chebyshev_matrix, chebyshev_points

# Second moments kept, as (component i, component j, sign under y -> -y).
_PAIRS = ((0, 0, 1.0), (1, 1, 1.0), (2, 2, 1.0), (0, 1, -1.0), (0, 2, 1.0), (1, 2, -1.0))
_MEAN_SIGNS = (1.0, -1.0, 1.0)  # (U, V, W) under y -> -y
# Profiles that change sign under the mirror eta -> 2 - eta (the wall frame of the other wall).
_ANTISYMMETRIC = ("v_mean", "reynolds_shear", "vw", "viscous_shear", "stress_residual")


@dataclass
class ChannelProfiles:
    """Folded profiles in wall units on the lower half, ``(ny_half,)`` numpy arrays (see module docstring)."""

    nu: float
    u_tau: float
    re_tau: float
    samples: int
    eta: np.ndarray  # wall distance / h
    y_plus: np.ndarray
    u_mean: np.ndarray  # U+
    v_mean: np.ndarray  # V+ (zero in theory)
    w_mean: np.ndarray  # W+ (zero in theory)
    u_rms: np.ndarray  # u'+
    v_rms: np.ndarray
    w_rms: np.ndarray
    reynolds_shear: np.ndarray  # -<u'v'>+
    uw: np.ndarray  # <u'w'>+ (zero in theory)
    vw: np.ndarray  # <v'w'>+ (zero in theory)
    viscous_shear: np.ndarray  # dU+/dy+
    stress_residual: np.ndarray  # dU+/dy+ - <u'v'>+ - (1 - y+/Re_tau)

    def interpolate(self, name: str, y_plus: np.ndarray | Sequence[float]) -> np.ndarray:
        """Profile ``name`` (a field of this class) at wall distances ``y_plus``, by Chebyshev interpolation.

        The half profile is mirrored onto the whole channel (antisymmetric for ``v_mean``,
        ``reynolds_shear``, ``vw``, ``viscous_shear`` and ``stress_residual``) and interpolated as the
        polynomial through the Gauss-Lobatto values; ``y_plus`` must lie in ``[0, 2 Re_tau]`` (beyond
        ``Re_tau`` it is the distance from the lower wall seen from the upper one). Rms profiles are
        interpolated as variances.
        """
        values = np.asarray(getattr(self, name), dtype=np.float64)
        is_rms = name in ("u_rms", "v_rms", "w_rms")
        if is_rms:
            values = values**2
        sign = -1.0 if name in _ANTISYMMETRIC else 1.0
        n_half = values.shape[0]
        n = 2 * (n_half - 1) if _is_centre(self.eta[-1]) else 2 * n_half - 1
        eta_full = 1.0 - chebyshev_points(n)  # distance from the lower wall, 0 .. 2
        full = np.empty(n + 1)
        for j in range(n + 1):
            mirror = min(j, n - j)
            full[j] = values[mirror] * (sign if j > n - j else 1.0)
        target = np.asarray(y_plus, dtype=np.float64) / self.re_tau
        result = BarycentricInterpolator(eta_full, full)(target)
        return np.sqrt(np.clip(result, 0.0, None)) if is_rms else result


@dataclass
class ChannelSpectra:
    """One-dimensional spectra at the grid points nearest the requested ``y+`` (wall units, per bin).

    ``streamwise (P, 3, X//2 + 1)`` over ``kx``, ``spanwise (P, 3, Z//2 + 1)`` over ``kz``, components
    ``(uu, vv, ww)`` in units of ``u_tau^2``; ``kx, kz`` in ``1/h``, ``kx_plus = kx nu / u_tau``.
    """

    y_plus_requested: np.ndarray
    y_plus: np.ndarray
    kx: np.ndarray
    kz: np.ndarray
    kx_plus: np.ndarray
    kz_plus: np.ndarray
    streamwise: np.ndarray
    spanwise: np.ndarray


def _is_centre(eta: float) -> bool:
    return abs(eta - 1.0) < 1e-12


class ChannelStatisticsAccumulator:
    """Streaming channel statistics over snapshots; :meth:`save` / :meth:`load` let an averaging resume.

    ``shape = (nx, ny, nz)`` and ``lengths = (Lx, Lz)`` as in :class:`ChannelFlow`; ``nu`` the viscosity.
    Sums are kept in float64 on the device of the first snapshot.
    """

    def __init__(self, shape: tuple[int, int, int], nu: float, lengths: tuple[float, float]):
        if len(shape) != 3 or min(shape) < 1 or shape[1] < 3:
            raise ConfigError("shape", f"expected (nx, ny, nz) with ny >= 3, got {shape!r}")
        if not nu > 0:
            raise ConfigError("nu", f"viscosity must be positive, got {nu!r}")
        self.nx, self.ny, self.nz = (int(s) for s in shape)
        self.lx, self.lz = (float(length) for length in lengths)
        self.nu = float(nu)
        self.samples = 0
        self._sums: dict[str, Tensor] | None = None

    @classmethod
    def for_solver(cls, solver) -> ChannelStatisticsAccumulator:
        """An accumulator matching a :class:`~sciml.physics.channel.ChannelFlow`."""
        return cls((solver.nx, solver.ny, solver.nz), solver.nu, (solver.lx, solver.lz))

    # ------------------------------------------------------------------ accumulation
    def _check(self, velocity: Tensor) -> None:
        expected = (3, self.nx, self.ny, self.nz)
        if velocity.ndim != 5 or tuple(velocity.shape[1:]) != expected:
            raise ConfigError(
                "velocity",
                f"expected (B, 3, X, Y, Z) with (3, X, Y, Z) = {expected}, got {tuple(velocity.shape)}",
            )

    def update(self, velocity: Float[Tensor, "B 3 X Y Z"]) -> None:
        """Add the ``B`` samples of one snapshot."""
        self._check(velocity)
        field = velocity.detach().to(torch.float64)
        plane_mean = field.mean(dim=(2, 4))  # (B, 3, Y)
        fluctuation = field - plane_mean[:, :, None, :, None]  # (B, 3, X, Y, Z)
        covariance = torch.stack(
            [(fluctuation[:, i] * fluctuation[:, j]).mean(dim=(1, 3)) for i, j, _ in _PAIRS], dim=1
        )  # (B, 6, Y)
        mean_products = torch.stack([plane_mean[:, i] * plane_mean[:, j] for i, j, _ in _PAIRS], dim=1)
        fx = torch.fft.rfft(fluctuation, dim=2, norm="forward")  # (B, 3, X//2+1, Y, Z)
        fz = torch.fft.rfft(fluctuation, dim=4, norm="forward")  # (B, 3, X, Y, Z//2+1)
        ex = fx.abs().square().mean(dim=4) * _one_sided(self.nx, field.device)[:, None]  # (B, 3, X//2+1, Y)
        ez = fz.abs().square().mean(dim=2) * _one_sided(self.nz, field.device)[None, :]  # (B, 3, Y, Z//2+1)
        batch = {
            "mean": plane_mean.sum(0),
            "mean_products": mean_products.sum(0),
            "covariance": covariance.sum(0),
            "spectrum_x": ex.sum(0).transpose(1, 2),  # (3, Y, X//2+1)
            "spectrum_z": ez.sum(0),  # (3, Y, Z//2+1)
        }
        if self._sums is None:
            self._sums = {key: torch.zeros_like(value) for key, value in batch.items()}
        for key, value in batch.items():
            self._sums[key] += value.to(self._sums[key].device)
        self.samples += int(velocity.shape[0])

    # ------------------------------------------------------------------ results
    def _means(self) -> dict[str, np.ndarray]:
        if self._sums is None or self.samples == 0:
            raise ConfigError("samples", "no snapshot has been accumulated yet")
        return {key: (value / self.samples).cpu().numpy() for key, value in self._sums.items()}

    def profiles(self) -> ChannelProfiles:
        """Folded mean, rms, shear-stress and stress-balance profiles in wall units."""
        means = self._means()
        mean = means["mean"]  # (3, Y)
        moments = means["covariance"] + means["mean_products"]
        stresses = np.stack([moments[p] - mean[i] * mean[j] for p, (i, j, _) in enumerate(_PAIRS)])  # (6, Y)
        n = self.ny - 1
        dudy = chebyshev_matrix(n) @ mean[0]
        tau_w = self.nu * 0.5 * (dudy[-1] - dudy[0])
        if not tau_w > 0:
            raise ConfigError("velocity", f"the mean wall shear is not positive ({tau_w:g}); is U > 0?")
        u_tau = math.sqrt(tau_w)
        re_tau = u_tau / self.nu
        fold = _fold_indices(self.ny)

        def folded(values: np.ndarray, sign: float) -> np.ndarray:
            lower, upper = values[..., n - fold], values[..., fold]
            return 0.5 * (lower + sign * upper)

        eta = 1.0 - chebyshev_points(n)[fold]
        y_plus = eta * re_tau
        names = ("uu", "vv", "ww", "uv", "uw", "vw")
        folded_stress = {name: folded(stresses[p], _PAIRS[p][2]) / tau_w for p, name in enumerate(names)}
        viscous = folded(dudy, -1.0) * self.nu / tau_w
        residual = viscous - folded_stress["uv"] - (1.0 - eta)
        return ChannelProfiles(
            nu=self.nu,
            u_tau=u_tau,
            re_tau=re_tau,
            samples=self.samples,
            eta=eta,
            y_plus=y_plus,
            u_mean=folded(mean[0], _MEAN_SIGNS[0]) / u_tau,
            v_mean=folded(mean[1], _MEAN_SIGNS[1]) / u_tau,
            w_mean=folded(mean[2], _MEAN_SIGNS[2]) / u_tau,
            u_rms=np.sqrt(np.clip(folded_stress["uu"], 0.0, None)),
            v_rms=np.sqrt(np.clip(folded_stress["vv"], 0.0, None)),
            w_rms=np.sqrt(np.clip(folded_stress["ww"], 0.0, None)),
            reynolds_shear=-folded_stress["uv"],
            uw=folded_stress["uw"],
            vw=folded_stress["vw"],
            viscous_shear=viscous,
            stress_residual=residual,
        )

    def spectra(self, y_plus: Sequence[float]) -> ChannelSpectra:
        """Streamwise and spanwise 1-d spectra at the folded grid points nearest each ``y_plus``."""
        profiles = self.profiles()
        means = self._means()
        n = self.ny - 1
        fold = _fold_indices(self.ny)
        requested = np.asarray(y_plus, dtype=np.float64)
        nearest = np.abs(profiles.y_plus[None, :] - requested[:, None]).argmin(axis=1)  # (P,)
        lower, upper = n - fold[nearest], fold[nearest]
        tau_w = profiles.u_tau**2
        streamwise = (
            0.5 * (means["spectrum_x"][:, lower] + means["spectrum_x"][:, upper]) / tau_w
        )  # (3, P, K)
        spanwise = 0.5 * (means["spectrum_z"][:, lower] + means["spectrum_z"][:, upper]) / tau_w
        kx = np.arange(self.nx // 2 + 1) * (2.0 * math.pi / self.lx)
        kz = np.arange(self.nz // 2 + 1) * (2.0 * math.pi / self.lz)
        scale = self.nu / profiles.u_tau
        return ChannelSpectra(
            y_plus_requested=requested,
            y_plus=profiles.y_plus[nearest],
            kx=kx,
            kz=kz,
            kx_plus=kx * scale,
            kz_plus=kz * scale,
            streamwise=streamwise.transpose(1, 0, 2),  # (P, 3, K)
            spanwise=spanwise.transpose(1, 0, 2),
        )

    # ------------------------------------------------------------------ save / restore
    def state_dict(self) -> dict:
        sums = {} if self._sums is None else {key: value.cpu() for key, value in self._sums.items()}
        return {
            "shape": (self.nx, self.ny, self.nz),
            "lengths": (self.lx, self.lz),
            "nu": self.nu,
            "samples": self.samples,
            "sums": sums,
        }

    def load_state_dict(self, state: dict) -> None:
        if tuple(state["shape"]) != (self.nx, self.ny, self.nz) or float(state["nu"]) != self.nu:
            raise ConfigError(
                "state",
                f"saved statistics are for shape {tuple(state['shape'])}, nu {state['nu']}; "
                f"this accumulator has {(self.nx, self.ny, self.nz)}, nu {self.nu}",
            )
        self.samples = int(state["samples"])
        sums = state["sums"]
        self._sums = {key: value.to(torch.float64).clone() for key, value in sums.items()} if sums else None

    def save(self, path: str | Path) -> None:
        """Write the running sums atomically (``torch.save`` of :meth:`state_dict`)."""
        with atomic_path(path) as tmp:
            torch.save(self.state_dict(), tmp)

    @classmethod
    def load(cls, path: str | Path) -> ChannelStatisticsAccumulator:
        state = torch.load(path, map_location="cpu", weights_only=True)
        accumulator = cls(tuple(state["shape"]), float(state["nu"]), tuple(state["lengths"]))
        accumulator.load_state_dict(state)
        return accumulator


def channel_statistics(
    snapshots: Iterable[Float[Tensor, "B 3 X Y Z"]], nu: float, lengths: tuple[float, float]
) -> ChannelStatisticsAccumulator:
    """Accumulate a sequence of snapshots; call ``.profiles()`` / ``.spectra(y_plus)`` on the result."""
    accumulator = None
    for snapshot in snapshots:
        if accumulator is None:
            _, nx, ny, nz = snapshot.shape[1:]
            accumulator = ChannelStatisticsAccumulator((nx, ny, nz), nu, lengths)
        accumulator.update(snapshot)
    if accumulator is None:
        raise ConfigError("snapshots", "got no snapshot")
    return accumulator


def _fold_indices(ny: int) -> np.ndarray:
    """Upper-half indices ``j = 0 .. N // 2`` (wall first); the lower-half mirror of ``j`` is ``N - j``."""
    return np.arange((ny - 1) // 2 + 1)


def _one_sided(n: int, device: torch.device) -> Tensor:
    """Weights folding ``-k`` onto ``+k`` in an rfft of length ``n`` (``k = 0`` and Nyquist once)."""
    weights = torch.full((n // 2 + 1,), 2.0, dtype=torch.float64, device=device)
    weights[0] = 1.0
    if n % 2 == 0:
        weights[-1] = 1.0
    return weights
