"""Eddy-viscosity closures for large-eddy simulation, written on velocity-gradient tensors.

Every model maps the resolved velocity gradient ``g_ij = du_i/dx_j`` (and, for the dynamic model, the
resolved velocity) to an eddy viscosity ``nu_t``; the subgrid-scale stress is its deviatoric part
``tau_ij - (1/3) tau_kk delta_ij = -2 nu_t S^d_ij`` with ``S_ij = (g_ij + g_ji) / 2`` and
``|S| = sqrt(2 S_ij S_ij)``. Nothing here differentiates: gradients come from the solver (spectral in the
periodic box, finite differences in a channel), and the filter width ``Delta`` may be a number or a
tensor broadcasting against the grid ``(X, Y, Z)`` (e.g. ``(1, Y, 1)`` for a stretched wall-normal grid).

* :class:`Smagorinsky` (Smagorinsky 1963, Mon. Weather Rev. 91, 99): ``nu_t = (C_s Delta)^2 |S|``.
  ``C_s = 0.17`` is Lilly's (1967, IBM Sci. Comput. Symp.) value for a sharp cutoff in the inertial range,
  appropriate for isotropic turbulence; near walls ``C_s ~ 0.1`` is common and ``|S|`` must be damped:
  :func:`van_driest_damping` multiplies ``nu_t`` by ``(1 - exp(-y+/A+))^2`` with ``A+ = 26``
  (van Driest 1956, J. Aeronaut. Sci. 23, 1007), i.e. damps the length ``C_s Delta`` like a mixing length.
  ``y+`` is either fixed (``y_plus``) or, with ``wall_damped=True``, supplied by the solver at each call
  (the channel solver computes it from the current wall shear).
* :class:`DynamicSmagorinsky` (Germano, Piomelli, Moin & Cabot 1991, Phys. Fluids A 3, 1760, with the
  least-squares contraction of Lilly 1992, Phys. Fluids A 4, 633): ``nu_t = C Delta^2 |S|`` (``C`` plays
  ``C_s^2``) with, for a test filter ``^`` of width ``alpha Delta`` (``alpha = 2``),
  ``L_ij = (u_i u_j)^ - u^_i u^_j``, ``M_ij = 2 Delta^2 (|S| S^d_ij)^ - 2 (alpha Delta)^2 |S^| (S^)^d_ij`` and
  ``C = <L_ij M_ij> / <M_ij M_ij>``. Sign convention: with ``tau^d = -2 C Delta^2 |S| S^d`` at both filter
  levels the Germano identity ``L = T - tau^`` reads ``L_ij = C M_ij`` (``M`` is traceless, so the trace of
  ``L`` drops out of the contraction). ``<.>`` averages over homogeneous directions, an argument:
  the whole box for isotropic turbulence, x-z planes in a channel. Finally ``nu + nu_t >= 0`` is enforced
  (backscatter may lower the total viscosity but not below zero). The test filter commutes with
  differentiation (true for filters along homogeneous directions), so ``S^`` is built from the filtered
  gradient. In the periodic box the default test filter is a sharp spectral cutoff at ``pi / (alpha
  Delta)`` (:class:`SpectralCutoff`): with ``Delta = pi / k_c`` it halves the resolved band exactly, whereas
  a box filter's effective width depends on how it is discretised; a channel passes its own x-z filter.
* :class:`WALE` (Nicoud & Ducros 1999, Flow Turbul. Combust. 62, 183):
  ``nu_t = (C_w Delta)^2 (S^d_ij S^d_ij)^{3/2} / ((S_ij S_ij)^{5/2} + (S^d_ij S^d_ij)^{5/4})`` with
  ``S^d_ij = (g2_ij + g2_ji) / 2 - (1/3) delta_ij g2_kk``, ``g2 = g g``. It vanishes in pure shear and
  gives ``nu_t ~ y^3`` at a wall without damping, but (unlike the Smagorinsky models) not in solid-body
  rotation: there ``S = 0`` and ``nu_t = (C_w Delta)^2 (S^d S^d)^{1/4} = (C_w Delta)^2 (2/3)^{1/4}
  |Omega|`` (Nicoud et al. 2011, Phys. Fluids 23, 085106, Table I). ``C_w = 0.325``: the paper matches
  the mean dissipation of isotropic turbulence to Smagorinsky's, ``C_w^2 / C_s^2 ~ 10.6``, and uses
  ``C_w = 0.5`` with ``C_s = 0.18``; the same ratio with the ``C_s = 0.1`` usual in wall-bounded flows
  gives 0.325 (also OpenFOAM's default), the flows WALE is meant for. Configurable.
* :class:`NoModel`: ``nu_t = 0`` (under-resolved DNS, the baseline for the other models).

For the periodic solver, :func:`sgs_stress` gives ``tau^d_ij`` and the solver adds ``-d tau_ij / dx_j`` to
the right-hand side (see :class:`sciml.physics.navier_stokes.NavierStokes3D`, argument ``les``); the channel
solver does the same (:class:`sciml.physics.channel.ChannelFlow`, argument ``les``).
:func:`closure_config` / :func:`closure_from_config` turn a model into a plain dict and back, for checkpoints.

Tensor layout: gradients ``(..., 3, 3, X, Y, Z)`` with ``grad[..., i, j] = du_i/dx_j``; symmetric tensors
are stored as 6 components ``(xx, yy, zz, xy, xz, yz)`` along one axis, ``(..., 6, X, Y, Z)``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from sciml.core.errors import ConfigError
from sciml.physics.spectral import TWO_PI, as_triple, cached_grid, irfft3, rfft3

#: Index pairs of the 6 stored components of a symmetric tensor, and their weights in ``A_ij B_ij``.
SYMMETRIC_PAIRS = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
_PAIR_WEIGHTS = (1.0, 1.0, 1.0, 2.0, 2.0, 2.0)

Width = float | Tensor  # a number or a tensor broadcasting against (X, Y, Z)
TestFilter = Callable[[Tensor], Tensor]  # (..., X, Y, Z) -> (..., X, Y, Z), filtering the last 3 axes


def _check_gradient(grad: Tensor) -> None:
    if grad.ndim < 5 or tuple(grad.shape[-5:-3]) != (3, 3):
        raise ValueError(f"grad: expected a velocity gradient (..., 3, 3, X, Y, Z), got {tuple(grad.shape)}")


def symmetric_components(tensor: Float[Tensor, "*batch 3 3 X Y Z"]) -> Float[Tensor, "*batch 6 X Y Z"]:
    """The symmetric part ``(t_ij + t_ji) / 2`` as its 6 independent components."""
    return torch.stack(
        [0.5 * (tensor[..., i, j, :, :, :] + tensor[..., j, i, :, :, :]) for i, j in SYMMETRIC_PAIRS], -4
    )


def contract(
    a: Float[Tensor, "*batch 6 X Y Z"], b: Float[Tensor, "*batch 6 X Y Z"]
) -> Float[Tensor, "*batch X Y Z"]:
    """``a_ij b_ij`` of two symmetric tensors stored as 6 components."""
    weights = a.new_tensor(_PAIR_WEIGHTS).view(6, 1, 1, 1)
    return (a * b * weights).sum(-4)


def deviatoric(s: Float[Tensor, "*batch 6 X Y Z"]) -> Float[Tensor, "*batch 6 X Y Z"]:
    """``s_ij - (1/3) s_kk delta_ij`` (6 components)."""
    trace = s[..., :3, :, :, :].sum(-4, keepdim=True) / 3.0
    return torch.cat((s[..., :3, :, :, :] - trace, s[..., 3:, :, :, :]), -4)


def strain_rate(grad: Float[Tensor, "*batch 3 3 X Y Z"]) -> Float[Tensor, "*batch 6 X Y Z"]:
    """``S_ij = (du_i/dx_j + du_j/dx_i) / 2``."""
    _check_gradient(grad)
    return symmetric_components(grad)


def strain_magnitude(strain: Float[Tensor, "*batch 6 X Y Z"]) -> Float[Tensor, "*batch X Y Z"]:
    """``|S| = sqrt(2 S_ij S_ij)``."""
    return torch.sqrt(2.0 * contract(strain, strain))


def _width_squared(width: Width, like: Tensor) -> Tensor | float:
    if isinstance(width, Tensor):
        if not bool((width > 0).all()):
            raise ConfigError("width", "the filter width must be positive everywhere")
        return width.to(like.dtype).square()
    if not width > 0:
        raise ConfigError("width", f"the filter width must be positive, got {width!r}")
    return float(width) ** 2


def van_driest_damping(y_plus: Tensor, a_plus: float = 26.0) -> Tensor:
    """``(1 - exp(-y+/A+))^2``, the factor on ``nu_t`` that makes it vanish like ``y+^2`` at a wall."""
    return (-torch.expm1(-y_plus / a_plus)).square()


def sgs_stress(
    nu_t: Float[Tensor, "*batch X Y Z"], grad: Float[Tensor, "*batch 3 3 X Y Z"]
) -> Float[Tensor, "*batch 6 X Y Z"]:
    """Deviatoric subgrid-scale stress ``tau^d_ij = -2 nu_t S^d_ij`` (6 components)."""
    return deviatoric(strain_rate(grad)) * (-2.0 * nu_t.unsqueeze(-4))


class EddyViscosityModel(ABC):
    """Interface: ``nu_t = model.eddy_viscosity(u, grad, width, nu)`` on ``(..., X, Y, Z)``.

    ``u (..., 3, X, Y, Z)`` is used only by models that filter it (the dynamic model); ``nu`` only by
    models that clip the total viscosity.
    """

    @abstractmethod
    def eddy_viscosity(
        self,
        u: Float[Tensor, "*batch 3 X Y Z"],
        grad: Float[Tensor, "*batch 3 3 X Y Z"],
        width: Width,
        nu: float = 0.0,
    ) -> Float[Tensor, "*batch X Y Z"]:
        """The eddy viscosity field."""


class NoModel(EddyViscosityModel):
    """``nu_t = 0``."""

    def eddy_viscosity(self, u, grad, width, nu=0.0):
        _check_gradient(grad)
        return grad.new_zeros(*grad.shape[:-5], *grad.shape[-3:])


class Smagorinsky(EddyViscosityModel):
    """``nu_t = (C_s Delta)^2 |S|``, times the van Driest factor when a wall distance in wall units is known.

    ``y_plus`` (broadcasting against ``(X, Y, Z)``, e.g. ``(1, Y, 1)``) fixes that distance once;
    ``wall_damped=True`` asks the solver for it instead at every call (``eddy_viscosity(..., y_plus=)``),
    which :class:`sciml.physics.channel.ChannelFlow` computes from the current wall shear. A ``y_plus``
    passed to :meth:`eddy_viscosity` takes precedence over the stored one.
    """

    def __init__(
        self,
        c_s: float = 0.17,
        y_plus: Tensor | None = None,
        a_plus: float = 26.0,
        wall_damped: bool = False,
    ):
        if not c_s >= 0:
            raise ConfigError("c_s", f"must be >= 0, got {c_s!r}")
        if not a_plus > 0:
            raise ConfigError("a_plus", f"must be positive, got {a_plus!r}")
        self.c_s = float(c_s)
        self.y_plus = y_plus
        self.a_plus = float(a_plus)
        self.wall_damped = bool(wall_damped)

    def eddy_viscosity(self, u, grad, width, nu=0.0, y_plus: Tensor | None = None):
        if y_plus is None:
            y_plus = self.y_plus
        if y_plus is None and self.wall_damped:
            raise ConfigError(
                "wall_damped", "van Driest damping needs y_plus from the solver (a wall-bounded flow)"
            )
        magnitude = strain_magnitude(strain_rate(grad))
        nu_t = magnitude * (_width_squared(width, magnitude) * self.c_s**2)
        if y_plus is not None:
            nu_t = nu_t * van_driest_damping(y_plus.to(nu_t.dtype), self.a_plus)
        return nu_t


class WALE(EddyViscosityModel):
    """Wall-adapting local eddy viscosity of Nicoud & Ducros (1999), ``C_w = 0.325`` by default."""

    def __init__(self, c_w: float = 0.325):
        if not c_w >= 0:
            raise ConfigError("c_w", f"must be >= 0, got {c_w!r}")
        self.c_w = float(c_w)

    def eddy_viscosity(self, u, grad, width, nu=0.0):
        strain = strain_rate(grad)
        g2 = torch.einsum("...ikxyz,...kjxyz->...ijxyz", grad, grad)  # (..., 3, 3, X, Y, Z): g_ik g_kj
        sd = deviatoric(symmetric_components(g2))
        sd_sd = contract(sd, sd)
        s_s = contract(strain, strain)
        denominator = s_s.pow(2.5) + sd_sd.pow(1.25)
        # 0 / 0 only where S = 0 and S^d = 0 (e.g. a uniform flow): no eddy viscosity there.
        ratio = torch.where(
            denominator > 0, sd_sd.pow(1.5) / denominator.clamp_min(torch.finfo(s_s.dtype).tiny), 0.0
        )
        return ratio * (_width_squared(width, ratio) * self.c_w**2)


class SpectralCutoff:
    """Sharp spectral cutoff ``|k_i| < pi / width`` in every direction of a periodic box (last 3 axes)."""

    def __init__(self, width: float, lengths: float | Sequence[float] = TWO_PI):
        if not width > 0:
            raise ConfigError("width", f"the test-filter width must be positive, got {width!r}")
        self.width = float(width)
        self.lengths = as_triple(lengths, "lengths")

    def __call__(self, fields: Float[Tensor, "*batch X Y Z"]) -> Float[Tensor, "*batch X Y Z"]:
        grid = cached_grid(tuple(fields.shape[-3:]), self.lengths, fields.device, fields.dtype)
        cutoff = (
            math.pi / self.width * (1.0 - 1e-9)
        )  # a mode exactly on the cutoff is removed despite rounding
        keep = [
            (m.abs().to(fields.dtype) * (TWO_PI / length)) < cutoff
            for m, length in zip(grid.modes, grid.lengths)
        ]
        mask = (keep[0] & keep[1] & keep[2]).to(fields.dtype)  # (X, Y, Z//2+1)
        return irfft3(rfft3(fields) * mask, grid.shape)


def germano_coefficient(
    leonard: Float[Tensor, "*batch 6 X Y Z"],
    model_tensor: Float[Tensor, "*batch 6 X Y Z"],
    average_dims: Sequence[int] = (-3, -2, -1),
) -> Tensor:
    """Lilly's least-squares ``C = <L_ij M_ij> / <M_ij M_ij>`` averaged over the spatial ``average_dims``
    (negative indices of ``(X, Y, Z)``); keeps those dims as size 1. ``C = 0`` where ``<M M> = 0``."""
    dims = tuple(sorted({int(d) for d in average_dims}))
    if not dims or any(d not in (-3, -2, -1) for d in dims):
        raise ConfigError(
            "average_dims", f"expected a non-empty subset of (-3, -2, -1), got {average_dims!r}"
        )
    numerator = contract(leonard, model_tensor).mean(dims, keepdim=True)
    denominator = contract(model_tensor, model_tensor).mean(dims, keepdim=True)
    return torch.where(
        denominator > 0, numerator / denominator.clamp_min(torch.finfo(numerator.dtype).tiny), 0.0
    )


class DynamicSmagorinsky(EddyViscosityModel):
    """Germano-Lilly dynamic Smagorinsky model (see the module docstring).

    ``test_filter`` filters ``(..., X, Y, Z)`` fields; ``None`` means :class:`SpectralCutoff` of width
    ``test_ratio * width`` on a periodic box of ``lengths`` (then ``width`` must be a number).
    ``average_dims``: the homogeneous directions, ``(-3, -2, -1)`` for isotropic turbulence, ``(-3, -1)``
    for x-z planes of a channel. The last coefficient field is kept in :attr:`coefficient`.
    """

    def __init__(
        self,
        test_filter: TestFilter | None = None,
        test_ratio: float = 2.0,
        average_dims: Sequence[int] = (-3, -2, -1),
        lengths: float | Sequence[float] = TWO_PI,
    ):
        if not test_ratio > 1:
            raise ConfigError(
                "test_ratio", f"the test filter must be wider than the grid filter, got {test_ratio!r}"
            )
        self.test_filter = test_filter
        self.test_ratio = float(test_ratio)
        self.average_dims = tuple(average_dims)
        self.lengths = as_triple(lengths, "lengths")
        self.coefficient: Tensor | None = None

    def _filter(self, width: Width) -> TestFilter:
        if self.test_filter is not None:
            return self.test_filter
        if isinstance(width, Tensor):
            raise ConfigError("test_filter", "a spatially varying width needs an explicit test filter")
        return SpectralCutoff(self.test_ratio * width, self.lengths)

    def leonard_and_model(
        self, u: Float[Tensor, "*batch 3 X Y Z"], grad: Float[Tensor, "*batch 3 3 X Y Z"], width: Width
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(L, M, |S|)``: the resolved (Leonard) stress ``L`` and ``M`` as 6 components, and ``|S|``."""
        if u.ndim < 4 or u.shape[-4] != 3:
            raise ValueError(f"u: expected a velocity field (..., 3, X, Y, Z), got {tuple(u.shape)}")
        test = self._filter(width)
        strain = strain_rate(grad)
        magnitude = strain_magnitude(strain)
        delta2 = _width_squared(width, magnitude)
        products = torch.stack([u[..., i, :, :, :] * u[..., j, :, :, :] for i, j in SYMMETRIC_PAIRS], -4)
        # One filter call: u (3), u_i u_j (6), grad (9), Delta^2 |S| S^d (6) -> (..., 24, X, Y, Z).
        # M is built from S^d so that it is traceless even for a discretely non-solenoidal field.
        stacked = torch.cat(
            (u, products, grad.flatten(-5, -4), deviatoric(strain) * (delta2 * magnitude).unsqueeze(-4)), -4
        )
        filtered = test(stacked)
        u_t = filtered[..., :3, :, :, :]
        leonard = filtered[..., 3:9, :, :, :] - torch.stack(
            [u_t[..., i, :, :, :] * u_t[..., j, :, :, :] for i, j in SYMMETRIC_PAIRS], -4
        )
        strain_t = strain_rate(filtered[..., 9:18, :, :, :].unflatten(-4, (3, 3)))
        magnitude_t = strain_magnitude(strain_t)
        model_tensor = 2.0 * filtered[..., 18:, :, :, :] - deviatoric(strain_t) * (
            2.0 * self.test_ratio**2 * delta2 * magnitude_t
        ).unsqueeze(-4)
        return leonard, model_tensor, magnitude

    def eddy_viscosity(self, u, grad, width, nu=0.0):
        leonard, model_tensor, magnitude = self.leonard_and_model(u, grad, width)
        coefficient = germano_coefficient(leonard, model_tensor, self.average_dims)
        self.coefficient = coefficient
        nu_t = coefficient * _width_squared(width, magnitude) * magnitude
        return nu_t.clamp_min(-float(nu))


