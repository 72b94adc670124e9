"""Pseudo-spectral Navier-Stokes in periodic boxes, LES filters and turbulence statistics.

Modules: :mod:`~sciml.physics.spectral` (grids, FFT helpers), :mod:`~sciml.physics.navier_stokes`
(the solver), :mod:`~sciml.physics.forcing`, :mod:`~sciml.physics.initial_conditions`,
:mod:`~sciml.physics.filters`, :mod:`~sciml.physics.statistics` and :mod:`~sciml.physics.hit`
(forced isotropic turbulence datasets). Velocity fields are ``(..., 3, X, Y, Z)`` tensors.
"""

from sciml.physics.filters import coarse_grain, spectral_filter
from sciml.physics.forcing import BandForcing, LinearForcing
from sciml.physics.hit import HITSimulation, simulate_forced_hit
from sciml.physics.initial_conditions import random_isotropic, taylor_green
from sciml.physics.navier_stokes import NavierStokes3D, SimulationResult
from sciml.physics.spectral import SpectralGrid

__all__ = [
    "BandForcing",
    "HITSimulation",
    "LinearForcing",
    "NavierStokes3D",
    "SimulationResult",
    "SpectralGrid",
    "coarse_grain",
    "random_isotropic",
    "simulate_forced_hit",
    "spectral_filter",
    "taylor_green",
]