def closure_config(model: EddyViscosityModel | None) -> dict | None:
    """A plain dict that :func:`closure_from_config` turns back into an equal model (for checkpoints).

    Only what a dict can say is recorded: a Smagorinsky model with a fixed ``y_plus`` tensor or a dynamic
    model with its own ``test_filter`` (a callable) raises :class:`ConfigError`; so does an unknown model.
    """
    if model is None:
        return None
    if type(model) is NoModel:
        return {"name": "none"}
    if type(model) is Smagorinsky:
        if model.y_plus is not None:
            raise ConfigError("les", "a Smagorinsky model with a fixed y_plus tensor cannot be recorded")
        return {
            "name": "smagorinsky",
            "c_s": model.c_s,
            "a_plus": model.a_plus,
            "wall_damped": model.wall_damped,
        }
    if type(model) is WALE:
        return {"name": "wale", "c_w": model.c_w}
    if type(model) is DynamicSmagorinsky:
        if model.test_filter is not None:
            raise ConfigError("les", "a dynamic model with its own test_filter cannot be recorded")
        return {
            "name": "dynamic",
            "test_ratio": model.test_ratio,
            "average_dims": list(model.average_dims),
            "lengths": list(model.lengths),
        }
    raise ConfigError("les", f"cannot record a {type(model).__name__} closure")


def closure_from_config(config: dict | None) -> EddyViscosityModel | None:
    """The model :func:`closure_config` recorded."""
    if config is None:
        return None
    arguments = {key: value for key, value in config.items() if key != "name"}
    name = config.get("name")
    if name == "none":
        return NoModel()
    if name == "smagorinsky":
        return Smagorinsky(**arguments)
    if name == "wale":
        return WALE(**arguments)
    if name == "dynamic":
        return DynamicSmagorinsky(**arguments)
    raise ConfigError("les", f"unknown closure {name!r} (expected none, smagorinsky, wale or dynamic)")


def default_width(spacing: Sequence[float], dealias: bool) -> float:
    """Periodic-box filter width: ``(dx dy dz)^{1/3}`` (Deardorff 1970), times 3/2 with 2/3-rule
    dealiasing, whose cutoff ``k_c = (2/3) pi / dx`` makes ``Delta = pi / k_c`` (a sharp filter's width)."""
    mean = math.prod(spacing) ** (1.0 / 3.0)
    return 1.5 * mean if dealias else mean
